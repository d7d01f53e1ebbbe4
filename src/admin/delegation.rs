//! The delegation rule: no write may let anyone do anything its actor could
//! not do. In the manner of Kubernetes RBAC's escalation prevention, to hand
//! out (or take back the denial of) a role at a scope, the actor must itself
//! be allowed, at that scope, every permission the role gives there.
//!
//! "Every permission" is finite: a role's patterns are matched against the
//! tenant's action vocabulary and against every resource type the tenant
//! uses or its roles name, plus one type named nowhere, which stands for all
//! the others (a pattern cannot tell two unnamed types apart).
//!
//! Exempt: the super user; and, for grants that do not benefit the actor
//! itself (directly or through a team it is in), an actor allowed
//! `tenant.delegate` on the tenant. That waiver is what the seeds' account
//! administrators need (Oneflow's account administrator assigns workspace
//! roles it does not hold; Neowit's promotes a user to admin); `account_admin`
//! and `owner` have it, `admin` does not. A write that used it says so in its
//! audit record (`"delegated": true`).

use crate::engine::links::{decide_gathered, Gathered};
use crate::engine::{self, Question, Subject};
use crate::error::{Error, Result};
use crate::model::{
    Actor, Binding, Effect, Grant, Principal, ResourceNode, ResourceRef, RoleMatch, RoleTable,
    Scope, SubjectRef, TENANT_TYPE,
};
use crate::store::{WriteContext, WriteTx};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// A resource type no tenant can name (names are `[a-z][a-z0-9_]*`): it
/// stands for every type that nothing names.
const UNNAMED_TYPE: &str = "<unnamed>";

tokio::task_local! {
    /// Set when the `tenant.delegate` waiver let the running write through.
    static WAIVED: std::cell::Cell<bool>;
}

/// Runs `f` (one admin command) and tells whether it used the waiver.
pub async fn tracking<F: std::future::Future>(f: F) -> (F::Output, bool) {
    WAIVED
        .scope(std::cell::Cell::new(false), async move {
            let out = f.await;
            (out, WAIVED.with(std::cell::Cell::get))
        })
        .await
}

/// What an actor may do, read once per write.
pub struct Delegator {
    /// `None` for the super user, who may hand out anything.
    actor: Option<(Principal, Vec<Binding>)>,
    /// Teams the actor is in, transitively.
    actor_teams: HashSet<String>,
    /// Whether the actor may delegate (`tenant.delegate`).
    delegate: bool,
    roles: RoleTable,
    types: Vec<String>,
    now: i64,
}

impl Delegator {
    /// Reads the actor's grants (as they are before the write), the tenant's
    /// role table and its resource types.
    pub async fn load<T: WriteTx>(tx: &mut T, ctx: &WriteContext) -> Result<Self> {
        let roles = super::role_table(tx).await?;
        let actor = match &ctx.actor {
            Actor::SuperUser => None,
            Actor::Principal(id) => {
                let entry = super::authz::subject(tx, id).await?;
                let p = entry.principal.ok_or_else(|| {
                    Error::PermissionDenied(format!("actor `{id}` is not a member of the tenant"))
                })?;
                Some((p, entry.bindings))
            }
        };
        let mut types: BTreeSet<String> = tx.resource_types().await?.into_iter().collect();
        types.insert(TENANT_TYPE.to_owned());
        types.insert(UNNAMED_TYPE.to_owned());
        let now = tx.now();
        let (actor_teams, delegate) = match &actor {
            None => (HashSet::new(), true),
            Some((p, bindings)) => {
                let q = Question {
                    rtype: TENANT_TYPE,
                    action: "delegate",
                    path: Some(&[]),
                    context: crate::model::condition::RequestContext::none(),
                };
                let delegate =
                    engine::decide(Subject::Principal(Some(p)), bindings, &roles, q, now).allowed;
                let me = SubjectRef::Principal(p.id.clone());
                (teams_containing(tx, &me).await?, delegate)
            }
        };
        Ok(Self {
            actor,
            actor_teams,
            delegate,
            roles,
            types: types.into_iter().collect(),
            now,
        })
    }

    /// Whether `beneficiary` is the actor or a team it is in.
    fn benefits_actor(&self, beneficiary: &SubjectRef) -> bool {
        let Some((p, _)) = &self.actor else {
            return false;
        };
        match beneficiary {
            SubjectRef::Principal(id) => id == &p.id,
            SubjectRef::Team(t) => self.actor_teams.contains(t),
        }
    }

    /// Whether what goes to `beneficiary` may skip the rule: the actor may
    /// delegate and does not benefit itself.
    pub fn waives(&self, beneficiary: &SubjectRef) -> bool {
        if self.actor.is_none() {
            return true;
        }
        let waive = self.delegate && !self.benefits_actor(beneficiary);
        if waive {
            let _ = WAIVED.try_with(|w| w.set(true));
        }
        waive
    }

    /// Whether the actor is the super user (exempt from the rule).
    pub fn is_super_user(&self) -> bool {
        self.actor.is_none()
    }

    /// The tenant's role table before the write.
    pub fn roles(&self) -> &RoleTable {
        &self.roles
    }

    /// The `(type, action)` pairs a grant of `role_id` with `effect` on a
    /// scope of kind `scope_kind` gives (or, for a deny, takes away) there,
    /// by the role table `roles` (the current one, or the one a role edit
    /// would leave).
    pub fn gives(
        &self,
        roles: &RoleTable,
        role_id: &str,
        scope_kind: &str,
        effect: Effect,
    ) -> BTreeSet<(String, String)> {
        let mut types: BTreeSet<&str> = self.types.iter().map(String::as_str).collect();
        types.extend(self.roles.named_types());
        types.extend(roles.named_types());
        let mut actions: BTreeSet<&str> = self.roles.actions().collect();
        actions.extend(roles.actions());
        let mut out = BTreeSet::new();
        for t in types {
            // Tenant permissions are only ever asked of the tenant itself.
            if t == TENANT_TYPE && scope_kind != TENANT_TYPE {
                continue;
            }
            for a in &actions {
                let counts = match roles.role_match(role_id, scope_kind, t, a) {
                    RoleMatch::Matched(_) => true,
                    // A deny counts wherever its role names the permission.
                    RoleMatch::NotEffective => effect == Effect::Deny,
                    RoleMatch::NoMatch => false,
                };
                if counts {
                    out.insert((t.to_owned(), (*a).to_owned()));
                }
            }
        }
        out
    }

    /// Reads the ancestries the links of the resource `path` starts with
    /// need for `pairs` (nothing when it has none).
    async fn gather<T: WriteTx>(
        &self,
        tx: &mut T,
        pairs: &BTreeSet<(String, String)>,
        path: &[ResourceNode],
    ) -> Result<Gathered> {
        let mut known = Gathered::new();
        let Some(node) = path.first().filter(|n| n.links.is_some()) else {
            return Ok(known);
        };
        for (t, a) in pairs.iter().filter(|(t, _)| *t == node.resource.rtype) {
            known.extend(super::authz::gather_in(tx, path, (t, a), &self.roles).await?);
        }
        Ok(known)
    }

    /// Refuses unless the actor is allowed each of `pairs` on the resource
    /// whose ancestry is `path` (the tenant when empty), its links followed
    /// through the ancestries `known`: nobody hands out the use of a
    /// resource whose links they could not pass themselves. `what` says
    /// what the actor was doing, for the message.
    pub fn require(
        &self,
        pairs: &BTreeSet<(String, String)>,
        (path, known): (&[ResourceNode], &Gathered),
        what: &dyn Fn() -> String,
    ) -> Result<()> {
        let Some((principal, bindings)) = &self.actor else {
            return Ok(());
        };
        for (t, a) in pairs {
            let q = Question {
                rtype: t,
                action: a,
                path: Some(path),
                context: crate::model::condition::RequestContext::none(),
            };
            let d = decide_gathered(
                Subject::Principal(Some(principal)),
                bindings,
                &self.roles,
                q,
                self.now,
                known,
            );
            if !d.allowed {
                let on = path
                    .first()
                    .map(|n| format!("`{}`", n.resource))
                    .unwrap_or_else(|| "the tenant".to_owned());
                let shown = if t == UNNAMED_TYPE { "*" } else { t };
                return Err(Error::PermissionDenied(format!(
                    "actor `{}` may not {}: it is not allowed `{shown}.{a}` on {on} itself",
                    principal.id,
                    what()
                )));
            }
        }
        Ok(())
    }

    /// Refuses unless the actor could make `grant` itself: it holds, at the
    /// grant's scope, everything the grant gives (or denies).
    pub async fn could_make<T: WriteTx>(&self, tx: &mut T, grant: &Grant) -> Result<()> {
        self.could_make_for(tx, grant, &grant.subject).await
    }

    /// As [`Delegator::could_make`], for a grant whose effect reaches
    /// `beneficiary` (a new team member, a reactivated principal).
    pub async fn could_make_for<T: WriteTx>(
        &self,
        tx: &mut T,
        grant: &Grant,
        beneficiary: &SubjectRef,
    ) -> Result<()> {
        if self.actor.is_none() || self.waives(beneficiary) {
            return Ok(());
        }
        let pairs = self.gives(
            &self.roles,
            &grant.role_id,
            grant.scope.kind(),
            grant.effect,
        );
        self.require_on_scope(tx, &pairs, &grant.scope, &|| {
            let verb = if grant.effect == Effect::Deny {
                "deny"
            } else {
                "grant"
            };
            format!("{verb} `{}` on {}", grant.role_id, grant.scope)
        })
        .await
    }

    /// Refuses unless the actor holds each of `pairs` on `scope` and
    /// everywhere below it: on the scope itself, and wherever below it a
    /// deny of the actor (or of its teams) takes some of them away.
    pub async fn require_on_scope<T: WriteTx>(
        &self,
        tx: &mut T,
        pairs: &BTreeSet<(String, String)>,
        scope: &Scope,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<()> {
        if self.actor.is_none() {
            return Ok(());
        }
        let path = scope_path(tx, scope).await?;
        let known = self.gather(tx, pairs, &path).await?;
        self.require(pairs, (&path, &known), what)?;
        self.require_below(tx, pairs, scope, &path, what).await
    }

    /// Refuses if, somewhere strictly below `scope` (whose ancestry is
    /// `path`), a deny of the actor (or of its teams) takes away one of
    /// `pairs`.
    async fn require_below<T: WriteTx>(
        &self,
        tx: &mut T,
        pairs: &BTreeSet<(String, String)>,
        scope: &Scope,
        path: &[ResourceNode],
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<()> {
        let Some((_, bindings)) = &self.actor else {
            return Ok(());
        };
        let mut below: BTreeSet<&crate::model::ResourceRef> = BTreeSet::new();
        for b in bindings.iter().filter(|b| b.grant.effect == Effect::Deny) {
            if let Scope::Resource(r) = &b.grant.scope {
                if Some(r) != path.first().map(|n| &n.resource) {
                    below.insert(r);
                }
            }
        }
        for r in below {
            let Some(deny_path) = tx.ancestry(r).await? else {
                continue;
            };
            let inside = match scope {
                Scope::Tenant => true,
                Scope::Resource(s) => deny_path.iter().any(|n| &n.resource == s),
            };
            if inside {
                let known = self.gather(tx, pairs, &deny_path).await?;
                self.require(pairs, (&deny_path, &known), what)?;
            }
        }
        Ok(())
    }

    /// Refuses unless the actor could lift the deny `grant`: it could make
    /// it; or (recovery) the deny is on someone else and the actor holds
    /// everything it takes away tenant-wide, with no deny of its own below
    /// the scope taking any of it away — tenant owners and admins can always
    /// undo a deny set below them, even inside a private resource.
    pub async fn could_lift<T: WriteTx>(&self, tx: &mut T, grant: &Grant) -> Result<()> {
        match self.could_make(tx, grant).await {
            Err(Error::PermissionDenied(why)) if !self.benefits_actor(&grant.subject) => {
                // (For a resource scope, `gives` has no tenant permissions.)
                let tenant_wide = self.gives(
                    &self.roles,
                    &grant.role_id,
                    grant.scope.kind(),
                    grant.effect,
                );
                let refused = |_| Error::PermissionDenied(why.clone());
                self.require(&tenant_wide, (&[], &Gathered::new()), &String::new)
                    .map_err(refused)?;
                // Denies of the actor's own on the scope itself count too
                // (an empty path skips none).
                self.require_below(tx, &tenant_wide, &grant.scope, &[], &String::new)
                    .await
                    .map_err(refused)
            }
            other => other,
        }
    }

    /// Refuses unless the actor holds, on `scope` and everywhere below it,
    /// everything the allow grants in `incoming` give where they are granted:
    /// what comes into a subtree when its privacy is lifted or when it moves
    /// under new ancestors. With `recovery`, holding all of it tenant-wide
    /// is enough (tenant owners and admins undo privacy set below them). The
    /// `tenant.delegate` waiver does not apply: nothing is handed to anyone
    /// in particular.
    pub async fn could_bring_in<T: WriteTx>(
        &self,
        tx: &mut T,
        incoming: &[Grant],
        root: &ResourceRef,
        recovery: bool,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<()> {
        if self.actor.is_none() {
            return Ok(());
        }
        // Only the types present in the subtree are ever asked about there.
        let mut present: BTreeSet<String> = BTreeSet::from([root.rtype.clone()]);
        present.extend(
            tx.descendants(root)
                .await?
                .into_iter()
                .map(|d| d.resource.rtype),
        );
        let mut pairs = BTreeSet::new();
        for g in incoming.iter().filter(|g| g.effect == Effect::Allow) {
            pairs.extend(self.gives(&self.roles, &g.role_id, g.scope.kind(), Effect::Allow));
        }
        pairs.retain(|(t, _)| present.contains(t));
        let scope = &Scope::Resource(root.clone());
        match self.require_on_scope(tx, &pairs, scope, what).await {
            Err(Error::PermissionDenied(why)) if recovery => {
                let refused = |_| Error::PermissionDenied(why.clone());
                self.require(&pairs, (&[], &Gathered::new()), &String::new)
                    .map_err(refused)?;
                self.require_below(tx, &pairs, scope, &[], &String::new)
                    .await
                    .map_err(refused)
            }
            other => other,
        }
    }

    /// Refuses unless the actor holds, tenant-wide, each newly declared
    /// action of `declared` on every resource type (by the role table
    /// `after` that knows them): a declared action is covered by every
    /// wildcard permission (`*.*` of `owner` and `admin`), so declaring it
    /// gives it to their holders.
    pub fn could_declare(&self, after: &RoleTable, declared: &[String]) -> Result<()> {
        let new: Vec<String> = declared
            .iter()
            .filter(|a| !self.roles.knows_action(a))
            .cloned()
            .collect();
        self.holds_everywhere(after, &new, "declare")
    }

    /// Refuses unless the actor holds, tenant-wide, each of `actions` on
    /// every resource type (by the role table `after`); `verb` names the
    /// write in the refusal (`declare`).
    pub fn holds_everywhere(
        &self,
        after: &RoleTable,
        actions: &[String],
        verb: &str,
    ) -> Result<()> {
        let Some((principal, bindings)) = &self.actor else {
            return Ok(());
        };
        for a in actions {
            for t in &self.types {
                let q = Question {
                    rtype: t,
                    action: a,
                    path: Some(&[]),
                    context: crate::model::condition::RequestContext::none(),
                };
                let d = engine::decide(
                    Subject::Principal(Some(principal)),
                    bindings,
                    after,
                    q,
                    self.now,
                );
                if !d.allowed {
                    // Those who may delegate configure the vocabulary for
                    // others (the actor does not hold the action, so it
                    // gains nothing itself); audited as such.
                    if self.delegate {
                        let _ = WAIVED.try_with(|w| w.set(true));
                        return Ok(());
                    }
                    let shown = if t == UNNAMED_TYPE { "*" } else { t };
                    return Err(Error::PermissionDenied(format!(
                        "actor `{}` may not {verb} the action `{a}`: it is not allowed `{shown}.{a}` on the tenant itself",
                        principal.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// Refuses unless the actor could make every grant in `grants` for
    /// `beneficiary`.
    pub async fn could_make_all<T: WriteTx>(
        &self,
        tx: &mut T,
        grants: &[Grant],
        beneficiary: &SubjectRef,
    ) -> Result<()> {
        for g in grants {
            self.could_make_for(tx, g, beneficiary).await?;
        }
        Ok(())
    }
}

/// The ancestry of a grant's scope (empty for the tenant).
pub async fn scope_path<T: WriteTx>(tx: &mut T, scope: &Scope) -> Result<Vec<ResourceNode>> {
    match scope {
        Scope::Tenant => Ok(Vec::new()),
        Scope::Resource(r) => tx
            .ancestry(r)
            .await?
            .ok_or_else(|| Error::not_found(format!("resource `{r}`"))),
    }
}

/// Teams `member` is in, transitively.
pub async fn teams_containing<T: WriteTx>(
    tx: &mut T,
    member: &SubjectRef,
) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    let mut stack = tx.teams_of(member).await?;
    while let Some(t) = stack.pop() {
        if out.insert(t.clone()) {
            stack.extend(tx.teams_of(&SubjectRef::Team(t)).await?);
        }
    }
    Ok(out)
}

/// The grants a member of `team` holds through it: the team's own and those
/// of every team that (transitively) contains it.
pub async fn grants_through_team<T: WriteTx>(tx: &mut T, team: &str) -> Result<Vec<Grant>> {
    let mut teams: Vec<String> = teams_containing(tx, &SubjectRef::Team(team.to_owned()))
        .await?
        .into_iter()
        .collect();
    // The team itself first, then the others in id order: refusals always
    // name the same grant.
    teams.sort();
    teams.insert(0, team.to_owned());
    let mut out = Vec::new();
    for t in teams {
        out.extend(tx.grants_of(&SubjectRef::Team(t)).await?);
    }
    Ok(out)
}

/// The grants a subject holds: a principal's bindings (direct and through
/// teams), or what a member of a team holds through it.
pub async fn grants_of_subject<T: WriteTx>(tx: &mut T, s: &SubjectRef) -> Result<Vec<Grant>> {
    match s {
        SubjectRef::Principal(p) => Ok(tx
            .bindings(p)
            .await?
            .into_iter()
            .map(|b| Arc::unwrap_or_clone(b.grant))
            .collect()),
        SubjectRef::Team(t) => grants_through_team(tx, t).await,
    }
}
