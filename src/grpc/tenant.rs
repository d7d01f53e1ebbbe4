//! TenantService handlers: whole tenants (import, export, apply, delete,
//! erase). The records of a tenant convert to and from the store's
//! [`TenantDump`] here; the rules live in `crate::admin::{bulk, apply}`.

use super::admin::{require_operator, AdminApi};
use super::convert::{
    action_list, display_name, effect, id, name, opt_resource, principal_id, principal_kind,
    principal_status, resource, role, scope, subject, time, type_list,
};
use super::pb;
use crate::admin::apply::{access_changes, plan, AccessDiff, ApplyTenant, Planned};
use crate::admin::bulk::{DeleteTenant, ErasePrincipal, ImportTenant};
use crate::auth::caller;
use crate::error::{Error, Result};
use crate::model::{self, Grant, Millis, Principal, PrincipalStatus, Resource, Team, Tenant};
use crate::store::{Catalog, RequestKey, Store, TenantDump, WriteContext, WriteStore};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// Most records one import or apply may hold in all (memory is bounded by
/// it: the whole tenant is checked before it is written).
pub const MAX_RECORDS: usize = 5_000_000;
/// Whole-tenant calls (import, export, apply) under way at once on one
/// replica; more are RESOURCE_EXHAUSTED (each may hold a whole tenant in
/// memory, so their number bounds the replica's memory).
pub const MAX_BULK_CALLS: usize = 4;
/// Records per message of an export stream.
const EXPORT_CHUNK: usize = 5_000;
/// Most access differences an apply lists.
const MAX_ACCESS_PAGE: u32 = 10_000;

/// A tenant's settings from an import or apply (id and creation time are
/// the caller's; unset lists and retention take CreateTenant's defaults).
fn settings(tenant_id: &str, t: Option<pb::Tenant>, now: Millis) -> Result<Tenant> {
    let t = t.ok_or_else(|| Error::invalid("settings", "must be set"))?;
    Ok(Tenant {
        id: tenant_id.to_owned(),
        display_name: display_name("settings.display_name", t.display_name)?,
        single_owner_types: type_list("settings.single_owner_types", t.single_owner_types)?,
        creator_owner_types: type_list("settings.creator_owner_types", t.creator_owner_types)?,
        audit_retention_days: match t.audit_retention_days {
            0 => 90,
            d @ 1..=3650 => d,
            _ => {
                return Err(Error::invalid(
                    "settings.audit_retention_days",
                    "must be at most 3650",
                ))
            }
        },
        created_at: now,
        actions: action_list("settings.actions", t.actions)?,
        implied_actions: super::convert::implied_actions(
            "settings.implied_actions",
            t.implied_actions,
        )?,
    })
}

/// An empty dump of the tenant `tenant_id` with `t`'s settings.
pub fn dump_of(tenant_id: &str, t: pb::Tenant, now: Millis) -> Result<TenantDump> {
    Ok(TenantDump::empty(settings(tenant_id, Some(t), now)?, 0))
}

/// Adds the records of one message to `d`, each field checked.
pub fn add_records(d: &mut TenantDump, r: pb::TenantRecords, now: Millis) -> Result<()> {
    let total = d.roles.len()
        + d.principals.len()
        + d.teams.len()
        + d.members.len()
        + d.resources.len()
        + d.grants.len()
        + r.roles.len()
        + r.principals.len()
        + r.teams.len()
        + r.members.len()
        + r.resources.len()
        + r.grants.len();
    if total > MAX_RECORDS {
        return Err(Error::invalid(
            "records",
            format!("at most {MAX_RECORDS} records in all"),
        ));
    }
    let at = |ms: Option<Millis>| ms.unwrap_or(now);
    for (i, x) in r.roles.into_iter().enumerate() {
        d.roles.push(role(&format!("roles[{i}]"), Some(x))?);
    }
    for (i, p) in r.principals.into_iter().enumerate() {
        let f = |n: &str| format!("principals[{i}].{n}");
        let status = principal_status(&f("status"), p.status)?.unwrap_or(PrincipalStatus::Active);
        // A lapsed invitation is data too: an export carries it as it is.
        let lapses = time(&f("invitation_expire_time"), p.invitation_expire_time)?;
        if lapses.is_some() && status != PrincipalStatus::Invited {
            return Err(Error::invalid(
                f("invitation_expire_time"),
                "only an invitation (status invited) lapses",
            ));
        }
        d.principals.push(Principal {
            id: principal_id(&f("id"), p.id)?,
            kind: principal_kind(&f("kind"), p.kind)?,
            status,
            display_name: display_name(&f("display_name"), p.display_name)?,
            invitation_expires_at: lapses,
            created_at: at(time(&f("create_time"), p.create_time)?),
        });
    }
    for (i, t) in r.teams.into_iter().enumerate() {
        d.teams.push(Team {
            id: id(&format!("teams[{i}].id"), t.id)?,
            display_name: display_name(&format!("teams[{i}].display_name"), t.display_name)?,
        });
    }
    for (i, m) in r.members.into_iter().enumerate() {
        d.members.push((
            id(&format!("members[{i}].team_id"), m.team_id)?,
            subject(&format!("members[{i}].member"), m.member)?,
        ));
    }
    for (i, x) in r.resources.into_iter().enumerate() {
        let f = |n: &str| format!("resources[{i}].{n}");
        d.resources.push(Resource {
            resource: resource(&f("ref"), x.r#ref)?,
            parent: opt_resource(&f("parent"), x.parent)?,
            private: x.private,
            restricted: x.restricted,
            attributes: super::convert::attributes(&f("attributes"), x.attributes)?,
            links: super::convert::links(&f("links"), x.links)?,
            created_at: at(time(&f("create_time"), x.create_time)?),
        });
    }
    for (i, g) in r.grants.into_iter().enumerate() {
        let f = |n: &str| format!("grants[{i}].{n}");
        d.grants.push(Grant {
            // Minted here, as CreateGrant does: grant ids are unique across
            // tenants, so a chosen one could collide with (and so reveal)
            // another tenant's.
            id: uuid::Uuid::now_v7().to_string(),
            subject: subject(&f("subject"), g.subject)?,
            role_id: name(&f("role_id"), g.role_id)?,
            scope: scope(&f("scope"), g.scope)?,
            effect: effect(&f("effect"), g.effect)?,
            expires_at: time(&f("expire_time"), g.expire_time)?,
            condition: model::condition::optional(&f("condition"), &g.condition)?,
            created_at: at(time(&f("create_time"), g.create_time)?),
        });
    }
    Ok(())
}

/// The records of `d`, `chunk` at most per message.
pub fn records(d: TenantDump, chunk: usize) -> Vec<pb::TenantRecords> {
    let mut out: Vec<pb::TenantRecords> = Vec::new();
    let mut cur = pb::TenantRecords::default();
    let mut n = 0;
    macro_rules! push {
        ($field:ident, $v:expr) => {{
            cur.$field.push($v);
            n += 1;
            if n == chunk {
                out.push(std::mem::take(&mut cur));
                n = 0;
            }
        }};
    }
    for r in d.roles {
        push!(roles, r.into());
    }
    for p in d.principals {
        push!(principals, p.into());
    }
    for t in d.teams {
        push!(teams, t.into());
    }
    for (team_id, m) in d.members {
        push!(
            members,
            pb::TeamMember {
                team_id,
                member: Some(m.into()),
            }
        );
    }
    for r in d.resources {
        push!(resources, r.into());
    }
    for g in d.grants {
        push!(grants, g.into());
    }
    if n > 0 {
        out.push(cur);
    }
    out
}

fn counts(i: &crate::admin::bulk::Imported) -> pb::TenantCounts {
    pb::TenantCounts {
        roles: i.roles,
        principals: i.principals,
        teams: i.teams,
        members: i.members,
        resources: i.resources,
        grants: i.grants,
    }
}

/// The request key of an import: its id and a digest of the header and
/// every record, in order (fed as the stream arrives, so nothing is kept).
fn import_key(request_id: String, digest: Option<sha2::Sha256>) -> Result<Option<RequestKey>> {
    use sha2::Digest;
    match digest {
        Some(h) if !request_id.is_empty() => {
            model::validate_id("header.request_id", &request_id)?;
            Ok(Some(RequestKey {
                id: request_id,
                fingerprint: format!("{:x}", h.finalize()),
            }))
        }
        _ => Ok(None),
    }
}

/// Feeds one message of an import to its digest.
fn digest_part(digest: &mut Option<sha2::Sha256>, msg: &pb::ImportTenantRequest) {
    use sha2::Digest;
    if let Some(h) = digest {
        let bytes = prost::Message::encode_to_vec(msg);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
}

fn planned(p: Planned) -> pb::PlannedChange {
    pb::PlannedChange {
        kind: p.kind,
        target: p.target,
    }
}

fn access(resp: &mut pb::ApplyTenantResponse, a: AccessDiff) {
    resp.access_changes = a
        .changes
        .into_iter()
        .map(|c| pb::AccessChange {
            principal_id: c.principal,
            action: c.action,
            resource: c.resource,
            gained: c.gained,
        })
        .collect();
    resp.access_gained = a.gained;
    resp.access_lost = a.lost;
    resp.access_complete = a.complete;
}

type ExportStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::ExportTenantResponse, Status>> + Send>,
>;

#[tonic::async_trait]
impl<S: WriteStore + Catalog + Store + Clone> pb::tenant_service_server::TenantService
    for AdminApi<S>
{
    async fn import_tenant(
        &self,
        req: Request<Streaming<pb::ImportTenantRequest>>,
    ) -> Result<Response<pb::ImportTenantResponse>, Status> {
        use pb::import_tenant_request::Part;
        let caller = caller(&req)?;
        require_operator(&caller)?;
        let _slot = self.bulk_slot()?;
        let mut stream = req.into_inner();
        let now = model::now_millis();
        let first = stream
            .next()
            .await
            .ok_or_else(|| Error::invalid("header", "the stream is empty"))??;
        let mut digest = match &first.part {
            Some(Part::Header(h)) if !h.request_id.is_empty() => {
                let mut d = <sha2::Sha256 as sha2::Digest>::new();
                sha2::Digest::update(&mut d, b"ImportTenant");
                Some(d)
            }
            _ => None,
        };
        digest_part(&mut digest, &first);
        let Some(Part::Header(h)) = first.part else {
            return Err(Error::invalid("header", "the first message must be the header").into());
        };
        let tenant_id = caller.tenant(h.tenant_id)?;
        let mut dump = TenantDump::empty(settings(&tenant_id, h.settings, now)?, 0);
        let _share = self.shares().enter(&tenant_id).await?;
        while let Some(msg) = stream.next().await {
            let msg = msg?;
            digest_part(&mut digest, &msg);
            match msg.part {
                Some(Part::Records(r)) => add_records(&mut dump, r, now)?,
                Some(Part::Header(_)) => {
                    return Err(
                        Error::invalid("header", "only the first message is a header").into(),
                    )
                }
                None => {}
            }
        }
        let ctx = WriteContext {
            tenant_id,
            caller: caller.name.clone(),
            actor: model::Actor::SuperUser,
            request: import_key(h.request_id, digest)?,
        };
        let w = self.admin().write(&ctx, ImportTenant { dump }).await?;
        Ok(Response::new(pb::ImportTenantResponse {
            counts: Some(counts(&w.output)),
            consistency_token: w.revision.to_string(),
        }))
    }

    type ExportTenantStream = ExportStream;

    async fn export_tenant(
        &self,
        req: Request<pb::ExportTenantRequest>,
    ) -> Result<Response<ExportStream>, Status> {
        use pb::export_tenant_response::Part;
        let caller = caller(&req)?;
        let token = super::admin::actor_token(&req);
        let r = req.into_inner();
        let (t, _share, viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        // Like every admin read: a key without an actor reads as the
        // platform; an actor must be allowed to manage the tenant (an
        // export is the whole tenant).
        match viewer {
            None => {}
            Some(v) if v.may(model::TENANT_TYPE, "manage", &[]) => {}
            Some(v) => {
                return Err(Error::PermissionDenied(format!(
                    "`{}` may not export the tenant (needs tenant.manage)",
                    v.id()
                ))
                .into())
            }
        }
        let slot = self.bulk_slot()?;
        let dump = self
            .admin()
            .store()
            .export(&t)
            .await?
            .ok_or_else(|| Error::not_found(format!("tenant `{t}`")))?;
        let header = pb::ExportTenantResponse {
            part: Some(Part::Header(pb::ExportHeader {
                settings: Some(dump.tenant.clone().into()),
                revision: dump.revision.to_string(),
            })),
        };
        // The slot goes with the stream: freed when the last message is taken.
        let chunks = records(dump, EXPORT_CHUNK).into_iter().map(move |r| {
            let _held = &slot;
            Ok(pb::ExportTenantResponse {
                part: Some(Part::Records(r)),
            })
        });
        let all = std::iter::once(Ok(header)).chain(chunks);
        Ok(Response::new(Box::pin(tokio_stream::iter(all))))
    }

    async fn apply_tenant(
        &self,
        req: Request<pb::ApplyTenantRequest>,
    ) -> Result<Response<pb::ApplyTenantResponse>, Status> {
        let caller = caller(&req)?;
        let (ctx, r) = self.proven_write(&caller, req)?;
        if r.dry_run && ctx.request.is_some() {
            return Err(
                Error::invalid("request_id", "a dry run writes nothing; leave it empty").into(),
            );
        }
        let limit = match r.access_page_size {
            0 => 100,
            n if n <= MAX_ACCESS_PAGE => n,
            _ => {
                return Err(Error::invalid(
                    "access_page_size",
                    format!("at most {MAX_ACCESS_PAGE}"),
                )
                .into())
            }
        } as usize;
        let _slot = self.bulk_slot()?;
        let _share = self.shares().enter(&ctx.tenant_id).await?;
        // The plan and the access it changes show the whole tenant: only
        // those who may manage it may ask, even for a dry run.
        if let model::Actor::Principal(p) = &ctx.actor {
            let v = self.admin().viewer(&ctx.tenant_id, p).await?;
            if !v.may(model::TENANT_TYPE, "manage", &[]) {
                return Err(Error::PermissionDenied(format!(
                    "actor `{p}` may not apply a tenant file (needs tenant.manage)"
                ))
                .into());
            }
        }
        let now_dump = self
            .admin()
            .store()
            .export(&ctx.tenant_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("tenant `{}`", ctx.tenant_id)))?;
        let mut want = TenantDump::empty(
            settings(&ctx.tenant_id, r.settings, now_dump.tenant.created_at)?,
            now_dump.revision,
        );
        add_records(
            &mut want,
            r.records.unwrap_or_default(),
            model::now_millis(),
        )?;
        crate::admin::bulk::check_dump(&want, model::now_millis())?;
        let ops = plan(&now_dump, &want)?;
        // Comparing access walks both trees: off the async threads.
        let (now_dump, want, diff) = tokio::task::spawn_blocking(move || {
            let diff = access_changes(&now_dump, &want, limit);
            (now_dump, want, diff)
        })
        .await
        .map_err(|e| Error::Internal(format!("access comparison: {e}")))?;
        let diff = diff?;
        drop(want);
        let cmd = ApplyTenant {
            base_revision: now_dump.revision,
            ops,
        };
        let mut resp = pb::ApplyTenantResponse::default();
        access(&mut resp, diff);
        if r.dry_run {
            let changes = cmd.ops.iter().map(|o| planned(o.describe())).collect();
            resp.changes = changes;
            resp.consistency_token = now_dump.revision.to_string();
            if let Err(e) = self.admin().preview(&ctx, cmd).await {
                let s: Status = e.into();
                if s.code() == tonic::Code::Unavailable || s.code() == tonic::Code::Internal {
                    return Err(s);
                }
                resp.rejection = format!("{:?}: {}", s.code(), s.message());
            }
            return Ok(Response::new(resp));
        }
        if cmd.ops.is_empty() {
            // Nothing to change: nothing is written.
            resp.applied = true;
            resp.consistency_token = now_dump.revision.to_string();
            return Ok(Response::new(resp));
        }
        let w = self.admin().write(&ctx, cmd).await?;
        resp.changes = w.output.changes.into_iter().map(planned).collect();
        resp.applied = true;
        resp.consistency_token = w.revision.to_string();
        Ok(Response::new(resp))
    }

    async fn delete_tenant(
        &self,
        req: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        let caller = caller(&req)?;
        require_operator(&caller)?;
        let (ctx, _r) = self.proven_write(&caller, req)?;
        let _share = self.shares().enter(&ctx.tenant_id).await?;
        let w = self.admin().write(&ctx, DeleteTenant).await?;
        Ok(Response::new(pb::DeleteTenantResponse {
            deleted_resources: w.output.resources,
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn erase_principal(
        &self,
        req: Request<pb::ErasePrincipalRequest>,
    ) -> Result<Response<pb::ErasePrincipalResponse>, Status> {
        let caller = caller(&req)?;
        let (ctx, r) = self.proven_write(&caller, req)?;
        let cmd = ErasePrincipal {
            principal_id: principal_id("principal_id", r.principal_id)?,
        };
        let _share = self.shares().enter(&ctx.tenant_id).await?;
        let w = self.admin().write(&ctx, cmd).await?;
        Ok(Response::new(pb::ErasePrincipalResponse {
            pseudonym: w.output.pseudonym,
            rewritten_audit_events: w.output.audit_events,
            consistency_token: w.revision.to_string(),
        }))
    }
}
