//! grpc: thin handlers that validate, call the engine or the store, and
//! convert; `status.rs` is the one place errors become gRPC codes.

pub mod admin;
pub mod admission;
pub mod check;
pub mod codec;
pub mod convert;
pub mod observe;
mod status;

/// Generated protobuf and tonic code for `portcullis.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("portcullis.v1");

    /// Encoded file descriptor set of every Portcullis proto, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/portcullis_descriptor.bin"));
}
