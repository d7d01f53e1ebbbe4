//! Assertions of a tenant file, and `portcullis test`: load the tenant into
//! an embedded in-memory instance (the same import rules as a server, the
//! same decision engine) and check every assertion, no server needed.
//!
//! ```toml
//! [[assertions]]
//! check = "alice may edit workflow:w1"
//!
//! [[assertions]]
//! check = "bob may not view workflow:w2"
//!
//! [[assertions]]
//! list = "bob may view workflow"      # ListAccessible
//! expect = ["w1", "w3"]
//!
//! [[assertions]]
//! who_may = "edit workflow:w1"         # ListSubjects
//! expect = ["alice", "carol"]
//! ```

use super::{FileError, TenantFile};
use crate::admin::bulk::ImportTenant;
use crate::admin::Admin;
use crate::engine::authorizer::{Authorizer, CheckQuery, PageRequest};
use crate::model::condition::RequestContext;
use crate::model::{self, Actor, ResourceRef};
use crate::store::memory::MemStore;
use crate::store::WriteContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// Something that must hold. Exactly one of `check`, `list` and `who_may`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    /// `PRINCIPAL may ACTION TYPE:ID` or `PRINCIPAL may not ACTION TYPE:ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// `PRINCIPAL may ACTION TYPE`: the ids of the resources of TYPE the
    /// principal may ACTION are exactly `expect` (in any order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// `ACTION TYPE:ID`: the principals who may are exactly `expect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who_may: Option<String>,
    /// The ids `list` or `who_may` must answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Vec<String>>,
    /// The request context conditions read (`request.<key>`), with its JSON
    /// types, e.g. `{ mfa = true }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub context: BTreeMap<String, serde_json::Value>,
}

/// A parsed assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A check and whether it must allow.
    Check {
        /// Principal.
        principal: String,
        /// Action.
        action: String,
        /// Resource.
        resource: ResourceRef,
        /// Must be allowed (else denied).
        allowed: bool,
    },
    /// ListAccessible's exact answer.
    List {
        /// Principal.
        principal: String,
        /// Action.
        action: String,
        /// Resource type.
        rtype: String,
        /// Ids.
        expect: BTreeSet<String>,
    },
    /// ListSubjects' exact answer.
    WhoMay {
        /// Action.
        action: String,
        /// Resource.
        resource: ResourceRef,
        /// Principal ids.
        expect: BTreeSet<String>,
    },
}

fn bad(i: usize, msg: impl std::fmt::Display) -> FileError {
    FileError(format!("assertions[{i}]: {msg}"))
}

impl Assertion {
    /// The claim it makes; `i` is its place in the file.
    pub fn parse(&self, i: usize) -> Result<Claim, FileError> {
        let expect = || -> Result<BTreeSet<String>, FileError> {
            self.expect
                .clone()
                .map(|v| v.into_iter().collect())
                .ok_or_else(|| bad(i, "`expect` (a list of ids) is missing"))
        };
        match (&self.check, &self.list, &self.who_may) {
            (Some(c), None, None) => {
                if self.expect.is_some() {
                    return Err(bad(i, "`check` takes no `expect`"));
                }
                let words: Vec<&str> = c.split_whitespace().collect();
                let (principal, allowed, rest) = match words.as_slice() {
                    [p, "may", "not", rest @ ..] => (p, false, rest),
                    [p, "may", rest @ ..] => (p, true, rest),
                    _ => {
                        return Err(bad(
                            i,
                            format!("`{c}`: expected `PRINCIPAL may [not] ACTION TYPE:ID`"),
                        ))
                    }
                };
                let [action, resource] = rest else {
                    return Err(bad(
                        i,
                        format!("`{c}`: expected `PRINCIPAL may [not] ACTION TYPE:ID`"),
                    ));
                };
                Ok(Claim::Check {
                    principal: (*principal).to_owned(),
                    action: (*action).to_owned(),
                    resource: super::reference(&format!("assertions[{i}].check"), resource)?,
                    allowed,
                })
            }
            (None, Some(l), None) => {
                let words: Vec<&str> = l.split_whitespace().collect();
                let [principal, "may", action, rtype] = words.as_slice() else {
                    return Err(bad(
                        i,
                        format!("`{l}`: expected `PRINCIPAL may ACTION TYPE`"),
                    ));
                };
                Ok(Claim::List {
                    principal: (*principal).to_owned(),
                    action: (*action).to_owned(),
                    rtype: (*rtype).to_owned(),
                    expect: expect()?,
                })
            }
            (None, None, Some(w)) => {
                let words: Vec<&str> = w.split_whitespace().collect();
                let [action, resource] = words.as_slice() else {
                    return Err(bad(i, format!("`{w}`: expected `ACTION TYPE:ID`")));
                };
                Ok(Claim::WhoMay {
                    action: (*action).to_owned(),
                    resource: super::reference(&format!("assertions[{i}].who_may"), resource)?,
                    expect: expect()?,
                })
            }
            _ => Err(bad(i, "set exactly one of `check`, `list` and `who_may`")),
        }
    }
}

/// One assertion's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The assertion as written.
    pub assertion: String,
    /// Whether it holds.
    pub passed: bool,
    /// What was found instead, when it does not.
    pub detail: String,
}

/// A file's outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The file tested.
    pub file: String,
    /// The tenant could not be loaded (and nothing was checked): why.
    pub load_error: Option<String>,
    /// Each assertion, in order.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Whether the tenant loaded and every assertion holds.
    pub fn passed(&self) -> bool {
        self.load_error.is_none() && self.outcomes.iter().all(|o| o.passed)
    }
}

fn shown(ids: &BTreeSet<String>) -> String {
    format!("[{}]", ids.iter().cloned().collect::<Vec<_>>().join(", "))
}

/// Loads the tenant of `path` (or of the file its `tenant_file` names)
/// into an embedded in-memory instance and checks every assertion of
/// `path`. Errors are problems of the files themselves; a tenant that the
/// import rules refuse is a failed report.
pub async fn run(path: &Path) -> Result<Report, FileError> {
    let file = TenantFile::read(path)?;
    let tenant_file = match &file.tenant_file {
        None => file.clone(),
        Some(rel) => {
            let base = path.parent().unwrap_or(Path::new("."));
            TenantFile::read(&base.join(rel))?
        }
    };
    let claims = file
        .assertions
        .iter()
        .enumerate()
        .map(|(i, a)| a.parse(i).map(|c| (a, c)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = Report {
        file: path.display().to_string(),
        load_error: None,
        outcomes: Vec::new(),
    };
    let tenant = tenant_file
        .tenant_id(None)
        .unwrap_or_else(|_| "test".to_owned());
    let store = MemStore::new();
    if let Err(e) = load(&store, &tenant, &tenant_file).await {
        report.load_error = Some(e);
        return Ok(report);
    }
    let authz = Authorizer::new(store);
    for (a, claim) in claims {
        let written = a
            .check
            .clone()
            .or_else(|| a.list.clone())
            .or_else(|| a.who_may.clone().map(|w| format!("who may {w}")))
            .unwrap_or_default();
        let context = RequestContext::new([], a.context.clone())
            .map_err(|e| FileError(format!("{}: {e}", report.file)))?;
        let (passed, detail) = evaluate(&authz, &tenant, claim, &context)
            .await
            .map_err(|e| FileError(format!("{}: {e}", report.file)))?;
        report.outcomes.push(Outcome {
            assertion: written,
            passed,
            detail,
        });
    }
    Ok(report)
}

/// Imports the file's tenant into `store` as an operator would.
async fn load(store: &MemStore, tenant: &str, f: &TenantFile) -> Result<(), String> {
    let now = model::now_millis();
    let settings = f.settings().map_err(|e| e.0)?;
    let records = f.records().map_err(|e| e.0)?;
    let mut dump =
        crate::grpc::tenant::dump_of(tenant, settings, now).map_err(|e| e.to_string())?;
    crate::grpc::tenant::add_records(&mut dump, records, now).map_err(|e| e.to_string())?;
    let admin = Admin::new(store.clone(), Arc::new(|_, _, _| Box::pin(async {})));
    let ctx = WriteContext {
        tenant_id: tenant.to_owned(),
        caller: "portcullis test".to_owned(),
        actor: Actor::SuperUser,
        request: None,
    };
    admin
        .write(&ctx, ImportTenant { dump })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Every id of a paged answer: `page(after)` for each page.
async fn every_page<F, Fut>(mut page: F) -> crate::error::Result<BTreeSet<String>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<crate::engine::authorizer::Page>>,
{
    let mut got = BTreeSet::new();
    let mut after = None;
    loop {
        let p = page(after).await?;
        got.extend(p.ids);
        match p.next_after {
            Some(n) => after = Some(n),
            None => return Ok(got),
        }
    }
}

async fn evaluate(
    authz: &Authorizer<MemStore>,
    tenant: &str,
    claim: Claim,
    context: &RequestContext,
) -> crate::error::Result<(bool, String)> {
    const PAGE: usize = 1_000;
    Ok(match claim {
        Claim::Check {
            principal,
            action,
            resource,
            allowed,
        } => {
            let q = CheckQuery {
                subject_id: principal,
                action,
                resource,
            };
            let (d, _) = authz.check(tenant, q, context, None).await?;
            let verdict = if d.allowed { "allowed" } else { "denied" };
            let mut detail = format!("{verdict} ({:?})", d.reason);
            let e = &d.explanation;
            if !e.grant_id.is_empty() {
                detail.push_str(&format!("; grant {} ({})", e.grant_id, e.role_id));
            }
            if !e.detail.is_empty() {
                detail.push_str(&format!("; {}", e.detail));
            }
            (d.allowed == allowed, detail)
        }
        Claim::List {
            principal,
            action,
            rtype,
            expect,
        } => {
            let q = (principal.as_str(), action.as_str(), rtype.as_str());
            let got = every_page(|after| async move {
                let page = PageRequest {
                    after: after.as_deref(),
                    limit: PAGE,
                };
                authz.list_accessible(tenant, q, page, context, None).await
            })
            .await?;
            (got == expect, format!("got {}", shown(&got)))
        }
        Claim::WhoMay {
            action,
            resource,
            expect,
        } => {
            let q = (&resource, action.as_str());
            let got = every_page(|after| async move {
                let page = PageRequest {
                    after: after.as_deref(),
                    limit: PAGE,
                };
                authz.list_subjects(tenant, q, page, context, None).await
            })
            .await?;
            (got == expect, format!("got {}", shown(&got)))
        }
    })
}
