//! decision_log: every decision of `Check` and `BatchCheck` as a JSON line
//! (like Cerbos's audit log), off by default. Sampled, and never on the
//! request's path: a bounded queue feeds one writer task, and a decision
//! that finds the queue full is dropped and counted, not waited for.

use crate::config::DecisionLogConfig;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
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
}

/// The log: where decisions go.
#[derive(Debug)]
pub struct DecisionLog {
    queue: mpsc::Sender<String>,
    sample_rate: f64,
    dropped: AtomicU64,
}

impl DecisionLog {
    /// Starts the writer for `cfg`; `None` when the log is off. Must run
    /// inside the runtime.
    pub async fn start(cfg: &DecisionLogConfig) -> std::io::Result<Option<Arc<Self>>> {
        let mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match cfg.sink.as_str() {
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
        let (queue, mut lines) = mpsc::channel::<String>(cfg.buffer.max(1));
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
        Ok(Some(Arc::new(Self {
            queue,
            sample_rate: cfg.sample_rate,
            dropped: AtomicU64::new(0),
        })))
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
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Decisions dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
