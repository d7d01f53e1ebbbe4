//! Membership: principals (users and service accounts) and their status,
//! teams and their members. Authorized by `tenant.manage_members` and
//! `tenant.manage_teams`.

use super::authz::authorize;
use super::invariants::{durable_admins, keep_an_admin, no_team_cycle};
use super::resources::principals_of;
use super::{json, Change, Command};
use crate::error::{Error, Result};
use crate::model::{self, Principal, PrincipalStatus, SubjectRef, Team};
use crate::store::{Invalidation, WriteContext, WriteTx};

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

/// Change a principal's status.
#[derive(Debug, Clone)]
pub struct SetPrincipalStatus {
    /// The principal.
    pub principal_id: String,
    /// New status.
    pub status: PrincipalStatus,
}

impl Command for SetPrincipalStatus {
    type Output = Principal;

    async fn run<T: WriteTx>(self, tx: &mut T, ctx: &WriteContext) -> Result<Change<Principal>> {
        let Self {
            principal_id,
            status,
        } = self;
        authorize(tx, ctx, model::TENANT_TYPE, "manage_members", &[]).await?;
        let before = require_principal(tx, &principal_id).await?;
        let admins = durable_admins(tx).await?;
        tx.set_principal_status(&principal_id, status).await?;
        keep_an_admin(tx, admins).await?;
        let after = Principal {
            status,
            ..before.clone()
        };
        Ok(Change {
            action: "principal.set_status",
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
        if tx.team_members(&team_id).await?.contains(&member) {
            return Err(Error::AlreadyExists {
                what: format!("member `{member}` of team `{team_id}`"),
            });
        }
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
