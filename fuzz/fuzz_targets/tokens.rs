//! Everything a client hands back opaque or as a credential: resume tokens, page and query
//! cursors, session tokens, version strings and `Authorization` headers. Each decodes or
//! fails with an error; never a panic.
#![no_main]

use aerolith_common::auth::{Tokens, bearer};
use aerolith_common::version::VersionVector;
use aerolith_gateway::ops::cursor;
use aerolith_gateway::ops::{Positions, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Positions::decode(s, "dc1", 8);
    let _ = Positions::decode(s, "dc1", 64);
    let _ = Positions::decode(s, "dc2", 1);
    let _ = cursor::decode(s);
    for keys in 0..3 {
        let _ = cursor::decode_position(s, keys);
    }
    let _ = Session::parse(Some(s));
    let _ = VersionVector::parse(s);
    let mut tokens = Tokens::default();
    if tokens.add_list("read:fuzz-read-token-0123456789").is_ok() {
        let caller = tokens.caller(bearer(s));
        assert!(caller.is_err() || bearer(s) == Some("fuzz-read-token-0123456789"));
    }
    let _ = Tokens::default().add_list(s);
});
