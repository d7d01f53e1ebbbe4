//! grant_use: when each grant last decided a check. `Check` and `BatchCheck`
//! note the grant that decided each answer (an allow's grant, or the deny
//! that won) in memory; a background task writes what gathered to the store
//! in batches (every `grant_usage.flush_interval_ms`, sooner when many
//! gathered, and once more at shutdown), never one write per check. Access
//! reviews read it from `ListGrants` (`last_use_time`) to find grants nobody
//! uses. The time is when the batch's latest use was noted: exact to the
//! flush interval, and a crash loses at most one interval of uses.

use crate::error::Result;
use crate::model::Millis;
use crate::store::Catalog;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Most uses held between two flushes; at it the flush starts early and
/// further new grants wait for the next batch (a grant already held still
/// moves forward).
pub const MAX_PENDING: usize = 100_000;

/// Uses noted since the last flush, by tenant and grant.
#[derive(Debug, Default)]
pub struct GrantUse {
    pending: Mutex<Pending>,
    full: Notify,
}

/// What the lock guards: the uses, and how many grants they name.
#[derive(Debug, Default)]
struct Pending {
    by_tenant: HashMap<String, HashMap<String, Millis>>,
    held: usize,
}

impl GrantUse {
    /// Nothing noted yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Notes that `grant_id` decided a check of `tenant` at `at`.
    pub fn record(&self, tenant: &str, grant_id: &str, at: Millis) {
        if grant_id.is_empty() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let noted = pending
            .by_tenant
            .get_mut(tenant)
            .and_then(|g| g.get_mut(grant_id));
        if let Some(t) = noted {
            *t = (*t).max(at);
            return;
        }
        if pending.held >= MAX_PENDING {
            self.full.notify_one();
            return;
        }
        pending
            .by_tenant
            .entry(tenant.to_owned())
            .or_default()
            .insert(grant_id.to_owned(), at);
        pending.held += 1;
    }

    /// Takes what was noted, by tenant.
    fn take(&self) -> HashMap<String, HashMap<String, Millis>> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *pending).by_tenant
    }

    /// Writes what was noted: one batch per tenant. Returns how many grants
    /// it wrote; a tenant whose batch failed is logged and its uses dropped
    /// (the next use notes them again).
    pub async fn flush<C: Catalog>(&self, store: &C) -> usize {
        let mut written = 0;
        for (tenant, uses) in self.take() {
            let mut batch: Vec<(String, Millis)> = uses.into_iter().collect();
            batch.sort();
            match store.record_grant_use(&tenant, &batch).await {
                Ok(()) => written += batch.len(),
                Err(e) => tracing::warn!(tenant, error = %e, "grant use not recorded"),
            }
        }
        written
    }

    /// Flushes every `every` (or sooner when [`MAX_PENDING`] gathered) until
    /// `stop` completes, then once more.
    pub fn spawn<C: Catalog + Clone>(
        self: &Arc<Self>,
        store: C,
        every: Duration,
        stop: tokio::sync::oneshot::Receiver<()>,
    ) -> tokio::task::JoinHandle<Result<()>> {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                let stopping = tokio::select! {
                    _ = tokio::time::sleep(every) => false,
                    _ = me.full.notified() => false,
                    _ = &mut stop => true,
                };
                me.flush(&store).await;
                if stopping {
                    return Ok(());
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemStore;

    #[tokio::test]
    async fn uses_gather_in_memory_and_reach_the_store_in_one_batch_per_tenant() {
        let store = MemStore::new();
        let uses = GrantUse::new();
        for at in [5, 9, 7] {
            uses.record("acme", "g1", at);
        }
        uses.record("acme", "g2", 3);
        uses.record("globex", "g1", 4);
        uses.record("acme", "", 8);
        let ids = ["g1".to_owned(), "g2".to_owned(), "g3".to_owned()];
        // Nothing reaches the store before a flush.
        assert!(store
            .grants_last_used("acme", &ids)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(uses.flush(&store).await, 3);
        let acme = store.grants_last_used("acme", &ids).await.unwrap();
        assert_eq!(acme, HashMap::from([("g1".into(), 9), ("g2".into(), 3)]));
        let globex = store.grants_last_used("globex", &ids).await.unwrap();
        assert_eq!(globex, HashMap::from([("g1".into(), 4)]));
        // A flush with nothing noted writes nothing; a later batch moves a
        // last use forward, never back.
        assert_eq!(uses.flush(&store).await, 0);
        uses.record("acme", "g1", 2);
        uses.record("acme", "g2", 10);
        uses.flush(&store).await;
        let acme = store.grants_last_used("acme", &ids).await.unwrap();
        assert_eq!(acme, HashMap::from([("g1".into(), 9), ("g2".into(), 10)]));
    }

    #[test]
    fn what_is_held_between_flushes_is_bounded() {
        let uses = GrantUse::default();
        for i in 0..MAX_PENDING + 10 {
            uses.record("acme", &format!("g{i}"), 1);
        }
        // A grant already held still moves forward past the bound.
        uses.record("acme", "g0", 2);
        let taken = uses.take();
        assert_eq!(taken["acme"].len(), MAX_PENDING);
        assert_eq!(taken["acme"]["g0"], 2);
    }
}
