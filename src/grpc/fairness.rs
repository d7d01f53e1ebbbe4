//! fairness: per-tenant shares of the server. Every tenant-scoped call takes
//! one of its tenant's `share` slots before it does any work, waiting in the
//! tenant's own first-come queue when they are all taken; a tenant with
//! `queue` calls already waiting is refused at once with `RESOURCE_EXHAUSTED`
//! (`tenant_busy`). So one tenant can occupy at most `share` calls' worth of
//! the workers and `share + queue` of the server's `max_in_flight`: however
//! hard it pushes, the other tenants' calls find free slots and a short run
//! queue (long decision work also yields the thread every few hundred
//! microseconds, see `engine::Cooperate`).

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One tenant's slots and how many calls hold or wait for one.
#[derive(Debug)]
struct Lane {
    slots: Arc<Semaphore>,
    /// Calls holding or waiting for a slot (guarded by the map's lock).
    entered: usize,
}

#[derive(Debug)]
struct Inner {
    share: usize,
    queue: usize,
    lanes: Mutex<HashMap<String, Lane>>,
}

/// Per-tenant shares; cheap to clone.
#[derive(Debug, Clone)]
pub struct TenantShares {
    inner: Arc<Inner>,
}

/// A call's slot in its tenant's share, released on drop.
#[derive(Debug)]
pub struct Share {
    inner: Arc<Inner>,
    tenant: String,
    _permit: Option<OwnedSemaphorePermit>,
}

impl TenantShares {
    /// At most `share` calls of one tenant at work, `queue` more waiting.
    pub fn new(share: u32, queue: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                share: share.max(1) as usize,
                queue: queue as usize,
                lanes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Waits for one of `tenant`'s slots; refuses when its queue is full.
    pub async fn enter(&self, tenant: &str) -> Result<Share> {
        let slots = {
            let mut lanes = self.inner.lanes.lock().unwrap_or_else(|p| p.into_inner());
            let lane = lanes.entry(tenant.to_owned()).or_insert_with(|| Lane {
                slots: Arc::new(Semaphore::new(self.inner.share)),
                entered: 0,
            });
            if lane.entered >= self.inner.share + self.inner.queue {
                return Err(Error::Exhausted(format!(
                    "tenant `{tenant}` has {} calls in flight and {} waiting; retry with backoff",
                    self.inner.share, self.inner.queue
                )));
            }
            lane.entered += 1;
            lane.slots.clone()
        };
        // Counted from here, so a call cancelled while waiting is uncounted
        // by the drop of `share`.
        let mut share = Share {
            inner: self.inner.clone(),
            tenant: tenant.to_owned(),
            _permit: None,
        };
        let permit = slots
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("tenant share closed".to_owned()))?;
        share._permit = Some(permit);
        Ok(share)
    }

    /// Tenants with calls holding or waiting for a slot (for tests).
    pub fn busy_tenants(&self) -> usize {
        self.inner
            .lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        // The permit goes back first, so the next waiter may start.
        drop(self._permit.take());
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lane) = lanes.get_mut(&self.tenant) {
            lane.entered -= 1;
            if lane.entered == 0 {
                lanes.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_busy_tenant_waits_in_its_own_queue_and_others_pass() {
        let shares = TenantShares::new(2, 1);
        let a1 = shares.enter("a").await.unwrap();
        let _a2 = shares.enter("a").await.unwrap();
        // The third call of `a` waits; the fourth is refused.
        let waiting = {
            let s = shares.clone();
            tokio::spawn(async move { s.enter("a").await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        assert!(matches!(shares.enter("a").await, Err(Error::Exhausted(_))));
        // Another tenant is not held up by `a`.
        let b = tokio::time::timeout(Duration::from_millis(100), shares.enter("b")).await;
        assert!(b.is_ok_and(|s| s.is_ok()));
        // A slot of `a` freed lets its waiter in.
        drop(a1);
        let waited = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(matches!(waited, Ok(Ok(Ok(())))));
    }

    #[tokio::test]
    async fn lanes_are_forgotten_when_idle_even_after_cancelled_waits() {
        let shares = TenantShares::new(1, 4);
        let held = shares.enter("a").await.unwrap();
        // A waiter cancelled by its deadline leaves no count behind.
        let cancelled = tokio::time::timeout(Duration::from_millis(10), shares.enter("a")).await;
        assert!(cancelled.is_err());
        drop(held);
        assert_eq!(shares.busy_tenants(), 0);
        for _ in 0..5 {
            drop(shares.enter("a").await.unwrap());
        }
        assert_eq!(shares.busy_tenants(), 0);
    }
}
