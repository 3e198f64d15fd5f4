//! Compiles the Open Inference Protocol gRPC service (proto/inference.proto)
//! into Rust with protox, so no system `protoc` is needed, and writes the
//! file descriptor set that server reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["inference.proto"], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("inference_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_transport(false)
        // Tensor bytes stay `bytes::Bytes` slices of the received frame.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
