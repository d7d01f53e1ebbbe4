//! decision_log: every decision of `Check` and `BatchCheck` as a JSON line
//! (like Cerbos's audit log) to a file or stdout, or as an OpenTelemetry
//! log record exported over OTLP, off by default. Sampled, and never on the
//! request's path: a bounded queue feeds one writer task, and a decision
//! that finds the queue full is dropped and counted, not waited for.

use crate::config::{DecisionLogConfig, TracingConfig};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// One decision as the log writes it.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// When, RFC 3339.
    pub time: String,
    /// Tenant.
    pub tenant: &'a str,
    /// The credential that asked.
    pub caller: &'a str,
    /// The principal asked about.
    pub principal: &'a str,
    /// The action.
    pub action: &'a str,
    /// The resource, `type:id`.
    pub resource: String,
    /// The answer.
    pub allowed: bool,
    /// Its reason (`REASON_…`).
    pub reason: &'a str,
    /// The grant that decided or failed, if any.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub grant_id: &'a str,
    /// Its role.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub role_id: &'a str,
    /// The condition that decided or failed, if any.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub condition: &'a str,
    /// What it said: `held`, `failed`, `context_missing`, or `unknown` (a
    /// deny's condition that could not be told, which counts).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub condition_outcome: &'a str,
    /// The context fields a condition lacked.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub missing_context: &'a [String],
    /// The revision decided at.
    pub revision: i64,
    /// The call's request id (`x-request-id`).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub request_id: &'a str,
    /// The OpenTelemetry trace the call belongs to (with tracing on).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
}

/// The log: where decisions go.
#[derive(Debug)]
pub struct DecisionLog {
    queue: mpsc::Sender<String>,
    sample_rate: f64,
    dropped: Counter,
}

/// Where the writer task puts the lines.
enum Sink {
    /// A file or stdout.
    Write(Box<dyn tokio::io::AsyncWrite + Send + Unpin>),
    /// OpenTelemetry log records, exported over OTLP/gRPC in batches.
    Otlp(SdkLoggerProvider),
}

impl DecisionLog {
    /// Starts the writer for `cfg`; `None` when the log is off. Must run
    /// inside the runtime. With sink `otlp` the records go to
    /// `cfg.otlp_endpoint`, or else to `tracing.otlp_endpoint`. Decisions
    /// dropped because the writer was behind count into `dropped`
    /// (`portcullis_decision_log_dropped_total`).
    pub async fn start(
        cfg: &DecisionLogConfig,
        tracing_cfg: &TracingConfig,
        dropped: Counter,
    ) -> std::io::Result<Option<Arc<Self>>> {
        let sink = match cfg.sink.as_str() {
            "stdout" => Sink::Write(Box::new(tokio::io::stdout())),
            "file" => {
                let path = cfg.path.clone().unwrap_or_default();
                Sink::Write(Box::new(
                    tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .await?,
                ))
            }
            "otlp" => {
                let endpoint = cfg
                    .otlp_endpoint
                    .clone()
                    .or_else(|| tracing_cfg.otlp_endpoint.clone())
                    .unwrap_or_default();
                let exporter = opentelemetry_otlp::LogExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint)
                    .with_timeout(Duration::from_millis(tracing_cfg.export_timeout_ms))
                    .build()
                    .map_err(std::io::Error::other)?;
                Sink::Otlp(
                    SdkLoggerProvider::builder()
                        .with_batch_exporter(exporter)
                        .with_resource(
                            opentelemetry_sdk::Resource::builder()
                                .with_service_name(tracing_cfg.service_name.clone())
                                .build(),
                        )
                        .build(),
                )
            }
            _ => return Ok(None),
        };
        Ok(Some(Self::over(sink, cfg.buffer, cfg.sample_rate, dropped)))
    }

    /// The log writing to `sink` through a queue of `buffer` lines.
    fn over(sink: Sink, buffer: usize, sample_rate: f64, dropped: Counter) -> Arc<Self> {
        let (queue, lines) = mpsc::channel::<String>(buffer.max(1));
        tokio::spawn(async move {
            match sink {
                Sink::Write(out) => write_lines(out, lines).await,
                Sink::Otlp(provider) => export_lines(provider, lines).await,
            }
        });
        Arc::new(Self {
            queue,
            sample_rate,
            dropped,
        })
    }

    /// Queues a decision (when sampled: the entry is built only then);
    /// never waits.
    pub fn record<'e>(&self, entry: impl FnOnce() -> Entry<'e>) {
        if self.sample_rate < 1.0 && rand::random::<f64>() >= self.sample_rate {
            return;
        }
        let Ok(mut line) = serde_json::to_string(&entry()) else {
            return;
        };
        line.push('\n');
        if self.queue.try_send(line).is_err() {
            self.dropped.inc();
        }
    }

    /// Decisions dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

/// Writes each line to `out`, flushing when caught up (a burst is written
/// in one go).
async fn write_lines(
    mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    mut lines: mpsc::Receiver<String>,
) {
    while let Some(line) = lines.recv().await {
        if out.write_all(line.as_bytes()).await.is_err() {
            continue;
        }
        if lines.is_empty() {
            let _ = out.flush().await;
        }
    }
    let _ = out.flush().await;
}

/// Emits each line as an OpenTelemetry log record: the event
/// `portcullis.decision`, the line as its body and each field as an
/// attribute. The SDK exports them in batches from its own thread; the
/// records left are flushed when the log ends.
async fn export_lines(provider: SdkLoggerProvider, mut lines: mpsc::Receiver<String>) {
    use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
    let logger = provider.logger("portcullis");
    while let Some(line) = lines.recv().await {
        let mut r = logger.create_log_record();
        r.set_event_name("portcullis.decision");
        r.set_timestamp(std::time::SystemTime::now());
        r.set_severity_number(Severity::Info);
        r.set_severity_text("INFO");
        if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&line) {
            for (k, v) in fields {
                let v: AnyValue = match v {
                    serde_json::Value::String(s) => s.into(),
                    serde_json::Value::Bool(b) => b.into(),
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => i.into(),
                        None => n.to_string().into(),
                    },
                    other => other.to_string().into(),
                };
                r.add_attribute(k, v);
            }
        }
        r.set_body(line.trim_end().to_owned().into());
        logger.emit(r);
    }
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A sink that never takes a byte: the writer stays behind forever.
    struct Stuck;

    impl tokio::io::AsyncWrite for Stuck {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Pending
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
    }

    fn entry(i: usize) -> String {
        format!("principal-{i}")
    }

    #[tokio::test]
    async fn a_writer_that_is_behind_costs_dropped_decisions_never_a_wait() {
        let dropped = Counter::default();
        let log = DecisionLog::over(Sink::Write(Box::new(Stuck)), 4, 1.0, dropped.clone());
        let started = std::time::Instant::now();
        for i in 0..100 {
            let p = entry(i);
            log.record(|| Entry {
                time: String::new(),
                tenant: "t",
                caller: "c",
                principal: &p,
                action: "view",
                resource: "doc:1".to_owned(),
                allowed: true,
                reason: "REASON_GRANTED",
                grant_id: "",
                role_id: "",
                condition: "",
                condition_outcome: "",
                missing_context: &[],
                revision: 1,
                request_id: "",
                trace_id: String::new(),
            });
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // The writer holds at most one line and the queue four: the rest
        // are dropped and counted where the metric reads them.
        assert!(log.dropped() >= 95, "{} dropped", log.dropped());
        assert_eq!(dropped.get(), log.dropped());
    }
}
