//! Compiles the `.proto` files with the pure-Rust `protox`, so no system `protoc` is needed.
//! The public API also gets tonic service code and a descriptor set for server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let internal = "aerolith/internal/v1/storage.proto";
    let public = "aerolith/v1/documents.proto";
    for f in [internal, public] {
        println!("cargo:rerun-if-changed={f}");
    }
    prost_build::Config::new().compile_fds(protox::compile([internal], ["."])?)?;

    let fds = protox::compile([public], ["."])?;
    // `compile_fds` does not write the descriptor set that reflection serves.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("aerolith_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
