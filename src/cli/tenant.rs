//! The whole-tenant commands: `tenant export|import|delete|erase|schema`,
//! `apply` and `test`.

use super::{print, CliError, Conn, Output};
use crate::client::Bearer;
use crate::grpc::pb;
use crate::grpc::pb::tenant_service_client::TenantServiceClient;
use crate::tenant_file::{assertions, TenantFile};
use serde_json::json;
use std::path::{Path, PathBuf};
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

/// Records per message of an import.
const CHUNK: usize = 5_000;

fn file_error(e: crate::tenant_file::FileError) -> CliError {
    CliError::Usage(e.0)
}

impl Conn {
    /// The tenant service over this connection; whole-tenant calls get at
    /// least ten minutes.
    async fn tenants(
        &self,
    ) -> Result<TenantServiceClient<InterceptedService<Channel, Bearer>>, CliError> {
        let key = self.key.as_deref().ok_or_else(|| {
            CliError::Usage("an API key is needed: --key or PORTCULLIS_KEY".to_owned())
        })?;
        let bearer = Bearer::new(key)
            .ok_or_else(|| CliError::Usage("the key is not valid header text".to_owned()))?;
        let bulk = Conn {
            timeout_ms: self.timeout_ms.max(600_000),
            ..self.clone()
        };
        Ok(
            TenantServiceClient::with_interceptor(bulk.channel().await?, bearer)
                .max_decoding_message_size(crate::app::MAX_TENANT_MESSAGE_BYTES)
                .max_encoding_message_size(crate::app::MAX_TENANT_MESSAGE_BYTES),
        )
    }
}

/// `records` split into messages of at most `chunk` records each.
pub fn split(r: pb::TenantRecords, chunk: usize) -> Vec<pb::TenantRecords> {
    let mut out: Vec<pb::TenantRecords> = Vec::new();
    let mut cur = pb::TenantRecords::default();
    let mut n = 0;
    macro_rules! take {
        ($field:ident) => {
            for x in r.$field {
                cur.$field.push(x);
                n += 1;
                if n == chunk {
                    out.push(std::mem::take(&mut cur));
                    n = 0;
                }
            }
        };
    }
    take!(roles);
    take!(principals);
    take!(teams);
    take!(members);
    take!(resources);
    take!(grants);
    if n > 0 {
        out.push(cur);
    }
    out
}

fn count(r: &pb::TenantRecords) -> usize {
    r.roles.len()
        + r.principals.len()
        + r.teams.len()
        + r.members.len()
        + r.resources.len()
        + r.grants.len()
}

/// `portcullis tenant export`: the tenant as a file (TOML; JSON with
/// `--json` or a `.json` path), to `out` or standard output.
pub async fn export(
    conn: &Conn,
    tenant: String,
    actor: Option<String>,
    out: Option<PathBuf>,
    json_format: bool,
) -> Result<bool, CliError> {
    use pb::export_tenant_response::Part;
    let mut stream = conn
        .tenants()
        .await?
        .export_tenant(pb::ExportTenantRequest {
            tenant_id: tenant,
            actor_id: actor.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let mut settings = None;
    let mut records = Vec::new();
    while let Some(msg) = stream.message().await? {
        match msg.part {
            Some(Part::Header(h)) => settings = h.settings,
            Some(Part::Records(r)) => records.push(r),
            None => {}
        }
    }
    let settings =
        settings.ok_or_else(|| CliError::Usage("the export had no header".to_owned()))?;
    let file = TenantFile::from_export(settings, records);
    let as_json = json_format
        || out
            .as_deref()
            .and_then(Path::extension)
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let text = file.render(as_json).map_err(file_error)?;
    match out {
        Some(p) => std::fs::write(&p, text)
            .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?,
        None => print!("{text}"),
    }
    Ok(true)
}

/// `portcullis tenant import`: creates a tenant from a file (its id, or
/// `--tenant`), streaming its records; progress on standard error.
pub async fn import(
    conn: &Conn,
    path: &Path,
    tenant: Option<String>,
    output: Output,
) -> Result<bool, CliError> {
    use pb::import_tenant_request::Part;
    let file = TenantFile::read(path).map_err(file_error)?;
    let tenant_id = file.tenant_id(tenant.as_deref()).map_err(file_error)?;
    let records = file.records().map_err(file_error)?;
    let total = count(&records);
    let header = pb::ImportTenantRequest {
        part: Some(Part::Header(pb::ImportHeader {
            tenant_id: tenant_id.clone(),
            settings: Some(file.settings().map_err(file_error)?),
            request_id: String::new(),
        })),
    };
    let chunks = split(records, CHUNK);
    let show = output == Output::Text;
    let mut sent = 0;
    let messages = std::iter::once(header).chain(chunks.into_iter().map(move |r| {
        sent += count(&r);
        if show {
            eprintln!("import: {sent} of {total} records sent");
        }
        pb::ImportTenantRequest {
            part: Some(Part::Records(r)),
        }
    }));
    let started = std::time::Instant::now();
    let r = conn
        .tenants()
        .await?
        .import_tenant(tokio_stream::iter(messages))
        .await?
        .into_inner();
    let secs = started.elapsed().as_secs_f64();
    let c = r.counts.unwrap_or_default();
    print(
        output,
        format!(
            "imported tenant {tenant_id} at revision {}: {} resources, {} principals, {} teams, {} memberships, {} roles, {} grants in {secs:.1} s",
            r.consistency_token, c.resources, c.principals, c.teams, c.members, c.roles, c.grants
        ),
        json!({
            "tenant_id": tenant_id,
            "consistency_token": r.consistency_token,
            "resources": c.resources,
            "principals": c.principals,
            "teams": c.teams,
            "members": c.members,
            "roles": c.roles,
            "grants": c.grants,
            "seconds": secs,
        }),
    );
    Ok(true)
}

/// `portcullis tenant delete`.
pub async fn delete(conn: &Conn, tenant: String, output: Output) -> Result<bool, CliError> {
    let r = conn
        .tenants()
        .await?
        .delete_tenant(pb::DeleteTenantRequest {
            tenant_id: tenant.clone(),
            request_id: String::new(),
        })
        .await?
        .into_inner();
    print(
        output,
        format!(
            "deleted tenant {tenant} ({} resources) at revision {}",
            r.deleted_resources, r.consistency_token
        ),
        json!({"tenant_id": tenant, "deleted_resources": r.deleted_resources, "consistency_token": r.consistency_token}),
    );
    Ok(true)
}

/// `portcullis tenant erase`: a principal's display name replaced by a
/// pseudonym everywhere.
pub async fn erase(
    conn: &Conn,
    tenant: String,
    principal: String,
    actor: Option<String>,
    output: Output,
) -> Result<bool, CliError> {
    let r = conn
        .tenants()
        .await?
        .erase_principal(pb::ErasePrincipalRequest {
            tenant_id: tenant,
            actor_id: actor.unwrap_or_default(),
            principal_id: principal.clone(),
            request_id: String::new(),
        })
        .await?
        .into_inner();
    print(
        output,
        format!(
            "{principal} is now shown as {} ({} audit events rewritten)",
            r.pseudonym, r.rewritten_audit_events
        ),
        json!({"principal_id": principal, "pseudonym": r.pseudonym, "rewritten_audit_events": r.rewritten_audit_events, "consistency_token": r.consistency_token}),
    );
    Ok(true)
}

/// `portcullis tenant schema`: the JSON Schema of tenant files.
pub fn schema() -> bool {
    println!("{}", TenantFile::schema());
    true
}

/// `portcullis apply`: makes the tenant what the file says (or, with
/// `dry_run`, says what that would change). `Ok(false)` when a dry run
/// would be refused.
pub async fn apply(
    conn: &Conn,
    path: &Path,
    tenant: Option<String>,
    actor: Option<String>,
    dry_run: bool,
    output: Output,
) -> Result<bool, CliError> {
    let file = TenantFile::read(path).map_err(file_error)?;
    let tenant_id = file.tenant_id(tenant.as_deref()).map_err(file_error)?;
    let r = conn
        .tenants()
        .await?
        .apply_tenant(pb::ApplyTenantRequest {
            tenant_id: tenant_id.clone(),
            actor_id: actor.unwrap_or_default(),
            settings: Some(file.settings().map_err(file_error)?),
            records: Some(file.records().map_err(file_error)?),
            dry_run,
            access_page_size: 1_000,
            request_id: String::new(),
        })
        .await?
        .into_inner();
    let mut text = format!(
        "{} for tenant {tenant_id} (revision {}): {} change{}",
        if dry_run { "Plan" } else { "Applied" },
        r.consistency_token,
        r.changes.len(),
        if r.changes.len() == 1 { "" } else { "s" }
    );
    for c in &r.changes {
        let sign = if c.kind.ends_with(".delete") || c.kind.ends_with(".remove_member") {
            '-'
        } else if c.kind.ends_with(".create") || c.kind.ends_with(".add_member") {
            '+'
        } else {
            '~'
        };
        text.push_str(&format!("\n  {sign} {:<28} {}", c.kind, c.target));
    }
    text.push_str(&format!(
        "\nAccess: {} gained, {} lost{}",
        r.access_gained,
        r.access_lost,
        if r.access_complete {
            ""
        } else {
            " (at least: the comparison stopped at its bound)"
        }
    ));
    for a in &r.access_changes {
        text.push_str(&format!(
            "\n  {} {} may {}{} {}",
            if a.gained { '+' } else { '-' },
            a.principal_id,
            if a.gained { "" } else { "no longer " },
            a.action,
            a.resource
        ));
    }
    let listed = r.access_changes.len() as u64;
    if listed < r.access_gained + r.access_lost {
        text.push_str(&format!(
            "\n  … and {} more",
            r.access_gained + r.access_lost - listed
        ));
    }
    if dry_run {
        if r.rejection.is_empty() {
            text.push_str("\nDry run: the apply would be accepted. Nothing was written.");
        } else {
            text.push_str(&format!(
                "\nDry run: the apply would be REFUSED: {}. Nothing was written.",
                r.rejection
            ));
        }
    }
    print(
        output,
        text,
        json!({
            "tenant_id": tenant_id,
            "dry_run": dry_run,
            "applied": r.applied,
            "rejection": r.rejection,
            "consistency_token": r.consistency_token,
            "changes": r.changes.iter().map(|c| json!({"kind": c.kind, "target": c.target})).collect::<Vec<_>>(),
            "access_gained": r.access_gained,
            "access_lost": r.access_lost,
            "access_complete": r.access_complete,
            "access_changes": r.access_changes.iter().map(|a| json!({
                "principal_id": a.principal_id, "action": a.action, "resource": a.resource, "gained": a.gained,
            })).collect::<Vec<_>>(),
        }),
    );
    Ok(r.rejection.is_empty())
}

/// `portcullis test`: each file's assertions against its tenant, loaded
/// into an embedded in-memory instance. `Ok(true)` when every file loads
/// and every assertion holds.
pub async fn test(paths: &[PathBuf], output: Output) -> Result<bool, CliError> {
    let mut all = true;
    let mut reports = Vec::new();
    for p in paths {
        let report = assertions::run(p).await.map_err(file_error)?;
        all &= report.passed();
        reports.push(report);
    }
    let mut text = String::new();
    let (mut total, mut failed) = (0, 0);
    for r in &reports {
        text.push_str(&format!("{}\n", r.file));
        if let Some(e) = &r.load_error {
            text.push_str(&format!("  FAIL the tenant does not load: {e}\n"));
            failed += 1;
        }
        for o in &r.outcomes {
            total += 1;
            if o.passed {
                text.push_str(&format!("  ok   {}\n", o.assertion));
            } else {
                failed += 1;
                text.push_str(&format!("  FAIL {}: {}\n", o.assertion, o.detail));
            }
        }
    }
    text.push_str(&format!(
        "{total} assertion{}, {failed} failed",
        if total == 1 { "" } else { "s" }
    ));
    print(output, text, json!({ "passed": all, "files": reports }));
    Ok(all)
}
