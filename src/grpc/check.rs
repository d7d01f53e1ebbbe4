//! CheckService and ListAccessibleService handlers: validate, call the
//! authorizer, convert.

use super::convert;
use super::fairness::{Share, TenantShares};
use super::pb;
use super::pb::check_service_server::CheckService;
use super::pb::list_accessible_service_server::ListAccessibleService;
use crate::auth::{caller, Caller};
use crate::engine::authorizer::{Authorizer, CheckQuery, PageRequest, MAX_BATCH};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::{self, decode_page_token, encode_page_token, page_size, parse_revision_token};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Largest `page_size` of the list RPCs.
pub const MAX_LIST_PAGE: u32 = 10_000;

/// Serves CheckService and ListAccessibleService.
#[derive(Debug)]
pub struct CheckApi<S> {
    authz: Arc<Authorizer<S>>,
    metrics: Metrics,
    shares: TenantShares,
}

impl<S> Clone for CheckApi<S> {
    fn clone(&self) -> Self {
        Self {
            authz: self.authz.clone(),
            metrics: self.metrics.clone(),
            shares: self.shares.clone(),
        }
    }
}

impl<S: Store> CheckApi<S> {
    /// Wraps the authorizer; decisions are counted in `metrics`; each call
    /// waits for its tenant's share.
    pub fn new(authz: Arc<Authorizer<S>>, metrics: Metrics, shares: TenantShares) -> Self {
        Self {
            authz,
            metrics,
            shares,
        }
    }

    /// The caller's tenant, once the call has a slot of the tenant's share.
    async fn enter(&self, caller: &Caller, tenant_id: String) -> Result<(String, Share)> {
        if caller.requires_actor_token {
            // Such a key acts only as a proven actor; checks and lists name
            // no actor, so it may not make them (a check key is for that).
            return Err(Error::PermissionDenied(format!(
                "credential `{}` requires actor tokens and may not call the check services; use a `check` key",
                caller.name
            )));
        }
        let t = caller.tenant(tenant_id)?;
        let share = self.shares.enter(&t).await?;
        Ok((t, share))
    }

    fn count(&self, allowed: bool, reason: i32) {
        self.metrics.decision(allowed, super::reason_name(reason));
    }
}

fn context(ctx: &HashMap<String, String>) -> Result<()> {
    if ctx.len() > 64 {
        return Err(Error::invalid("context", "at most 64 entries"));
    }
    for (k, v) in ctx {
        if k.is_empty() || k.len() > 256 || v.len() > 1024 {
            return Err(Error::invalid(
                "context",
                "keys must be 1 to 256 bytes and values at most 1024 bytes",
            ));
        }
    }
    Ok(())
}

/// The question of a check, or of item `item` of a batch.
fn query(
    item: Option<usize>,
    principal_id: String,
    action: String,
    resource: Option<pb::ResourceRef>,
) -> Result<CheckQuery> {
    let q = || {
        Ok(CheckQuery {
            subject_id: convert::id("principal_id", principal_id)?,
            action: convert::name("action", action)?,
            resource: convert::resource("resource", resource)?,
        })
    };
    // The field names the request's own place (`items[3].action`), built
    // only when there is an error to name it in.
    q().map_err(|e| match e {
        Error::InvalidArgument { field, message } => Error::InvalidArgument {
            field: match item {
                Some(i) => format!("items[{i}].{field}"),
                None => field,
            },
            message,
        },
        e => e,
    })
}

#[tonic::async_trait]
impl<S: Store> CheckService for CheckApi<S> {
    async fn check(
        &self,
        req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, _share) = self.enter(&caller, r.tenant_id).await?;
        let q = query(None, r.principal_id, r.action, r.resource)?;
        context(&r.context)?;
        let min = parse_revision_token("consistency_token", &r.consistency_token)?;
        let (d, revision) = self.authz.check(&tenant, q, min).await?;
        tracing::debug!(tenant, allowed = d.allowed, reason = ?d.reason, context = ?r.context, "check");
        let (allowed, reason, explanation) = convert::decision(d, r.explain);
        self.count(allowed, reason);
        tracing::Span::current().record("decision", if allowed { "allow" } else { "deny" });
        Ok(Response::new(pb::CheckResponse {
            allowed,
            reason,
            consistency_token: revision.to_string(),
            explanation,
        }))
    }

    async fn batch_check(
        &self,
        req: Request<pb::BatchCheckRequest>,
    ) -> Result<Response<pb::BatchCheckResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, _share) = self.enter(&caller, r.tenant_id).await?;
        if r.items.is_empty() || r.items.len() > MAX_BATCH {
            return Err(
                Error::invalid("items", format!("must hold 1 to {MAX_BATCH} items")).into(),
            );
        }
        let queries = r
            .items
            .into_iter()
            .enumerate()
            .map(|(i, it)| query(Some(i), it.principal_id, it.action, it.resource))
            .collect::<Result<Vec<_>>>()?;
        let min = parse_revision_token("consistency_token", &r.consistency_token)?;
        let (decisions, revision) = self.authz.check_many(&tenant, &queries, min).await?;
        let results = decisions
            .into_iter()
            .map(|d| {
                let (allowed, reason, explanation) = convert::decision(d, r.explain);
                self.count(allowed, reason);
                pb::BatchCheckResult {
                    allowed,
                    reason,
                    explanation,
                }
            })
            .collect();
        Ok(Response::new(pb::BatchCheckResponse {
            results,
            consistency_token: revision.to_string(),
        }))
    }
}

#[tonic::async_trait]
impl<S: Store> ListAccessibleService for CheckApi<S> {
    async fn list_accessible(
        &self,
        req: Request<pb::ListAccessibleRequest>,
    ) -> Result<Response<pb::ListAccessibleResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, _share) = self.enter(&caller, r.tenant_id).await?;
        let subject = convert::id("principal_id", r.principal_id)?;
        let action = convert::name("action", r.action)?;
        model::validate_resource_type("resource_type", &r.resource_type)?;
        let limit = page_size("page_size", r.page_size, 1_000, MAX_LIST_PAGE)?;
        let after = decode_page_token("page_token", &r.page_token)?;
        let min = parse_revision_token("consistency_token", &r.consistency_token)?;
        let page = self
            .authz
            .list_accessible(
                &tenant,
                (&subject, &action, &r.resource_type),
                PageRequest {
                    after: after.as_deref(),
                    limit: limit as usize,
                },
                min,
            )
            .await?;
        Ok(Response::new(pb::ListAccessibleResponse {
            resource_ids: page.ids,
            next_page_token: page
                .next_after
                .as_deref()
                .map(encode_page_token)
                .unwrap_or_default(),
            consistency_token: page.revision.to_string(),
        }))
    }

    async fn list_subjects(
        &self,
        req: Request<pb::ListSubjectsRequest>,
    ) -> Result<Response<pb::ListSubjectsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, _share) = self.enter(&caller, r.tenant_id).await?;
        let resource = convert::resource("resource", r.resource)?;
        let action = convert::name("action", r.action)?;
        let limit = page_size("page_size", r.page_size, 1_000, MAX_LIST_PAGE)?;
        let after = decode_page_token("page_token", &r.page_token)?;
        let min = parse_revision_token("consistency_token", &r.consistency_token)?;
        let page = self
            .authz
            .list_subjects(
                &tenant,
                (&resource, &action),
                PageRequest {
                    after: after.as_deref(),
                    limit: limit as usize,
                },
                min,
            )
            .await?;
        Ok(Response::new(pb::ListSubjectsResponse {
            principal_ids: page.ids,
            next_page_token: page
                .next_after
                .as_deref()
                .map(encode_page_token)
                .unwrap_or_default(),
            consistency_token: page.revision.to_string(),
        }))
    }
}
