//! The one place that maps the crate's errors to gRPC status codes, with
//! machine-readable details (the gRPC richer error model): every error
//! carries a `google.rpc.ErrorInfo` whose `reason` says what went wrong
//! (`invalid_argument`, `not_found`, `already_exists`, the broken invariant
//! such as `last_account_admin`, `permission_denied`, `unauthenticated`,
//! `unavailable`, `internal`, `tenant_busy` when a tenant uses its whole
//! share of the server), and an invalid argument also carries a
//! `google.rpc.BadRequest` field violation naming the field. Clients read
//! these instead of parsing messages. Refusals of the admission layer (load
//! shedding, deadlines, shutdown) carry a code and a message only.

use crate::error::Error;
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of every `ErrorInfo` Portcullis sends.
pub const ERROR_DOMAIN: &str = "portcullis.v1";

fn status(code: Code, message: String, reason: &str, mut details: ErrorDetails) -> Status {
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        let none = ErrorDetails::new();
        // No `_ =>` arm: a new variant must be mapped here to compile.
        match e {
            Error::InvalidArgument {
                field,
                message: why,
            } => status(
                Code::InvalidArgument,
                message,
                "invalid_argument",
                ErrorDetails::with_bad_request_violation(field, why),
            ),
            Error::NotFound { .. } => status(Code::NotFound, message, "not_found", none),
            Error::AlreadyExists { .. } => {
                status(Code::AlreadyExists, message, "already_exists", none)
            }
            Error::FailedPrecondition { rule, .. } => {
                status(Code::FailedPrecondition, message, rule, none)
            }
            Error::PermissionDenied(_) => {
                status(Code::PermissionDenied, message, "permission_denied", none)
            }
            Error::Unauthenticated(_) => {
                status(Code::Unauthenticated, message, "unauthenticated", none)
            }
            Error::Exhausted(_) => {
                let mut s = status(Code::ResourceExhausted, message, "tenant_busy", none);
                s.metadata_mut().insert(
                    "grpc-retry-pushback-ms",
                    super::admission::RETRY_PUSHBACK_MS.parse().expect("ascii"),
                );
                s
            }
            Error::Unavailable(detail) => {
                // The cause stays in the logs; clients learn only to retry.
                tracing::warn!(%detail, "unavailable");
                status(
                    Code::Unavailable,
                    "temporarily unavailable; retry".to_owned(),
                    "unavailable",
                    none,
                )
            }
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                status(
                    Code::Internal,
                    "internal error".to_owned(),
                    "internal",
                    none,
                )
            }
        }
    }
}
