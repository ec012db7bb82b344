//! Protobuf messages of AerolithDB's wires, generated at build time.

/// The internal storage RPC (`aerolith.internal.v1`).
pub mod internal {
    /// Version 1 of the internal wire.
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/aerolith.internal.v1.rs"));
    }
}
