//! Query projections: keeping only the listed paths of a document body.

use serde_json::{Map, Value};

use super::parse_path;
use crate::error::{Error, Result};
use crate::json::type_name;

/// Parses `projection`: an array of dotted path strings into the body.
pub fn parse_projection(v: &Value) -> Result<Vec<String>> {
    let Value::Array(items) = v else {
        return Err(Error::invalid(format!(
            "projection must be an array of field paths, not {}",
            type_name(v)
        )));
    };
    let mut paths = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::String(path) = item else {
            return Err(Error::invalid(format!(
                "projection[{i}] must be a field path string, not {}",
                type_name(item)
            )));
        };
        paths.push(path.clone());
    }
    projection_paths(paths)
}

/// Checks projection paths that arrived as strings already (gRPC, GraphQL).
pub fn projection_paths(paths: Vec<String>) -> Result<Vec<String>> {
    for path in &paths {
        parse_path(path)?;
    }
    Ok(paths)
}

/// Keeps only `paths` of `data`, nested paths keeping their nesting; missing paths are left out.
///
/// Paths address the body only (the id is returned beside it anyway), and a path through a
/// non-object is missing, as in filters. Overlapping paths (`a` and `a.b`) keep the larger.
pub fn project(paths: &[String], data: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for path in paths {
        let mut segments = path.split('.');
        let Some(first) = segments.next() else {
            continue;
        };
        insert_path(&mut out, data, first, segments);
    }
    out
}

/// Copies `data[seg].rest…` into `out[seg].rest…`, creating intermediate objects only when
/// the leaf exists, so a missing path leaves no empty shells behind.
fn insert_path<'p>(
    out: &mut Map<String, Value>,
    data: &Map<String, Value>,
    seg: &str,
    mut rest: impl Iterator<Item = &'p str>,
) -> bool {
    let Some(value) = data.get(seg) else {
        return false;
    };
    let Some(next) = rest.next() else {
        // A later, larger path replaces an earlier partial copy; an earlier full copy already
        // holds whatever a smaller path would add.
        out.insert(seg.to_owned(), value.clone());
        return true;
    };
    let Value::Object(inner) = value else {
        return false;
    };
    match out.get_mut(seg) {
        Some(Value::Object(existing)) => insert_path(existing, inner, next, rest),
        // Only objects are ever inserted at intermediate positions.
        Some(_) => false,
        None => {
            let mut sub = Map::new();
            let found = insert_path(&mut sub, inner, next, rest);
            if found {
                out.insert(seg.to_owned(), Value::Object(sub));
            }
            found
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::query::tests::doc;
    use serde_json::json;

    fn proj(paths: &[&str], data: Value) -> Value {
        let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        Value::Object(project(&paths, &doc(data)))
    }

    #[test]
    fn keeps_listed_paths_with_nesting() {
        let d = json!({
            "name": "Ann", "age": 3,
            "address": {"city": "Oslo", "zip": "0150", "geo": {"lat": 59, "lon": 10}},
            "tags": ["a"]
        });
        assert_eq!(
            proj(&["name", "address.city"], d.clone()),
            json!({"name": "Ann", "address": {"city": "Oslo"}})
        );
        assert_eq!(
            proj(&["address.geo.lat", "address.zip"], d.clone()),
            json!({"address": {"zip": "0150", "geo": {"lat": 59}}})
        );
        assert_eq!(proj(&["tags"], d.clone()), json!({"tags": ["a"]}));
        assert_eq!(proj(&[], d.clone()), json!({}));
        assert_eq!(proj(&["name", "name"], d), json!({"name": "Ann"}));
    }

    #[test]
    fn missing_paths_are_omitted_without_empty_parents() {
        let d = json!({"a": {"b": 1}, "s": "x", "arr": [{"b": 1}], "n": null});
        assert_eq!(proj(&["zzz"], d.clone()), json!({}));
        assert_eq!(proj(&["a.c"], d.clone()), json!({}));
        assert_eq!(proj(&["a.b.c"], d.clone()), json!({}));
        assert_eq!(proj(&["s.x"], d.clone()), json!({}));
        assert_eq!(proj(&["arr.b"], d.clone()), json!({}));
        assert_eq!(proj(&["n"], d.clone()), json!({"n": null}));
        assert_eq!(proj(&["a.c", "a.b"], d), json!({"a": {"b": 1}}));
    }

    #[test]
    fn overlapping_paths_keep_the_larger() {
        let d = json!({"a": {"b": 1, "c": 2}});
        assert_eq!(
            proj(&["a", "a.b"], d.clone()),
            json!({"a": {"b": 1, "c": 2}})
        );
        assert_eq!(proj(&["a.b", "a"], d), json!({"a": {"b": 1, "c": 2}}));
    }

    #[test]
    fn id_is_a_plain_body_path_here() {
        let d = json!({"_id": "body", "x": 1});
        assert_eq!(proj(&["_id"], d), json!({"_id": "body"}));
    }

    #[test]
    fn parse_projection_validates() {
        assert_eq!(
            parse_projection(&json!(["name", "address.city"])).expect("valid"),
            vec!["name".to_owned(), "address.city".to_owned()]
        );
        assert_eq!(
            parse_projection(&json!([])).expect("valid"),
            Vec::<String>::new()
        );
        let cases: Vec<(Value, &str)> = vec![
            (json!("name"), "projection must be an array"),
            (json!({"name": 1}), "projection must be an array"),
            (json!(null), "projection must be an array"),
            (json!([1]), "projection[0] must be a field path string"),
            (
                json!(["a", ["b"]]),
                "projection[1] must be a field path string",
            ),
            (json!([""]), "empty field path"),
            (json!(["a..b"]), "has an empty segment"),
        ];
        for (v, want) in cases {
            let e = parse_projection(&v).expect_err("should be rejected");
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(e.message.contains(want), "{v}: got {:?}", e.message);
        }
    }
}
