//! Secondary index definitions as collection settings carry them (issue 24): the rules
//! every node and gateway share. A collection's settings hold each index's definition, or
//! its drop, stamped with the (HLC, DC) that made it; per name the later stamp wins.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use prost::Message;

use crate::error::{Error, Result};
use crate::name::validate_index_path;
use crate::pb;

/// The most live indexes one collection may hold.
pub const MAX_INDEXES: usize = 16;

/// The most fields one index may have.
pub const MAX_FIELDS: usize = 8;

/// The join of two definition lists: per name the later (HLC, DC) wins, remaining ties go
/// to the greater encoding; ordered by name. Commutative, associative and idempotent.
pub fn join(a: &[pb::IndexDef], b: &[pb::IndexDef]) -> Vec<pb::IndexDef> {
    let mut by_name: BTreeMap<&str, &pb::IndexDef> = BTreeMap::new();
    for def in a.iter().chain(b) {
        match by_name.get(def.name.as_str()) {
            Some(held) if later(held, def) != Ordering::Less => {}
            _ => {
                by_name.insert(&def.name, def);
            }
        }
    }
    by_name.into_values().cloned().collect()
}

fn later(a: &pb::IndexDef, b: &pb::IndexDef) -> Ordering {
    (a.hlc, &a.dc)
        .cmp(&(b.hlc, &b.dc))
        .then_with(|| a.encode_to_vec().cmp(&b.encode_to_vec()))
}

/// The key direction of an index field.
pub fn order(field: &pb::IndexField) -> crate::query::index_key::Order {
    use crate::query::index_key::Order;
    if field.desc { Order::Desc } else { Order::Asc }
}

/// The definitions in force: not dropped.
pub fn live(meta: &pb::CollectionMeta) -> impl Iterator<Item = &pb::IndexDef> {
    meta.indexes.iter().filter(|d| !d.dropped)
}

/// Checks an index's fields: one to [`MAX_FIELDS`] valid dotted paths, none twice.
pub fn validate_fields(fields: &[pb::IndexField]) -> Result<()> {
    if fields.is_empty() || fields.len() > MAX_FIELDS {
        return Err(Error::invalid(format!(
            "an index has 1 to {MAX_FIELDS} fields, not {}",
            fields.len()
        )));
    }
    for (i, f) in fields.iter().enumerate() {
        validate_index_path(&f.path)?;
        if fields[..i].iter().any(|g| g.path == f.path) {
            return Err(Error::invalid(format!(
                "field {} appears twice in the index",
                f.path
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, hlc: u64, dc: &str, dropped: bool) -> pb::IndexDef {
        pb::IndexDef {
            name: name.into(),
            fields: vec![pb::IndexField {
                path: "age".into(),
                desc: false,
            }],
            hlc,
            dc: dc.into(),
            dropped,
        }
    }

    #[test]
    fn join_is_a_semilattice() {
        let lists = [
            vec![def("a", 5, "dc1", false)],
            vec![def("a", 7, "dc2", true), def("b", 3, "dc1", false)],
            vec![def("a", 7, "dc1", false)],
            vec![def("b", 3, "dc1", true)],
            vec![],
        ];
        for x in &lists {
            assert_eq!(join(x, x), join(x, &[]), "idempotent");
            for y in &lists {
                assert_eq!(join(x, y), join(y, x), "commutative");
                for z in &lists {
                    assert_eq!(join(&join(x, y), z), join(x, &join(y, z)), "associative");
                }
            }
        }
        let all = lists.iter().fold(Vec::new(), |acc, l| join(&acc, l));
        assert_eq!(
            all,
            vec![def("a", 7, "dc2", true), def("b", 3, "dc1", true)],
            "the later stamp wins per name; equal stamps go to the greater encoding"
        );
    }

    #[test]
    fn fields_are_checked() {
        let f = |p: &str| pb::IndexField {
            path: p.into(),
            desc: false,
        };
        assert!(validate_fields(&[f("a"), f("b.c")]).is_ok());
        assert!(validate_fields(&[]).is_err());
        assert!(validate_fields(&[f("a"), f("a")]).is_err());
        let nine: Vec<_> = (0..9).map(|i| f(&format!("f{i}"))).collect();
        assert!(validate_fields(&nine).is_err());
    }
}
