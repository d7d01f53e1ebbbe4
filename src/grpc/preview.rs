//! `AdminService/PreviewChange`: any admin write, run in a transaction that
//! is rolled back, answered with whether it would be accepted and the access
//! it would add and remove (see [`crate::admin::Admin::preview_change`]).

use super::admin::{write_ctx, AdminApi, WriteRequest};
use super::pb;
use crate::admin::{grants, links, members, resources, roles, tenants, Command, Preview};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::model::{decode_page_token, encode_page_token, page_size};
use crate::store::{Catalog, Store, WriteStore};
use tonic::Status;

/// Most access differences a preview computes (its last page ends there).
const MAX_PREVIEW_DIFFERENCES: usize = 100_000;

impl<S: WriteStore + Catalog + Store + Clone> AdminApi<S> {
    /// Previews one write request: the same context, actor proof and
    /// conversion as the write. The caller's reach (tenant, actor) is
    /// checked as for any call; what the write itself would refuse
    /// (its fields, its authorization as the actor, the invariants) is the
    /// answer; storage errors are errors.
    async fn preview_one<M, C>(
        &self,
        (caller, token): (&Caller, Option<&str>),
        (field, mut r): (&str, M),
        limit: usize,
    ) -> Result<Preview>
    where
        M: WriteRequest,
        C: Command + TryFrom<M, Error = Error>,
    {
        let refused = |e: Error| match e {
            Error::Unavailable(_) | Error::Internal(_) => Err(e),
            e => Ok(Preview {
                refused: Some(e),
                diff: Default::default(),
            }),
        };
        // Who may call for which tenant and actor is the call's own
        // question: refused as the call, like the write would be.
        let within = |e: Error| e.within(field);
        let ctx = write_ctx(caller, &mut r).map_err(within)?;
        self.prove_actor(caller, token, &ctx.tenant_id, &ctx.actor.to_string())
            .map_err(within)?;
        let cmd = match C::try_from(r) {
            Ok(cmd) => cmd,
            Err(e) => return refused(e),
        };
        let _share = self.shares.enter(&ctx.tenant_id).await?;
        self.admin.preview_change(&ctx, cmd, limit).await
    }

    /// The handler of `PreviewChange`.
    pub(super) async fn preview(
        &self,
        caller: &Caller,
        token: Option<&str>,
        r: pb::PreviewChangeRequest,
    ) -> Result<pb::PreviewChangeResponse> {
        use pb::preview_change_request::Change as C;
        let size = page_size("page_size", r.page_size, 1_000, 10_000)? as usize;
        let offset: usize = match decode_page_token("page_token", &r.page_token)? {
            None => 0,
            Some(n) => n
                .parse()
                .ok()
                .filter(|n| *n < MAX_PREVIEW_DIFFERENCES)
                .ok_or_else(|| Error::invalid("page_token", "not a page token of this call"))?,
        };
        let limit = (offset + size + 1).min(MAX_PREVIEW_DIFFERENCES);
        let change = r
            .change
            .ok_or_else(|| Error::invalid("change", "name the write to preview"))?;
        // Previews compare whole tenants: they share the replica's places
        // for whole-tenant calls.
        let _slot = self.bulk_slot()?;
        // Each change as its write: the same conversion and rules, named
        // as the oneof names it.
        macro_rules! preview {
            ($($variant:ident => $cmd:ty, $field:literal;)*) => {
                match change {
                    $(C::$variant(m) => {
                        self.preview_one::<_, $cmd>((caller, token), ($field, m), limit)
                            .await
                    })*
                }
            };
        }
        let p = preview! {
            UpdateTenant => tenants::UpdateTenant, "update_tenant";
            CreateResource => resources::CreateResource, "create_resource";
            MoveResource => resources::MoveResource, "move_resource";
            SetResourcePrivate => resources::SetResourcePrivate, "set_resource_private";
            SetResourceRestricted => resources::SetResourceRestricted, "set_resource_restricted";
            SetResourceAttributes => resources::SetResourceAttributes, "set_resource_attributes";
            SetResourceLinks => links::SetResourceLinks, "set_resource_links";
            DeleteResource => resources::DeleteResource, "delete_resource";
            TransferOwnership => resources::TransferOwnership, "transfer_ownership";
            CreatePrincipal => members::CreatePrincipal, "create_principal";
            SetPrincipalStatus => members::SetPrincipalStatus, "set_principal_status";
            AcceptInvitation => members::AcceptInvitation, "accept_invitation";
            CreateTeam => members::CreateTeam, "create_team";
            DeleteTeam => members::DeleteTeam, "delete_team";
            AddTeamMember => members::AddTeamMember, "add_team_member";
            RemoveTeamMember => members::RemoveTeamMember, "remove_team_member";
            CreateRole => roles::CreateRole, "create_role";
            UpdateRole => roles::UpdateRole, "update_role";
            DeleteRole => roles::DeleteRole, "delete_role";
            CreateGrant => grants::CreateGrant, "create_grant";
            DeleteGrant => grants::DeleteGrant, "delete_grant";
        }?;
        Ok(response(p, offset, size))
    }
}

/// One page of a preview's answer.
fn response(p: Preview, offset: usize, size: usize) -> pb::PreviewChangeResponse {
    let mut out = pb::PreviewChangeResponse {
        accepted: p.refused.is_none(),
        gained: p.diff.gained,
        lost: p.diff.lost,
        complete: p.diff.complete,
        ..Default::default()
    };
    if let Some(e) = p.refused {
        let status = Status::from(e);
        out.error_code = status.code() as i32;
        out.error_message = status.message().to_owned();
        return out;
    }
    let listed = p.diff.changes.len();
    out.access_changes = p
        .diff
        .changes
        .into_iter()
        .skip(offset)
        .take(size)
        .map(|c| pb::AccessChange {
            principal_id: c.principal,
            action: c.action,
            resource: c.resource,
            gained: c.gained,
        })
        .collect();
    if listed > offset + size {
        out.next_page_token = encode_page_token(&(offset + size).to_string());
    }
    out
}
