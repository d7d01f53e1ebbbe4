//! cache: a [`Store`] decorator over moka, so that hot checks touch no
//! database. Generic over the store port and its revision log; knows nothing
//! of gRPC or SQL. Reads through to the store on a miss.
//!
//! What is cached, by key:
//! - `(tenant, principal)` → the principal's record and its resolved bindings
//!   (teams expanded transitively);
//! - `(tenant, resource)` → the resource's ancestry (the path to the top, with
//!   private flags), or its absence;
//! - `tenant` → the compiled role table.
//!
//! How it stays correct: every admin write records, in the same transaction,
//! an [`Invalidation`] under the tenant's new revision (the revision log). The
//! replica that wrote applies it before the write returns; every replica polls
//! the tenants' revisions every `poll_interval` and applies the log entries it
//! has not seen. A check with a consistency token ahead of what the replica has
//! applied first catches that tenant up from the log. Expiry needs no
//! invalidation: bindings carry their expiry and every decision compares it
//! with the clock. A fill that raced with an invalidation is dropped (the
//! generation check in [`CachedStore::fill`], made under a gate that
//! invalidations hold exclusively, so no stale value is ever visible).

mod indexes;
pub use indexes::IndexRead;

use crate::error::{Error, Result};
use crate::model::{Binding, Principal, ResourceNode, ResourceRef, RoleTable, Scope};
use crate::store::{Invalidation, RevisionLog, Store, SubjectEntry};
use moka::notification::RemovalCause;
use moka::sync::Cache;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The cache lookups of one call (hits and misses), for its trace span.
#[derive(Debug, Default)]
pub struct Lookups {
    /// Answered from memory.
    pub hits: AtomicU64,
    /// Read from the store.
    pub misses: AtomicU64,
}

impl Lookups {
    /// `hit` when memory answered every lookup, `miss` when the store was
    /// read, `none` when the call looked nothing up.
    pub fn summary(&self) -> &'static str {
        match (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        ) {
            (_, m) if m > 0 => "miss",
            (h, _) if h > 0 => "hit",
            _ => "none",
        }
    }
}

tokio::task_local! {
    /// The lookups of the call being served (set by the gRPC layer).
    pub static LOOKUPS: Arc<Lookups>;
}

/// Cache sizes and the polling interval.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Most principals (with their bindings) kept.
    pub max_subjects: u64,
    /// Most resource ancestries kept.
    pub max_resources: u64,
    /// Most tenant role tables kept.
    pub max_tenants: u64,
    /// How often the revision log is polled for other replicas' writes.
    pub poll_interval: Duration,
    /// Longest the cache answers without a successful poll of the store.
    pub max_staleness: Duration,
    /// Most bytes of tenant permission indexes kept (0: no index).
    pub max_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_subjects: 100_000,
            max_resources: 1_000_000,
            max_tenants: 10_000,
            poll_interval: Duration::from_millis(250),
            max_staleness: Duration::from_secs(5),
            max_bytes: 1 << 30,
        }
    }
}

/// Hit, miss and eviction counts of one cache.
#[derive(Debug, Default)]
pub struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Arc<AtomicU64>,
}

impl Counters {
    /// Counts a lookup, here and in the call's [`Lookups`].
    fn record(&self, hit: bool) {
        fn add(hit: bool, hits: &AtomicU64, misses: &AtomicU64) {
            if hit { hits } else { misses }.fetch_add(1, Ordering::Relaxed);
        }
        add(hit, &self.hits, &self.misses);
        let _ = LOOKUPS.try_with(|l| add(hit, &l.hits, &l.misses));
    }

    /// A moka eviction listener counting the entries dropped for capacity.
    fn on_eviction<K, V>(&self) -> impl Fn(Arc<K>, V, RemovalCause) + Send + Sync + 'static {
        let evictions = self.evictions.clone();
        move |_k, _v, cause| {
            if cause == RemovalCause::Size {
                evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A snapshot of one cache's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that read the store.
    pub misses: u64,
    /// Entries dropped for capacity.
    pub evictions: u64,
    /// Entries held now (approximate).
    pub entries: u64,
}

/// Counters of every cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Principals and bindings.
    pub subjects: CounterSnapshot,
    /// Resource ancestries.
    pub resources: CounterSnapshot,
    /// Role tables.
    pub roles: CounterSnapshot,
    /// Tenant permission indexes.
    pub indexes: CounterSnapshot,
}

fn build<K, V>(capacity: u64, counters: &Counters) -> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(capacity)
        .support_invalidation_closures()
        .eviction_listener(counters.on_eviction())
        .build()
}

type SubjectKey = (String, String);
type ResourceKey = (String, ResourceRef);

struct Inner {
    subjects: Cache<SubjectKey, Arc<SubjectEntry>>,
    resources: Cache<ResourceKey, Option<Arc<Vec<ResourceNode>>>>,
    roles: Cache<String, Arc<RoleTable>>,
    subject_counters: Counters,
    resource_counters: Counters,
    role_counters: Counters,
    /// Tenant permission indexes.
    indexes: indexes::Indexes,
    /// Per tenant, the revision up to which every log entry has been applied.
    known: RwLock<HashMap<String, i64>>,
    /// Bumped by every invalidation; fills that saw it change are dropped.
    generation: AtomicU64,
    /// Held for writing while an invalidation runs, and for reading while a
    /// fill checks the generation and inserts, so the two never interleave.
    fill_gate: RwLock<()>,
    /// Serializes catch-ups so that log entries are applied in order.
    catching_up: tokio::sync::Mutex<()>,
    /// When the cache was created; `last_sync` counts from it.
    epoch: Instant,
    /// Milliseconds after `epoch` when a poll of every tenant last
    /// began that then succeeded (0: never).
    last_sync: AtomicU64,
    /// Whether the last poll reached the store (for readiness).
    reachable: tokio::sync::watch::Sender<bool>,
    /// Most revisions a tenant was behind at the last poll.
    lag: AtomicU64,
}

/// A store with a cache in front of the reads checks make.
#[derive(Clone)]
pub struct CachedStore<S> {
    store: S,
    inner: Arc<Inner>,
    settings: CacheSettings,
}

impl<S> std::fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("settings", &self.settings)
            .finish()
    }
}

/// A tenant, its current revision and the log entries read for it.
type Fetched = (String, i64, Vec<(i64, Invalidation)>);

impl<S: Store + RevisionLog + Clone> CachedStore<S> {
    /// Wraps `store`.
    pub fn new(store: S, settings: CacheSettings) -> Self {
        let subject_counters = Counters::default();
        let resource_counters = Counters::default();
        let role_counters = Counters::default();
        let inner = Inner {
            subjects: build(settings.max_subjects, &subject_counters),
            resources: build(settings.max_resources, &resource_counters),
            roles: build(settings.max_tenants, &role_counters),
            subject_counters,
            resource_counters,
            role_counters,
            indexes: indexes::Indexes::new(settings.max_bytes),
            known: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            fill_gate: RwLock::new(()),
            catching_up: tokio::sync::Mutex::new(()),
            epoch: Instant::now(),
            last_sync: AtomicU64::new(0),
            reachable: tokio::sync::watch::channel(true).0,
            lag: AtomicU64::new(0),
        };
        Self {
            store,
            inner: Arc::new(inner),
            settings,
        }
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &S {
        &self.store
    }

    /// The configured settings.
    pub fn settings(&self) -> CacheSettings {
        self.settings
    }

    /// Counters of every cache.
    pub fn stats(&self) -> CacheStats {
        let snap = |c: &Counters, entries: u64| CounterSnapshot {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            entries,
        };
        let i = &self.inner;
        CacheStats {
            subjects: snap(&i.subject_counters, i.subjects.entry_count()),
            resources: snap(&i.resource_counters, i.resources.entry_count()),
            roles: snap(&i.role_counters, i.roles.entry_count()),
            indexes: snap(&i.indexes.counters, i.indexes.entries()),
        }
    }

    fn known(&self, tenant: &str) -> Option<i64> {
        self.inner.known.read().ok()?.get(tenant).copied()
    }

    fn set_known(&self, tenant: &str, revision: i64) {
        if let Ok(mut k) = self.inner.known.write() {
            let e = k.entry(tenant.to_owned()).or_insert(revision);
            *e = (*e).max(revision);
        }
    }

    /// Drops what `inv` makes stale in `tenant`.
    pub fn invalidate(&self, tenant: &str, inv: &Invalidation) {
        let i = &self.inner;
        let _gate = i.fill_gate.write();
        i.generation.fetch_add(1, Ordering::SeqCst);
        if inv.deleted {
            if let Ok(mut k) = i.known.write() {
                k.remove(tenant);
            }
            i.indexes.drop_tenant(tenant);
        }
        if inv.everything || inv.deleted {
            let t = tenant.to_owned();
            let _ = i.subjects.invalidate_entries_if(move |k, _| k.0 == t);
            let t = tenant.to_owned();
            let _ = i.resources.invalidate_entries_if(move |k, _| k.0 == t);
            i.roles.invalidate(tenant);
            // The tenant's index is not dropped: it follows the entry's
            // row-level changes (a role deleted, a tenant created) instead
            // of being rebuilt, which takes seconds for a large tenant.
            return;
        }
        if inv.roles {
            i.roles.invalidate(tenant);
        }
        for p in &inv.principals {
            i.subjects.invalidate(&(tenant.to_owned(), p.clone()));
        }
        for r in &inv.resources {
            i.resources.invalidate(&(tenant.to_owned(), r.clone()));
        }
        for r in &inv.subtrees {
            let (t, r) = (tenant.to_owned(), r.clone());
            let _ = i.resources.invalidate_entries_if(move |k, v| {
                k.0 == t
                    && v.as_ref()
                        .is_some_and(|path| path.iter().any(|n| n.resource == r))
            });
        }
    }

    /// Applies a write this replica just committed, before it returns: the
    /// tenant's index then reflects it (read from the log first when an
    /// earlier revision has not reached this replica yet).
    pub async fn applied_locally(&self, tenant: &str, revision: i64, inv: &Invalidation) {
        self.invalidate(tenant, inv);
        if inv.deleted {
            return;
        }
        self.follow(tenant, &[(revision, inv.clone())], true).await;
        // Advance only if no earlier revision (from another replica) is
        // still unapplied; otherwise the poller catches up in order.
        // A tenant this replica did not know has nothing cached (nothing is
        // filled before its revision is known), so it may start from here.
        if let Ok(mut k) = self.inner.known.write() {
            match k.get_mut(tenant) {
                Some(known) if *known == revision - 1 => *known = revision,
                Some(_) => {}
                None => {
                    k.insert(tenant.to_owned(), revision);
                }
            }
        }
    }

    /// Whether the last poll reached the store; changes drive readiness.
    pub fn reachable(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.reachable.subscribe()
    }

    /// Time since a poll of every tenant last succeeded.
    pub fn sync_age(&self) -> Duration {
        let last = self
            .inner
            .last_sync
            .load(Ordering::SeqCst)
            .saturating_sub(1);
        Duration::from_millis(self.since_epoch().saturating_sub(last))
    }

    /// Most revisions any tenant was behind the store at the last poll,
    /// before it caught up.
    pub fn revision_lag(&self) -> u64 {
        self.inner.lag.load(Ordering::Relaxed)
    }

    fn since_epoch(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Refuses to answer from memory when no poll has reached the store
    /// within `max_staleness`: a revocation written meanwhile could be
    /// missed, and a stale allow is worse than no answer.
    fn ensure_fresh(&self) -> Result<()> {
        let age = self.sync_age();
        if !self.synced() || age > self.settings.max_staleness {
            return Err(Error::Unavailable(format!(
                "the store has not been reached for {} ms (max_staleness {} ms)",
                age.as_millis(),
                self.settings.max_staleness.as_millis()
            )));
        }
        Ok(())
    }

    /// Whether a poll of every tenant has completed (so a tenant it did not
    /// find does not exist, as of the staleness bound).
    fn synced(&self) -> bool {
        self.inner.last_sync.load(Ordering::SeqCst) != 0
    }

    /// Applies the log of every tenant whose revision moved (all tenants), or
    /// of one tenant.
    pub async fn catch_up(&self, only: Option<&str>) -> Result<()> {
        self.catch_up_from(&self.store, only).await
    }

    /// [`CachedStore::catch_up`], reading the log through `log` (the same
    /// database, possibly over connections of its own).
    async fn catch_up_from(&self, log: &S, only: Option<&str>) -> Result<()> {
        // Taken before reading: everything committed by now will be seen.
        let began = self.since_epoch() + 1;
        // Read first, without the lock: a slow store, or a pool held by
        // calls, never holds up another catch-up (above all the poller's,
        // which reads over a connection of its own).
        let revisions = match only {
            None => log.tenant_revisions().await?,
            Some(t) => match log.tenant_revision(t, None).await? {
                Some(r) => vec![(t.to_owned(), r)],
                None => Vec::new(),
            },
        };
        // Tenants gone from the store (deleted): forget everything of them.
        let gone: Vec<String> = match self.inner.known.read() {
            Ok(k) => k
                .keys()
                .filter(|t| only.is_none_or(|o| o == t.as_str()))
                .filter(|t| !revisions.iter().any(|(r, _)| r == *t))
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        for t in gone {
            tracing::info!(tenant = %t, "tenant gone from the store; forgetting it");
            self.invalidate(
                &t,
                &Invalidation {
                    deleted: true,
                    ..Invalidation::default()
                },
            );
        }
        let mut lag = 0;
        let mut fetched: Vec<Fetched> = Vec::new();
        for (tenant, current) in revisions {
            let changes = match self.known(&tenant) {
                Some(known) if known < current => {
                    lag = lag.max((current - known) as u64);
                    log.changes(&tenant, known, current).await?
                }
                _ => Vec::new(),
            };
            fetched.push((tenant, current, changes));
        }
        // Then apply, in order, under the lock.
        let _serial = self.inner.catching_up.lock().await;
        for (tenant, current, changes) in fetched {
            match self.known(&tenant) {
                None => self.set_known(&tenant, current),
                Some(known) if known < current => {
                    // What is still unapplied (another catch-up may have
                    // applied some since the read); read again only when the
                    // read does not reach back that far (rare).
                    let mut entries: Vec<(i64, Invalidation)> =
                        changes.into_iter().filter(|(r, _)| *r > known).collect();
                    if entries.first().map(|(r, _)| *r) != Some(known + 1) {
                        entries = log.changes(&tenant, known, current).await?;
                    }
                    let complete = entries.len() as i64 == current - known;
                    if complete {
                        for (_, inv) in &entries {
                            self.invalidate(&tenant, inv);
                        }
                        self.follow(&tenant, &entries, false).await;
                    } else {
                        // A gap in the log (pruned or corrupt): drop the tenant.
                        tracing::warn!(
                            tenant,
                            known,
                            current,
                            "revision log gap; dropping tenant cache"
                        );
                        self.invalidate(&tenant, &Invalidation::everything());
                        self.inner.indexes.drop_tenant(&tenant);
                    }
                    self.set_known(&tenant, current);
                }
                Some(_) => {}
            }
        }
        if only.is_none() {
            self.inner.last_sync.fetch_max(began, Ordering::SeqCst);
            self.inner.lag.store(lag, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Marks the store unreachable (readiness follows): the poller has
    /// stopped, so nothing will refresh this replica any more.
    pub fn mark_unreachable(&self) {
        self.inner
            .reachable
            .send_if_modified(|r| std::mem::replace(r, false));
    }

    /// Polls the revision log through `log` (the same database as the
    /// cache's store; give it connections of its own so that calls holding
    /// every pooled connection cannot delay a poll) until `shutdown`
    /// completes.
    pub async fn poll(self, log: S, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        // A poll that hangs (a store that stopped answering) counts as failed.
        let timeout = (self.settings.poll_interval * 4).max(Duration::from_secs(1));
        loop {
            let reached = match tokio::time::timeout(timeout, self.catch_up_from(&log, None)).await
            {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "revision log poll failed");
                    false
                }
                Err(_) => {
                    tracing::warn!(
                        timeout_ms = timeout.as_millis() as u64,
                        "revision log poll timed out"
                    );
                    false
                }
            };
            self.inner.reachable.send_if_modified(|r| {
                let changed = *r != reached;
                *r = reached;
                changed
            });
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// Reads through on a miss and caches the value unless an invalidation
    /// ran meanwhile.
    async fn fill<K, V, F>(
        &self,
        cache: &Cache<K, V>,
        counters: &Counters,
        key: K,
        load: F,
    ) -> Result<V>
    where
        K: Hash + Eq + Send + Sync + Clone + 'static,
        V: Clone + Send + Sync + 'static,
        F: std::future::Future<Output = Result<V>>,
    {
        if let Some(v) = cache.get(&key) {
            counters.record(true);
            return Ok(v);
        }
        counters.record(false);
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let v = load.await?;
        // Keep the value only if no invalidation ran since the load began;
        // the gate keeps an invalidation from running between the check and
        // the insert.
        let _gate = self.inner.fill_gate.read();
        if self.inner.generation.load(Ordering::SeqCst) == generation {
            cache.insert(key, v.clone());
        }
        Ok(v)
    }
}

impl<S: Store + RevisionLog + Clone> Store for CachedStore<S> {
    async fn tenant_revision(&self, tenant: &str, at_least: Option<i64>) -> Result<Option<i64>> {
        self.ensure_fresh()?;
        let fresh_enough = |k: i64| at_least.is_none_or(|m| k >= m);
        match self.known(tenant) {
            Some(k) if fresh_enough(k) => return Ok(Some(k)),
            // Absent from a completed poll: the tenant does not exist (as of
            // the staleness bound).
            None if at_least.is_none() && self.synced() => return Ok(None),
            _ => {}
        }
        self.catch_up(Some(tenant)).await?;
        // Caught up from the store: a token still ahead is not this tenant's.
        crate::store::fresh_enough(self.known(tenant), at_least)
    }

    async fn subject(&self, tenant: &str, principal_id: &str) -> Result<Arc<SubjectEntry>> {
        let key = (tenant.to_owned(), principal_id.to_owned());
        let i = &self.inner;
        self.fill(
            &i.subjects,
            &i.subject_counters,
            key,
            self.store.subject(tenant, principal_id),
        )
        .await
    }

    async fn ancestry(
        &self,
        tenant: &str,
        resource: &ResourceRef,
    ) -> Result<Option<Arc<Vec<ResourceNode>>>> {
        let key = (tenant.to_owned(), resource.clone());
        let i = &self.inner;
        self.fill(
            &i.resources,
            &i.resource_counters,
            key,
            self.store.ancestry(tenant, resource),
        )
        .await
    }

    async fn roles(&self, tenant: &str) -> Result<Arc<RoleTable>> {
        let i = &self.inner;
        self.fill(
            &i.roles,
            &i.role_counters,
            tenant.to_owned(),
            self.store.roles(tenant),
        )
        .await
    }

    async fn resources_in_scopes(
        &self,
        tenant: &str,
        scopes: &[Scope],
        rtype: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Vec<ResourceNode>>> {
        self.store
            .resources_in_scopes(tenant, scopes, rtype, after, limit)
            .await
    }

    async fn holders_on_path(
        &self,
        tenant: &str,
        path: &[ResourceNode],
    ) -> Result<Vec<(Principal, Vec<Binding>)>> {
        self.store.holders_on_path(tenant, path).await
    }

    async fn index(&self, tenant: &str, revision: i64) -> Result<Option<IndexRead>> {
        self.tenant_index(tenant, revision).await
    }
}
