//! The benchmark datasets: a deterministic tenant of workspaces, folders
//! (some nested two deep), workflows (some private), users, teams, and grants
//! at tenant, workspace, folder and workflow level, some of them deny.

use crate::model::{
    Effect, Grant, Principal, PrincipalKind, PrincipalStatus, ResourceRef, Scope, SubjectRef,
};
use crate::store::sql::{BulkResource, BulkTenant};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The shape of a dataset.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Workspaces.
    pub workspaces: usize,
    /// Folders per workspace (the last two nested under the one before).
    pub folders: usize,
    /// Workflows per folder.
    pub workflows: usize,
    /// Users.
    pub users: usize,
    /// Teams (of `team_size` users each).
    pub teams: usize,
    /// Users per team.
    pub team_size: usize,
}

impl Shape {
    /// 1 tenant, 20 workspaces × 10 folders × 50 workflows (10,000
    /// workflows), 2,000 users, 50 teams of 40.
    pub const STANDARD: Shape = Shape {
        workspaces: 20,
        folders: 10,
        workflows: 50,
        users: 2_000,
        teams: 50,
        team_size: 40,
    };
    /// About 1,000,000 resources and 100,000 principals: 200 workspaces ×
    /// 50 folders × 100 workflows, 2,500 teams of 40.
    pub const LARGE: Shape = Shape {
        workspaces: 200,
        folders: 50,
        workflows: 100,
        users: 100_000,
        teams: 2_500,
        team_size: 40,
    };
}

/// A generated tenant and the principals the benchmark asks about.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Rows to load.
    pub bulk: BulkTenant,
    /// Every workflow id.
    pub workflows: Vec<String>,
    /// Users the check phases use (cache warmed on them).
    pub hot_users: Vec<String>,
    /// Users never asked about before the cold phase.
    pub cold_users: Vec<String>,
    /// A user who sees about 500 workflows (viewer of 500 / workflows-per-folder folders).
    pub user_500: String,
    /// A user who sees about 5,000 workflows.
    pub user_5000: String,
    /// The account admin (tenant-wide: sees every workflow).
    pub admin: String,
}

fn user(i: usize) -> String {
    format!("u{i:06}")
}

fn grant(subject: SubjectRef, role: &str, scope: Scope, effect: Effect) -> Grant {
    Grant {
        id: uuid::Uuid::now_v7().to_string(),
        subject,
        role_id: role.to_owned(),
        scope,
        effect,
        expires_at: None,
        condition: None,
        created_at: 0,
    }
}

/// The resources of a generated tenant, by kind.
struct Tree {
    workflows: Vec<String>,
    workspace_refs: Vec<(ResourceRef, i64)>,
    folder_refs: Vec<(ResourceRef, i64, bool)>,
    private_owned: Vec<(String, ResourceRef, i64)>,
}

/// Workspaces, folders (two levels deep at the end of each workspace) and
/// workflows, with keys counted up from `first_pk`.
fn tree(
    shape: &Shape,
    users: &[String],
    rng: &mut StdRng,
    b: &mut BulkTenant,
    first_pk: i64,
) -> Tree {
    let mut pk = first_pk;
    let pk = &mut pk;
    let mut workflows = Vec::new();
    let mut workspace_refs = Vec::new();
    let mut folder_refs = Vec::new();
    let mut private_owned: Vec<(String, ResourceRef, i64)> = Vec::new();
    for w in 0..shape.workspaces {
        let ws = ResourceRef {
            rtype: "workspace".into(),
            id: format!("ws{w:04}"),
        };
        let ws_pk = {
            *pk += 1;
            *pk
        };
        b.resources.push(BulkResource {
            pk: ws_pk,
            resource: ws.clone(),
            parent_pk: None,
            ancestors: "/".into(),
            private: false,
        });
        workspace_refs.push((ws.clone(), ws_pk));
        let mut folder_pks: Vec<(i64, String)> = Vec::new();
        for f in 0..shape.folders {
            let folder = ResourceRef {
                rtype: "folder".into(),
                id: format!("ws{w:04}-f{f:03}"),
            };
            let f_pk = {
                *pk += 1;
                *pk
            };
            // The last two folders nest under the one before them: two deep.
            let (parent_pk, ancestors) = if f + 2 >= shape.folders && f >= 2 {
                let (anchor_pk, anchor_path) = folder_pks[shape.folders.saturating_sub(3)].clone();
                (anchor_pk, format!("{anchor_path}{anchor_pk}/"))
            } else {
                (ws_pk, format!("/{ws_pk}/"))
            };
            b.resources.push(BulkResource {
                pk: f_pk,
                resource: folder.clone(),
                parent_pk: Some(parent_pk),
                ancestors: ancestors.clone(),
                private: false,
            });
            folder_pks.push((f_pk, ancestors.clone()));
            folder_refs.push((folder.clone(), f_pk, parent_pk != ws_pk));
            let wf_ancestors = format!("{ancestors}{f_pk}/");
            for n in 0..shape.workflows {
                let wf = ResourceRef {
                    rtype: "workflow".into(),
                    id: format!("ws{w:04}-f{f:03}-wf{n:03}"),
                };
                let wf_pk = {
                    *pk += 1;
                    *pk
                };
                // One workflow in 25 is private, owned by a random user.
                let private = n % 25 == 7;
                b.resources.push(BulkResource {
                    pk: wf_pk,
                    resource: wf.clone(),
                    parent_pk: Some(f_pk),
                    ancestors: wf_ancestors.clone(),
                    private,
                });
                if private {
                    let owner = users[rng.random_range(0..users.len())].clone();
                    private_owned.push((owner, wf.clone(), wf_pk));
                }
                workflows.push(wf.id);
            }
        }
    }

    Tree {
        workflows,
        workspace_refs,
        folder_refs,
        private_owned,
    }
}

/// Owners of the private workflows, and a direct editor on one workflow in
/// twenty.
fn workflow_grants(
    b: &mut BulkTenant,
    private_owned: &[(String, ResourceRef, i64)],
    users: &[String],
    rng: &mut StdRng,
) {
    // Workflows: owners of the private ones, and some direct editors.
    for (owner, wf, wf_pk) in private_owned {
        b.grants.push((
            grant(
                SubjectRef::Principal(owner.clone()),
                "owner",
                Scope::Resource(wf.clone()),
                Effect::Allow,
            ),
            Some(*wf_pk),
        ));
    }
    let wf_resources: Vec<(ResourceRef, i64)> = b
        .resources
        .iter()
        .filter(|r| r.resource.rtype == "workflow")
        .map(|r| (r.resource.clone(), r.pk))
        .collect();
    for _ in 0..wf_resources.len() / 20 {
        let (wf, wf_pk) = wf_resources[rng.random_range(0..wf_resources.len())].clone();
        let u = users[rng.random_range(0..users.len())].clone();
        b.grants.push((
            grant(
                SubjectRef::Principal(u),
                "editor",
                Scope::Resource(wf),
                Effect::Allow,
            ),
            Some(wf_pk),
        ));
    }
}

/// Builds the tenant `tenant` of the given shape; the same seed gives the
/// same dataset.
pub fn generate(tenant: &str, shape: Shape, first_pk: i64, seed: u64) -> Dataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut b = BulkTenant {
        tenant_id: tenant.to_owned(),
        ..BulkTenant::default()
    };
    let users: Vec<String> = (0..shape.users).map(user).collect();
    let Tree {
        workflows,
        workspace_refs,
        folder_refs,
        private_owned,
    } = tree(&shape, &users, &mut rng, &mut b, first_pk);
    b.principals = users
        .iter()
        .map(|id| Principal {
            id: id.clone(),
            kind: PrincipalKind::User,
            status: PrincipalStatus::Active,
            display_name: id.clone(),
            invitation_expires_at: None,
            created_at: 0,
        })
        .collect();
    for t in 0..shape.teams {
        let members = (0..shape.team_size)
            .map(|k| SubjectRef::Principal(users[(t * shape.team_size + k) % users.len()].clone()))
            .collect();
        b.teams.push((format!("team{t:04}"), members));
    }
    let team = |t: usize| SubjectRef::Team(format!("team{t:04}"));

    // Tenant: the account admin, and team 0 views everything.
    b.grants.push((
        grant(
            SubjectRef::Principal(users[0].clone()),
            "account_admin",
            Scope::Tenant,
            Effect::Allow,
        ),
        None,
    ));
    b.grants
        .push((grant(team(0), "viewer", Scope::Tenant, Effect::Allow), None));
    // Workspaces: two editor teams each; the last team views half the workspaces.
    let half = shape.workspaces / 2;
    for (i, (ws, ws_pk)) in workspace_refs.iter().enumerate() {
        for k in 0..2 {
            let t = 1 + (2 * i + k) % (shape.teams - 2);
            b.grants.push((
                grant(
                    team(t),
                    "editor",
                    Scope::Resource(ws.clone()),
                    Effect::Allow,
                ),
                Some(*ws_pk),
            ));
        }
        if i < half {
            b.grants.push((
                grant(
                    team(shape.teams - 1),
                    "viewer",
                    Scope::Resource(ws.clone()),
                    Effect::Allow,
                ),
                Some(*ws_pk),
            ));
        }
    }
    // Folders: a direct viewer per folder, and a deny for one editor-team
    // member on one folder in ten.
    for (i, (folder, f_pk, _)) in folder_refs.iter().enumerate() {
        let u = users[rng.random_range(0..users.len())].clone();
        b.grants.push((
            grant(
                SubjectRef::Principal(u),
                "viewer",
                Scope::Resource(folder.clone()),
                Effect::Allow,
            ),
            Some(*f_pk),
        ));
        if i % 10 == 3 {
            let u = users[rng.random_range(0..users.len())].clone();
            b.grants.push((
                grant(
                    SubjectRef::Principal(u),
                    "viewer",
                    Scope::Resource(folder.clone()),
                    Effect::Deny,
                ),
                Some(*f_pk),
            ));
        }
    }
    workflow_grants(&mut b, &private_owned, &users, &mut rng);

    // Two list users see about 500 and about 5,000 workflows through folder
    // grants (top-level folders only, so that no workflow counts twice).
    let top_folders: Vec<&(ResourceRef, i64, bool)> = folder_refs.iter().filter(|f| !f.2).collect();
    let mut list_user = |id: &str, target: usize| -> String {
        let folders = target.div_ceil(shape.workflows).min(top_folders.len());
        for (folder, f_pk, _) in top_folders.iter().take(folders) {
            b.grants.push((
                grant(
                    SubjectRef::Principal(id.to_owned()),
                    "viewer",
                    Scope::Resource(folder.clone()),
                    Effect::Allow,
                ),
                Some(*f_pk),
            ));
        }
        b.principals.push(Principal {
            id: id.to_owned(),
            kind: PrincipalKind::User,
            status: PrincipalStatus::Active,
            display_name: id.to_owned(),
            invitation_expires_at: None,
            created_at: 0,
        });
        id.to_owned()
    };
    let user_500 = list_user("list500", 500);
    let user_5000 = list_user("list5000", 5_000);
    let hot_users: Vec<String> = users.iter().step_by(10).take(200).cloned().collect();
    let cold_users: Vec<String> = users
        .iter()
        .skip(5)
        .step_by(10)
        .take(1_000)
        .cloned()
        .collect();
    Dataset {
        bulk: b,
        workflows,
        hot_users,
        cold_users,
        user_500,
        user_5000,
        admin: users[0].clone(),
    }
}
