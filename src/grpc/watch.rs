//! watch: the change feed (`WatchService`). Each stream follows one
//! tenant's revision log from a revision on, sending each revision once,
//! in order, with the row-level changes the replicas apply to their
//! indexes. It reads the log in batches only as fast as the client takes
//! them, so a slow client holds a cursor, never a growing buffer; one that
//! falls more than [`MAX_LAG`] revisions behind, or asks for revisions the
//! log cannot replay, is told to resync. Streams are bounded in number, in
//! all and per tenant, and end when the server shuts down.

use super::pb;
use crate::auth::caller;
use crate::error::Error;
use crate::model::parse_revision_token;
use crate::store::{Invalidation, RevisionLog, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Most watch streams open on one replica.
pub const MAX_STREAMS: usize = 256;
/// Most watch streams open on one tenant (so one tenant cannot take them
/// all).
pub const MAX_STREAMS_PER_TENANT: usize = 32;
/// How far behind the tenant's head a stream may fall before it is told
/// to resync, in revisions.
pub const MAX_LAG: i64 = 100_000;
/// Revisions read from the log at once.
const BATCH: i64 = 256;
/// Responses buffered per stream before the reader waits for the client.
const BUFFERED: usize = 16;
/// Longest a stream waits for its client to take a response before it is
/// closed.
const STALLED: Duration = Duration::from_secs(60);

/// The watch service over a store's revision log.
#[derive(Clone)]
pub struct WatchApi<S> {
    store: S,
    poll: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl<S> WatchApi<S> {
    /// Streams read `store`'s log, looking for new revisions every `poll`;
    /// they end when `stop` turns true.
    pub fn new(store: S, poll: Duration, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        Self {
            store,
            poll,
            stop,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// A stream's place in the counts; released when the stream ends.
struct Slot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    tenant: String,
}

impl Slot {
    fn take(open: &Arc<Mutex<HashMap<String, usize>>>, tenant: &str) -> Result<Slot, Error> {
        let mut counts = open.lock().unwrap_or_else(|e| e.into_inner());
        let all: usize = counts.values().sum();
        let mine = counts.get(tenant).copied().unwrap_or(0);
        if all >= MAX_STREAMS || mine >= MAX_STREAMS_PER_TENANT {
            return Err(Error::Exhausted(format!(
                "too many watch streams open (at most {MAX_STREAMS_PER_TENANT} per tenant and {MAX_STREAMS} per replica); close one or retry later"
            )));
        }
        *counts.entry(tenant.to_owned()).or_default() += 1;
        Ok(Slot {
            open: open.clone(),
            tenant: tenant.to_owned(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.tenant);
            }
        }
    }
}

/// The end of a stream that cannot go on from where it is: why, and what
/// the client does next.
fn resync(why: String) -> End {
    End::Status(
        Error::FailedPrecondition {
            rule: "watch_resync",
            message: format!("{why}; reread and watch from the revision read at"),
        }
        .into(),
    )
}

/// A revision the log does not hold (pruned, or never recorded).
fn gap(missing: i64) -> End {
    resync(format!(
        "the log does not hold revision {missing} of the tenant"
    ))
}

#[tonic::async_trait]
impl<S: Store + RevisionLog + Clone> pb::watch_service_server::WatchService for WatchApi<S> {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let tenant = caller.tenant(r.tenant_id)?;
        let after = parse_revision_token("after_revision", &r.after_revision)?;
        let head = self
            .store
            .tenant_revision(&tenant, None)
            .await?
            .ok_or_else(|| Error::not_found(format!("tenant `{tenant}`")))?;
        let after = match after {
            None => head,
            Some(a) if a > head => {
                return Err(Error::invalid(
                    "after_revision",
                    format!("revision {a} is ahead of the tenant (at {head})"),
                )
                .into())
            }
            Some(a) => a,
        };
        let slot = Slot::take(&self.open, &tenant)?;
        let (tx, rx) = mpsc::channel(BUFFERED);
        let follow = Follow {
            store: self.store.clone(),
            tenant,
            poll: self.poll,
            stop: self.stop.clone(),
            tx,
        };
        tokio::spawn(async move {
            let _slot = slot;
            follow.run(after).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// One stream's reader of the log.
struct Follow<S> {
    store: S,
    tenant: String,
    poll: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
}

/// Why a stream ends.
enum End {
    /// The client went away or stopped reading.
    Gone,
    /// An error to tell the client.
    Status(Status),
}

impl<S: Store + RevisionLog> Follow<S> {
    async fn run(mut self, mut cursor: i64) {
        let end = loop {
            match self.step(&mut cursor).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(end) => break end,
            }
            // Caught up: wait for the next poll, the shutdown or the
            // client leaving.
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = self.stop.changed() => {}
                _ = self.tx.closed() => break End::Gone,
            }
        };
        if let End::Status(s) = end {
            let _ = self.tx.send_timeout(Err(s), STALLED).await;
        }
    }

    /// Sends what the log holds after `cursor` (one batch); `Ok(true)` when
    /// there may be more right away.
    async fn step(&mut self, cursor: &mut i64) -> Result<bool, End> {
        if *self.stop.borrow() {
            return Err(End::Status(Status::unavailable(format!(
                "the server is shutting down; resume with after_revision {cursor}"
            ))));
        }
        let head = match self.store.tenant_revision(&self.tenant, None).await {
            Ok(Some(h)) => h,
            Ok(None) => {
                return Err(End::Status(
                    Error::not_found(format!("tenant `{}`", self.tenant)).into(),
                ))
            }
            Err(e) => return Err(End::Status(e.into())),
        };
        if head - *cursor > MAX_LAG {
            return Err(resync(format!(
                "the stream is {} revisions behind the tenant (at most {MAX_LAG})",
                head - *cursor
            )));
        }
        if head <= *cursor {
            return Ok(false);
        }
        let upto = head.min(*cursor + BATCH);
        let entries = self
            .store
            .changes(&self.tenant, *cursor, upto)
            .await
            .map_err(|e| End::Status(e.into()))?;
        for (revision, inv) in entries {
            if revision != *cursor + 1 {
                return Err(gap(*cursor + 1));
            }
            let response = response(revision, &inv).ok_or_else(|| {
                resync(format!(
                    "revision {revision} carries no row-level changes (a whole tenant imported, or a write from before they were recorded)"
                ))
            })?;
            match self.tx.send_timeout(Ok(response), STALLED).await {
                Ok(()) => *cursor = revision,
                Err(_) => return Err(End::Gone),
            }
        }
        if *cursor < upto {
            return Err(gap(*cursor + 1));
        }
        Ok(*cursor < head)
    }
}

/// A revision as sent; `None` when its entry has no row-level changes
/// although it changed something (written before they were recorded).
fn response(revision: i64, inv: &Invalidation) -> Option<pb::WatchResponse> {
    let recorded = !inv.deltas.is_empty()
        || *inv
            == Invalidation {
                deltas: Vec::new(),
                ..Invalidation::default()
            };
    recorded.then(|| pb::WatchResponse {
        revision: revision.to_string(),
        changes: inv
            .deltas
            .iter()
            .map(|d| match serde_json::to_value(d) {
                Ok(serde_json::Value::Object(o)) => to_struct(o),
                _ => prost_types::Struct::default(),
            })
            .collect(),
    })
}

pub(super) fn to_struct(o: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: o.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

fn to_value(v: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s),
        J::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(to_value).collect(),
        }),
        J::Object(o) => Kind::StructValue(to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceRef;
    use crate::store::Delta;

    #[test]
    fn a_revision_is_sent_with_its_changes_or_not_at_all() {
        let d = Delta::Moved {
            resource: ResourceRef::new("resource", "workflow", "w1").expect("ref"),
            parent: None,
        };
        let inv = Invalidation {
            subtrees: vec![ResourceRef::new("resource", "workflow", "w1").expect("ref")],
            deltas: vec![d],
            ..Invalidation::default()
        };
        let r = response(7, &inv).expect("recorded");
        assert_eq!(r.revision, "7");
        let fields = &r.changes[0].fields;
        assert_eq!(
            fields["op"].kind,
            Some(prost_types::value::Kind::StringValue("moved".into()))
        );
        // Written before changes were recorded: cannot be replayed.
        let old = Invalidation {
            everything: true,
            ..Invalidation::default()
        };
        assert!(response(8, &old).is_none());
        // A revision that changed nothing is sent empty.
        assert!(response(9, &Invalidation::default()).is_some_and(|r| r.changes.is_empty()));
    }
}
