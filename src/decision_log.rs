//! decision_log: every decision of `Check` and `BatchCheck` as a JSON line
//! (like Cerbos's audit log), off by default. Sampled, and never on the
//! request's path: a bounded queue feeds one writer task, and a decision
//! that finds the queue full is dropped and counted, not waited for.

use crate::config::DecisionLogConfig;
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use std::sync::Arc;
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

impl DecisionLog {
    /// Starts the writer for `cfg`; `None` when the log is off. Must run
    /// inside the runtime.
    /// Decisions dropped because the writer was behind count into
    /// `dropped` (`portcullis_decision_log_dropped_total`).
    pub async fn start(
        cfg: &DecisionLogConfig,
        dropped: Counter,
    ) -> std::io::Result<Option<Arc<Self>>> {
        let out: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match cfg.sink.as_str() {
            "stdout" => Box::new(tokio::io::stdout()),
            "file" => {
                let path = cfg.path.clone().unwrap_or_default();
                Box::new(
                    tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .await?,
                )
            }
            _ => return Ok(None),
        };
        Ok(Some(Self::over(out, cfg.buffer, cfg.sample_rate, dropped)))
    }

    /// The log writing to `out` through a queue of `buffer` lines.
    fn over(
        mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
        buffer: usize,
        sample_rate: f64,
        dropped: Counter,
    ) -> Arc<Self> {
        let (queue, mut lines) = mpsc::channel::<String>(buffer.max(1));
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                if out.write_all(line.as_bytes()).await.is_err() {
                    continue;
                }
                // Flush when caught up: a burst is written in one go.
                if lines.is_empty() {
                    let _ = out.flush().await;
                }
            }
            let _ = out.flush().await;
        });
        Arc::new(Self {
            queue,
            sample_rate,
            dropped,
        })
    }

    /// Queues a decision (when sampled); never waits.
    pub fn record(&self, e: &Entry<'_>) {
        if self.sample_rate < 1.0 && rand::random::<f64>() >= self.sample_rate {
            return;
        }
        let Ok(mut line) = serde_json::to_string(e) else {
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
        let log = DecisionLog::over(Box::new(Stuck), 4, 1.0, dropped.clone());
        let started = std::time::Instant::now();
        for i in 0..100 {
            let p = entry(i);
            log.record(&Entry {
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
