//! Protobuf messages of AerolithDB's wires, generated at build time.

/// The internal storage RPC (`aerolith.internal.v1`).
pub mod internal {
    /// Version 1 of the internal wire.
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/aerolith.internal.v1.rs"));
    }
}

/// The public gRPC API (`aerolith.v1`, API.md "gRPC"): messages, client and server.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/aerolith.v1.rs"));

    /// The encoded descriptor set of `aerolith/v1/documents.proto`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/aerolith_v1_descriptor.bin"));
}
