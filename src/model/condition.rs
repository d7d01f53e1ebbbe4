//! Conditions: CEL expressions (the `cel` crate) attached to a grant or a
//! custom role, which must hold for the grant to count.
//!
//! A condition sees four variables:
//! - `request`: the caller's context of the question (`CheckRequest.context`
//!   as strings, `typed_context` with its JSON types), e.g. `request.mfa`;
//! - `subject`: the principal asking, `{id, kind}` (`kind` is `user` or
//!   `service_account`);
//! - `resource`: the resource asked about, `{type, id}` and its attributes
//!   (e.g. `resource.user`); `{type: "tenant", id: ""}` for the tenant itself;
//! - `now`: the decision's time, a timestamp (`now.getHours("Europe/Berlin")`).
//!
//! Besides CEL's standard functions there is `inCidr(ip, "10.0.0.0/8")`.
//!
//! A condition is compiled once, when written (or read back from the store):
//! its syntax, the names it uses, its size and the nesting of its macros are
//! checked, and it is run on a sample question, where a result that is not a
//! bool or an operator applied to the wrong types is refused. What only the
//! data can tell (a missing attribute, a context value of another type) is
//! decided when it runs: never an allow.

use crate::error::{Error, Result};
use crate::model::{Millis, Principal, ResourceNode};
use cel::common::types::{CelBool, CelString};
use cel::common::value::CowVal;
use cel::objects::{Key, Map};
use cel::{Env, ExecutionError, Program, Value};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};

/// Longest condition accepted, in bytes.
pub const MAX_CONDITION_BYTES: usize = 1024;
/// Most nodes in a condition's syntax tree (macros expanded).
pub const MAX_CONDITION_NODES: usize = 256;
/// Most macros (`all`, `exists`, `map`, `filter`) inside one another.
pub const MAX_MACRO_NESTING: usize = 2;

/// The variables a condition may name.
pub const VARIABLES: [&str; 4] = ["request", "subject", "resource", "now"];

/// The functions a condition may call, besides operators.
const FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "type",
    "dyn",
    "timestamp",
    "duration",
    "getFullYear",
    "getMonth",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "inCidr",
];

/// CEL's standard library and `inCidr`, shared by every condition.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    env.add_overload(
        "inCidr",
        "string_string_in_cidr",
        vec![
            cel::common::types::STRING_TYPE,
            cel::common::types::STRING_TYPE,
        ],
        in_cidr,
    )
    .expect("inCidr is declared once");
    Arc::new(env)
});

/// `inCidr(ip, cidr)`: whether the address lies in the range.
fn in_cidr<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
) -> std::result::Result<CowVal<'b, 'v>, ExecutionError> {
    let text = |i: usize| {
        args.get(i)
            .and_then(|a| a.downcast_ref::<CelString>())
            .map(|s| s.inner().to_owned())
            .ok_or_else(|| ExecutionError::function_error("inCidr", "expects two strings"))
    };
    let (ip, cidr) = (text(0)?, text(1)?);
    let inside =
        cidr_contains(&cidr, &ip).map_err(|e| ExecutionError::function_error("inCidr", e))?;
    Ok(CowVal::owned(CelBool::from(inside)))
}

/// Whether `ip` lies in `cidr` (`10.0.0.0/8`, `2001:db8::/32`); an address of
/// the other family lies in no range.
pub fn cidr_contains(cidr: &str, ip: &str) -> std::result::Result<bool, String> {
    use std::net::IpAddr;
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| format!("`{ip}` is not an IP address"))?;
    let (net, len) = cidr
        .split_once('/')
        .ok_or_else(|| format!("`{cidr}` is not a CIDR range"))?;
    let net: IpAddr = net
        .parse()
        .map_err(|_| format!("`{cidr}` is not a CIDR range"))?;
    let len: u32 = len
        .parse()
        .map_err(|_| format!("`{cidr}` is not a CIDR range"))?;
    let bits = |a: IpAddr| -> (u128, u32) {
        match a {
            IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
            IpAddr::V6(v) => (u128::from(v), 128),
        }
    };
    let ((n, width), (a, a_width)) = (bits(net), bits(ip));
    if len > width {
        return Err(format!("`{cidr}` is not a CIDR range"));
    }
    if width != a_width {
        return Ok(false);
    }
    let shift = width - len;
    Ok(len == 0 || (n >> shift) == (a >> shift))
}

/// A compiled condition. Equal when written the same.
#[derive(Clone)]
pub struct Condition(Arc<Compiled>);

struct Compiled {
    source: String,
    program: Program,
    /// The `request` fields it names, for a missing-context answer.
    request_fields: Vec<String>,
    /// Which of [`VARIABLES`] it names (only those are bound to evaluate).
    uses: [bool; 4],
}

/// What a condition said about one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It holds.
    Holds,
    /// It does not hold.
    Fails,
    /// It needs these `request` fields, which the question lacks.
    Missing(Vec<String>),
    /// It could not be evaluated on this question (e.g. an attribute the
    /// resource lacks); never an allow.
    Error(String),
}

impl Condition {
    /// Compiles and checks `source`; errors name `field`.
    pub fn compile(field: &str, source: &str) -> Result<Self> {
        let source = source.trim();
        if source.is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
        if source.len() > MAX_CONDITION_BYTES {
            return Err(Error::invalid(
                field,
                format!("at most {MAX_CONDITION_BYTES} bytes"),
            ));
        }
        let program = ENV.compile(source).map_err(|e| {
            Error::invalid(field, format!("not a CEL expression: {}", one_line(&e)))
        })?;
        let mut walk = Walk::default();
        walk.expr(program.expression(), &mut Vec::new(), 0)
            .map_err(|e| Error::invalid(field, e))?;
        if walk.nodes > MAX_CONDITION_NODES {
            return Err(Error::invalid(
                field,
                format!("too large: at most {MAX_CONDITION_NODES} terms"),
            ));
        }
        walk.request_fields.sort();
        walk.request_fields.dedup();
        let c = Condition(Arc::new(Compiled {
            source: source.to_owned(),
            program,
            request_fields: walk.request_fields,
            uses: walk.uses,
        }));
        c.check_on_sample().map_err(|e| Error::invalid(field, e))?;
        Ok(c)
    }

    /// As written.
    pub fn source(&self) -> &str {
        &self.0.source
    }

    /// The `request` fields it names.
    pub fn request_fields(&self) -> &[String] {
        &self.0.request_fields
    }

    /// Evaluates it for one question.
    pub fn evaluate(&self, facts: &Facts<'_>) -> Outcome {
        match self.execute(facts) {
            Ok(Value::Bool(true)) => Outcome::Holds,
            Ok(Value::Bool(false)) => Outcome::Fails,
            Ok(other) => Outcome::Error(format!(
                "the condition yields a {}, not a bool",
                other.type_of()
            )),
            Err(e) => {
                let missing: Vec<String> = self
                    .0
                    .request_fields
                    .iter()
                    .filter(|f| !facts.request.contains(f))
                    .cloned()
                    .collect();
                if missing.is_empty() {
                    Outcome::Error(e.to_string())
                } else {
                    Outcome::Missing(missing)
                }
            }
        }
    }

    /// Runs the program on `facts`, binding only the variables it names.
    fn execute(&self, facts: &Facts<'_>) -> cel::ResolveResult {
        let uses = &self.0.uses;
        let mut ctx = cel::Context::with_env(ENV.clone());
        if uses[0] {
            ctx.add_variable_from_value("request", facts.request.value().clone());
        }
        if uses[1] {
            ctx.add_variable_from_value("subject", subject_value(facts.subject));
        }
        if uses[2] {
            ctx.add_variable_from_value("resource", resource_value(facts.resource));
        }
        if uses[3] {
            ctx.add_variable_from_value("now", time_value(facts.now));
        }
        self.0.program.execute(&ctx)
    }

    /// Runs it on a sample question (an empty context, a user, a resource
    /// without attributes): refuses a result other than a bool and errors
    /// that no data could cause.
    fn check_on_sample(&self) -> std::result::Result<(), String> {
        let p = Principal {
            id: "sample".into(),
            kind: super::PrincipalKind::User,
            status: super::PrincipalStatus::Active,
            display_name: String::new(),
            invitation_expires_at: None,
            created_at: 0,
        };
        let request = RequestContext::default();
        let facts = Facts {
            request: &request,
            subject: &p,
            resource: None,
            now: 0,
        };
        match self.execute(&facts) {
            Ok(Value::Bool(_)) => Ok(()),
            Ok(other) => Err(format!("yields a {}, not a bool", other.type_of())),
            Err(
                e @ (ExecutionError::NoSuchOverload(_)
                | ExecutionError::UndeclaredReference(_)
                | ExecutionError::ValuesNotComparable(..)
                | ExecutionError::UnsupportedBinaryOperator(..)
                | ExecutionError::NotSupportedAsMethod { .. }
                | ExecutionError::InvalidArgumentCount { .. }),
            ) => Err(format!("a type error: {e}")),
            Err(_) => Ok(()),
        }
    }
}

fn one_line(e: &impl fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The syntax-tree checks of [`Condition::compile`].
#[derive(Default)]
struct Walk {
    nodes: usize,
    request_fields: Vec<String>,
    uses: [bool; 4],
}

impl Walk {
    fn expr(
        &mut self,
        e: &cel::common::ast::IdedExpr,
        bound: &mut Vec<String>,
        nesting: usize,
    ) -> std::result::Result<(), String> {
        use cel::common::ast::{EntryExpr, Expr, LiteralValue};
        self.nodes += 1;
        if self.nodes > MAX_CONDITION_NODES {
            return Ok(());
        }
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) => Ok(()),
            Expr::Ident(name) => {
                if bound.iter().any(|b| b == name) {
                    Ok(())
                } else if let Some(i) = VARIABLES.iter().position(|v| v == name) {
                    self.uses[i] = true;
                    Ok(())
                } else {
                    Err(format!(
                        "unknown name `{name}`: a condition may use {}",
                        VARIABLES.join(", ")
                    ))
                }
            }
            Expr::Select(s) => {
                if let Expr::Ident(root) = &s.operand.expr {
                    if root == "request" && !bound.iter().any(|b| b == "request") {
                        self.request_fields.push(s.field.clone());
                    }
                }
                self.expr(&s.operand, bound, nesting)
            }
            Expr::Call(c) => {
                let name = c.func_name.as_str();
                let operator = name.starts_with('_')
                    || name.starts_with('@')
                    || name.starts_with("!_")
                    || name.starts_with("-_");
                if !operator && !FUNCTIONS.contains(&name) {
                    return Err(format!("unknown function `{name}`"));
                }
                // `request["field"]` names a field too.
                if name == "_[_]" {
                    if let (Some(Expr::Ident(root)), Some(Expr::Literal(LiteralValue::String(f)))) = (
                        c.args.first().map(|a| &a.expr),
                        c.args.get(1).map(|a| &a.expr),
                    ) {
                        if root == "request" {
                            self.request_fields.push(f.to_string());
                        }
                    }
                }
                if let Some(t) = &c.target {
                    self.expr(t, bound, nesting)?;
                }
                c.args.iter().try_for_each(|a| self.expr(a, bound, nesting))
            }
            Expr::List(l) => l
                .elements
                .iter()
                .try_for_each(|a| self.expr(a, bound, nesting)),
            Expr::Map(m) => m.entries.iter().try_for_each(|entry| match &entry.expr {
                EntryExpr::MapEntry(me) => {
                    self.expr(&me.key, bound, nesting)?;
                    self.expr(&me.value, bound, nesting)
                }
                EntryExpr::StructField(_) => Err("struct literals are not supported".into()),
            }),
            Expr::Struct(_) => Err("struct literals are not supported".into()),
            Expr::Comprehension(c) => {
                if nesting >= MAX_MACRO_NESTING {
                    return Err(format!(
                        "at most {MAX_MACRO_NESTING} macros (all, exists, map, filter) inside one another"
                    ));
                }
                self.expr(&c.iter_range, bound, nesting)?;
                self.expr(&c.accu_init, bound, nesting)?;
                let before = bound.len();
                bound.push(c.iter_var.clone());
                if let Some(v) = &c.iter_var2 {
                    bound.push(v.clone());
                }
                bound.push(c.accu_var.clone());
                let r = [&c.loop_cond, &c.loop_step, &c.result]
                    .into_iter()
                    .try_for_each(|x| self.expr(x, bound, nesting + 1));
                bound.truncate(before);
                r
            }
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Condition({:?})", self.0.source)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.source)
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.0.source == other.0.source
    }
}

impl Eq for Condition {}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.source)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Condition::compile("condition", &source).map_err(serde::de::Error::custom)
    }
}

/// Compiles an optional condition: empty means none.
pub fn optional(field: &str, source: &str) -> Result<Option<Condition>> {
    if source.trim().is_empty() {
        Ok(None)
    } else {
        Condition::compile(field, source).map(Some)
    }
}

/// Most top-level entries of a question's context.
pub const MAX_CONTEXT_ENTRIES: usize = 64;
/// Most values in a question's typed context, nested ones included.
pub const MAX_CONTEXT_VALUES: usize = 256;
/// Deepest nesting of lists and objects in a typed context.
pub const MAX_CONTEXT_DEPTH: usize = 4;
/// Longest string (or key) in a question's context.
pub const MAX_CONTEXT_STRING_BYTES: usize = 1024;

/// A question's `request` variable: the caller's context.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    entries: BTreeMap<String, serde_json::Value>,
    value: OnceLock<Value>,
}

impl PartialEq for RequestContext {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl RequestContext {
    /// The context of strings and typed values; a key in both, or past the
    /// bounds, is refused naming the field.
    pub fn new(
        strings: impl IntoIterator<Item = (String, String)>,
        typed: BTreeMap<String, serde_json::Value>,
    ) -> Result<Self> {
        let mut entries = BTreeMap::new();
        for (k, v) in strings {
            check_string("context", &k)?;
            check_string("context", &v)?;
            entries.insert(k, serde_json::Value::String(v));
        }
        let mut count = 0;
        for (k, v) in typed {
            check_string("typed_context", &k)?;
            if entries.contains_key(&k) {
                return Err(Error::invalid(
                    "typed_context",
                    format!("`{k}` is also in `context`"),
                ));
            }
            check_typed(&v, 1, &mut count)?;
            entries.insert(k, v);
        }
        if entries.len() > MAX_CONTEXT_ENTRIES {
            return Err(Error::invalid(
                "context",
                format!("at most {MAX_CONTEXT_ENTRIES} entries in `context` and `typed_context`"),
            ));
        }
        Ok(RequestContext {
            entries,
            value: OnceLock::new(),
        })
    }

    /// The empty context, shared.
    pub fn none() -> &'static RequestContext {
        static NONE: LazyLock<RequestContext> = LazyLock::new(RequestContext::default);
        &NONE
    }

    /// Whether the context has `field`.
    pub fn contains(&self, field: &str) -> bool {
        self.entries.contains_key(field)
    }

    /// Whether the context is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries.
    pub fn entries(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.entries
    }

    /// As a CEL map, converted once.
    fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            let map: HashMap<Key, Value> = self
                .entries
                .iter()
                .map(|(k, v)| (Key::from(k.as_str()), json_value(v)))
                .collect();
            Value::Map(Map::from(map))
        })
    }
}

fn check_string(field: &str, s: &str) -> Result<()> {
    if s.len() > MAX_CONTEXT_STRING_BYTES {
        return Err(Error::invalid(
            field,
            format!("strings and keys of at most {MAX_CONTEXT_STRING_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn check_typed(v: &serde_json::Value, depth: usize, count: &mut usize) -> Result<()> {
    *count += 1;
    if *count > MAX_CONTEXT_VALUES {
        return Err(Error::invalid(
            "typed_context",
            format!("at most {MAX_CONTEXT_VALUES} values"),
        ));
    }
    if depth > MAX_CONTEXT_DEPTH {
        return Err(Error::invalid(
            "typed_context",
            format!("at most {MAX_CONTEXT_DEPTH} levels of nesting"),
        ));
    }
    match v {
        serde_json::Value::String(s) => check_string("typed_context", s),
        serde_json::Value::Array(a) => a.iter().try_for_each(|x| check_typed(x, depth + 1, count)),
        serde_json::Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            check_string("typed_context", k)?;
            check_typed(x, depth + 1, count)
        }),
        _ => Ok(()),
    }
}

/// JSON as CEL: whole numbers are ints, others doubles.
fn json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => match n.as_u64() {
                Some(u) => Value::UInt(u),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
        },
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(a) => Value::List(Arc::new(a.iter().map(json_value).collect())),
        serde_json::Value::Object(o) => {
            let map: HashMap<Key, Value> = o
                .iter()
                .map(|(k, v)| (Key::from(k.as_str()), json_value(v)))
                .collect();
            Value::Map(Map::from(map))
        }
    }
}

fn subject_value(p: &Principal) -> Value {
    let mut m: HashMap<Key, Value> = HashMap::with_capacity(2);
    m.insert(Key::from("id"), Value::String(Arc::new(p.id.clone())));
    m.insert(
        Key::from("kind"),
        Value::String(Arc::new(p.kind.as_str().to_owned())),
    );
    Value::Map(Map::from(m))
}

fn resource_value(node: Option<&ResourceNode>) -> Value {
    let mut m: HashMap<Key, Value> = HashMap::new();
    match node {
        Some(n) => {
            m.insert(
                Key::from("type"),
                Value::String(Arc::new(n.resource.rtype.clone())),
            );
            m.insert(
                Key::from("id"),
                Value::String(Arc::new(n.resource.id.clone())),
            );
            for (k, v) in n.attributes.iter().flat_map(|a| a.iter()) {
                m.insert(Key::from(k.as_str()), Value::String(Arc::new(v.clone())));
            }
        }
        None => {
            m.insert(
                Key::from("type"),
                Value::String(Arc::new(super::TENANT_TYPE.to_owned())),
            );
            m.insert(Key::from("id"), Value::String(Arc::new(String::new())));
        }
    }
    Value::Map(Map::from(m))
}

fn time_value(now: Millis) -> Value {
    let t = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
    Value::Timestamp(t.fixed_offset())
}

/// What a condition is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The caller's context.
    pub request: &'a RequestContext,
    /// The principal asking.
    pub subject: &'a Principal,
    /// The resource asked about (`None`: the tenant).
    pub resource: Option<&'a ResourceNode>,
    /// The decision's time.
    pub now: Millis,
}

/// A resource's attributes: a few strings a condition may read.
pub type Attributes = BTreeMap<String, String>;

/// Most attributes of one resource.
pub const MAX_ATTRIBUTES: usize = 16;
/// Longest attribute value.
pub const MAX_ATTRIBUTE_BYTES: usize = 256;

/// Validates a resource's attributes: names like role ids, not `type` or
/// `id` (the resource's own), values of at most [`MAX_ATTRIBUTE_BYTES`].
pub fn validate_attributes(field: &str, attrs: &Attributes) -> Result<()> {
    if attrs.len() > MAX_ATTRIBUTES {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_ATTRIBUTES} attributes"),
        ));
    }
    for (k, v) in attrs {
        super::validate_name(field, k)?;
        if k == "type" || k == "id" {
            return Err(Error::invalid(
                field,
                format!("`{k}` is the resource's own; choose another name"),
            ));
        }
        if v.len() > MAX_ATTRIBUTE_BYTES {
            return Err(Error::invalid(
                field,
                format!("`{k}`: values of at most {MAX_ATTRIBUTE_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
