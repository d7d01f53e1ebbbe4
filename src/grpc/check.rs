//! CheckService and ListAccessibleService handlers: validate, call the
//! authorizer, convert.

use super::convert;
use super::fairness::{Share, TenantShares};
use super::pb;
use super::pb::check_service_server::CheckService;
use super::pb::list_accessible_service_server::ListAccessibleService;
use crate::auth::{caller, Caller};
use crate::decision_log::{DecisionLog, Entry};
use crate::engine::authorizer::{Authorizer, CheckQuery, PageRequest, MAX_BATCH};
use crate::engine::Decision;
use crate::engine::Reason;
use crate::error::{Error, Result};
use crate::grant_use::GrantUse;
use crate::metrics::Metrics;
use crate::model::condition::{self, RequestContext};
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
    decisions: Option<Arc<DecisionLog>>,
    uses: Option<Arc<GrantUse>>,
}

impl<S> Clone for CheckApi<S> {
    fn clone(&self) -> Self {
        Self {
            authz: self.authz.clone(),
            metrics: self.metrics.clone(),
            shares: self.shares.clone(),
            decisions: self.decisions.clone(),
            uses: self.uses.clone(),
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
            decisions: None,
            uses: None,
        }
    }

    /// Notes in `uses` the grant that decided each answer.
    pub fn with_grant_use(mut self, uses: Arc<GrantUse>) -> Self {
        self.uses = Some(uses);
        self
    }

    /// Writes every decision to `log` too.
    pub fn with_decision_log(mut self, log: Option<Arc<DecisionLog>>) -> Self {
        self.decisions = log;
        self
    }

    /// Notes the grant that decided (an allow's, or the deny that won) and
    /// logs the decision, when the decision log is on.
    fn log(&self, at: (&Caller, &str, &str, i64), q: &CheckQuery, d: &Decision) {
        if let Some(uses) = &self.uses {
            if matches!(d.reason, Reason::Granted | Reason::ExplicitDeny) {
                uses.record(at.1, &d.explanation.grant_id, model::now_millis());
            }
        }
        let Some(log) = &self.decisions else {
            return;
        };
        let (caller, tenant, request_id, revision) = at;
        let reason = pb::Reason::from(d.reason) as i32;
        log.record(|| Entry {
            time: model::format_millis(model::now_millis()),
            tenant,
            caller: &caller.name,
            principal: &q.subject_id,
            action: &q.action,
            resource: q.resource.to_string(),
            allowed: d.allowed,
            reason: super::reason_name(reason),
            grant_id: &d.explanation.grant_id,
            role_id: &d.explanation.role_id,
            condition: &d.explanation.condition,
            condition_outcome: condition_outcome(d),
            missing_context: &d.explanation.missing_context,
            revision,
            request_id,
            trace_id: crate::telemetry::current_trace_id(),
        });
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

/// What the deciding condition said, for the decision log.
fn condition_outcome(d: &Decision) -> &'static str {
    match d.reason {
        _ if d.explanation.condition.is_empty() => "",
        Reason::ConditionFailed => "failed",
        Reason::ConditionContextMissing => "context_missing",
        _ if !d.explanation.missing_context.is_empty() => "unknown",
        _ => "held",
    }
}

/// The call's request id (the observing layer sets one on every call).
fn request_id<M>(req: &Request<M>) -> String {
    req.metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The request's context (strings and typed values) as conditions see it.
fn context(
    strings: HashMap<String, String>,
    typed: Option<prost_types::Struct>,
) -> Result<RequestContext> {
    for (k, v) in &strings {
        if k.is_empty() || k.len() > 256 || v.len() > 1024 {
            return Err(Error::invalid(
                "context",
                "keys must be 1 to 256 bytes and values at most 1024 bytes",
            ));
        }
    }
    let typed = typed
        .map(|s| {
            s.fields
                .into_iter()
                .map(|(k, v)| {
                    if k.is_empty() || k.len() > 256 {
                        return Err(Error::invalid(
                            "typed_context",
                            "keys must be 1 to 256 bytes",
                        ));
                    }
                    Ok((k, json(v, 0)?))
                })
                .collect::<Result<_>>()
        })
        .transpose()?
        .unwrap_or_default();
    RequestContext::new(strings, typed)
}

/// A protobuf value as JSON; deeper than the typed context allows is refused
/// here already (a hostile request could nest deeply enough to exhaust the
/// stack otherwise).
fn json(v: prost_types::Value, depth: usize) -> Result<serde_json::Value> {
    use prost_types::value::Kind;
    if depth > condition::MAX_CONTEXT_DEPTH {
        return Err(Error::invalid(
            "typed_context",
            format!("at most {} levels of nesting", condition::MAX_CONTEXT_DEPTH),
        ));
    }
    Ok(match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
                serde_json::Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| Error::invalid("typed_context", "numbers must be finite"))?
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::ListValue(l)) => serde_json::Value::Array(
            l.values
                .into_iter()
                .map(|x| json(x, depth + 1))
                .collect::<Result<_>>()?,
        ),
        Some(Kind::StructValue(o)) => serde_json::Value::Object(
            o.fields
                .into_iter()
                .map(|(k, x)| Ok((k, json(x, depth + 1)?)))
                .collect::<Result<_>>()?,
        ),
    })
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
    q().map_err(|e: Error| match item {
        Some(i) => e.within(&format!("items[{i}]")),
        None => e,
    })
}

#[tonic::async_trait]
impl<S: Store> CheckService for CheckApi<S> {
    async fn check(
        &self,
        req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let caller = caller(&req)?;
        let request_id = request_id(&req);
        let r = req.into_inner();
        let (tenant, _share) = self.enter(&caller, r.tenant_id).await?;
        let q = query(None, r.principal_id, r.action, r.resource)?;
        let ctx = context(r.context, r.typed_context)?;
        let min = parse_revision_token("consistency_token", &r.consistency_token)?;
        let (d, revision) = self.authz.check(&tenant, q.clone(), &ctx, min).await?;
        self.log((&caller, &tenant, &request_id, revision), &q, &d);
        tracing::debug!(tenant, allowed = d.allowed, reason = ?d.reason, context = ?ctx.entries(), "check");
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
        let request_id = request_id(&req);
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
        let ctx = context(r.context, r.typed_context)?;
        let min = parse_revision_token("consistency_token", &r.consistency_token)?;
        let (decisions, revision) = self.authz.check_many(&tenant, &queries, &ctx, min).await?;
        for (q, d) in queries.iter().zip(&decisions) {
            self.log((&caller, &tenant, &request_id, revision), q, d);
        }
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
        let ctx = context(r.context, r.typed_context)?;
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
                &ctx,
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
        let ctx = context(r.context, r.typed_context)?;
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
                &ctx,
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
