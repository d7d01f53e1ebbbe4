//! model: the domain's types and their validation; knows nothing of gRPC or SQL.
//!
//! Constructors validate, so a value of these types is always well-formed and
//! every rejection names the request field it came from.

pub mod condition;
mod permission;
pub mod roles;

pub use condition::{Attributes, Condition};
pub use permission::{Pattern, Permission};
pub use roles::{RoleMatch, RoleTable};

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Longest id accepted for tenants, principals, teams, resources and grants.
pub const MAX_ID_BYTES: usize = 256;
/// Longest display name accepted.
pub const MAX_DISPLAY_NAME_BYTES: usize = 1024;
/// Longest type, action or role name accepted.
pub const MAX_NAME_BYTES: usize = 63;
/// Most levels in a resource tree (a top-level resource is level 1).
pub const MAX_TREE_DEPTH: usize = 32;
/// Most teams in a chain of teams inside teams.
pub const MAX_TEAM_NESTING: usize = 8;
/// The pseudo resource type of the tenant itself (tenant-wide permissions).
pub const TENANT_TYPE: &str = "tenant";

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// A time as RFC 3339 (UTC), as protobuf's JSON mapping writes it.
pub fn format_millis(ms: Millis) -> String {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
    .to_string()
}

/// An RFC 3339 time (`2027-01-31T00:00:00Z`), INVALID_ARGUMENT naming `field`
/// otherwise.
pub fn parse_time(field: &str, s: &str) -> Result<Millis> {
    let t: prost_types::Timestamp = s.parse().map_err(|_| {
        Error::invalid(
            field,
            format!("`{s}` is not an RFC 3339 time such as 2027-01-31T00:00:00Z"),
        )
    })?;
    Ok(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// Checks an id chosen by the platform: 1 to 256 bytes, no control characters.
pub fn validate_id(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_ID_BYTES} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Principal ids that name Portcullis itself in the audit trail.
pub const RESERVED_PRINCIPAL_IDS: &[&str] = &["super_user"];

/// Checks a principal id: an id, and not one of [`RESERVED_PRINCIPAL_IDS`].
pub fn validate_principal_id(field: &str, value: &str) -> Result<()> {
    validate_id(field, value)?;
    if RESERVED_PRINCIPAL_IDS.contains(&value) {
        return Err(Error::invalid(
            field,
            format!("`{value}` is reserved for the instance super user"),
        ));
    }
    Ok(())
}

/// Checks a display name: at most 1024 bytes, no control characters.
pub fn validate_display_name(field: &str, value: &str) -> Result<()> {
    if value.len() > MAX_DISPLAY_NAME_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_DISPLAY_NAME_BYTES} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Checks a name (resource type, action, role id): `[a-z][a-z0-9_]*`, at most 63 bytes.
pub fn validate_name(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_NAME_BYTES} bytes"),
        ));
    }
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(Error::invalid(
            field,
            format!("`{value}` must be lower-case letters, digits and `_`, starting with a letter"),
        ));
    }
    Ok(())
}

/// Checks a resource type: a name other than `tenant`.
pub fn validate_resource_type(field: &str, value: &str) -> Result<()> {
    validate_name(field, value)?;
    if value == TENANT_TYPE {
        return Err(Error::invalid(
            field,
            "`tenant` is reserved for the tenant itself",
        ));
    }
    Ok(())
}

/// A resource of the platform: `(type, id)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceRef {
    /// Resource type, such as `workflow`.
    #[serde(rename = "type")]
    pub rtype: String,
    /// Platform-chosen id.
    pub id: String,
}

impl ResourceRef {
    /// Validates both parts; `field` prefixes the error's field name.
    pub fn new(field: &str, rtype: &str, id: &str) -> Result<Self> {
        validate_resource_type(&format!("{field}.type"), rtype)?;
        validate_id(&format!("{field}.id"), id)?;
        Ok(Self {
            rtype: rtype.to_owned(),
            id: id.to_owned(),
        })
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.rtype, self.id)
    }
}

/// Where a grant sits: the whole tenant or one resource (and its subtree).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// The whole tenant.
    Tenant,
    /// A resource and everything below it.
    Resource(ResourceRef),
}

impl Scope {
    /// The kind of scope a role's `effective_at` is matched against.
    pub fn kind(&self) -> &str {
        match self {
            Scope::Tenant => TENANT_TYPE,
            Scope::Resource(r) => &r.rtype,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Tenant => f.write_str("tenant"),
            Scope::Resource(r) => r.fmt(f),
        }
    }
}

/// One step of a resource's ancestry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNode {
    /// The resource.
    pub resource: ResourceRef,
    /// Whether it is a private boundary.
    pub private: bool,
    /// Whether it is restricted: grants from above do not reach in, except
    /// tenant-wide `owner` and `admin` grants.
    pub restricted: bool,
    /// Its attributes, for conditions (`None`: none).
    pub attributes: Option<Arc<Attributes>>,
    /// The resources it acts on (`None`: none).
    pub links: Option<Arc<Vec<Link>>>,
}

/// A resource another acts on: doing one of the actions `on` on the
/// linking resource also needs `action` on `resource` (a workflow that
/// moves items of a board may be edited only by whoever may view the
/// board).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Link {
    /// The linked resource, in the same tenant.
    pub resource: ResourceRef,
    /// The action needed on it.
    pub action: String,
    /// The actions on the linking resource that need it (at least one).
    pub on: Vec<String>,
}

/// Checks a resource's links where they are read (a request, a file):
/// at most [`MAX_LINKS`], each gating 1 to [`MAX_LINK_ACTIONS`] valid action
/// names, no resource linked twice for the same action. Sorts each link's
/// actions and the links (a stable form to compare).
pub fn validate_links(field: &str, links: &mut [Link]) -> Result<()> {
    if links.len() > MAX_LINKS {
        return Err(Error::invalid(field, format!("at most {MAX_LINKS} links")));
    }
    for (i, l) in links.iter_mut().enumerate() {
        let at = format!("{field}[{i}]");
        validate_name(&format!("{at}.action"), &l.action)?;
        if l.on.is_empty() || l.on.len() > MAX_LINK_ACTIONS {
            return Err(Error::invalid(
                format!("{at}.on"),
                format!("1 to {MAX_LINK_ACTIONS} actions the link gates"),
            ));
        }
        for (j, a) in l.on.iter().enumerate() {
            validate_name(&format!("{at}.on[{j}]"), a)?;
        }
        l.on.sort();
        l.on.dedup();
    }
    links.sort();
    if let Some(w) = links
        .windows(2)
        .find(|w| w[0].resource == w[1].resource && w[0].action == w[1].action)
    {
        return Err(Error::invalid(
            field,
            format!(
                "`{}` is linked twice for `{}`: name every action it gates in one link",
                w[0].resource, w[0].action
            ),
        ));
    }
    Ok(())
}

/// Most links one resource holds.
pub const MAX_LINKS: usize = 16;
/// Most actions one link gates.
pub const MAX_LINK_ACTIONS: usize = 16;
/// Longest chain of links followed for one decision (a workflow's link to
/// a board is one; the board's own links a second).
pub const MAX_LINK_DEPTH: usize = 4;
/// Most linked decisions one decision makes.
pub const MAX_LINKED_DECISIONS: usize = 32;

/// A registered resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// The resource.
    pub resource: ResourceRef,
    /// Its parent; `None` at the top of the tenant.
    pub parent: Option<ResourceRef>,
    /// Private boundary.
    pub private: bool,
    /// Restricted: grants from above reach in only when tenant-wide `owner`
    /// or `admin`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub restricted: bool,
    /// Attributes conditions may read (`resource.<name>`).
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    /// The resources it acts on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Creation time.
    pub created_at: Millis,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The roles whose tenant-wide grants reach into restricted resources.
pub const REACH_RESTRICTED: [&str; 2] = ["owner", "admin"];

impl Resource {
    /// As a node of an ancestry.
    pub fn node(&self) -> ResourceNode {
        ResourceNode {
            resource: self.resource.clone(),
            private: self.private,
            restricted: self.restricted,
            attributes: (!self.attributes.is_empty()).then(|| Arc::new(self.attributes.clone())),
            links: (!self.links.is_empty()).then(|| Arc::new(self.links.clone())),
        }
    }
}

/// A tenant and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Tenant id.
    pub id: String,
    /// Human-readable name.
    pub display_name: String,
    /// Types with exactly one owner.
    pub single_owner_types: Vec<String>,
    /// Types whose creator becomes owner.
    pub creator_owner_types: Vec<String>,
    /// Audit retention in days.
    pub audit_retention_days: u32,
    /// Creation time.
    pub created_at: Millis,
    /// Actions declared beyond the built-in ones (those custom roles name are
    /// declared when the role is written, and stay).
    #[serde(default)]
    pub actions: Vec<String>,
    /// Actions that imply others: whoever is denied `implies` is denied
    /// `action` (`edit` ⇒ `view`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub implied_actions: Vec<ImpliedAction>,
}

/// `action` ⇒ `implies`: acting needs the implied action too, so whoever is
/// denied `implies` on a resource is denied `action` there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ImpliedAction {
    /// The implying action.
    pub action: String,
    /// The action it implies.
    pub implies: String,
}

/// Most implications a tenant declares.
pub const MAX_IMPLIED_ACTIONS: usize = 32;

/// Validates a tenant's implications: names, no duplicates, no action
/// implying itself, no cycle; returns them sorted.
pub fn validate_implied_actions(field: &str, list: &[ImpliedAction]) -> Result<Vec<ImpliedAction>> {
    if list.len() > MAX_IMPLIED_ACTIONS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_IMPLIED_ACTIONS} implications"),
        ));
    }
    let mut out = list.to_vec();
    for i in &out {
        validate_name(field, &i.action)?;
        validate_name(field, &i.implies)?;
        if i.action == i.implies {
            return Err(Error::invalid(
                field,
                format!("`{}` cannot imply itself", i.action),
            ));
        }
    }
    out.sort();
    out.dedup();
    // No cycle: following implications from any action never returns to it.
    for start in &out {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![start.implies.as_str()];
        while let Some(a) = stack.pop() {
            if a == start.action {
                return Err(Error::invalid(
                    field,
                    format!("`{}` implies itself through a cycle", start.action),
                ));
            }
            if seen.insert(a) {
                stack.extend(
                    out.iter()
                        .filter(|x| x.action == a)
                        .map(|x| x.implies.as_str()),
                );
            }
        }
    }
    Ok(out)
}

/// User or service account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A human.
    User,
    /// A non-human identity.
    ServiceAccount,
}

impl PrincipalKind {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ServiceAccount => "service_account",
        }
    }
    /// Parses the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(PrincipalKind::User),
            "service_account" => Some(PrincipalKind::ServiceAccount),
            _ => None,
        }
    }
}

/// Membership status; only `Active` is ever allowed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalStatus {
    /// Invited, not accepted.
    Invited,
    /// Active member.
    Active,
    /// Suspended.
    Suspended,
    /// Removed.
    Removed,
}

impl PrincipalStatus {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalStatus::Invited => "invited",
            PrincipalStatus::Active => "active",
            PrincipalStatus::Suspended => "suspended",
            PrincipalStatus::Removed => "removed",
        }
    }
    /// Parses the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invited" => Some(PrincipalStatus::Invited),
            "active" => Some(PrincipalStatus::Active),
            "suspended" => Some(PrincipalStatus::Suspended),
            "removed" => Some(PrincipalStatus::Removed),
            _ => None,
        }
    }
}

/// A user or service account of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Principal id.
    pub id: String,
    /// Kind.
    pub kind: PrincipalKind,
    /// Status.
    pub status: PrincipalStatus,
    /// Human-readable name.
    pub display_name: String,
    /// When an invitation (status `invited`) lapses; `None` for never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_expires_at: Option<Millis>,
    /// Creation time.
    pub created_at: Millis,
}

impl Principal {
    /// Whether the principal is invited and its invitation has lapsed.
    pub fn invitation_lapsed(&self, now: Millis) -> bool {
        self.status == PrincipalStatus::Invited
            && self.invitation_expires_at.is_some_and(|t| t <= now)
    }
}

/// A team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// Team id.
    pub id: String,
    /// Human-readable name.
    pub display_name: String,
}

/// A grant holder or team member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectRef {
    /// A principal.
    Principal(String),
    /// A team.
    Team(String),
}

impl SubjectRef {
    /// Storage name of the kind.
    pub fn kind_str(&self) -> &'static str {
        match self {
            SubjectRef::Principal(_) => "principal",
            SubjectRef::Team(_) => "team",
        }
    }
    /// The id.
    pub fn id(&self) -> &str {
        match self {
            SubjectRef::Principal(id) | SubjectRef::Team(id) => id,
        }
    }
    /// Rebuilds from storage.
    pub fn from_parts(kind: &str, id: String) -> Option<Self> {
        match kind {
            "principal" => Some(SubjectRef::Principal(id)),
            "team" => Some(SubjectRef::Team(id)),
            _ => None,
        }
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind_str(), self.id())
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Gives the role's permissions.
    Allow,
    /// Takes them away on the scope and below, beating every allow.
    Deny,
}

impl Effect {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
    /// Parses the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Effect::Allow),
            "deny" => Some(Effect::Deny),
            _ => None,
        }
    }
}

/// A role binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Grant id.
    pub id: String,
    /// Holder.
    pub subject: SubjectRef,
    /// Role.
    pub role_id: String,
    /// Scope.
    pub scope: Scope,
    /// Allow or deny.
    pub effect: Effect,
    /// Expiry; `None` for never.
    pub expires_at: Option<Millis>,
    /// A condition that must hold for the grant to count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// Creation time.
    pub created_at: Millis,
}

/// A role definition, predefined or custom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Role id.
    pub id: String,
    /// Human-readable name.
    pub display_name: String,
    /// Permissions.
    pub permissions: Vec<Permission>,
    /// Patterns removed from everything the role gives, inherited included.
    pub excluded_permissions: Vec<Permission>,
    /// Inherited roles.
    pub inherits: Vec<String>,
    /// Scope kinds where the role has effect: `tenant`, a type, or `*`.
    pub effective_at: Vec<String>,
    /// Predefined and unchangeable.
    pub locked: bool,
    /// A condition every grant of the role (and of a role inheriting it)
    /// must meet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

impl Role {
    /// Validates a custom role definition (not its references to other roles).
    pub fn validate(&self) -> Result<()> {
        validate_name("role.id", &self.id)?;
        validate_display_name("role.display_name", &self.display_name)?;
        if self.permissions.is_empty() && self.inherits.is_empty() {
            return Err(Error::invalid(
                "role.permissions",
                "a role needs at least one permission or inherited role",
            ));
        }
        if self.permissions.len() > 256 || self.excluded_permissions.len() > 256 {
            return Err(Error::invalid("role.permissions", "at most 256 patterns"));
        }
        if self.inherits.len() > 32 {
            return Err(Error::invalid("role.inherits", "at most 32 roles"));
        }
        for r in &self.inherits {
            validate_name("role.inherits", r)?;
            if r == &self.id {
                return Err(Error::invalid(
                    "role.inherits",
                    "a role cannot inherit itself",
                ));
            }
        }
        if self.effective_at.is_empty() {
            return Err(Error::invalid(
                "role.effective_at",
                "must name at least one scope kind (`tenant`, a resource type, or `*`)",
            ));
        }
        for e in &self.effective_at {
            if e != "*" {
                validate_name("role.effective_at", e)?;
            }
        }
        Ok(())
    }

    /// Whether a grant of this role on a scope of `kind` has any effect.
    pub fn effective_at(&self, kind: &str) -> bool {
        self.effective_at
            .iter()
            .any(|e| e == kind || (e == "*" && kind != TENANT_TYPE))
    }
}

/// One administrative change, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Sequence number.
    pub id: i64,
    /// Tenant revision produced.
    pub revision: i64,
    /// Time.
    pub at: Millis,
    /// API key name.
    pub caller: String,
    /// Acting principal or `super_user`.
    pub actor: String,
    /// Action, such as `grant.create`.
    pub action: String,
    /// Target, such as `grant:…`.
    pub target: String,
    /// JSON before.
    pub before_json: String,
    /// JSON after.
    pub after_json: String,
}

/// Who makes an administrative change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An instance operator (operator API key without a principal).
    SuperUser,
    /// A principal of the tenant, whose own permissions authorize the change.
    Principal(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::SuperUser => f.write_str("super_user"),
            Actor::Principal(id) => f.write_str(id),
        }
    }
}

/// Revision tokens are the tenant's revision counter, as decimal text.
pub fn parse_revision_token(field: &str, token: &str) -> Result<Option<i64>> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .map(Some)
        .ok_or_else(|| Error::invalid(field, "not a revision token returned by Portcullis"))
}

/// Validates a requested page size: 0 means `default`, above `max` is refused.
pub fn page_size(field: &str, requested: u32, default: u32, max: u32) -> Result<u64> {
    match requested {
        0 => Ok(u64::from(default)),
        n if n > max => Err(Error::invalid(field, format!("must be at most {max}"))),
        n => Ok(u64::from(n)),
    }
}

/// Encodes the last key of a page as an opaque page token.
pub fn encode_page_token(last_key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("k1:{last_key}"))
}

/// Decodes a page token made by [`encode_page_token`]; empty means the first page.
pub fn decode_page_token(field: &str, token: &str) -> Result<Option<String>> {
    use base64::Engine as _;
    if token.is_empty() {
        return Ok(None);
    }
    // A list from the index resumes after a path, up to the tree's depth.
    if token.len() > 4 * (MAX_ID_BYTES + 80) * MAX_TREE_DEPTH {
        return Err(Error::invalid(
            field,
            "not a page token returned by Portcullis",
        ));
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("k1:").map(str::to_owned))
        .map(Some)
        .ok_or_else(|| Error::invalid(field, "not a page token returned by Portcullis"))
}

/// A grant as held by one principal: directly, or through a chain of teams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The grant (shared: an index hands out the grants it holds without
    /// copying them).
    pub grant: Arc<Grant>,
    /// Teams from the principal's direct team to the team holding the grant;
    /// empty when held directly.
    pub via_teams: Vec<String>,
}

impl Binding {
    /// Whether the grant still has effect at `now`.
    pub fn live(&self, now: Millis) -> bool {
        self.grant.expires_at.is_none_or(|t| t > now)
    }
}
