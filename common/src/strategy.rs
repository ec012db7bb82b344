//! Conflict strategies by the names API.md gives them.

use crate::error::{Error, Result};
use crate::pb::ConflictStrategy;

/// The API name of a strategy (`lww`, `siblings`, `field_merge`); unknown values read as `lww`.
pub fn strategy_name(s: i32) -> &'static str {
    match ConflictStrategy::try_from(s) {
        Ok(ConflictStrategy::Siblings) => "siblings",
        Ok(ConflictStrategy::FieldMerge) => "field_merge",
        _ => "lww",
    }
}

/// Parses a strategy name from a client.
pub fn parse_strategy(s: &str) -> Result<ConflictStrategy> {
    match s {
        "lww" => Ok(ConflictStrategy::Lww),
        "siblings" => Ok(ConflictStrategy::Siblings),
        "field_merge" => Ok(ConflictStrategy::FieldMerge),
        other => Err(Error::invalid(format!(
            "unknown conflict_strategy {other:?}: use lww, siblings or field_merge"
        ))),
    }
}
