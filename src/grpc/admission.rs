//! admission: the tower layer in front of every Portcullis service. It
//! - bounds the calls in flight: one over `max_in_flight` is refused at once
//!   with `RESOURCE_EXHAUSTED` (and a retry pushback) instead of queueing, so
//!   an overload costs the excess callers a retry, not everyone latency and
//!   memory;
//! - enforces a deadline on every call: the server's `request_timeout`, or
//!   the caller's shorter `grpc-timeout`, answered with `DEADLINE_EXCEEDED`;
//! - refuses new calls with `UNAVAILABLE` once shutdown begins, and lets
//!   [`Admission::drained`] wait for the calls in flight.
//!
//! Health checks bypass it, so probes are answered however loaded the
//! server is.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;
use tonic::Status;

/// Calls to this prefix are never limited.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// How long a shed caller is asked to wait before retrying.
const RETRY_PUSHBACK_MS: &str = "50";

struct State {
    permits: Arc<Semaphore>,
    max_in_flight: u32,
    timeout: Duration,
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
        Self {
            state: Arc::new(State {
                permits: Arc::new(Semaphore::new(max_in_flight as usize)),
                max_in_flight,
                timeout,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Calls being handled now.
    pub fn in_flight(&self) -> u32 {
        self.state.max_in_flight - self.state.permits.available_permits() as u32
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

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit.
fn grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn refuse<B: Default>(status: Status) -> http::Response<B> {
    status.into_http()
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

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

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        // Take the service that was made ready; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if req.uri().path().starts_with(HEALTH_PREFIX) {
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
        // The caller's deadline, if shorter; removed so that the deadline is
        // enforced here, once, with the right code.
        let caller_deadline = req
            .headers_mut()
            .remove("grpc-timeout")
            .and_then(|v| v.to_str().ok().and_then(grpc_timeout));
        let timeout = caller_deadline.map_or(state.timeout, |d| d.min(state.timeout));
        let fut = inner.call(req);
        Box::pin(async move {
            let _permit = permit;
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

#[cfg(test)]
mod tests {
    use super::grpc_timeout;
    use std::time::Duration;

    #[test]
    fn parses_grpc_timeout_units() {
        assert_eq!(grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(grpc_timeout("123456789S"), None);
        assert_eq!(grpc_timeout("S"), None);
        assert_eq!(grpc_timeout("10x"), None);
        assert_eq!(grpc_timeout("-1S"), None);
    }
}
