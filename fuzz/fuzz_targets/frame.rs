//! The internal RPC's frame decoder: any bytes a peer sends split into length-prefixed
//! frames and decode as requests and responses, or fail with an error; never a panic, and
//! never a frame longer than the bytes or the limit.
#![no_main]

use aerolith_common::pb;
use aerolith_common::rpc::frame::split_frame;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 1 << 20;

/// Splits `bytes` into frames of `$m` until one fails or the bytes end mid-frame.
macro_rules! drain {
    ($m:ty, $bytes:expr) => {{
        let mut bytes: &[u8] = $bytes;
        while let Ok(Some((_, used))) = split_frame::<$m>(bytes, MAX) {
            assert!(used >= 4 && used <= bytes.len() && used - 4 <= MAX);
            bytes = &bytes[used..];
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    drain!(pb::Request, data);
    drain!(pb::Response, data);
    drain!(pb::ReplicatorRequest, data);
    drain!(pb::ReplicatorResponse, data);
});
