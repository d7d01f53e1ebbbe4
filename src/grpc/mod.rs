//! grpc: thin handlers that validate, call the engine or the store, and
//! convert; `status.rs` is the one place errors become gRPC codes.

#[cfg(feature = "server")]
pub mod admin;
#[cfg(feature = "server")]
pub mod admission;
#[cfg(feature = "server")]
pub mod check;
pub mod codec;
#[cfg(feature = "server")]
pub mod convert;
#[cfg(feature = "server")]
pub mod fairness;
#[cfg(feature = "server")]
pub mod json;
#[cfg(feature = "server")]
pub mod observe;
#[cfg(feature = "server")]
pub mod operator;
#[cfg(feature = "server")]
mod preview;
#[cfg(feature = "server")]
mod status;
#[cfg(feature = "server")]
pub mod tenant;
#[cfg(feature = "server")]
pub mod watch;

/// Whether a request path is a health check: never limited by the admission
/// layer, never traced or logged per call (probes are many).
#[cfg(feature = "server")]
fn is_health_check(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

/// Whether a request path is a whole-tenant call (import, export, apply,
/// delete): bounded by the bulk timeout rather than the per-call one.
#[cfg(feature = "server")]
fn is_bulk(path: &str) -> bool {
    path.starts_with("/portcullis.v1.TenantService/")
}

/// The future of the tower layers in front of the services.
#[cfg(feature = "server")]
type BoxFuture<T, E> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;

/// The name of a `Reason` number (`REASON_GRANTED`), as the protobuf JSON
/// mapping writes it; `REASON_UNSPECIFIED` for a number this build does not
/// know.
pub fn reason_name(reason: i32) -> &'static str {
    pb::Reason::try_from(reason).map_or("REASON_UNSPECIFIED", |r| r.as_str_name())
}

/// Generated protobuf and tonic code for `portcullis.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("portcullis.v1");

    /// Encoded file descriptor set of every Portcullis proto, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/portcullis_descriptor.bin"));
}
