//! AdminService handlers: validate, build a command (or a read), call the
//! store, convert.

use super::convert::{self, display_name, id, name};
use super::pb;
use super::pb::admin_service_server::AdminService;
use crate::auth::{caller, Caller};
use crate::cache::CachedStore;
use crate::config::KeyScope;
use crate::engine::RoleTable;
use crate::error::{Error, Result};
use crate::model::{
    decode_page_token, encode_page_token, now_millis, page_size, Actor, Principal, PrincipalStatus,
    Team, Tenant,
};
use crate::store::sql::{AuditFilter, Command, Outcome, RequestKey, SqlStore, WriteContext};
use tonic::{Request, Response, Status};

/// Largest `page_size` of the admin list RPCs.
pub const MAX_ADMIN_PAGE: u32 = 1_000;

/// Serves AdminService.
#[derive(Debug, Clone)]
pub struct AdminApi {
    store: SqlStore,
    cache: CachedStore,
}

impl AdminApi {
    /// Writes through `cache`'s store and invalidates the cache.
    pub fn new(cache: CachedStore) -> Self {
        Self {
            store: cache.sql().clone(),
            cache,
        }
    }

    /// Applies a command; the cache drops what it made stale before the
    /// call returns.
    async fn write(&self, ctx: WriteContext, cmd: Command) -> Result<(Outcome, String)> {
        let w = self.store.apply(&ctx, cmd).await?;
        // A replay wrote nothing now; its revision's invalidation reaches
        // this replica through the revision log (at once for a caller that
        // passes the returned token).
        if !w.replayed {
            self.cache
                .applied_locally(&ctx.tenant_id, w.revision, &w.invalidation);
        }
        Ok((w.outcome, w.revision.to_string()))
    }
}

/// A write request's request id, tenant and acting principal (`None` where
/// the request has no actor: only operators create tenants).
type WriteFields<'a> = (&'a mut String, &'a mut String, Option<&'a mut String>);

/// Write requests carry an optional client request id.
trait WriteRequest: prost::Message + Sized {
    fn write_fields(&mut self) -> WriteFields<'_>;
}

macro_rules! write_requests {
    ($($t:ident),* $(,)?) => {
        $(impl WriteRequest for pb::$t {
            fn write_fields(&mut self) -> WriteFields<'_> {
                (&mut self.request_id, &mut self.tenant_id, Some(&mut self.actor_id))
            }
        })*
    };
}

impl WriteRequest for pb::CreateTenantRequest {
    fn write_fields(&mut self) -> WriteFields<'_> {
        (&mut self.request_id, &mut self.tenant_id, None)
    }
}

write_requests!(
    UpdateTenantRequest,
    CreateResourceRequest,
    MoveResourceRequest,
    SetResourcePrivateRequest,
    DeleteResourceRequest,
    TransferOwnershipRequest,
    CreatePrincipalRequest,
    SetPrincipalStatusRequest,
    CreateTeamRequest,
    DeleteTeamRequest,
    AddTeamMemberRequest,
    RemoveTeamMemberRequest,
    CreateRoleRequest,
    UpdateRoleRequest,
    DeleteRoleRequest,
    CreateGrantRequest,
    DeleteGrantRequest,
);

/// The write context of a write request: its request key (fingerprinted
/// with the tenant and actor still in the message), then its tenant and
/// actor, taken out of the message. An empty `actor_id` means the super
/// user, which only an operator key may be.
fn write_ctx<M: WriteRequest>(caller: &Caller, r: &mut M) -> Result<WriteContext> {
    let request = request_key(r)?;
    let (_, tenant_id, actor_id) = r.write_fields();
    let tenant_id = caller.tenant(std::mem::take(tenant_id))?;
    let actor_id = actor_id.map(std::mem::take).unwrap_or_default();
    let actor = if actor_id.is_empty() {
        if caller.scope != KeyScope::Operator {
            return Err(Error::invalid(
                "actor_id",
                "must name the acting principal (only operator keys may omit it)",
            ));
        }
        Actor::SuperUser
    } else {
        Actor::Principal(id("actor_id", actor_id)?)
    };
    Ok(WriteContext {
        tenant_id,
        caller: caller.name.clone(),
        actor,
        request,
    })
}

/// Takes the request id out of a write request and fingerprints the rest
/// (message type and encoded fields), so that reusing the id for another
/// request is caught.
fn request_key<M: WriteRequest>(msg: &mut M) -> Result<Option<RequestKey>> {
    use sha2::{Digest, Sha256};
    let id = std::mem::take(msg.write_fields().0);
    if id.is_empty() {
        return Ok(None);
    }
    crate::model::validate_id("request_id", &id)?;
    let mut h = Sha256::new();
    h.update(std::any::type_name::<M>().as_bytes());
    h.update(msg.encode_to_vec());
    Ok(Some(RequestKey {
        id,
        fingerprint: format!("{:x}", h.finalize()),
    }))
}

fn require_operator(caller: &Caller) -> Result<()> {
    if caller.scope != KeyScope::Operator {
        return Err(Error::PermissionDenied(
            "this call needs an operator key".to_owned(),
        ));
    }
    Ok(())
}

/// Instance-wide calls: an operator credential not limited to some tenants.
fn require_instance_operator(caller: &Caller) -> Result<()> {
    require_operator(caller)?;
    caller.require_every_tenant()
}

fn unexpected() -> Error {
    Error::Internal("unexpected write outcome".to_owned())
}

macro_rules! outcome {
    ($out:expr, $variant:ident) => {
        match $out {
            Outcome::$variant(v) => v,
            _ => return Err(unexpected().into()),
        }
    };
}

fn next_token(len: usize, limit: u64, last: Option<String>) -> String {
    if len as u64 == limit {
        last.as_deref().map(encode_page_token).unwrap_or_default()
    } else {
        String::new()
    }
}

fn default_types(v: Vec<String>, default: &[&str]) -> Vec<String> {
    if v.is_empty() {
        default.iter().map(|s| (*s).to_owned()).collect()
    } else {
        v
    }
}

fn retention(days: u32) -> Result<u32> {
    match days {
        0 => Ok(90),
        1..=3650 => Ok(days),
        _ => Err(Error::invalid(
            "audit_retention_days",
            "must be at most 3650",
        )),
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_tenant(
        &self,
        req: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let caller = caller(&req)?;
        require_operator(&caller)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let now = now_millis();
        let tenant = Tenant {
            id: ctx.tenant_id.clone(),
            display_name: display_name("display_name", r.display_name)?,
            single_owner_types: default_types(
                convert::type_list("single_owner_types", r.single_owner_types)?,
                &["project"],
            ),
            creator_owner_types: default_types(
                convert::type_list("creator_owner_types", r.creator_owner_types)?,
                &["project", "workflow", "draft"],
            ),
            audit_retention_days: retention(r.audit_retention_days)?,
            created_at: now,
        };
        let first_admin = match r.first_admin {
            None => None,
            Some(a) => Some(Principal {
                id: id("first_admin.principal_id", a.principal_id)?,
                kind: convert::principal_kind("first_admin.kind", a.kind)?,
                status: PrincipalStatus::Active,
                display_name: display_name("first_admin.display_name", a.display_name)?,
                created_at: now,
            }),
        };
        let (out, revision) = self
            .write(
                ctx,
                Command::CreateTenant {
                    tenant,
                    first_admin,
                },
            )
            .await?;
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(outcome!(out, Tenant).into()),
            revision,
        }))
    }

    async fn get_tenant(
        &self,
        req: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = caller.tenant(r.tenant_id)?;
        let tenant = self
            .store
            .tenant(&t)
            .await?
            .ok_or_else(|| Error::not_found(format!("tenant `{t}`")))?;
        Ok(Response::new(pb::GetTenantResponse {
            tenant: Some(tenant.into()),
        }))
    }

    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        require_instance_operator(&caller(&req)?)?;
        let r = req.into_inner();
        let limit = page_size("page_size", r.page_size, 100, MAX_ADMIN_PAGE)?;
        let after = decode_page_token("page_token", &r.page_token)?;
        let tenants = self.store.list_tenants(after.as_deref(), limit).await?;
        let next_page_token =
            next_token(tenants.len(), limit, tenants.last().map(|t| t.id.clone()));
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: tenants.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_tenant(
        &self,
        req: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::UpdateTenantResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let cmd = Command::UpdateTenant {
            display_name: display_name("display_name", r.display_name)?,
            single_owner_types: convert::type_list("single_owner_types", r.single_owner_types)?,
            creator_owner_types: convert::type_list("creator_owner_types", r.creator_owner_types)?,
            audit_retention_days: retention(r.audit_retention_days)?,
        };
        let (out, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::UpdateTenantResponse {
            tenant: Some(outcome!(out, Tenant).into()),
            revision,
        }))
    }

    async fn create_resource(
        &self,
        req: Request<pb::CreateResourceRequest>,
    ) -> Result<Response<pb::CreateResourceResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let owner = if r.owner_id.is_empty() {
            None
        } else {
            Some(id("owner_id", r.owner_id)?)
        };
        let cmd = Command::CreateResource {
            resource: convert::resource("resource", r.resource)?,
            parent: convert::opt_resource("parent", r.parent)?,
            private: r.private,
            owner,
        };
        let (out, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::CreateResourceResponse {
            resource: Some(outcome!(out, Resource).into()),
            revision,
        }))
    }

    async fn get_resource(
        &self,
        req: Request<pb::GetResourceRequest>,
    ) -> Result<Response<pb::GetResourceResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = caller.tenant(r.tenant_id)?;
        let res = convert::resource("resource", r.resource)?;
        let found = self
            .store
            .resource(&t, &res)
            .await?
            .ok_or_else(|| Error::not_found(format!("resource `{res}`")))?;
        Ok(Response::new(pb::GetResourceResponse {
            resource: Some(found.into()),
        }))
    }

    async fn list_resources(
        &self,
        req: Request<pb::ListResourcesRequest>,
    ) -> Result<Response<pb::ListResourcesResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = caller.tenant(r.tenant_id)?;
        let parent = convert::opt_resource("parent", r.parent)?;
        let limit = page_size("page_size", r.page_size, 100, MAX_ADMIN_PAGE)?;
        let after = decode_page_token("page_token", &r.page_token)?;
        let items = self
            .store
            .list_children(&t, parent.as_ref(), after.as_deref(), limit)
            .await?;
        let next_page_token = next_token(
            items.len(),
            limit,
            items.last().map(|x| x.resource.to_string()),
        );
        Ok(Response::new(pb::ListResourcesResponse {
            resources: items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn move_resource(
        &self,
        req: Request<pb::MoveResourceRequest>,
    ) -> Result<Response<pb::MoveResourceResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let cmd = Command::MoveResource {
            resource: convert::resource("resource", r.resource)?,
            new_parent: convert::opt_resource("new_parent", r.new_parent)?,
        };
        let (out, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::MoveResourceResponse {
            resource: Some(outcome!(out, Resource).into()),
            revision,
        }))
    }

    async fn set_resource_private(
        &self,
        req: Request<pb::SetResourcePrivateRequest>,
    ) -> Result<Response<pb::SetResourcePrivateResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let cmd = Command::SetResourcePrivate {
            resource: convert::resource("resource", r.resource)?,
            private: r.private,
        };
        let (out, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::SetResourcePrivateResponse {
            resource: Some(outcome!(out, Resource).into()),
            revision,
        }))
    }

    async fn delete_resource(
        &self,
        req: Request<pb::DeleteResourceRequest>,
    ) -> Result<Response<pb::DeleteResourceResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let cmd = Command::DeleteResource {
            resource: convert::resource("resource", r.resource)?,
        };
        let (out, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::DeleteResourceResponse {
            deleted_resources: outcome!(out, Count),
            revision,
        }))
    }

    async fn transfer_ownership(
        &self,
        req: Request<pb::TransferOwnershipRequest>,
    ) -> Result<Response<pb::TransferOwnershipResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let previous_owner_role = if r.previous_owner_role_id.is_empty() {
            None
        } else {
            Some(name("previous_owner_role_id", r.previous_owner_role_id)?)
        };
        let cmd = Command::TransferOwnership {
            resource: convert::resource("resource", r.resource)?,
            new_owner: id("new_owner_id", r.new_owner_id)?,
            previous_owner_role,
        };
        let (out, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::TransferOwnershipResponse {
            owner_grant: Some(outcome!(out, Grant).into()),
            revision,
        }))
    }

    async fn create_principal(
        &self,
        req: Request<pb::CreatePrincipalRequest>,
    ) -> Result<Response<pb::CreatePrincipalResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let status = match convert::principal_status("status", r.status)? {
            None | Some(PrincipalStatus::Invited) => PrincipalStatus::Invited,
            Some(PrincipalStatus::Active) => PrincipalStatus::Active,
            Some(_) => {
                return Err(Error::invalid("status", "a new principal is invited or active").into())
            }
        };
        let principal = Principal {
            id: id("principal_id", r.principal_id)?,
            kind: convert::principal_kind("kind", r.kind)?,
            status,
            display_name: display_name("display_name", r.display_name)?,
            created_at: now_millis(),
        };
        let (out, revision) = self
            .write(ctx, Command::CreatePrincipal { principal })
            .await?;
        Ok(Response::new(pb::CreatePrincipalResponse {
            principal: Some(outcome!(out, Principal).into()),
            revision,
        }))
    }

    async fn get_principal(
        &self,
        req: Request<pb::GetPrincipalRequest>,
    ) -> Result<Response<pb::GetPrincipalResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = caller.tenant(r.tenant_id)?;
        let p = id("principal_id", r.principal_id)?;
        let found = self
            .store
            .principal(&t, &p)
            .await?
            .ok_or_else(|| Error::not_found(format!("principal `{p}`")))?;
        Ok(Response::new(pb::GetPrincipalResponse {
            principal: Some(found.into()),
        }))
    }

    async fn list_principals(
        &self,
        req: Request<pb::ListPrincipalsRequest>,
    ) -> Result<Response<pb::ListPrincipalsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = caller.tenant(r.tenant_id)?;
        let limit = page_size("page_size", r.page_size, 100, MAX_ADMIN_PAGE)?;
        let after = decode_page_token("page_token", &r.page_token)?;
        let items = self
            .store
            .list_principals(&t, after.as_deref(), limit)
            .await?;
        let next_page_token = next_token(items.len(), limit, items.last().map(|x| x.id.clone()));
        Ok(Response::new(pb::ListPrincipalsResponse {
            principals: items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn set_principal_status(
        &self,
        req: Request<pb::SetPrincipalStatusRequest>,
    ) -> Result<Response<pb::SetPrincipalStatusResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let status = convert::principal_status("status", r.status)?
            .ok_or_else(|| Error::invalid("status", "must be set"))?;
        let cmd = Command::SetPrincipalStatus {
            principal_id: id("principal_id", r.principal_id)?,
            status,
        };
        let (out, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::SetPrincipalStatusResponse {
            principal: Some(outcome!(out, Principal).into()),
            revision,
        }))
    }

    async fn create_team(
        &self,
        req: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::CreateTeamResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let team = Team {
            id: id("team_id", r.team_id)?,
            display_name: display_name("display_name", r.display_name)?,
        };
        let (out, revision) = self.write(ctx, Command::CreateTeam { team }).await?;
        Ok(Response::new(pb::CreateTeamResponse {
            team: Some(outcome!(out, Team).into()),
            revision,
        }))
    }

    async fn list_teams(
        &self,
        req: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = caller.tenant(r.tenant_id)?;
        let limit = page_size("page_size", r.page_size, 100, MAX_ADMIN_PAGE)?;
        let after = decode_page_token("page_token", &r.page_token)?;
        let items = self.store.list_teams(&t, after.as_deref(), limit).await?;
        let next_page_token = next_token(items.len(), limit, items.last().map(|x| x.id.clone()));
        Ok(Response::new(pb::ListTeamsResponse {
            teams: items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn delete_team(
        &self,
        req: Request<pb::DeleteTeamRequest>,
    ) -> Result<Response<pb::DeleteTeamResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let cmd = Command::DeleteTeam {
            team_id: id("team_id", r.team_id)?,
        };
        let (_, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::DeleteTeamResponse { revision }))
    }

    async fn add_team_member(
        &self,
        req: Request<pb::AddTeamMemberRequest>,
    ) -> Result<Response<pb::AddTeamMemberResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let cmd = Command::AddTeamMember {
            team_id: id("team_id", r.team_id)?,
            member: convert::subject("member", r.member)?,
        };
        let (_, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::AddTeamMemberResponse { revision }))
    }

    async fn remove_team_member(
        &self,
        req: Request<pb::RemoveTeamMemberRequest>,
    ) -> Result<Response<pb::RemoveTeamMemberResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let cmd = Command::RemoveTeamMember {
            team_id: id("team_id", r.team_id)?,
            member: convert::subject("member", r.member)?,
        };
        let (_, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::RemoveTeamMemberResponse { revision }))
    }

    async fn list_team_members(
        &self,
        req: Request<pb::ListTeamMembersRequest>,
    ) -> Result<Response<pb::ListTeamMembersResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = caller.tenant(r.tenant_id)?;
        let team = id("team_id", r.team_id)?;
        let members = self
            .store
            .team_members(&t, &team)
            .await?
            .ok_or_else(|| Error::not_found(format!("team `{team}`")))?;
        Ok(Response::new(pb::ListTeamMembersResponse {
            members: members.into_iter().map(Into::into).collect(),
        }))
    }

    async fn create_role(
        &self,
        req: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let role = convert::role("role", r.role)?;
        let (out, revision) = self.write(ctx, Command::CreateRole { role }).await?;
        Ok(Response::new(pb::CreateRoleResponse {
            role: Some(outcome!(out, Role).into()),
            revision,
        }))
    }

    async fn get_role(
        &self,
        req: Request<pb::GetRoleRequest>,
    ) -> Result<Response<pb::GetRoleResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = caller.tenant(r.tenant_id)?;
        let role_id = name("role_id", r.role_id)?;
        let table: RoleTable = self.store.role_table(&t).await?;
        let role = table
            .get(&role_id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("role `{role_id}`")))?;
        Ok(Response::new(pb::GetRoleResponse {
            role: Some(role.into()),
        }))
    }

    async fn list_roles(
        &self,
        req: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = caller.tenant(r.tenant_id)?;
        let table: RoleTable = self.store.role_table(&t).await?;
        Ok(Response::new(pb::ListRolesResponse {
            roles: table.all().into_iter().cloned().map(Into::into).collect(),
        }))
    }

    async fn update_role(
        &self,
        req: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::UpdateRoleResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let role = convert::role("role", r.role)?;
        let (out, revision) = self.write(ctx, Command::UpdateRole { role }).await?;
        Ok(Response::new(pb::UpdateRoleResponse {
            role: Some(outcome!(out, Role).into()),
            revision,
        }))
    }

    async fn delete_role(
        &self,
        req: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let cmd = Command::DeleteRole {
            role_id: name("role_id", r.role_id)?,
            cascade: r.cascade,
        };
        let (out, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::DeleteRoleResponse {
            deleted_grants: outcome!(out, Count),
            revision,
        }))
    }

    async fn create_grant(
        &self,
        req: Request<pb::CreateGrantRequest>,
    ) -> Result<Response<pb::CreateGrantResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let cmd = Command::CreateGrant {
            subject: convert::subject("subject", r.subject)?,
            role_id: name("role_id", r.role_id)?,
            scope: convert::scope("scope", r.scope)?,
            effect: convert::effect("effect", r.effect)?,
            expires_at: convert::time("expire_time", r.expire_time)?,
        };
        let (out, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::CreateGrantResponse {
            grant: Some(outcome!(out, Grant).into()),
            revision,
        }))
    }

    async fn delete_grant(
        &self,
        req: Request<pb::DeleteGrantRequest>,
    ) -> Result<Response<pb::DeleteGrantResponse>, Status> {
        let caller = caller(&req)?;
        let mut r = req.into_inner();
        let ctx = write_ctx(&caller, &mut r)?;
        let cmd = Command::DeleteGrant {
            grant_id: id("grant_id", r.grant_id)?,
        };
        let (_, revision) = self.write(ctx, cmd).await?;
        Ok(Response::new(pb::DeleteGrantResponse { revision }))
    }

    async fn list_grants(
        &self,
        req: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = caller.tenant(r.tenant_id)?;
        let subject = match r.subject {
            None => None,
            Some(s) => Some(convert::subject("subject", Some(s))?),
        };
        let scope = convert::opt_resource("scope", r.scope)?;
        let limit = page_size("page_size", r.page_size, 100, MAX_ADMIN_PAGE)?;
        let after = decode_page_token("page_token", &r.page_token)?;
        let items = self
            .store
            .list_grants(
                &t,
                subject.as_ref(),
                scope.as_ref(),
                after.as_deref(),
                limit,
            )
            .await?;
        let next_page_token = next_token(items.len(), limit, items.last().map(|x| x.id.clone()));
        Ok(Response::new(pb::ListGrantsResponse {
            grants: items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn get_access_overview(
        &self,
        req: Request<pb::GetAccessOverviewRequest>,
    ) -> Result<Response<pb::GetAccessOverviewResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = caller.tenant(r.tenant_id)?;
        let p = id("principal_id", r.principal_id)?;
        if !r.scope_type.is_empty() {
            crate::model::validate_name("scope_type", &r.scope_type)?;
        }
        let principal = self
            .store
            .principal(&t, &p)
            .await?
            .ok_or_else(|| Error::not_found(format!("principal `{p}`")))?;
        let roles: RoleTable = self.store.role_table(&t).await?;
        let now = now_millis();
        let mut bindings = self.store.bindings(&t, &p).await?;
        bindings.retain(|b| r.scope_type.is_empty() || b.grant.scope.kind() == r.scope_type);
        bindings.sort_by(|a, b| (&a.grant.scope, &a.grant.id).cmp(&(&b.grant.scope, &b.grant.id)));
        let entries = bindings
            .into_iter()
            .map(|b| {
                let effective = b.live(now)
                    && roles
                        .get(&b.grant.role_id)
                        .is_some_and(|role| role.effective_at(b.grant.scope.kind()));
                pb::AccessEntry {
                    grant: Some(b.grant.into()),
                    via_teams: b.via_teams,
                    effective,
                }
            })
            .collect();
        let account_admin = self.store.is_account_admin(&t, &p).await?;
        Ok(Response::new(pb::GetAccessOverviewResponse {
            principal: Some(principal.into()),
            account_admin,
            entries,
        }))
    }

    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let opt = |field: &str, v: String| -> Result<Option<String>> {
            if v.is_empty() {
                Ok(None)
            } else {
                crate::model::validate_id(field, &v)?;
                Ok(Some(v))
            }
        };
        let before_revision = match decode_page_token("page_token", &r.page_token)? {
            None => None,
            Some(s) => Some(s.parse::<i64>().map_err(|_| {
                Error::invalid("page_token", "not a page token returned by Portcullis")
            })?),
        };
        let filter = AuditFilter {
            tenant: caller.tenant(r.tenant_id)?,
            actor: opt("actor", r.actor)?,
            action: opt("action", r.action)?,
            target_prefix: opt("target_prefix", r.target_prefix)?,
            since: convert::time("start_time", r.start_time)?,
            until: convert::time("end_time", r.end_time)?,
            before_revision,
        };
        let limit = page_size("page_size", r.page_size, 100, MAX_ADMIN_PAGE)?;
        let events = self.store.list_audit(&filter, limit).await?;
        let next_page_token = next_token(
            events.len(),
            limit,
            events.last().map(|e| e.revision.to_string()),
        );
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn get_cache_stats(
        &self,
        req: Request<pb::GetCacheStatsRequest>,
    ) -> Result<Response<pb::GetCacheStatsResponse>, Status> {
        require_instance_operator(&caller(&req)?)?;
        let stats = self.cache.stats();
        let counters = |c: crate::cache::CounterSnapshot| pb::CacheCounters {
            hits: c.hits,
            misses: c.misses,
            evictions: c.evictions,
            entries: c.entries,
        };
        Ok(Response::new(pb::GetCacheStatsResponse {
            subjects: Some(counters(stats.subjects)),
            resources: Some(counters(stats.resources)),
            roles: Some(counters(stats.roles)),
        }))
    }
}
