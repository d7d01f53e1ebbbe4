//! The one place that maps the crate's errors to gRPC status codes.

use crate::error::Error;
use tonic::Status;

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        // No `_ =>` arm: a new variant must be mapped here to compile.
        match e {
            Error::InvalidArgument { .. } => Status::invalid_argument(e.to_string()),
            Error::NotFound { .. } => Status::not_found(e.to_string()),
            Error::AlreadyExists { .. } => Status::already_exists(e.to_string()),
            Error::FailedPrecondition { .. } => Status::failed_precondition(e.to_string()),
            Error::PermissionDenied(_) => Status::permission_denied(e.to_string()),
            Error::Unauthenticated(_) => Status::unauthenticated(e.to_string()),
            Error::Unavailable(detail) => {
                // The cause stays in the logs; clients learn only to retry.
                tracing::warn!(%detail, "unavailable");
                Status::unavailable("temporarily unavailable; retry")
            }
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
