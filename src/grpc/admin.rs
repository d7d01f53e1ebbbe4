//! AdminService handlers: take the write context out of the request,
//! convert the rest into a typed admin command (`TryFrom`, in `convert.rs`),
//! run it, convert the result. The rules live in `crate::admin`.

use super::convert::{self, id, name};
use super::fairness::{Share, TenantShares};
use super::pb;
use super::pb::admin_service_server::AdminService;
use crate::admin::reads::Viewer;
use crate::admin::{
    grants, links, members, reads, resources, roles, tenants, Admin, Command, Written,
};
use crate::auth::{caller, ActorTokens, Caller, ACTOR_TOKEN_HEADER};
use crate::config::KeyScope;
use crate::error::{Error, Result};
use crate::model::Scope;
use crate::model::{decode_page_token, encode_page_token, page_size, Actor};
use crate::store::{AuditFilter, Catalog, Keyset, RequestKey, Store, WriteContext, WriteStore};
use tonic::{Request, Response, Status};

/// Largest `page_size` of the admin list RPCs.
pub const MAX_ADMIN_PAGE: u32 = 1_000;

/// Serves AdminService.
#[derive(Clone)]
pub struct AdminApi<S> {
    pub(super) admin: Admin<S>,
    actor_tokens: Option<ActorTokens>,
    pub(super) shares: TenantShares,
    /// Whole-tenant calls (import, export, apply) under way on this replica:
    /// each may hold a whole tenant in memory.
    bulk: std::sync::Arc<tokio::sync::Semaphore>,
}

impl<S> std::fmt::Debug for AdminApi<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminApi")
    }
}

impl<S: WriteStore + Catalog + Store + Clone> AdminApi<S> {
    /// Serves `admin`; `actor_tokens` verifies the actors of keys with
    /// `require_actor_token`; each call waits for its tenant's share.
    pub fn new(admin: Admin<S>, actor_tokens: Option<ActorTokens>, shares: TenantShares) -> Self {
        Self {
            admin,
            actor_tokens,
            shares,
            bulk: std::sync::Arc::new(tokio::sync::Semaphore::new(super::tenant::MAX_BULK_CALLS)),
        }
    }

    /// A place among the whole-tenant calls under way, or
    /// RESOURCE_EXHAUSTED when they are all taken.
    pub(super) fn bulk_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.bulk.clone().try_acquire_owned().map_err(|_| {
            Error::Exhausted(format!(
                "{} whole-tenant calls (import, export, apply) are under way on this replica; retry later",
                super::tenant::MAX_BULK_CALLS
            ))
        })
    }

    /// The administrative service.
    pub(super) fn admin(&self) -> &Admin<S> {
        &self.admin
    }

    /// Every tenant's share of the server.
    pub(super) fn shares(&self) -> &TenantShares {
        &self.shares
    }

    /// The tenant a read is about, once it has a slot of the tenant's
    /// share, and the actor it names (proven when the credential requires
    /// it), as a viewer: `None` when it names none.
    pub(super) async fn enter(
        &self,
        caller: &Caller,
        token: Option<&str>,
        tenant_id: String,
        actor_id: String,
    ) -> Result<(String, Share, Option<Viewer>)> {
        let t = caller.tenant(tenant_id)?;
        let actor = if actor_id.is_empty() {
            None
        } else {
            Some(id("actor_id", actor_id)?)
        };
        if caller.requires_actor_token {
            let Some(actor) = &actor else {
                return Err(Error::Unauthenticated(format!(
                    "credential `{}` reads only as a proven actor: set `actor_id` and an actor token in `{ACTOR_TOKEN_HEADER}`",
                    caller.name
                )));
            };
            self.prove_actor(caller, token, &t, actor)?;
        }
        let share = self.shares.enter(&t).await?;
        let viewer = match actor {
            None => None,
            Some(a) => Some(self.admin.viewer(&t, &a).await?),
        };
        Ok((t, share, viewer))
    }

    /// Runs the command a write request asks for.
    async fn write<M, C>(&self, req: Request<M>) -> Result<Written<C::Output>, Status>
    where
        M: WriteRequest,
        C: Command + TryFrom<M, Error = Error>,
    {
        let caller = caller(&req)?;
        let (ctx, r) = self.proven_write(&caller, req)?;
        let cmd = C::try_from(r)?;
        let _share = self.shares.enter(&ctx.tenant_id).await?;
        Ok(self.admin.write(&ctx, cmd).await?)
    }

    /// A write request's context (tenant and actor taken out of it), its
    /// actor proven when the credential requires it; and the rest of it.
    pub(super) fn proven_write<M: WriteRequest>(
        &self,
        caller: &Caller,
        req: Request<M>,
    ) -> Result<(WriteContext, M)> {
        let token = actor_token(&req);
        let mut r = req.into_inner();
        let ctx = write_ctx(caller, &mut r)?;
        self.prove_actor(
            caller,
            token.as_deref(),
            &ctx.tenant_id,
            &ctx.actor.to_string(),
        )?;
        Ok((ctx, r))
    }

    /// For a credential with `require_actor_token`, checks that the
    /// request's actor token proves its actor.
    pub(super) fn prove_actor(
        &self,
        caller: &Caller,
        token: Option<&str>,
        tenant: &str,
        actor: &str,
    ) -> Result<()> {
        if !caller.requires_actor_token {
            return Ok(());
        }
        let (Some(tokens), Some(token)) = (&self.actor_tokens, token) else {
            return Err(Error::Unauthenticated(format!(
                "credential `{}` needs an actor token in `{ACTOR_TOKEN_HEADER}`",
                caller.name
            )));
        };
        tokens.verify(token, tenant, actor)
    }
}

/// The request's actor token, if any.
pub(super) fn actor_token<M>(req: &Request<M>) -> Option<String> {
    req.metadata()
        .get(ACTOR_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A write request's request id, tenant and acting principal (`None` where
/// the request has no actor: only operators create tenants).
pub(super) type WriteFields<'a> = (&'a mut String, &'a mut String, Option<&'a mut String>);

/// Write requests carry an optional client request id.
pub(super) trait WriteRequest: prost::Message + Sized {
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
    SetResourceAttributesRequest,
    SetResourceRestrictedRequest,
    SetResourceLinksRequest,
    DeleteResourceRequest,
    TransferOwnershipRequest,
    CreatePrincipalRequest,
    SetPrincipalStatusRequest,
    AcceptInvitationRequest,
    CreateTeamRequest,
    DeleteTeamRequest,
    AddTeamMemberRequest,
    RemoveTeamMemberRequest,
    CreateRoleRequest,
    UpdateRoleRequest,
    DeleteRoleRequest,
    CreateGrantRequest,
    DeleteGrantRequest,
    ApplyTenantRequest,
    ErasePrincipalRequest,
);

impl WriteRequest for pb::DeleteTenantRequest {
    fn write_fields(&mut self) -> WriteFields<'_> {
        (&mut self.request_id, &mut self.tenant_id, None)
    }
}

/// The write context of a write request: its request key (fingerprinted
/// with the tenant and actor still in the message), then its tenant and
/// actor, taken out of the message. An empty `actor_id` means the super
/// user, which only an operator key may be.
pub(super) fn write_ctx<M: WriteRequest>(caller: &Caller, r: &mut M) -> Result<WriteContext> {
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
        Actor::Principal(convert::principal_id("actor_id", actor_id)?)
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

pub(super) fn require_operator(caller: &Caller) -> Result<()> {
    if caller.scope != KeyScope::Operator {
        return Err(Error::PermissionDenied(
            "this call needs an operator key".to_owned(),
        ));
    }
    Ok(())
}

/// Instance-wide calls: an operator credential not limited to some tenants.
pub(super) fn require_instance_operator(caller: &Caller) -> Result<()> {
    require_operator(caller)?;
    caller.require_every_tenant()
}

fn next_token(len: usize, limit: u64, last: Option<String>) -> String {
    if len as u64 == limit {
        last.as_deref().map(encode_page_token).unwrap_or_default()
    } else {
        String::new()
    }
}

/// A page request from `page_size` and `page_token`.
fn page(size: u32, token: &str) -> Result<(u64, Option<String>)> {
    Ok((
        page_size("page_size", size, 100, MAX_ADMIN_PAGE)?,
        decode_page_token("page_token", token)?,
    ))
}

fn keyset(limit: u64, after: &Option<String>) -> Keyset<'_> {
    Keyset {
        after: after.as_deref(),
        limit,
    }
}

/// A structured page key, as JSON inside the opaque page token.
fn token_key<K: serde::de::DeserializeOwned>(key: &str) -> Result<K> {
    serde_json::from_str(key)
        .map_err(|_| Error::invalid("page_token", "not a page token returned by Portcullis"))
}

/// The next page token after `last` when `more` items follow.
fn more_token<K: serde::Serialize>(more: bool, last: Option<K>) -> Result<String> {
    match (more, last) {
        (true, Some(k)) => {
            let key =
                serde_json::to_string(&k).map_err(|e| Error::Internal(format!("page key: {e}")))?;
            Ok(encode_page_token(&key))
        }
        _ => Ok(String::new()),
    }
}

fn not_found(what: String) -> impl FnOnce() -> Error {
    move || Error::not_found(what)
}

#[tonic::async_trait]
impl<S: WriteStore + Catalog + Store + Clone> AdminService for AdminApi<S> {
    async fn create_tenant(
        &self,
        req: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let caller = caller(&req)?;
        require_operator(&caller)?;
        let (ctx, r) = self.proven_write(&caller, req)?;
        let cmd = convert::create_tenant(&ctx.tenant_id, r)?;
        let w = self.admin.write(&ctx, cmd).await?;
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn get_tenant(
        &self,
        req: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        let r = req.into_inner();
        let (t, _share, _viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        let tenant = self.admin.store().tenant(&t).await?;
        let tenant = tenant.ok_or_else(not_found(format!("tenant `{t}`")))?;
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
        let (limit, after) = page(r.page_size, &r.page_token)?;
        let tenants = self
            .admin
            .store()
            .list_tenants(keyset(limit, &after))
            .await?;
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
        let w = self.write::<_, tenants::UpdateTenant>(req).await?;
        Ok(Response::new(pb::UpdateTenantResponse {
            tenant: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn create_resource(
        &self,
        req: Request<pb::CreateResourceRequest>,
    ) -> Result<Response<pb::CreateResourceResponse>, Status> {
        let w = self.write::<_, resources::CreateResource>(req).await?;
        Ok(Response::new(pb::CreateResourceResponse {
            resource: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn get_resource(
        &self,
        req: Request<pb::GetResourceRequest>,
    ) -> Result<Response<pb::GetResourceResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        let r = req.into_inner();
        let (t, _share, viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        let res = convert::resource("resource", r.resource)?;
        let found = self.admin.resource(&t, viewer.as_ref(), &res).await?;
        let found = found.ok_or_else(not_found(format!("resource `{res}`")))?;
        Ok(Response::new(pb::GetResourceResponse {
            resource: Some(found.into()),
        }))
    }

    async fn list_resources(
        &self,
        req: Request<pb::ListResourcesRequest>,
    ) -> Result<Response<pb::ListResourcesResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        let r = req.into_inner();
        let (t, _share, viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        let parent = convert::opt_resource("parent", r.parent)?;
        let (limit, after) = page(r.page_size, &r.page_token)?;
        let items = self
            .admin
            .store()
            .list_children(&t, parent.as_ref(), keyset(limit, &after))
            .await?;
        let next_page_token = next_token(
            items.len(),
            limit,
            items.last().map(|x| x.resource.to_string()),
        );
        // Filtered after paging: a page may hold fewer than it could.
        let items = self
            .admin
            .visible_children(&t, viewer.as_ref(), parent.as_ref(), items)
            .await?;
        Ok(Response::new(pb::ListResourcesResponse {
            resources: items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn move_resource(
        &self,
        req: Request<pb::MoveResourceRequest>,
    ) -> Result<Response<pb::MoveResourceResponse>, Status> {
        let w = self.write::<_, resources::MoveResource>(req).await?;
        Ok(Response::new(pb::MoveResourceResponse {
            resource: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn set_resource_private(
        &self,
        req: Request<pb::SetResourcePrivateRequest>,
    ) -> Result<Response<pb::SetResourcePrivateResponse>, Status> {
        let w = self.write::<_, resources::SetResourcePrivate>(req).await?;
        Ok(Response::new(pb::SetResourcePrivateResponse {
            resource: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn preview_change(
        &self,
        req: Request<pb::PreviewChangeRequest>,
    ) -> Result<Response<pb::PreviewChangeResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        Ok(Response::new(
            self.preview(&caller, token.as_deref(), req.into_inner())
                .await?,
        ))
    }

    async fn set_resource_restricted(
        &self,
        req: Request<pb::SetResourceRestrictedRequest>,
    ) -> Result<Response<pb::SetResourceRestrictedResponse>, Status> {
        let w = self
            .write::<_, resources::SetResourceRestricted>(req)
            .await?;
        Ok(Response::new(pb::SetResourceRestrictedResponse {
            resource: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn set_resource_links(
        &self,
        req: Request<pb::SetResourceLinksRequest>,
    ) -> Result<Response<pb::SetResourceLinksResponse>, Status> {
        let w = self.write::<_, links::SetResourceLinks>(req).await?;
        Ok(Response::new(pb::SetResourceLinksResponse {
            resource: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn set_resource_attributes(
        &self,
        req: Request<pb::SetResourceAttributesRequest>,
    ) -> Result<Response<pb::SetResourceAttributesResponse>, Status> {
        let w = self
            .write::<_, resources::SetResourceAttributes>(req)
            .await?;
        Ok(Response::new(pb::SetResourceAttributesResponse {
            resource: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn delete_resource(
        &self,
        req: Request<pb::DeleteResourceRequest>,
    ) -> Result<Response<pb::DeleteResourceResponse>, Status> {
        let w = self.write::<_, resources::DeleteResource>(req).await?;
        Ok(Response::new(pb::DeleteResourceResponse {
            deleted_resources: w.output,
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn transfer_ownership(
        &self,
        req: Request<pb::TransferOwnershipRequest>,
    ) -> Result<Response<pb::TransferOwnershipResponse>, Status> {
        let w = self.write::<_, resources::TransferOwnership>(req).await?;
        Ok(Response::new(pb::TransferOwnershipResponse {
            owner_grant: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn create_principal(
        &self,
        req: Request<pb::CreatePrincipalRequest>,
    ) -> Result<Response<pb::CreatePrincipalResponse>, Status> {
        let w = self.write::<_, members::CreatePrincipal>(req).await?;
        Ok(Response::new(pb::CreatePrincipalResponse {
            principal: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn get_principal(
        &self,
        req: Request<pb::GetPrincipalRequest>,
    ) -> Result<Response<pb::GetPrincipalResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        let r = req.into_inner();
        let (t, _share, _viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        let p = id("principal_id", r.principal_id)?;
        let found = self.admin.store().principal(&t, &p).await?;
        let found = found.ok_or_else(not_found(format!("principal `{p}`")))?;
        Ok(Response::new(pb::GetPrincipalResponse {
            principal: Some(found.into()),
        }))
    }

    async fn list_principals(
        &self,
        req: Request<pb::ListPrincipalsRequest>,
    ) -> Result<Response<pb::ListPrincipalsResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        let r = req.into_inner();
        let (t, _share, _viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        let (limit, after) = page(r.page_size, &r.page_token)?;
        let items = self
            .admin
            .store()
            .list_principals(&t, keyset(limit, &after))
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
        let w = self.write::<_, members::SetPrincipalStatus>(req).await?;
        Ok(Response::new(pb::SetPrincipalStatusResponse {
            principal: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn accept_invitation(
        &self,
        req: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        let w = self.write::<_, members::AcceptInvitation>(req).await?;
        Ok(Response::new(pb::AcceptInvitationResponse {
            principal: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn create_team(
        &self,
        req: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::CreateTeamResponse>, Status> {
        let w = self.write::<_, members::CreateTeam>(req).await?;
        Ok(Response::new(pb::CreateTeamResponse {
            team: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn list_teams(
        &self,
        req: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        let r = req.into_inner();
        let (t, _share, _viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        let (limit, after) = page(r.page_size, &r.page_token)?;
        let items = self
            .admin
            .store()
            .list_teams(&t, keyset(limit, &after))
            .await?;
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
        let w = self.write::<_, members::DeleteTeam>(req).await?;
        Ok(Response::new(pb::DeleteTeamResponse {
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn add_team_member(
        &self,
        req: Request<pb::AddTeamMemberRequest>,
    ) -> Result<Response<pb::AddTeamMemberResponse>, Status> {
        let w = self.write::<_, members::AddTeamMember>(req).await?;
        Ok(Response::new(pb::AddTeamMemberResponse {
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn remove_team_member(
        &self,
        req: Request<pb::RemoveTeamMemberRequest>,
    ) -> Result<Response<pb::RemoveTeamMemberResponse>, Status> {
        let w = self.write::<_, members::RemoveTeamMember>(req).await?;
        Ok(Response::new(pb::RemoveTeamMemberResponse {
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn list_team_members(
        &self,
        req: Request<pb::ListTeamMembersRequest>,
    ) -> Result<Response<pb::ListTeamMembersResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        let r = req.into_inner();
        let (t, _share, _viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        let team = id("team_id", r.team_id)?;
        let (limit, after) = page(r.page_size, &r.page_token)?;
        let members = self
            .admin
            .store()
            .team_members(&t, &team, keyset(limit, &after))
            .await?;
        let members = members.ok_or_else(not_found(format!("team `{team}`")))?;
        let next_page_token =
            next_token(members.len(), limit, members.last().map(|m| m.to_string()));
        Ok(Response::new(pb::ListTeamMembersResponse {
            members: members.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn create_role(
        &self,
        req: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        let w = self.write::<_, roles::CreateRole>(req).await?;
        Ok(Response::new(pb::CreateRoleResponse {
            role: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn get_role(
        &self,
        req: Request<pb::GetRoleRequest>,
    ) -> Result<Response<pb::GetRoleResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        let r = req.into_inner();
        let (t, _share, _viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        let role = self.admin.role(&t, &name("role_id", r.role_id)?).await?;
        Ok(Response::new(pb::GetRoleResponse {
            role: Some(role.into()),
        }))
    }

    async fn list_roles(
        &self,
        req: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        let r = req.into_inner();
        let (t, _share, _viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        let (limit, after) = page(r.page_size, &r.page_token)?;
        let after = after.map(|k| token_key::<(bool, String)>(&k)).transpose()?;
        let table = self.admin.role_table(&t).await?;
        let all = table.all().into_iter().cloned().collect();
        let (roles, more) = reads::page_of(all, reads::role_key, after.as_ref(), limit as usize);
        let next_page_token = more_token(more, roles.last().map(reads::role_key))?;
        Ok(Response::new(pb::ListRolesResponse {
            roles: roles.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_role(
        &self,
        req: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::UpdateRoleResponse>, Status> {
        let w = self.write::<_, roles::UpdateRole>(req).await?;
        Ok(Response::new(pb::UpdateRoleResponse {
            role: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn delete_role(
        &self,
        req: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let w = self.write::<_, roles::DeleteRole>(req).await?;
        Ok(Response::new(pb::DeleteRoleResponse {
            deleted_grants: w.output,
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn create_grant(
        &self,
        req: Request<pb::CreateGrantRequest>,
    ) -> Result<Response<pb::CreateGrantResponse>, Status> {
        let w = self.write::<_, grants::CreateGrant>(req).await?;
        Ok(Response::new(pb::CreateGrantResponse {
            grant: Some(w.output.into()),
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn delete_grant(
        &self,
        req: Request<pb::DeleteGrantRequest>,
    ) -> Result<Response<pb::DeleteGrantResponse>, Status> {
        let w = self.write::<_, grants::DeleteGrant>(req).await?;
        Ok(Response::new(pb::DeleteGrantResponse {
            consistency_token: w.revision.to_string(),
        }))
    }

    async fn list_grants(
        &self,
        req: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        let r = req.into_inner();
        let (t, _share, viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        let subject = match r.subject {
            None => None,
            Some(s) => Some(convert::subject("subject", Some(s))?),
        };
        let scope = convert::opt_resource("scope", r.scope)?;
        let (limit, after) = page(r.page_size, &r.page_token)?;
        let items = self
            .admin
            .store()
            .list_grants(&t, subject.as_ref(), scope.as_ref(), keyset(limit, &after))
            .await?;
        let next_page_token = next_token(items.len(), limit, items.last().map(|x| x.id.clone()));
        let items = self
            .admin
            .visible_grants(&t, viewer.as_ref(), scope.as_ref(), items)
            .await?;
        let ids: Vec<String> = items.iter().map(|g| g.id.clone()).collect();
        let used = self.admin.store().grants_last_used(&t, &ids).await?;
        let grants = items
            .into_iter()
            .map(|g| {
                let last_use_time = used.get(&g.id).map(|at| convert::timestamp(*at));
                pb::Grant {
                    last_use_time,
                    ..g.into()
                }
            })
            .collect();
        Ok(Response::new(pb::ListGrantsResponse {
            grants,
            next_page_token,
        }))
    }

    async fn get_access_overview(
        &self,
        req: Request<pb::GetAccessOverviewRequest>,
    ) -> Result<Response<pb::GetAccessOverviewResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
        let r = req.into_inner();
        let (t, _share, viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        let p = id("principal_id", r.principal_id)?;
        let scope_type = if r.scope_type.is_empty() {
            None
        } else {
            Some(name("scope_type", r.scope_type)?)
        };
        let (limit, after) = page(r.page_size, &r.page_token)?;
        let after = after
            .map(|k| token_key::<(Scope, String)>(&k))
            .transpose()?;
        let o = self
            .admin
            .access_overview(&t, &p, scope_type.as_deref())
            .await?;
        let o = self.admin.visible_overview(&t, viewer.as_ref(), o).await?;
        let (entries, more) = reads::page_of(
            o.entries,
            reads::overview_key,
            after.as_ref(),
            limit as usize,
        );
        let next_page_token = more_token(more, entries.last().map(reads::overview_key))?;
        Ok(Response::new(pb::GetAccessOverviewResponse {
            principal: Some(o.principal.into()),
            account_admin: o.account_admin,
            entries: entries.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let caller = caller(&req)?;
        let token = actor_token(&req);
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
        let (tenant, _share, viewer) = self
            .enter(&caller, token.as_deref(), r.tenant_id, r.actor_id)
            .await?;
        reads::may_read_audit(viewer.as_ref())?;
        let filter = AuditFilter {
            tenant,
            actor: opt("actor", r.actor)?,
            action: opt("action", r.action)?,
            target_prefix: opt("target_prefix", r.target_prefix)?,
            since: convert::time("start_time", r.start_time)?,
            until: convert::time("end_time", r.end_time)?,
            before_revision,
        };
        let limit = page_size("page_size", r.page_size, 100, MAX_ADMIN_PAGE)?;
        let events = self.admin.store().list_audit(&filter, limit).await?;
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
}
