//! admission: the tower layer in front of every Portcullis service. It
//! - bounds the calls in flight: one over `max_in_flight` is refused at once
//!   with `RESOURCE_EXHAUSTED` (and a retry pushback) instead of queueing, so
//!   an overload costs the excess callers a retry, not everyone latency and
//!   memory;
//! - enforces the server's `request_timeout` on every call, answered with
//!   `DEADLINE_EXCEEDED` (a caller's shorter `grpc-timeout` is enforced by
//!   tonic itself, which answers `CANCELLED`);
//! - refuses new calls with `UNAVAILABLE` once shutdown begins, and lets
//!   [`Admission::drained`] wait for the calls in flight.
//!
//! Health checks bypass it, so probes are answered however loaded the
//! server is.

use super::BoxFuture;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;
use tonic::Status;

/// How long a shed caller is asked to wait before retrying.
pub(super) const RETRY_PUSHBACK_MS: &str = "50";

struct State {
    permits: Arc<Semaphore>,
    /// Calls admitted and not yet finished (the semaphore's free permits do
    /// not say, while `drained` is waiting for them).
    in_flight: AtomicU32,
    max_in_flight: u32,
    timeout: Duration,
    bulk_timeout: Duration,
    closed: AtomicBool,
}

/// Shared admission state: a layer for the server and a handle for shutdown.
#[derive(Clone)]
pub struct Admission {
    state: Arc<State>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("max_in_flight", &self.state.max_in_flight)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Admission {
    /// At most `max_in_flight` calls at once, each for at most `timeout`.
    pub fn new(max_in_flight: u32, timeout: Duration) -> Self {
        Self::with_bulk_timeout(max_in_flight, timeout, timeout)
    }

    /// As [`Admission::new`], whole-tenant calls for at most `bulk_timeout`.
    pub fn with_bulk_timeout(
        max_in_flight: u32,
        timeout: Duration,
        bulk_timeout: Duration,
    ) -> Self {
        Self {
            state: Arc::new(State {
                permits: Arc::new(Semaphore::new(max_in_flight as usize)),
                in_flight: AtomicU32::new(0),
                max_in_flight,
                timeout,
                bulk_timeout,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Calls being handled now.
    pub fn in_flight(&self) -> u32 {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// Refuses every new call from now on (shutdown).
    pub fn close(&self) {
        self.state.closed.store(true, Ordering::SeqCst);
    }

    /// Completes when no call is in flight (after [`Admission::close`]).
    pub async fn drained(&self) {
        let _all = self
            .state
            .permits
            .acquire_many(self.state.max_in_flight)
            .await;
    }
}

impl<S> tower_layer::Layer<S> for Admission {
    type Service = Admitted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admitted {
            inner,
            admission: self.clone(),
        }
    }
}

/// A service behind [`Admission`].
#[derive(Clone)]
pub struct Admitted<S> {
    inner: S,
    admission: Admission,
}

fn refuse<B: Default>(status: Status) -> http::Response<B> {
    status.into_http()
}

/// An admitted call: holds its permit and counts it in flight until dropped.
struct Ticket {
    state: Arc<State>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Ticket {
    fn count(state: Arc<State>, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        Self {
            state,
            _permit: permit,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for Admitted<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        // Take the service that was made ready; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if super::is_health_check(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        let state = &self.admission.state;
        if state.closed.load(Ordering::SeqCst) {
            let status = Status::unavailable("server is shutting down; retry");
            return Box::pin(async move { Ok(refuse(status)) });
        }
        let Ok(permit) = state.permits.clone().try_acquire_owned() else {
            let mut status = Status::resource_exhausted(format!(
                "over {} calls in flight; retry with backoff",
                state.max_in_flight
            ));
            status.metadata_mut().insert(
                "grpc-retry-pushback-ms",
                RETRY_PUSHBACK_MS.parse().expect("ascii"),
            );
            tracing::debug!(path = req.uri().path(), "shed: too many calls in flight");
            return Box::pin(async move { Ok(refuse(status)) });
        };
        let timeout = if super::is_bulk(req.uri().path()) {
            state.bulk_timeout
        } else {
            state.timeout
        };
        let ticket = Ticket::count(self.admission.state.clone(), permit);
        let fut = inner.call(req);
        Box::pin(async move {
            let _ticket = ticket;
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => Ok(refuse(Status::deadline_exceeded(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                )))),
            }
        })
    }
}
