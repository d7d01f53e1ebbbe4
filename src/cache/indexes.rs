//! The per-tenant permission indexes the cache holds (issue 11): one
//! [`TenantIndex`] per tenant, built from one snapshot of the store on first
//! use, weighed in bytes against `cache.max_bytes` (a cold tenant's index is
//! evicted whole and rebuilt on demand), and kept exact by applying the
//! revision log's row-level changes: on the writing replica before the write
//! returns, on every replica as it polls, and on use when a call needs a
//! revision the index has not reached. An index that cannot follow the log
//! (a gap, or a change that does not fit) is dropped and rebuilt.
//!
//! A tenant whose index alone would exceed `cache.max_bytes` is not indexed
//! (for a minute at a time): its calls are answered from the other caches'
//! reads, as before the index.

use super::{CachedStore, Counters};
use crate::error::{Error, Result};
use crate::index::tenant::{Stale, TenantIndex};
use crate::store::{Invalidation, RevisionLog, Store};
use moka::sync::Cache;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

pub use crate::index::IndexRead;

/// A cached index and its weight when last weighed.
#[derive(Clone)]
struct Held {
    index: Arc<RwLock<TenantIndex>>,
    bytes: u32,
}

impl Held {
    /// The index, read-locked, if it is usable at `revision` or later.
    async fn at(&self, revision: i64) -> Option<IndexRead> {
        let read = self.index.clone().read_owned().await;
        (read.usable() && read.revision() >= revision).then_some(read)
    }
}

/// Every tenant's index.
pub(super) struct Indexes {
    held: Cache<String, Held>,
    pub(super) counters: Counters,
    /// One build at a time per tenant.
    building: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Tenants too large to index, for a while.
    oversized: Cache<String, ()>,
    max_bytes: u64,
}

impl Indexes {
    pub(super) fn new(max_bytes: u64) -> Self {
        let counters = Counters::default();
        Self {
            held: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_k: &String, h: &Held| h.bytes.max(1))
                .eviction_listener(counters.on_eviction())
                .build(),
            counters,
            building: Mutex::new(HashMap::new()),
            oversized: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            max_bytes,
        }
    }

    /// Indexes held now.
    pub(super) fn entries(&self) -> u64 {
        self.held.run_pending_tasks();
        self.held.entry_count()
    }

    /// Drops the tenant's index (it is rebuilt on demand).
    pub(super) fn drop_tenant(&self, tenant: &str) {
        self.held.invalidate(tenant);
    }
}

impl<S: Store + RevisionLog + Clone> CachedStore<S> {
    /// The tenant's index at `revision` or later, built or caught up from
    /// the store as needed; `None` when the tenant is not indexed (too large
    /// for `cache.max_bytes`, or gone from the store).
    pub async fn tenant_index(&self, tenant: &str, revision: i64) -> Result<Option<IndexRead>> {
        let ix = &self.inner.indexes;
        if ix.max_bytes == 0 || ix.oversized.contains_key(tenant) {
            return Ok(None);
        }
        for _ in 0..2 {
            let cached = ix.held.get(tenant);
            ix.counters.record(cached.is_some());
            let held = match cached {
                Some(h) => h,
                None => match self.build_index(tenant).await? {
                    Some(h) => h,
                    None => return Ok(None),
                },
            };
            if let Some(read) = held.at(revision).await {
                return Ok(Some(read));
            }
            if self.advance_index(tenant, &held, revision).await? {
                if let Some(read) = held.at(revision).await {
                    return Ok(Some(read));
                }
            }
            // It cannot follow the log: build it again from the store.
            tracing::warn!(
                tenant,
                revision,
                "tenant index could not follow the revision log; rebuilding"
            );
            ix.drop_tenant(tenant);
        }
        Err(Error::Unavailable(format!(
            "the index of tenant `{tenant}` could not reach revision {revision}"
        )))
    }

    /// Applies a tenant's log entries to its index, if one is held. With
    /// `exact`, an index left behind (an earlier revision from another
    /// replica not yet seen) is caught up from the log to the last entry
    /// now, so that this replica's own write is visible when it returns.
    pub(super) async fn follow(&self, tenant: &str, entries: &[(i64, Invalidation)], exact: bool) {
        let ix = &self.inner.indexes;
        let Some(held) = ix.held.get(tenant) else {
            return;
        };
        let outcome = held.index.write().await.advance(entries);
        match outcome {
            Ok(()) => self.reweigh(tenant, &held).await,
            Err(Stale::Gap { .. }) if exact => {
                let upto = entries.last().map(|(r, _)| *r).unwrap_or(0);
                match self.advance_index(tenant, &held, upto).await {
                    Ok(true) => {}
                    Ok(false) | Err(_) => ix.drop_tenant(tenant),
                }
            }
            // Caught up on use.
            Err(Stale::Gap { .. }) => {}
            Err(Stale::Misfit(rev)) => {
                tracing::warn!(
                    tenant,
                    revision = rev,
                    "a change does not fit the tenant index; dropping it"
                );
                ix.drop_tenant(tenant);
            }
        }
    }

    /// Reads the log after the index's revision up to `upto` and applies
    /// it; false when the index could not reach `upto` (rebuild it).
    async fn advance_index(&self, tenant: &str, held: &Held, upto: i64) -> Result<bool> {
        let from = {
            let r = held.index.read().await;
            if !r.usable() {
                return Ok(false);
            }
            r.revision()
        };
        if from >= upto {
            return Ok(true);
        }
        let entries = self.store.changes(tenant, from, upto).await?;
        let reached = {
            let mut w = held.index.write().await;
            w.advance(&entries).is_ok() && w.revision() >= upto
        };
        self.reweigh(tenant, held).await;
        Ok(reached)
    }

    /// Builds the tenant's index from one snapshot of the store (one build
    /// per tenant at a time; a waiting caller takes the finished one). The
    /// build runs as a task of its own: a caller that gives up (its
    /// deadline) does not cancel it, so a large tenant's index is finished
    /// for the calls after.
    async fn build_index(&self, tenant: &str) -> Result<Option<Held>> {
        let this = self.clone();
        let t = tenant.to_owned();
        tokio::spawn(async move { this.build_once(&t).await })
            .await
            .map_err(|e| Error::Internal(format!("tenant index build: {e}")))?
    }

    async fn build_once(&self, tenant: &str) -> Result<Option<Held>> {
        let ix = &self.inner.indexes;
        let lock = {
            let mut b = ix
                .building
                .lock()
                .map_err(|_| Error::Internal("index build lock poisoned".to_owned()))?;
            b.entry(tenant.to_owned()).or_default().clone()
        };
        let built = {
            let _one = lock.lock().await;
            match ix.held.get(tenant) {
                Some(h) => Ok(Some(h)),
                None => self.build_now(tenant).await,
            }
        };
        if let Ok(mut b) = ix.building.lock() {
            // Only this caller and the map hold it: nobody waits.
            if Arc::strong_count(&lock) == 2 {
                b.remove(tenant);
            }
        }
        built
    }

    async fn build_now(&self, tenant: &str) -> Result<Option<Held>> {
        let ix = &self.inner.indexes;
        let started = Instant::now();
        let Some(rows) = self.store.snapshot(tenant).await? else {
            return Ok(None);
        };
        let read_ms = started.elapsed().as_millis() as u64;
        let index = TenantIndex::from_rows(rows)
            .map_err(|e| Error::Internal(format!("tenant `{tenant}` in storage: {e}")))?;
        let bytes = index.approx_bytes();
        let (revision, resources) = (index.revision(), index.resources());
        if bytes > ix.max_bytes {
            tracing::warn!(
                tenant,
                bytes,
                max_bytes = ix.max_bytes,
                "tenant index larger than cache.max_bytes; answering from the store's reads"
            );
            ix.oversized.insert(tenant.to_owned(), ());
            return Ok(None);
        }
        let held = Held {
            index: Arc::new(RwLock::new(index)),
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
        };
        ix.held.insert(tenant.to_owned(), held.clone());
        tracing::info!(
            tenant,
            revision,
            resources,
            bytes,
            read_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "tenant index built"
        );
        Ok(Some(held))
    }

    /// Weighs the index again when it has grown or shrunk by an eighth.
    async fn reweigh(&self, tenant: &str, held: &Held) {
        let ix = &self.inner.indexes;
        let bytes = held.index.read().await.approx_bytes();
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        if bytes.abs_diff(held.bytes) > held.bytes / 8 {
            if let Some(current) = ix.held.get(tenant) {
                if Arc::ptr_eq(&current.index, &held.index) {
                    ix.held.insert(
                        tenant.to_owned(),
                        Held {
                            index: held.index.clone(),
                            bytes,
                        },
                    );
                }
            }
        }
    }
}
