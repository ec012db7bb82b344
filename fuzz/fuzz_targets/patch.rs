//! Patches: `[document, patch]` applies as a merge patch or a JSON Patch, or fails with an
//! error; never a panic, and an accepted JSON Patch leaves an object within the size limit.
#![no_main]

use aerolith_common::json::parse_value;
use aerolith_common::patch::{PatchKind, apply};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MAX_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(pair)) = parse_value(data, 64) else {
        return;
    };
    let [Value::Object(doc), patch] = pair.as_slice() else {
        return;
    };
    let kind = PatchKind::of(patch);
    let small = serde_json::to_vec(doc).is_ok_and(|v| v.len() <= MAX_BYTES);
    if let Ok(out) = apply(kind, doc, patch, MAX_BYTES) {
        if kind == PatchKind::JsonPatch && small {
            let len = serde_json::to_vec(&out).map(|v| v.len()).unwrap_or(0);
            assert!(len <= MAX_BYTES, "{len} bytes accepted");
        }
    }
});
