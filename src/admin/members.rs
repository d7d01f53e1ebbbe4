//! Membership: principals (users and service accounts) and their status,
//! teams and their members. Authorized by `tenant.manage_members` and
//! `tenant.manage_teams`.

use super::authz::authorize;
use super::delegation::{grants_through_team, Delegator};
use super::invariants::{
    durable_admins, is_single_owner, keep_an_admin, no_team_cycle, team_nesting_limit,
    tenant_settings,
};
use super::resources::principals_of;
use super::{json, Change, Command};
use crate::error::{Error, Result};
use crate::model::{
    self, Actor, Effect, Grant, Millis, Principal, PrincipalStatus, Scope, SubjectRef, Team,
};
use crate::store::{Invalidation, WriteContext, WriteTx};
use std::sync::Arc;

async fn require_principal<T: WriteTx>(tx: &mut T, id: &str) -> Result<Principal> {
    tx.principal(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("principal `{id}`")))
}

async fn require_team<T: WriteTx>(tx: &mut T, id: &str) -> Result<Team> {
    tx.team(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("team `{id}`")))
}

/// A principal or a team must exist.
pub(crate) async fn require_subject<T: WriteTx>(tx: &mut T, s: &SubjectRef) -> Result<()> {
    match s {
        SubjectRef::Principal(id) => require_principal(tx, id).await.map(|_| ()),
        SubjectRef::Team(id) => require_team(tx, id).await.map(|_| ()),
    }
}

/// The deny grants a member of `team` is subject to through it.
async fn denies_through_team<T: WriteTx>(tx: &mut T, team: &str) -> Result<Vec<Grant>> {
    Ok(grants_through_team(tx, team)
        .await?
        .into_iter()
        .filter(|g| g.effect == Effect::Deny)
        .collect())
}

/// Invite or add a principal.
#[derive(Debug, Clone)]
pub struct CreatePrincipal {
    /// The principal.
    pub principal: Principal,
}

impl Command for CreatePrincipal {
    type Output = Principal;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Principal>> {
        let principal = self.principal;
        authorize(tx, ctx, model::TENANT_TYPE, "manage_members", &[]).await?;
        invitation_expiry(tx, principal.status, principal.invitation_expires_at)?;
        if tx.principal(&principal.id).await?.is_some() {
            return Err(Error::AlreadyExists {
                what: format!("principal `{}`", principal.id),
            });
        }
        tx.insert_principal(&principal).await?;
        Ok(Change {
            action: "principal.create",
            target: format!("principal:{}", principal.id),
            before: String::new(),
            after: json(&principal),
            invalidation: Invalidation {
                principals: vec![principal.id.clone()],
                ..Invalidation::default()
            },
            output: principal,
        })
    }
}

/// An invitation's expiry: only with status invited, and in the future.
fn invitation_expiry<T: WriteTx>(
    tx: &T,
    status: PrincipalStatus,
    expires_at: Option<Millis>,
) -> Result<()> {
    match expires_at {
        Some(_) if status != PrincipalStatus::Invited => Err(Error::invalid(
            "invitation_expire_time",
            "only an invitation (status invited) lapses",
        )),
        Some(t) if t <= tx.now() => Err(Error::invalid(
            "invitation_expire_time",
            "must be in the future",
        )),
        _ => Ok(()),
    }
}

/// Change a principal's status.
#[derive(Debug, Clone)]
pub struct SetPrincipalStatus {
    /// The principal.
    pub principal_id: String,
    /// New status.
    pub status: PrincipalStatus,
    /// With status invited: when the invitation lapses.
    pub invitation_expires_at: Option<Millis>,
}

impl Command for SetPrincipalStatus {
    type Output = Principal;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Principal>> {
        let Self {
            principal_id,
            status,
            invitation_expires_at,
        } = self;
        authorize(tx, ctx, model::TENANT_TYPE, "manage_members", &[]).await?;
        invitation_expiry(tx, status, invitation_expires_at)?;
        let before = require_principal(tx, &principal_id).await?;
        use PrincipalStatus::*;
        if before.status == Removed && !matches!(status, Removed | Invited) {
            return Err(Error::precondition(
                "principal_removed",
                format!(
                    "`{principal_id}` was removed; invite it again (status invited) to start anew"
                ),
            ));
        }
        if status == Invited && !matches!(before.status, Removed | Invited) {
            // An invitation would let the principal activate itself without
            // the checks of a reactivation: only a removed principal (which
            // holds nothing any more) is invited again.
            return Err(Error::precondition(
                "not_removed",
                format!(
                    "`{principal_id}` is {}; only a removed principal is invited again",
                    before.status.as_str()
                ),
            ));
        }
        if status == Active && before.status == Invited {
            return Err(Error::precondition(
                "invitation_not_accepted",
                format!(
                    "`{principal_id}` is invited; it becomes active when it accepts (AcceptInvitation)"
                ),
            ));
        }
        if status == Active && before.status != Active {
            // Activation gives back every grant it holds.
            let held: Vec<Grant> = tx
                .bindings(&principal_id)
                .await?
                .into_iter()
                .map(|b| Arc::unwrap_or_clone(b.grant))
                .filter(|g| g.effect == Effect::Allow)
                .collect();
            let me = SubjectRef::Principal(principal_id.clone());
            Delegator::load(tx, ctx)
                .await?
                .could_make_all(tx, &held, &me)
                .await?;
        }
        let admins = durable_admins(tx).await?;
        tx.set_principal_status(&principal_id, status, invitation_expires_at)
            .await?;
        // Removal revokes the principal's own grants and memberships, so that
        // nothing comes back with a later invitation.
        let revoked = if status == Removed && before.status != Removed {
            revoke_everything(tx, &principal_id).await?
        } else {
            serde_json::Value::Null
        };
        keep_an_admin(tx, admins).await?;
        let after = Principal {
            status,
            invitation_expires_at: invitation_expires_at.filter(|_| status == Invited),
            ..before.clone()
        };
        let mut after_json = serde_json::to_value(&after).unwrap_or_default();
        if !revoked.is_null() {
            after_json["revoked"] = revoked;
        }
        Ok(Change {
            action: "principal.set_status",
            target: format!("principal:{principal_id}"),
            before: json(&before),
            after: after_json.to_string(),
            output: after,
            invalidation: Invalidation {
                principals: vec![principal_id],
                ..Invalidation::default()
            },
        })
    }
}

/// An invited principal accepts its invitation and becomes active. Only the
/// principal itself (or the super user acting for it) may accept; what it
/// then holds was handed to it by others under the delegation rule.
/// Accepting again once active changes nothing; a suspended or removed
/// principal cannot accept its way back (`not_invited`).
#[derive(Debug, Clone)]
pub struct AcceptInvitation {
    /// The invited principal.
    pub principal_id: String,
}

impl Command for AcceptInvitation {
    type Output = Principal;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Principal>> {
        let Self { principal_id } = self;
        if let Actor::Principal(actor) = &ctx.actor {
            if tx.principal(actor).await?.is_none() {
                return Err(Error::PermissionDenied(format!(
                    "actor `{actor}` is not a member of the tenant"
                )));
            }
        }
        let before = require_principal(tx, &principal_id).await?;
        if let Actor::Principal(actor) = &ctx.actor {
            if actor != &principal_id {
                return Err(Error::PermissionDenied(format!(
                    "actor `{actor}` may not accept the invitation of `{principal_id}`: only the invited principal may"
                )));
            }
        }
        if !matches!(
            before.status,
            PrincipalStatus::Invited | PrincipalStatus::Active
        ) {
            return Err(Error::precondition(
                "not_invited",
                format!("`{principal_id}` has no open invitation"),
            ));
        }
        if before.invitation_lapsed(tx.now()) {
            return Err(Error::precondition(
                "invitation_expired",
                format!(
                    "the invitation of `{principal_id}` lapsed at {}; invite it again",
                    model::format_millis(before.invitation_expires_at.unwrap_or(0))
                ),
            ));
        }
        tx.set_principal_status(&principal_id, PrincipalStatus::Active, None)
            .await?;
        let after = Principal {
            status: PrincipalStatus::Active,
            invitation_expires_at: None,
            ..before.clone()
        };
        Ok(Change {
            action: "principal.accept_invitation",
            target: format!("principal:{principal_id}"),
            before: json(&before),
            after: json(&after),
            output: after,
            invalidation: Invalidation {
                principals: vec![principal_id],
                ..Invalidation::default()
            },
        })
    }
}

/// Deletes a principal's direct grants and team memberships; returns what
/// was revoked, for the audit record. A principal that is the owner of a
/// single-owner resource keeps it until ownership is transferred.
async fn revoke_everything<T: WriteTx>(
    tx: &mut T,
    principal_id: &str,
) -> Result<serde_json::Value> {
    let me = SubjectRef::Principal(principal_id.to_owned());
    let grants = tx.grants_of(&me).await?;
    let settings = tenant_settings(tx).await?;
    for g in &grants {
        if let Scope::Resource(r) = &g.scope {
            if g.role_id == "owner"
                && g.effect == Effect::Allow
                && is_single_owner(&settings, &r.rtype)
            {
                return Err(Error::precondition(
                    "single_owner",
                    format!("`{principal_id}` owns `{r}`; transfer its ownership before removing `{principal_id}`"),
                ));
            }
        }
    }
    let ids: Vec<String> = grants.iter().map(|g| g.id.clone()).collect();
    tx.delete_grants(&ids).await?;
    let teams = tx.teams_of(&me).await?;
    for t in &teams {
        tx.remove_member(t, &me).await?;
    }
    Ok(serde_json::json!({ "grants": grants, "teams": teams }))
}

/// Create a team.
#[derive(Debug, Clone)]
pub struct CreateTeam {
    /// The team.
    pub team: Team,
}

impl Command for CreateTeam {
    type Output = Team;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Team>> {
        let team = self.team;
        authorize(tx, ctx, model::TENANT_TYPE, "manage_teams", &[]).await?;
        if tx.team(&team.id).await?.is_some() {
            return Err(Error::AlreadyExists {
                what: format!("team `{}`", team.id),
            });
        }
        tx.insert_team(&team).await?;
        Ok(Change {
            action: "team.create",
            target: format!("team:{}", team.id),
            before: String::new(),
            after: json(&team),
            output: team,
            invalidation: Invalidation::default(),
        })
    }
}

/// Delete a team with its memberships and grants.
#[derive(Debug, Clone)]
pub struct DeleteTeam {
    /// The team.
    pub team_id: String,
}

impl Command for DeleteTeam {
    type Output = ();

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<()>> {
        let team_id = self.team_id;
        authorize(tx, ctx, model::TENANT_TYPE, "manage_teams", &[]).await?;
        let team = require_team(tx, &team_id).await?;
        let principals = principals_of(tx, &SubjectRef::Team(team_id.clone())).await?;
        // Its members lose the denies held through it.
        let denies = denies_through_team(tx, &team_id).await?;
        let team_ref = SubjectRef::Team(team_id.clone());
        Delegator::load(tx, ctx)
            .await?
            .could_make_all(tx, &denies, &team_ref)
            .await?;
        let admins = durable_admins(tx).await?;
        let grants = tx.delete_team(&team_id).await?;
        keep_an_admin(tx, admins).await?;
        Ok(Change {
            output: (),
            action: "team.delete",
            target: format!("team:{team_id}"),
            before: json(&team),
            after: serde_json::json!({ "deleted_grants": grants }).to_string(),
            invalidation: Invalidation {
                principals,
                ..Invalidation::default()
            },
        })
    }
}

/// Add a member (a principal or a team) to a team.
#[derive(Debug, Clone)]
pub struct AddTeamMember {
    /// The team.
    pub team_id: String,
    /// The member.
    pub member: SubjectRef,
}

impl Command for AddTeamMember {
    type Output = ();

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<()>> {
        let Self { team_id, member } = self;
        authorize(tx, ctx, model::TENANT_TYPE, "manage_teams", &[]).await?;
        require_team(tx, &team_id).await?;
        require_subject(tx, &member).await?;
        no_team_cycle(tx, &team_id, &member).await?;
        team_nesting_limit(tx, &team_id, &member).await?;
        if tx.team_members(&team_id).await?.contains(&member) {
            return Err(Error::AlreadyExists {
                what: format!("member `{member}` of team `{team_id}`"),
            });
        }
        // The member gains every grant held through the team: the actor must
        // be able to make each of them (denies too: no locking out).
        let through = grants_through_team(tx, &team_id).await?;
        Delegator::load(tx, ctx)
            .await?
            .could_make_all(tx, &through, &member)
            .await?;
        let admins = durable_admins(tx).await?;
        tx.add_member(&team_id, &member).await?;
        // Joining a team that is denied `account_admin` can remove the last
        // administrator too.
        keep_an_admin(tx, admins).await?;
        let principals = principals_of(tx, &member).await?;
        Ok(Change {
            output: (),
            action: "team.add_member",
            target: format!("team:{team_id}"),
            before: String::new(),
            after: json(&member),
            invalidation: Invalidation {
                principals,
                ..Invalidation::default()
            },
        })
    }
}

/// Remove a member from a team.
#[derive(Debug, Clone)]
pub struct RemoveTeamMember {
    /// The team.
    pub team_id: String,
    /// The member.
    pub member: SubjectRef,
}

impl Command for RemoveTeamMember {
    type Output = ();

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<()>> {
        let Self { team_id, member } = self;
        authorize(tx, ctx, model::TENANT_TYPE, "manage_teams", &[]).await?;
        require_team(tx, &team_id).await?;
        // Leaving the team lifts the denies held through it.
        let denies = denies_through_team(tx, &team_id).await?;
        Delegator::load(tx, ctx)
            .await?
            .could_make_all(tx, &denies, &member)
            .await?;
        let admins = durable_admins(tx).await?;
        if !tx.remove_member(&team_id, &member).await? {
            return Err(Error::not_found(format!(
                "member `{member}` of team `{team_id}`"
            )));
        }
        let principals = principals_of(tx, &member).await?;
        keep_an_admin(tx, admins).await?;
        Ok(Change {
            output: (),
            action: "team.remove_member",
            target: format!("team:{team_id}"),
            before: json(&member),
            after: String::new(),
            invalidation: Invalidation {
                principals,
                ..Invalidation::default()
            },
        })
    }
}
