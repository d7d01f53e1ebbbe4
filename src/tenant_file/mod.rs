//! tenant_file: a whole tenant as a file, to keep in git and review in pull
//! requests: settings, custom roles, principals, teams, the resource tree
//! and grants, with assertions about who may do what
//! ([`assertions`]). TOML (`.toml`) or JSON (`.json`); its JSON Schema is
//! `portcullis tenant schema`. The CLI turns a file into the records of
//! `TenantService` (import, apply) and an export back into a file; the
//! server checks every field and rule as for any other write.
//!
//! ```toml
//! version = 1
//!
//! [tenant]
//! id = "acme"
//! display_name = "Acme"
//! single_owner_types = ["project"]
//!
//! [[principals]]
//! id = "alice"
//! display_name = "Alice"
//!
//! [[resources]]
//! resource = "workspace:ws1"
//!
//! [[grants]]
//! principal = "alice"
//! role = "account_admin"
//!
//! [[assertions]]
//! check = "alice may manage tenant:acme"
//! ```

pub mod assertions;

use crate::grpc::pb;
use crate::model;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The format version this build reads and writes.
pub const VERSION: u32 = 1;

fn is_false(b: &bool) -> bool {
    !*b
}

/// A tenant file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// Format version: 1.
    pub version: u32,
    /// For a file of assertions only: the tenant file they are about,
    /// relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_file: Option<String>,
    /// The tenant's settings (absent in a file of assertions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Settings>,
    /// Custom roles (the predefined `account_admin`, `owner`, `admin`,
    /// `editor` and `viewer` always exist).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleEntry>,
    /// Users and service accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<PrincipalEntry>,
    /// Teams and their members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<TeamEntry>,
    /// The resource tree, in any order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceEntry>,
    /// Role grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantEntry>,
    /// What must hold: checked by `portcullis test`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assertions: Vec<assertions::Assertion>,
}

/// The tenant's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Tenant id (the CLI's `--tenant` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Human-readable name.
    pub display_name: String,
    /// Resource types with exactly one owner (OpenFn projects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub single_owner_types: Vec<String>,
    /// Resource types whose creator becomes owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub creator_owner_types: Vec<String>,
    /// Days the audit trail is kept (default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_retention_days: Option<u32>,
    /// Actions the tenant declares beyond the built-in ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Actions that imply others: `{ edit = ["view"], execute = ["view"] }`
    /// (whoever is denied `view` is denied `edit` and `execute`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub implied_actions: BTreeMap<String, Vec<String>>,
}

/// A custom role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleEntry {
    /// Role id.
    pub id: String,
    /// Human-readable name (default: the id).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// Permissions, `type.action` with `*` on either side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// Permissions taken out of what the role would give.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_permissions: Vec<String>,
    /// Roles whose permissions this one includes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<String>,
    /// Scope kinds where the role is effective (`tenant`, a resource type,
    /// or `*`); absent: `["*"]`, everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effective_at: Vec<String>,
    /// A CEL condition every grant of the role (and of roles inheriting it)
    /// must meet, e.g. `request.mfa == true`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
}

/// A principal's kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A person.
    #[default]
    User,
    /// A non-human identity.
    ServiceAccount,
}

/// A principal's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Invited, not accepted yet: no access.
    Invited,
    /// A member.
    #[default]
    Active,
    /// Loses access.
    Suspended,
    /// No longer a member.
    Removed,
}

/// A user or service account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrincipalEntry {
    /// Principal id.
    pub id: String,
    /// `user` (default) or `service_account`.
    #[serde(default, skip_serializing_if = "is_user")]
    pub kind: Kind,
    /// `active` (default), `invited`, `suspended` or `removed`.
    #[serde(default, skip_serializing_if = "is_active")]
    pub status: Status,
    /// Human-readable name (default: the id).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// With status `invited`: when the invitation lapses, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_expires_at: Option<String>,
    /// Creation time, RFC 3339 (exports carry it; default: the import's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

fn is_user(k: &Kind) -> bool {
    *k == Kind::User
}

fn is_active(s: &Status) -> bool {
    *s == Status::Active
}

/// A team.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamEntry {
    /// Team id.
    pub id: String,
    /// Human-readable name (default: the id).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// Principals in the team.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Teams in the team (their members are members of this one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
}

/// A resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceEntry {
    /// `type:id`.
    pub resource: String,
    /// The parent, `type:id`; absent: top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Private: nothing granted above reaches in.
    #[serde(default, skip_serializing_if = "is_false")]
    pub private: bool,
    /// Restricted: only tenant-wide owner and admin grants reach in from
    /// above.
    #[serde(default, skip_serializing_if = "is_false")]
    pub restricted: bool,
    /// Attributes conditions read as `resource.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// The resources it acts on: doing one of a link's `on` actions here
    /// also needs its `action` there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkEntry>,
    /// Creation time, RFC 3339 (exports carry it; default: the import's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A resource another acts on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkEntry {
    /// The linked resource, `type:id`.
    pub resource: String,
    /// The action needed on it.
    pub action: String,
    /// The actions on the linking resource that need it.
    pub on: Vec<String>,
}

/// A role granted to a principal or a team on the tenant or a resource.
/// Grants have no id in a file: the server mints one when it creates the
/// grant, and apply matches grants by what they grant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantEntry {
    /// The principal holding it (or `team`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The team holding it (or `principal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The role.
    pub role: String,
    /// The resource, `type:id`; absent: the whole tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// An explicit exclusion, beating every allow on the scope and below.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deny: bool,
    /// Expiry, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// A CEL condition that must hold for the grant to count, e.g.
    /// `resource.user == subject.id`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    /// Creation time, RFC 3339 (exports carry it; default: the import's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A file's problem, naming the file and the place.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

fn err(s: impl Into<String>) -> FileError {
    FileError(s.into())
}

/// Whether `path` is JSON (by extension); otherwise TOML.
fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

impl TenantFile {
    /// Reads a file (TOML, or JSON for `.json`).
    pub fn read(path: &Path) -> Result<Self, FileError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        Self::parse(&text, is_json(path)).map_err(|e| err(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses TOML or JSON text.
    pub fn parse(text: &str, json: bool) -> Result<Self, FileError> {
        let f: TenantFile = if json {
            serde_json::from_str(text).map_err(|e| err(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| err(e.to_string()))?
        };
        if f.version != VERSION {
            return Err(err(format!(
                "`version` is {}; this build reads version {VERSION}",
                f.version
            )));
        }
        Ok(f)
    }

    /// The file as TOML or JSON text.
    pub fn render(&self, json: bool) -> Result<String, FileError> {
        if json {
            serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))
        } else {
            toml::to_string_pretty(self).map_err(|e| err(e.to_string()))
        }
    }

    /// Writes the file (JSON for `.json`, otherwise TOML).
    pub fn write(&self, path: &Path) -> Result<(), FileError> {
        std::fs::write(path, self.render(is_json(path))?)
            .map_err(|e| err(format!("{}: {e}", path.display())))
    }

    /// The tenant id: `over` when given, else the file's.
    pub fn tenant_id(&self, over: Option<&str>) -> Result<String, FileError> {
        over.map(str::to_owned)
            .or_else(|| self.tenant.as_ref().and_then(|t| t.id.clone()))
            .ok_or_else(|| err("no tenant id: set `tenant.id` in the file or pass --tenant"))
    }

    /// The settings as the API takes them.
    pub fn settings(&self) -> Result<pb::Tenant, FileError> {
        let t = self
            .tenant
            .as_ref()
            .ok_or_else(|| err("`[tenant]` is missing"))?;
        Ok(pb::Tenant {
            id: t.id.clone().unwrap_or_default(),
            display_name: t.display_name.clone(),
            single_owner_types: t.single_owner_types.clone(),
            creator_owner_types: t.creator_owner_types.clone(),
            audit_retention_days: t.audit_retention_days.unwrap_or(0),
            create_time: None,
            actions: t.actions.clone(),
            implied_actions: t
                .implied_actions
                .iter()
                .flat_map(|(a, implied)| {
                    implied.iter().map(|i| pb::ImpliedAction {
                        action: a.clone(),
                        implies: i.clone(),
                    })
                })
                .collect(),
        })
    }

    /// The file's resources as records, each after its parent.
    fn resource_records(&self) -> Result<Vec<pb::Resource>, FileError> {
        let mut rows = Vec::with_capacity(self.resources.len());
        let mut records = std::collections::HashMap::new();
        for (i, r) in self.resources.iter().enumerate() {
            let at = |f: &str| format!("resources[{i}].{f}");
            let me = reference(&at("resource"), &r.resource)?;
            let parent = r
                .parent
                .as_deref()
                .map(|p| reference(&at("parent"), p))
                .transpose()?;
            let mut links = Vec::with_capacity(r.links.len());
            for (j, l) in r.links.iter().enumerate() {
                let to = reference(&at(&format!("links[{j}].resource")), &l.resource)?;
                links.push(pb::ResourceLink {
                    resource: Some(to.into()),
                    action: l.action.clone(),
                    on: l.on.clone(),
                });
            }
            let record = pb::Resource {
                create_time: time(&at("created_at"), &r.created_at)?,
                attributes: r
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                restricted: r.restricted,
                links,
                r#ref: Some(me.clone().into()),
                parent: parent.clone().map(Into::into),
                private: r.private,
            };
            // A resource named twice stays twice: the import refuses it.
            records
                .entry(me.clone())
                .or_insert_with(std::collections::VecDeque::new)
                .push_back(record);
            rows.push((me, parent, r.private));
        }
        Ok(crate::store::parents_first(rows)
            .into_iter()
            .filter_map(|(r, _, _)| records.get_mut(&r).and_then(|q| q.pop_front()))
            .collect())
    }

    /// Every record, in the order import needs (roles after those they
    /// inherit, resources after their parents).
    pub fn records(&self) -> Result<pb::TenantRecords, FileError> {
        let roles = self.roles.iter().map(|r| model::Role {
            id: r.id.clone(),
            display_name: String::new(),
            permissions: Vec::new(),
            excluded_permissions: Vec::new(),
            inherits: r.inherits.clone(),
            effective_at: Vec::new(),
            locked: false,
            condition: None,
        });
        let order: Vec<String> = crate::store::inherited_first(roles.collect())
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut out = pb::TenantRecords::default();
        for id in order {
            let r = self.roles.iter().find(|r| r.id == id).expect("listed");
            out.roles.push(pb::Role {
                id: r.id.clone(),
                display_name: or_id(&r.display_name, &r.id),
                permissions: r.permissions.clone(),
                excluded_permissions: r.excluded_permissions.clone(),
                inherits: r.inherits.clone(),
                effective_at: if r.effective_at.is_empty() {
                    vec!["*".to_owned()]
                } else {
                    r.effective_at.clone()
                },
                locked: false,
                condition: r.condition.clone(),
            });
        }
        for (i, p) in self.principals.iter().enumerate() {
            out.principals.push(pb::Principal {
                id: p.id.clone(),
                kind: match p.kind {
                    Kind::User => pb::PrincipalKind::User,
                    Kind::ServiceAccount => pb::PrincipalKind::ServiceAccount,
                } as i32,
                status: match p.status {
                    Status::Invited => pb::PrincipalStatus::Invited,
                    Status::Active => pb::PrincipalStatus::Active,
                    Status::Suspended => pb::PrincipalStatus::Suspended,
                    Status::Removed => pb::PrincipalStatus::Removed,
                } as i32,
                display_name: or_id(&p.display_name, &p.id),
                create_time: time(&format!("principals[{i}].created_at"), &p.created_at)?,
                invitation_expire_time: time(
                    &format!("principals[{i}].invitation_expires_at"),
                    &p.invitation_expires_at,
                )?,
            });
        }
        for t in &self.teams {
            out.teams.push(pb::Team {
                id: t.id.clone(),
                display_name: or_id(&t.display_name, &t.id),
            });
        }
        for t in &self.teams {
            let member = |kind: pb::subject_ref::Kind| pb::TeamMember {
                team_id: t.id.clone(),
                member: Some(pb::SubjectRef { kind: Some(kind) }),
            };
            for m in &t.members {
                out.members
                    .push(member(pb::subject_ref::Kind::PrincipalId(m.clone())));
            }
            for m in &t.teams {
                out.members
                    .push(member(pb::subject_ref::Kind::TeamId(m.clone())));
            }
        }
        out.resources = self.resource_records()?;
        for (i, g) in self.grants.iter().enumerate() {
            let at = |f: &str| format!("grants[{i}].{f}");
            use pb::subject_ref::Kind as K;
            let subject = match (&g.principal, &g.team) {
                (Some(p), None) => K::PrincipalId(p.clone()),
                (None, Some(t)) => K::TeamId(t.clone()),
                _ => {
                    return Err(err(format!(
                        "{}: name a `principal` or a `team`",
                        at("subject")
                    )))
                }
            };
            out.grants.push(pb::Grant {
                last_use_time: Default::default(),
                id: String::new(),
                subject: Some(pb::SubjectRef {
                    kind: Some(subject),
                }),
                role_id: g.role.clone(),
                scope: g
                    .on
                    .as_deref()
                    .map(|s| reference(&at("on"), s))
                    .transpose()?
                    .map(Into::into),
                effect: if g.deny {
                    pb::Effect::Deny
                } else {
                    pb::Effect::Allow
                } as i32,
                expire_time: time(&at("expires_at"), &g.expires_at)?,
                create_time: time(&at("created_at"), &g.created_at)?,
                condition: g.condition.clone(),
            });
        }
        Ok(out)
    }

    /// The file of an exported tenant (`id` set to the tenant's).
    pub fn from_export(settings: pb::Tenant, records: Vec<pb::TenantRecords>) -> Self {
        let mut f = TenantFile {
            version: VERSION,
            tenant: Some(Settings {
                id: Some(settings.id),
                display_name: settings.display_name,
                single_owner_types: settings.single_owner_types,
                creator_owner_types: settings.creator_owner_types,
                audit_retention_days: Some(settings.audit_retention_days),
                actions: settings.actions,
                implied_actions: settings.implied_actions.into_iter().fold(
                    BTreeMap::new(),
                    |mut m: BTreeMap<String, Vec<String>>, i| {
                        m.entry(i.action).or_default().push(i.implies);
                        m
                    },
                ),
            }),
            ..TenantFile::default()
        };
        let mut members: Vec<pb::TeamMember> = Vec::new();
        for r in records {
            f.roles.extend(r.roles.into_iter().map(|r| RoleEntry {
                id: r.id,
                display_name: r.display_name,
                permissions: r.permissions,
                excluded_permissions: r.excluded_permissions,
                inherits: r.inherits,
                effective_at: r.effective_at,
                condition: r.condition,
            }));
            f.principals
                .extend(r.principals.into_iter().map(|p| PrincipalEntry {
                    kind: if p.kind == pb::PrincipalKind::ServiceAccount as i32 {
                        Kind::ServiceAccount
                    } else {
                        Kind::User
                    },
                    status: match pb::PrincipalStatus::try_from(p.status) {
                        Ok(pb::PrincipalStatus::Invited) => Status::Invited,
                        Ok(pb::PrincipalStatus::Suspended) => Status::Suspended,
                        Ok(pb::PrincipalStatus::Removed) => Status::Removed,
                        _ => Status::Active,
                    },
                    id: p.id,
                    display_name: p.display_name,
                    invitation_expires_at: p.invitation_expire_time.map(|t| t.to_string()),
                    created_at: p.create_time.map(|t| t.to_string()),
                }));
            f.teams.extend(r.teams.into_iter().map(|t| TeamEntry {
                id: t.id,
                display_name: t.display_name,
                ..TeamEntry::default()
            }));
            members.extend(r.members);
            f.resources.extend(r.resources.into_iter().map(|x| {
                let shown = |r: pb::ResourceRef| format!("{}:{}", r.r#type, r.id);
                ResourceEntry {
                    resource: x.r#ref.map(shown).unwrap_or_default(),
                    parent: x.parent.map(shown),
                    private: x.private,
                    restricted: x.restricted,
                    attributes: x.attributes.into_iter().collect(),
                    links: x
                        .links
                        .into_iter()
                        .map(|l| LinkEntry {
                            resource: l.resource.map(shown).unwrap_or_default(),
                            action: l.action,
                            on: l.on,
                        })
                        .collect(),
                    created_at: x.create_time.map(|t| t.to_string()),
                }
            }));
            f.grants.extend(r.grants.into_iter().map(|g| {
                use pb::subject_ref::Kind as K;
                let (principal, team) = match g.subject.and_then(|s| s.kind) {
                    Some(K::PrincipalId(p)) => (Some(p), None),
                    Some(K::TeamId(t)) => (None, Some(t)),
                    None => (None, None),
                };
                GrantEntry {
                    principal,
                    team,
                    role: g.role_id,
                    on: g.scope.map(|s| format!("{}:{}", s.r#type, s.id)),
                    deny: g.effect == pb::Effect::Deny as i32,
                    expires_at: g.expire_time.map(|t| t.to_string()),
                    condition: g.condition,
                    created_at: g.create_time.map(|t| t.to_string()),
                }
            }));
        }
        for m in members {
            use pb::subject_ref::Kind as K;
            if let Some(t) = f.teams.iter_mut().find(|t| t.id == m.team_id) {
                match m.member.and_then(|s| s.kind) {
                    Some(K::PrincipalId(p)) => t.members.push(p),
                    Some(K::TeamId(x)) => t.teams.push(x),
                    None => {}
                }
            }
        }
        f
    }

    /// The JSON Schema of the format.
    pub fn schema() -> String {
        serde_json::to_string_pretty(&schemars::schema_for!(TenantFile)).unwrap_or_default()
    }
}

fn or_id(name: &str, id: &str) -> String {
    if name.is_empty() {
        id.to_owned()
    } else {
        name.to_owned()
    }
}

/// `type:id` as a reference, the place named when it is not one.
pub fn reference(place: &str, s: &str) -> Result<model::ResourceRef, FileError> {
    let (t, id) = s
        .split_once(':')
        .filter(|(t, id)| !t.is_empty() && !id.is_empty())
        .ok_or_else(|| err(format!("{place}: `{s}` is not `type:id`")))?;
    model::ResourceRef::new(place, t, id).map_err(|e| err(e.to_string()))
}

fn time(place: &str, s: &Option<String>) -> Result<Option<prost_types::Timestamp>, FileError> {
    s.as_deref()
        .map(|s| {
            s.parse::<prost_types::Timestamp>().map_err(|_| {
                err(format!(
                    "{place}: `{s}` is not an RFC 3339 time such as 2027-01-31T00:00:00Z"
                ))
            })
        })
        .transpose()
}
