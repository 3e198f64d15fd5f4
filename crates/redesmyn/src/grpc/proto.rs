//! Code generated at build time from `proto/inference.proto` (see
//! `build.rs`), and the encoded file descriptor set that server reflection
//! serves so `grpcurl` works without the proto file.

// Generated code: tonic writes `.clone()` on its Arcs, and its own style.
#[allow(clippy::all, clippy::pedantic, clippy::clone_on_ref_ptr, missing_docs)]
pub mod inference {
    tonic::include_proto!("inference");
}

pub use inference::*;

/// The encoded `FileDescriptorSet` of `inference.proto`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/inference_descriptor.bin"));
