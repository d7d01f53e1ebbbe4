//! admin: the administrative rules, in one place. Knows nothing of gRPC or
//! SQL: it reads and writes through the store's write port
//! ([`crate::store::WriteStore`]) and decides with the engine.
//!
//! Each operation is a typed [`Command`] with its own output type. Running
//! one ([`Admin::write`]) opens a write on the tenant (the adapter bumps the
//! revision and replays a request id seen before), lets the command read what
//! it needs, authorize the actor ([`authz`]), check the invariants
//! ([`invariants`]) and apply row primitives, then commits the write with
//! its audit record and its revision-log entry. Any error drops the
//! transaction, so nothing is half-applied.
//!
//! One file per aggregate: [`tenants`], [`resources`], [`members`]
//! (principals and teams), [`roles`], [`grants`]; [`reads`] holds the
//! administrative queries.

pub mod apply;
pub mod authz;
pub mod bulk;
pub mod delegation;
pub mod grants;
pub mod invariants;
pub mod links;
pub mod members;
pub mod reads;
pub mod resources;
pub mod roles;
pub mod tenants;

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::model::Actor;
use crate::store::{Begun, Invalidation, Record, WriteContext, WriteStore, WriteTx};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;

/// What a command did: its typed output and what the write records.
#[derive(Debug, Clone)]
pub struct Change<T> {
    /// The command's result.
    pub output: T,
    /// Audit action, such as `grant.create`.
    pub action: &'static str,
    /// Audit target, such as `grant:…`.
    pub target: String,
    /// JSON of the target before.
    pub before: String,
    /// JSON of the target after.
    pub after: String,
    /// What the write makes stale in caches.
    pub invalidation: Invalidation,
}

/// An administrative operation with its own result type.
pub trait Command: Send {
    /// What the operation returns (stored for request-id replay).
    type Output: Serialize + DeserializeOwned + Send;
    /// Whether the operation creates the tenant it writes (no revision to
    /// bump yet).
    const CREATES_TENANT: bool = false;
    /// Reads, checks and applies the change inside the open write.
    fn run<T: WriteTx>(
        self,
        tx: &mut T,
        ctx: &WriteContext,
    ) -> impl Future<Output = Result<Change<Self::Output>>> + Send;
}

/// A committed (or replayed) write: the command's output and the revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<T> {
    /// The command's output.
    pub output: T,
    /// The tenant revision the write produced (the first attempt's for a
    /// replayed request id).
    pub revision: i64,
}

/// Told of every committed write (the cache applies its invalidation before
/// the write returns).
pub type OnCommit = Arc<
    dyn Fn(
            String,
            i64,
            Invalidation,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// The administrative service over a store.
#[derive(Clone)]
pub struct Admin<S> {
    store: S,
    on_commit: OnCommit,
}

impl<S> std::fmt::Debug for Admin<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admin")
    }
}

impl<S> Admin<S> {
    /// Administers `store`; `on_commit` hears of every committed write.
    pub fn new(store: S, on_commit: OnCommit) -> Self {
        Self { store, on_commit }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<S: WriteStore> Admin<S> {
    /// Runs one command as one write. A replayed request id returns the first
    /// attempt's output and revision and writes nothing; its invalidation
    /// reaches this replica through the revision log.
    pub async fn write<C: Command>(
        &self,
        ctx: &WriteContext,
        cmd: C,
    ) -> Result<Written<C::Output>> {
        let mut tx = match self.store.begin(ctx, C::CREATES_TENANT).await? {
            Begun::Replayed { outcome, revision } => {
                tracing::info!(tenant = %ctx.tenant_id, revision, "admin write replayed for a retried request id");
                let output = serde_json::from_str(&outcome).map_err(|_| {
                    Error::Internal("stored outcome of a request id is unreadable".to_owned())
                })?;
                return Ok(Written { output, revision });
            }
            Begun::Open(tx) => tx,
        };
        let (change, delegated) = delegation::tracking(cmd.run(&mut tx, ctx)).await;
        let mut change = change?;
        if delegated {
            change.after = with_delegated(&change.after);
        }
        let revision = tx.revision();
        let outcome = serde_json::to_string(&change.output)
            .map_err(|e| Error::Internal(format!("outcome: {e}")))?;
        // This replica learns the row-level changes as other replicas will
        // read them from the revision log.
        let mut invalidation = change.invalidation.clone();
        invalidation.deltas = tx.deltas().to_vec();
        tx.commit(Record {
            action: change.action,
            target: change.target,
            before: change.before,
            after: change.after,
            invalidation: change.invalidation.clone(),
            outcome,
        })
        .await?;
        tracing::info!(tenant = %ctx.tenant_id, actor = %ctx.actor, action = change.action, revision, "admin write");
        (self.on_commit)(ctx.tenant_id.clone(), revision, invalidation).await;
        Ok(Written {
            output: change.output,
            revision,
        })
    }
}

impl<S: WriteStore> Admin<S> {
    /// Runs one command as one write and rolls it back: whether it would
    /// be accepted, and its output. Nothing is written or recorded.
    pub async fn preview<C: Command>(&self, ctx: &WriteContext, cmd: C) -> Result<C::Output> {
        let (ctx, mut tx) = self.begin_unrecorded::<C>(ctx).await?;
        let (change, _) = delegation::tracking(cmd.run(&mut tx, &ctx)).await;
        // Dropping the transaction rolls it back.
        drop(tx);
        Ok(change?.output)
    }
}

/// What a change would do: refused (with the error the write would give),
/// or accepted with the access it adds and removes.
#[derive(Debug, Default)]
pub struct Preview {
    /// `None` when the change would be accepted.
    pub refused: Option<Error>,
    /// The access differences it makes (empty when refused).
    pub diff: apply::AccessDiff,
}

impl<S: WriteStore> Admin<S> {
    /// Opens a write whose request id is not recorded (it will be rolled
    /// back), with its context.
    async fn begin_unrecorded<C: Command>(
        &self,
        ctx: &WriteContext,
    ) -> Result<(WriteContext, S::Tx)> {
        let ctx = WriteContext {
            request: None,
            ..ctx.clone()
        };
        match self.store.begin(&ctx, C::CREATES_TENANT).await? {
            Begun::Open(tx) => Ok((ctx, tx)),
            Begun::Replayed { .. } => Err(Error::Internal(
                "a preview replayed a request id".to_owned(),
            )),
        }
    }

    /// Runs `cmd` in a write that is rolled back and compares the tenant
    /// before and after it: whether it would be accepted and, if so, who
    /// would gain or lose which access, the first `limit` differences
    /// listed. A principal acting sees only the differences on resources
    /// it may view (before or after); the counts are of those too. Storage
    /// errors are errors, not refusals.
    pub async fn preview_change<C: Command>(
        &self,
        ctx: &WriteContext,
        cmd: C,
        limit: usize,
    ) -> Result<Preview> {
        let (ctx, mut tx) = self.begin_unrecorded::<C>(ctx).await?;
        let before = tx.snapshot().await?;
        let (change, _) = delegation::tracking(cmd.run(&mut tx, &ctx)).await;
        let after = match change {
            Err(e @ (Error::Unavailable(_) | Error::Internal(_))) => return Err(e),
            Err(e) => {
                return Ok(Preview {
                    refused: Some(e),
                    diff: apply::AccessDiff {
                        complete: true,
                        ..apply::AccessDiff::default()
                    },
                })
            }
            Ok(_) => tx.snapshot().await?,
        };
        // Dropping the transaction rolls it back.
        drop(tx);
        let dump = |rows: Option<crate::store::TenantRows>| {
            rows.map(|r| crate::store::TenantDump::from_rows(r, |_| 0))
        };
        let (Some(before), Some(after)) = (dump(before), dump(after)) else {
            return Err(Error::not_found("tenant"));
        };
        let diff = match &ctx.actor {
            Actor::SuperUser => apply::access_changes(&before, &after, limit)?,
            Actor::Principal(actor) => {
                // Many differences share a resource: each is judged once.
                let seen = std::cell::RefCell::new(std::collections::HashMap::new());
                apply::access_changes_where(&before, &after, limit, |a, b, resource| {
                    *seen
                        .borrow_mut()
                        .entry(resource.to_owned())
                        .or_insert_with(|| {
                            apply::may_view(a, actor, resource)
                                || apply::may_view(b, actor, resource)
                        })
                })?
            }
        };
        Ok(Preview {
            refused: None,
            diff,
        })
    }
}

/// An audit `after` record marked as let through by the `tenant.delegate`
/// waiver.
fn with_delegated(after: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(after) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert("delegated".to_owned(), serde_json::Value::Bool(true));
            serde_json::Value::Object(m).to_string()
        }
        _ => serde_json::json!({ "after": after, "delegated": true }).to_string(),
    }
}

/// The tenant's role table as the write sees it: predefined and custom
/// roles, and its declared actions.
pub(crate) async fn role_table<T: WriteTx>(tx: &mut T) -> Result<crate::model::RoleTable> {
    let custom = tx.custom_roles().await?;
    let settings = tx.tenant().await?;
    Ok(crate::model::RoleTable::for_tenant(
        custom,
        settings.as_ref(),
    ))
}

/// JSON of a value for the audit trail.
pub(crate) fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
