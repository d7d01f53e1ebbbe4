//! error: the crate's one error type. Its variants say what the caller can do;
//! `grpc/status.rs` maps each to a gRPC code in one exhaustive `match`.

/// Everything that can go wrong, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; `field` names the offending field.
    #[error("invalid `{field}`: {message}")]
    InvalidArgument { field: String, message: String },
    /// A named thing does not exist.
    #[error("{what} not found")]
    NotFound { what: String },
    /// A thing with that id exists already.
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// An invariant would be broken; `rule` names it.
    #[error("{rule}: {message}")]
    FailedPrecondition { rule: &'static str, message: String },
    /// The acting principal (or the API key) may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// No valid credentials; the text says which.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's tenant is using its whole share of the server; retry
    /// with backoff.
    #[error("{0}")]
    Exhausted(String),
    /// The store cannot be reached, or the replica is not caught up; retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data; details go to the logs, not the client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An `INVALID_ARGUMENT` naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A `NOT_FOUND` for `what` (for example ``principal `alice` ``).
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// The error with its field named inside `place` (`items[3].action`,
    /// `create_grant.actor_id`); any other error as it is.
    pub fn within(self, place: &str) -> Self {
        match self {
            Error::InvalidArgument { field, message } => Error::InvalidArgument {
                field: format!("{place}.{field}"),
                message,
            },
            e => e,
        }
    }

    /// A `FAILED_PRECONDITION` naming the broken `rule`.
    pub fn precondition(rule: &'static str, message: impl Into<String>) -> Self {
        Error::FailedPrecondition {
            rule,
            message: message.into(),
        }
    }
}
