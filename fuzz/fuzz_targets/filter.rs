//! Query filters: any JSON parses to a filter or an `invalid_argument`, and a parsed filter
//! evaluates against any document without panicking. Input: `[filter, document]` or any
//! other JSON (parsed as a filter alone).
#![no_main]

use aerolith_common::json::parse_value;
use aerolith_common::query::Filter;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = parse_value(data, 64) else {
        return;
    };
    let (filter, doc) = match &v {
        Value::Array(pair) if pair.len() == 2 => (&pair[0], pair[1].as_object()),
        other => (other, None),
    };
    if let Ok(f) = Filter::parse(filter) {
        let empty = serde_json::Map::new();
        f.matches("some-id", doc.unwrap_or(&empty));
    }
});
