//! The public representation of a document, rendered from its stored record.

use serde::Serialize;

use crate::body::Body;
use crate::error::Result;
use crate::hlc;
use crate::pb;
use crate::time::rfc3339_ms;
use crate::version::VersionVector;

/// A document as every protocol presents it (API.md "Document representation").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    /// The collection.
    pub collection: String,
    /// The document id.
    pub id: String,
    /// Opaque version (the version vector's string form); the HTTP ETag.
    pub version: String,
    /// RFC 3339 UTC time of the winning write.
    pub updated_at: String,
    /// DC of the winning write.
    pub origin: String,
    /// The body, as stored.
    pub data: Body,
    /// Unresolved concurrent versions (`siblings` collections only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<ConflictVersion>>,
}

/// One concurrent version kept beside `data`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConflictVersion {
    /// Its version.
    pub version: String,
    /// Its write time.
    pub updated_at: String,
    /// Its DC.
    pub origin: String,
    /// Its body, as stored.
    pub data: Body,
}

/// The version string of a stored record: its version vector, plus the collection's
/// incarnation once the collection was deleted and re-created, so that no version (ETag) of a
/// document in the old incarnation is ever reused for different content in the new one.
pub fn version_of(rec: &pb::DocRecord) -> String {
    let vv = VersionVector::from_proto(rec.vv.as_ref());
    if rec.incarnation == 0 {
        vv.to_string()
    } else {
        format!("{vv}~{:x}", rec.incarnation)
    }
}

impl Document {
    /// Renders a record; `None` for a tombstone.
    pub fn from_record(
        collection: &str,
        id: &str,
        rec: &pb::DocRecord,
    ) -> Result<Option<Document>> {
        if rec.tombstone {
            return Ok(None);
        }
        let mut siblings = Vec::new();
        // A merged `siblings` record lists every concurrent version, `data`'s own included
        // (crate::merge); `conflicts` holds the others.
        let is_data =
            |s: &pb::Sibling| s.hlc == rec.hlc && s.origin == rec.origin && s.body == rec.body;
        for s in rec.siblings.iter().filter(|s| !s.tombstone && !is_data(s)) {
            let version = ConflictVersion {
                version: VersionVector::from_proto(s.vv.as_ref()).to_string(),
                updated_at: rfc3339_ms(hlc::wall_ms(s.hlc)),
                origin: s.origin.clone(),
                data: Body::from_stored(&s.body)?,
            };
            siblings.push(((s.hlc, s.origin.clone()), version));
        }
        // API.md: ordered by (updated_at, origin) descending.
        siblings.sort_by(|a, b| b.0.cmp(&a.0));
        let conflicts: Vec<ConflictVersion> = siblings.into_iter().map(|(_, v)| v).collect();
        Ok(Some(Document {
            collection: collection.to_string(),
            id: id.to_string(),
            version: version_of(rec),
            updated_at: rfc3339_ms(hlc::wall_ms(rec.hlc)),
            origin: rec.origin.clone(),
            data: Body::from_stored(&rec.body)?,
            conflicts: (!conflicts.is_empty()).then_some(conflicts),
        }))
    }
}
