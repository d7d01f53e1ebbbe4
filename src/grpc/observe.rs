//! observe: the outermost tower layer. For every call it
//! - takes the caller's `x-request-id` (or makes one) and echoes it in the
//!   response headers;
//! - opens the call's `tracing` span (`grpc`), which handlers fill with the
//!   tenant and the decision, and which carries the request id into every
//!   log line of the call; with OpenTelemetry configured, the W3C
//!   `traceparent` of the caller becomes the span's parent (see
//!   `telemetry.rs`);
//! - records the RPC metrics (method, gRPC status code, latency) when the
//!   answer is complete, reading the status from the headers of a
//!   trailers-only answer or from the trailers.

use super::BoxFuture;
use crate::cache::{Lookups, LOOKUPS};
use crate::metrics::{Method, Metrics};
use http_body::{Body, Frame};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::Instrument;

/// The header carrying a request id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// The observing layer.
#[derive(Clone, Debug)]
pub struct Observe {
    metrics: Metrics,
}

impl Observe {
    /// Records into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower_layer::Layer<S> for Observe {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// A service behind [`Observe`].
#[derive(Clone, Debug)]
pub struct Observed<S> {
    inner: S,
    metrics: Metrics,
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A new request id: a UUIDv7 (time-ordered), its random bits from the
/// thread's generator rather than the kernel (a system call per request was
/// a visible share of a warm check's cost).
fn new_request_id() -> http::HeaderValue {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut text);
    http::HeaderValue::from_str(text).expect("a UUID is header text")
}

/// Records the call once, when its answer ends or is dropped.
struct Finish {
    metrics: Metrics,
    method: Arc<Method>,
    started: Instant,
    span: tracing::Span,
    code: Option<i32>,
    traced: bool,
}

impl Drop for Finish {
    fn drop(&mut self) {
        // No status: the caller went away before the answer ended.
        let code = self.code.unwrap_or(1);
        let elapsed = self.started.elapsed();
        self.metrics.rpc(&self.method, code, elapsed.as_secs_f64());
        if self.traced {
            self.span.record("rpc.grpc.status_code", code);
            let _enter = self.span.enter();
            tracing::debug!(
                code,
                elapsed_us = elapsed.as_micros() as u64,
                "call finished"
            );
        }
    }
}

/// A response body that reports the status in its trailers to [`Finish`].
pub struct ObservedBody<B> {
    inner: B,
    finish: Option<Finish>,
}

impl<B: Body + Unpin> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    if let Some(f) = self.finish.as_mut() {
                        f.code = Some(code);
                    }
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                self.finish.take();
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for Observed<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Unpin + Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = req.uri().path();
        let traced = !super::is_health_check(path);
        let method = self.metrics.method(path).clone();
        // A caller's id if it is sane header text of a sane length, else ours.
        let request_id = match req.headers().get(REQUEST_ID) {
            Some(v) if !v.is_empty() && v.len() <= 128 && v.to_str().is_ok() => v.clone(),
            _ => new_request_id(),
        };
        req.headers_mut().insert(REQUEST_ID, request_id.clone());
        let span = if traced {
            // Only served methods name spans (a caller cannot invent names).
            let id = request_id.to_str().unwrap_or_default();
            let span = tracing::info_span!(
                "grpc",
                otel.name = %method.name,
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = %method.service,
                rpc.method = %method.method,
                rpc.grpc.status_code = tracing::field::Empty,
                request_id = %id,
                tenant = tracing::field::Empty,
                decision = tracing::field::Empty,
                cache = tracing::field::Empty,
            );
            crate::telemetry::set_remote_parent(&span, req.headers());
            span
        } else {
            tracing::Span::none()
        };
        let finish = Finish {
            metrics: self.metrics.clone(),
            method,
            started: Instant::now(),
            span: span.clone(),
            code: None,
            traced,
        };
        let lookups = Arc::new(Lookups::default());
        let fut = LOOKUPS.scope(lookups.clone(), inner.call(req).instrument(span.clone()));
        Box::pin(async move {
            let mut finish = finish;
            let response = fut.await?;
            span.record("cache", lookups.summary());
            // A trailers-only answer (every error) has its status here.
            finish.code = grpc_status(response.headers());
            let (mut parts, body) = response.into_parts();
            parts.headers.insert(REQUEST_ID, request_id);
            Ok(http::Response::from_parts(
                parts,
                ObservedBody {
                    inner: body,
                    finish: Some(finish),
                },
            ))
        })
    }
}
