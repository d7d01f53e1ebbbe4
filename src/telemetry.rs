//! telemetry: the tracing subscriber — logs as JSON lines (or text on a
//! terminal), and, when `tracing.otlp_endpoint` is set, spans exported over
//! OTLP/gRPC to an OpenTelemetry collector. A caller's W3C `traceparent`
//! becomes the parent of the call's span ([`set_remote_parent`]), so the
//! caller's trace continues into Portcullis. Spans are exported in batches
//! by a background task: a slow or unreachable collector costs dropped
//! spans, never slower calls.

use crate::config::{LogConfig, TracingConfig};
use crate::error::{Error, Result};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Keeps the span exporter alive; dropping it flushes the spans not yet sent.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Installs the global subscriber; `RUST_LOG` overrides the configured
/// filter. Call inside the tokio runtime (the OTLP exporter needs it).
pub fn init(log: &LogConfig, tracing_cfg: &TracingConfig) -> Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let json = match log.format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let logs = if json {
        fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).boxed()
    };
    let (otel, provider) = match &tracing_cfg.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(Duration::from_millis(tracing_cfg.export_timeout_ms))
                .build()
                .map_err(|e| Error::invalid("tracing.otlp_endpoint", e.to_string()))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(tracing_cfg.service_name.clone())
                        .build(),
                )
                .build();
            let tracer = provider.tracer("portcullis");
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                Some(provider),
            )
        }
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(otel)
        .try_init();
    Ok(Telemetry { provider })
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The OpenTelemetry trace id of the current span, as 32 hex digits; empty
/// when there is none (no exporter, or no trace).
pub fn current_trace_id() -> String {
    use opentelemetry::trace::TraceContextExt;
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if sc.is_valid() {
        sc.trace_id().to_string()
    } else {
        String::new()
    }
}

/// Makes the caller's span (W3C `traceparent`/`tracestate` headers) the
/// parent of `span`. Without those headers, or without OpenTelemetry, it
/// does nothing.
pub fn set_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(cx);
}
