//! Whole tenants (issue 12): a tenant exported by the CLI and imported as
//! another answers every check and list the same; `apply --dry-run` prints
//! the plan and who gains or loses which access and writes nothing;
//! `portcullis test` passes and fails on purpose-built files; an import
//! that breaks a rule writes nothing; a deleted tenant is forgotten by
//! every replica and one created again with its id continues after it;
//! erasure leaves no trace of a name in the audit trail.

use crate::cli::{json, run, stderr, stdout};
use crate::helpers::*;
use crate::on_every_backend;
use pb::tenant_service_client::TenantServiceClient;
use portcullis::client::{Client, RetryPolicy};
use portcullis::grpc::pb;
use std::path::{Path, PathBuf};
use tonic::Code;

fn tenants(app: &TestApp, key: &str) -> TenantServiceClient<Authed> {
    TenantServiceClient::with_interceptor(app.channel.clone(), Bearer::new(key).expect("key"))
}

fn client(app: &TestApp) -> Client {
    let policy = RetryPolicy {
        deadline: std::time::Duration::from_secs(10),
        ..RetryPolicy::default()
    };
    Client::from_channel(app.channel.clone(), OPERATOR_KEY, policy).expect("client")
}

/// The CLI against `app` with the operator key.
async fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    cli_as(app, OPERATOR_KEY, args).await
}

/// The CLI against `app` with `key`, off the test's runtime thread (which
/// also serves the in-process server).
async fn cli_as(app: &TestApp, key: &str, args: &[&str]) -> std::process::Output {
    let addr = format!("http://{}", app.addr);
    let key = key.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(
            &args,
            &[("PORTCULLIS_ADDR", &addr), ("PORTCULLIS_KEY", &key)],
        )
    })
    .await
    .expect("cli")
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tenants/acme.toml")
}

/// The README's walkthrough tenant, through the admin API as `ada` would
/// build it, plus a little of everything a tenant can hold.
async fn walkthrough(app: &TestApp, t: &str) {
    let mut op = app.operator();
    op.create_tenant(pb::CreateTenantRequest {
        tenant_id: t.into(),
        display_name: "Acme".into(),
        first_admin: Some(pb::FirstAdmin {
            principal_id: "ada".into(),
            kind: 0,
            display_name: "Ada".into(),
        }),
        ..Default::default()
    })
    .await
    .expect("tenant");
    let ada = |actor: &str| actor.to_owned();
    let res_req = |r: &str, parent: Option<&str>, private: bool| pb::CreateResourceRequest {
        tenant_id: t.into(),
        actor_id: ada("ada"),
        resource: Some(res(r)),
        parent: parent.map(res),
        private,
        ..Default::default()
    };
    let grant = |s: &str, role: &str, on: &str, deny: bool| pb::CreateGrantRequest {
        tenant_id: t.into(),
        actor_id: ada("ada"),
        subject: Some(subj(s)),
        role_id: role.into(),
        scope: scope(on),
        effect: if deny {
            pb::Effect::Deny as i32
        } else {
            pb::Effect::Allow as i32
        },
        ..Default::default()
    };
    op.create_resource(res_req("workspace:ops", None, false))
        .await
        .expect("ws");
    // Nobody gives themselves more than they hold: the operator (no actor)
    // makes ada an admin of the workspace.
    op.create_grant(pb::CreateGrantRequest {
        actor_id: String::new(),
        ..grant("ada", "admin", "workspace:ops", false)
    })
    .await
    .expect("ada admin");
    op.create_resource(res_req("folder:billing", Some("workspace:ops"), false))
        .await
        .expect("folder");
    op.create_resource(res_req(
        "workflow:invoice-sync",
        Some("folder:billing"),
        false,
    ))
    .await
    .expect("workflow");
    op.create_resource(res_req("workflow:payroll", Some("folder:billing"), true))
        .await
        .expect("private workflow");
    // Attributes are the platform's: the operator (no actor) sets them.
    let attributed = pb::CreateResourceRequest {
        attributes: [("region".to_owned(), "eu".to_owned())].into(),
        ..res_req("connection:bank", Some("workspace:ops"), false)
    };
    let refused = op.create_resource(attributed.clone()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    op.create_resource(pb::CreateResourceRequest {
        actor_id: String::new(),
        ..attributed
    })
    .await
    .expect("connection");
    for (p, status) in [
        ("bob", pb::PrincipalStatus::Active),
        ("carol", pb::PrincipalStatus::Active),
        ("dave", pb::PrincipalStatus::Invited),
    ] {
        op.create_principal(pb::CreatePrincipalRequest {
            tenant_id: t.into(),
            actor_id: ada("ada"),
            principal_id: p.into(),
            display_name: p.to_uppercase(),
            status: status as i32,
            ..Default::default()
        })
        .await
        .expect("principal");
    }
    for team in ["finance", "auditors"] {
        op.create_team(pb::CreateTeamRequest {
            tenant_id: t.into(),
            actor_id: ada("ada"),
            team_id: team.into(),
            display_name: team.into(),
            ..Default::default()
        })
        .await
        .expect("team");
    }
    for (team, member) in [
        ("finance", "bob"),
        ("auditors", "carol"),
        ("finance", "team:auditors"),
    ] {
        op.add_team_member(pb::AddTeamMemberRequest {
            tenant_id: t.into(),
            actor_id: ada("ada"),
            team_id: team.into(),
            member: Some(subj(member)),
            ..Default::default()
        })
        .await
        .expect("member");
    }
    op.create_role(pb::CreateRoleRequest {
        tenant_id: t.into(),
        actor_id: ada("ada"),
        role: Some(pb::Role {
            id: "runner".into(),
            display_name: "Runner".into(),
            permissions: vec!["workflow.execute".into()],
            inherits: vec!["viewer".into()],
            effective_at: vec!["*".into()],
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("role");
    op.create_grant(grant("team:finance", "editor", "folder:billing", false))
        .await
        .expect("team grant");
    op.create_grant(grant("carol", "runner", "workspace:ops", false))
        .await
        .expect("runner");
    op.create_grant(grant("carol", "editor", "workflow:payroll", false))
        .await
        .expect("private grant");
    // Payroll acts on the bank connection: editing it needs editing that.
    op.set_resource_links(pb::SetResourceLinksRequest {
        tenant_id: t.into(),
        resource: Some(res("workflow:payroll")),
        links: vec![link(("connection:bank", "edit", &["edit"]))],
        ..Default::default()
    })
    .await
    .expect("link");
    op.create_grant(grant("bob", "editor", "connection:bank", true))
        .await
        .expect("deny");
    op.create_grant(pb::CreateGrantRequest {
        condition: "request.mfa == true && resource.region == 'eu'".into(),
        ..grant("carol", "editor", "connection:bank", false)
    })
    .await
    .expect("conditional grant");
    op.create_grant(pb::CreateGrantRequest {
        expire_time: Some(prost_types::Timestamp {
            seconds: 4_102_444_800,
            nanos: 0,
        }),
        ..grant("dave", "viewer", "workspace:ops", false)
    })
    .await
    .expect("expiring");
    op.set_principal_status(pb::SetPrincipalStatusRequest {
        tenant_id: t.into(),
        actor_id: ada("ada"),
        principal_id: "carol".into(),
        status: pb::PrincipalStatus::Suspended as i32,
        ..Default::default()
    })
    .await
    .expect("suspend");
    op.set_principal_status(pb::SetPrincipalStatusRequest {
        tenant_id: t.into(),
        actor_id: ada("ada"),
        principal_id: "carol".into(),
        status: pb::PrincipalStatus::Active as i32,
        ..Default::default()
    })
    .await
    .expect("reactivate");
}

const PEOPLE: &[&str] = &["ada", "bob", "carol", "dave", "nobody"];
const ACTIONS: &[&str] = &["view", "edit", "execute", "delete", "share", "manage"];
const RESOURCES: &[&str] = &[
    "workspace:ops",
    "folder:billing",
    "workflow:invoice-sync",
    "workflow:payroll",
    "connection:bank",
    "workflow:nowhere",
];
const TYPES: &[&str] = &["workspace", "folder", "workflow", "connection"];

/// Every answer of the tenant to the questions above: checks (allowed and
/// reason), lists and subject lists.
async fn answers(c: &Client, t: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in PEOPLE {
        for a in ACTIONS {
            for r in RESOURCES {
                let (rtype, id) = r.split_once(':').expect("type:id");
                let d = c
                    .check_request(pb::CheckRequest {
                        tenant_id: t.into(),
                        principal_id: (*p).into(),
                        action: (*a).into(),
                        resource: Some(pb::ResourceRef {
                            r#type: rtype.into(),
                            id: id.into(),
                        }),
                        ..Default::default()
                    })
                    .await
                    .expect("check");
                out.push(format!("check {p} {a} {r}: {} {}", d.allowed, d.reason));
                let m = c
                    .check_request(pb::CheckRequest {
                        tenant_id: t.into(),
                        principal_id: (*p).into(),
                        action: (*a).into(),
                        resource: Some(res(r)),
                        typed_context: Some(typed(serde_json::json!({"mfa": true}))),
                        ..Default::default()
                    })
                    .await
                    .expect("check with context");
                out.push(format!(
                    "check {p} {a} {r} with mfa: {} {}",
                    m.allowed, m.reason
                ));
            }
            for ty in TYPES {
                let l = c
                    .list_all_accessible(t, p, a, ty)
                    .await
                    .expect("list")
                    .resource_ids;
                out.push(format!("list {p} {a} {ty}: {l:?}"));
            }
        }
    }
    for r in RESOURCES {
        for a in ACTIONS {
            let s = c
                .list_subjects(pb::ListSubjectsRequest {
                    tenant_id: t.into(),
                    resource: Some(res(r)),
                    action: (*a).into(),
                    page_size: 1000,
                    ..Default::default()
                })
                .await
                .expect("subjects")
                .principal_ids;
            out.push(format!("subjects {a} {r}: {s:?}"));
        }
    }
    out
}

async fn exported_walkthrough_tenant_imported_as_another_answers_the_same(b: Backend) {
    let app = spawn_bare(b).await;
    walkthrough(&app, "acme").await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("acme.toml");
    let file_s = file.to_str().expect("utf-8");
    let o = cli(&app, &["tenant", "export", "acme", "-f", file_s]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&file).expect("exported file");
    assert!(text.contains("resource = \"workflow:payroll\"") && text.contains("private = true"));
    assert!(
        text.contains("resource = \"connection:bank\"") && text.contains("on = [\"edit\"]"),
        "{text}"
    );

    let o = cli(
        &app,
        &[
            "tenant", "import", file_s, "--tenant", "globex", "-o", "json",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let out = json(&o);
    assert_eq!(out["resources"], 5, "{out}");
    assert_eq!(out["principals"], 4, "{out}");
    assert_eq!(out["members"], 3, "{out}");

    let c = client(&app);
    let (a, g) = (answers(&c, "acme").await, answers(&c, "globex").await);
    assert_eq!(a.len(), g.len());
    for (x, y) in a.iter().zip(&g) {
        assert_eq!(x, y, "the imported tenant answers differently");
    }
    // Not a vacuous comparison: the tenant allows and denies, and lists.
    assert!(a
        .iter()
        .any(|l| l.starts_with("check bob edit workflow:invoice-sync: true")));
    assert!(a
        .iter()
        .any(|l| l.starts_with("check bob edit connection:bank: false")));
    assert!(a
        .iter()
        .any(|l| l.starts_with("check carol edit connection:bank with mfa: true")));
    assert!(a
        .iter()
        .any(|l| l.starts_with("check carol edit connection:bank: false")));
    assert!(
        text.contains("condition = \"request.mfa == true && resource.region == 'eu'\""),
        "{text}"
    );
    assert!(text.contains("region = \"eu\""), "{text}");
    assert!(a
        .iter()
        .any(|l| l == "list carol view workflow: [\"invoice-sync\", \"payroll\"]"));

    // And the second export is the first, but for the tenant's id.
    let again = dir.path().join("globex.toml");
    let o = cli(
        &app,
        &[
            "tenant",
            "export",
            "globex",
            "-f",
            again.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text2 = std::fs::read_to_string(&again).expect("second export");
    assert_eq!(
        text2.replace("id = \"globex\"", "id = \"acme\""),
        text,
        "export → import → export round-trips exactly"
    );

    // JSON files work the same way.
    let o = cli(&app, &["tenant", "export", "acme", "--json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json export");
    assert_eq!(v["version"], 1);
    assert_eq!(v["teams"][1]["teams"][0], "auditors", "{v}");
}

/// `tests/tenants/acme.toml` with carol made an editor of the billing
/// folder instead of a viewer of the private payroll workflow, and one new
/// workflow.
fn changed_example(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(example()).expect("example");
    let text = text
        .replace(
            "principal = \"carol\"\nrole = \"viewer\"\non = \"workflow:payroll\"",
            "principal = \"carol\"\nrole = \"editor\"\non = \"folder:billing\"",
        )
        .replace(
            "[[resources]]\nresource = \"project:ledger\"",
            "[[resources]]\nresource = \"workflow:refunds\"\nparent = \"folder:billing\"\n\n[[resources]]\nresource = \"project:ledger\"",
        );
    let path = dir.join("changed.toml");
    std::fs::write(&path, text).expect("write");
    path
}

async fn apply_dry_run_prints_the_plan_and_who_gains_or_loses_access(b: Backend) {
    let app = spawn_bare(b).await;
    let o = cli(
        &app,
        &["tenant", "import", example().to_str().expect("utf-8")],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = tempfile::tempdir().expect("dir");
    let changed = changed_example(dir.path());
    let changed = changed.to_str().expect("utf-8");
    let before = cli(&app, &["tenant", "export", "acme"]).await;

    let o = cli(&app, &["apply", changed, "--dry-run"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "Plan for tenant acme (revision 1): 3 changes",
        "{out}"
    );
    assert_eq!(
        &lines[1..4],
        &[
            "  + resource.create              workflow:refunds under folder:billing",
            "  + grant.create                 principal:carol editor on folder:billing",
            "  - grant.delete                 principal:carol viewer on workflow:payroll",
        ],
        "{out}"
    );
    assert!(lines.contains(&"Access: 34 gained, 1 lost"), "{out}");
    for expected in [
        "  - carol may no longer view workflow:payroll",
        "  + carol may edit workflow:invoice-sync",
        "  + bob may edit workflow:refunds",
        "  + ci-bot may execute workflow:refunds",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{out}");
    }
    // bob's deny on invoice-sync keeps him from editing it: no such line.
    assert!(!out.contains("bob may edit workflow:invoice-sync"), "{out}");
    assert_eq!(
        lines.last(),
        Some(&"Dry run: the apply would be accepted. Nothing was written.")
    );
    let after = cli(&app, &["tenant", "export", "acme"]).await;
    assert_eq!(stdout(&before), stdout(&after), "a dry run writes nothing");

    // Each change is authorized as the actor: ada administers the tenant
    // but may not share inside the private payroll workflow, so the third
    // change (revoking carol's grant there) is refused, and said why.
    let o = cli(
        &app,
        &[
            "apply",
            changed,
            "--dry-run",
            "--actor",
            "ada",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["applied"], false);
    let rejection = v["rejection"].as_str().expect("rejection");
    assert!(
        rejection.starts_with("PermissionDenied")
            && rejection
                .contains("change 3 (grant.delete principal:carol viewer on workflow:payroll)"),
        "{rejection}"
    );
    let o = cli(&app, &["apply", changed, "--actor", "ada"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("PermissionDenied"), "{}", stderr(&o));
    // bob may not even plan: a plan shows the whole tenant.
    let o = cli(&app, &["apply", changed, "--dry-run", "--actor", "bob"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("needs tenant.manage"), "{}", stderr(&o));
    let after = cli(&app, &["tenant", "export", "acme"]).await;
    assert_eq!(
        stdout(&before),
        stdout(&after),
        "a refused apply writes nothing"
    );

    // Applied as the operator: the tenant is the file, in one revision.
    let o = cli(&app, &["apply", changed, "-o", "json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["applied"], true);
    assert_eq!(v["consistency_token"], "2");
    let c = client(&app);
    assert!(c
        .check("acme", "carol", "edit", "workflow", "invoice-sync")
        .await
        .expect("check"));
    assert!(!c
        .check("acme", "carol", "view", "workflow", "payroll")
        .await
        .expect("check"));
    let o = cli(&app, &["apply", changed, "--dry-run"]).await;
    let out = stdout(&o);
    assert!(
        out.starts_with("Plan for tenant acme (revision 2): 0 changes\nAccess: 0 gained, 0 lost"),
        "{out}"
    );
    let events = app
        .operator()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner()
        .events;
    assert_eq!(events[0].action, "tenant.apply");
    assert!(events[0]
        .after_json
        .contains("principal:carol editor on folder:billing"));
}

#[test]
fn portcullis_test_passes_and_fails_on_purpose_built_files() {
    let ok = run(&["test", example().to_str().expect("utf-8")], &[]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(
        stdout(&ok).ends_with("8 assertions, 0 failed\n"),
        "{}",
        stdout(&ok)
    );

    let dir = tempfile::tempdir().expect("dir");
    // A sibling file of assertions, two of them wrong.
    let sibling = dir.path().join("acme.test.toml");
    std::fs::copy(example(), dir.path().join("acme.toml")).expect("copy");
    std::fs::write(
        &sibling,
        r#"version = 1
tenant_file = "acme.toml"

[[assertions]]
check = "bob may edit workflow:invoice-sync"

[[assertions]]
check = "carol may view workflow:payroll"

[[assertions]]
list = "bob may view workflow"
expect = ["invoice-sync", "payroll"]
"#,
    )
    .expect("write");
    let o = run(&["test", sibling.to_str().expect("utf-8")], &[]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("  FAIL bob may edit workflow:invoice-sync: denied (ExplicitDeny)"),
        "{out}"
    );
    assert!(
        out.contains("  ok   carol may view workflow:payroll"),
        "{out}"
    );
    assert!(
        out.contains("  FAIL bob may view workflow: got [invoice-sync]"),
        "{out}"
    );
    assert!(out.ends_with("3 assertions, 2 failed\n"), "{out}");

    // Conditions and attributes in a file, assertions with a context.
    let conditional = dir.path().join("conditional.toml");
    std::fs::write(
        &conditional,
        r#"version = 1
[tenant]
id = "flows"
display_name = "Flows"

[[principals]]
id = "ada"
[[principals]]
id = "bob"

[[resources]]
resource = "workspace:w"
[[resources]]
resource = "alert_settings:bob"
parent = "workspace:w"
attributes = { user = "bob" }

[[roles]]
id = "settings_editor"
permissions = ["alert_settings.edit"]
condition = "resource.user == subject.id"

[[grants]]
principal = "ada"
role = "account_admin"
[[grants]]
principal = "ada"
role = "admin"
on = "workspace:w"
condition = "request.mfa == true"
[[grants]]
principal = "bob"
role = "settings_editor"
on = "workspace:w"

[[assertions]]
check = "ada may edit workspace:w"
context = { mfa = true }
[[assertions]]
check = "ada may not edit workspace:w"
[[assertions]]
check = "bob may edit alert_settings:bob"
[[assertions]]
who_may = "edit alert_settings:bob"
expect = ["bob"]
context = { mfa = false }
[[assertions]]
check = "ada may edit alert_settings:bob"
"#,
    )
    .expect("write");
    let o = run(&["test", conditional.to_str().expect("utf-8")], &[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("  ok   ada may not edit workspace:w"), "{out}");
    assert!(
        out.contains("  FAIL ada may edit alert_settings:bob: denied (ConditionContextMissing)"),
        "{out}"
    );
    assert!(out.ends_with("5 assertions, 1 failed\n"), "{out}");
    // A condition that is not CEL is refused when the file is loaded.
    std::fs::write(
        &conditional,
        std::fs::read_to_string(&conditional)
            .expect("read")
            .replace("request.mfa == true", "request.mfa ="),
    )
    .expect("write");
    let o = run(
        &["test", conditional.to_str().expect("utf-8"), "-o", "json"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("condition"), "{all}");

    // A tenant the import rules refuse: teams inside each other.
    let broken = dir.path().join("broken.toml");
    let text = std::fs::read_to_string(example()).expect("example").replace(
        "[[teams]]\nid = \"finance\"\ndisplay_name = \"Finance\"\nmembers = [\"bob\"]",
        "[[teams]]\nid = \"finance\"\nmembers = [\"bob\"]\nteams = [\"audit\"]\n\n[[teams]]\nid = \"audit\"\nteams = [\"finance\"]",
    );
    std::fs::write(&broken, text).expect("write");
    let o = run(
        &["test", broken.to_str().expect("utf-8"), "-o", "json"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["passed"], false);
    let load = v["files"][0]["load_error"].as_str().expect("load error");
    assert!(load.contains("team_cycle"), "{load}");

    // A malformed assertion is an error naming it.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\ntenant_file = \"acme.toml\"\n[[assertions]]\ncheck = \"bob can view workflow:x\"\n",
    )
    .expect("write");
    let o = run(&["test", bad.to_str().expect("utf-8")], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("assertions[0]"), "{}", stderr(&o));

    // An unknown key in a tenant file is an error, not ignored.
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "version = 1\n[tenant]\ndisplay_nmae = \"x\"\n").expect("write");
    let o = run(&["test", typo.to_str().expect("utf-8")], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("display_nmae"), "{}", stderr(&o));
}

#[test]
fn the_json_schema_describes_the_tenant_file() {
    let o = run(&["tenant", "schema"], &[]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("schema is JSON");
    assert_eq!(v["title"], "TenantFile");
    let props = v["properties"].as_object().expect("properties");
    for key in [
        "version",
        "tenant",
        "roles",
        "principals",
        "teams",
        "resources",
        "grants",
        "assertions",
    ] {
        assert!(props.contains_key(key), "schema lacks {key}");
    }
    assert_eq!(v["additionalProperties"], false, "unknown keys are refused");
}

/// One import stream: the header, then each record set as a message.
fn import_stream(
    tenant: &str,
    settings: pb::Tenant,
    records: Vec<pb::TenantRecords>,
) -> Vec<pb::ImportTenantRequest> {
    use pb::import_tenant_request::Part;
    std::iter::once(pb::ImportTenantRequest {
        part: Some(Part::Header(pb::ImportHeader {
            tenant_id: tenant.into(),
            settings: Some(settings),
            request_id: String::new(),
        })),
    })
    .chain(records.into_iter().map(|r| pb::ImportTenantRequest {
        part: Some(Part::Records(r)),
    }))
    .collect()
}

fn settings() -> pb::Tenant {
    pb::Tenant {
        display_name: "Imported".into(),
        single_owner_types: vec!["project".into()],
        ..Default::default()
    }
}

fn principal(id: &str) -> pb::Principal {
    pb::Principal {
        id: id.into(),
        display_name: id.into(),
        status: pb::PrincipalStatus::Active as i32,
        ..Default::default()
    }
}

fn resource(r: &str, parent: Option<&str>) -> pb::Resource {
    pb::Resource {
        r#ref: Some(res(r)),
        parent: parent.map(res),
        ..Default::default()
    }
}

fn grant(s: &str, role: &str, on: &str) -> pb::Grant {
    pb::Grant {
        subject: Some(subj(s)),
        role_id: role.into(),
        scope: scope(on),
        ..Default::default()
    }
}

/// A valid tenant's records.
fn valid() -> pb::TenantRecords {
    pb::TenantRecords {
        principals: vec![principal("boss"), principal("ann")],
        teams: vec![pb::Team {
            id: "t1".into(),
            display_name: "T1".into(),
        }],
        members: vec![pb::TeamMember {
            team_id: "t1".into(),
            member: Some(subj("ann")),
        }],
        resources: vec![
            resource("workspace:w", None),
            resource("project:p", Some("workspace:w")),
        ],
        grants: vec![
            grant("boss", "account_admin", "tenant"),
            grant("ann", "owner", "project:p"),
        ],
        ..Default::default()
    }
}

async fn an_import_that_breaks_a_rule_writes_nothing(b: Backend) {
    let app = spawn_bare(b).await;
    let mut ts = tenants(&app, OPERATOR_KEY);
    type Breaker = fn(&mut pb::TenantRecords);
    let cases: Vec<(&str, Code, &str, Breaker)> = vec![
        (
            "a child before its parent",
            Code::NotFound,
            "parent `workspace:w`",
            |r| r.resources.reverse(),
        ),
        (
            "a duplicate resource",
            Code::AlreadyExists,
            "resource `workspace:w`",
            |r| r.resources.push(resource("workspace:w", None)),
        ),
        (
            "teams inside each other",
            Code::FailedPrecondition,
            "team_cycle",
            |r| {
                r.teams.push(pb::Team {
                    id: "t2".into(),
                    display_name: "T2".into(),
                });
                r.members.push(pb::TeamMember {
                    team_id: "t1".into(),
                    member: Some(subj("team:t2")),
                });
                r.members.push(pb::TeamMember {
                    team_id: "t2".into(),
                    member: Some(subj("team:t1")),
                });
            },
        ),
        (
            "two owners of a single-owner project",
            Code::FailedPrecondition,
            "single_owner",
            |r| r.grants.push(grant("boss", "owner", "project:p")),
        ),
        (
            "no owner of a single-owner project",
            Code::FailedPrecondition,
            "single_owner",
            |r| r.grants.retain(|g| g.role_id != "owner"),
        ),
        (
            "no account administrator",
            Code::FailedPrecondition,
            "last_account_admin",
            |r| r.grants.retain(|g| g.role_id != "account_admin"),
        ),
        (
            "a suspended only administrator",
            Code::FailedPrecondition,
            "last_account_admin",
            |r| r.principals[0].status = pb::PrincipalStatus::Suspended as i32,
        ),
        (
            "a predefined role redefined",
            Code::FailedPrecondition,
            "locked_role",
            |r| {
                r.roles.push(pb::Role {
                    id: "admin".into(),
                    display_name: "x".into(),
                    permissions: vec!["*.*".into()],
                    effective_at: vec!["*".into()],
                    ..Default::default()
                })
            },
        ),
        (
            "a grant of an unknown role",
            Code::NotFound,
            "role `ghost`",
            |r| r.grants.push(grant("ann", "ghost", "tenant")),
        ),
        (
            "a grant to a principal not in the tenant",
            Code::NotFound,
            "subject",
            |r| r.grants.push(grant("stranger", "viewer", "tenant")),
        ),
        (
            "a grant on a resource not in the tenant",
            Code::NotFound,
            "scope",
            |r| r.grants.push(grant("ann", "viewer", "workspace:elsewhere")),
        ),
        (
            "a reserved principal id",
            Code::InvalidArgument,
            "principals[",
            |r| r.principals.push(principal("super_user")),
        ),
        (
            "a tree deeper than the limit",
            Code::InvalidArgument,
            "levels deep",
            |r| {
                let mut parent = "workspace:w".to_owned();
                for i in 0..40 {
                    let me = format!("folder:f{i}");
                    r.resources.push(resource(&me, Some(&parent)));
                    parent = me;
                }
            },
        ),
    ];
    for (what, code, says, breaker) in cases {
        let mut r = valid();
        breaker(&mut r);
        let s = ts
            .import_tenant(tokio_stream::iter(import_stream(
                "imp",
                settings(),
                vec![r],
            )))
            .await
            .expect_err(what);
        assert_eq!(s.code(), code, "{what}: {s:?}");
        assert!(
            s.message().contains(says) || format!("{:?}", s.details()).contains(says),
            "{what}: {s:?}"
        );
        let gone = app
            .operator()
            .get_tenant(pb::GetTenantRequest {
                tenant_id: "imp".into(),
                actor_id: String::new(),
            })
            .await;
        assert_eq!(code_of(gone), Code::NotFound, "{what}: nothing was written");
    }
    // The valid one, split over several messages, imports; again is refused.
    let mut parts = valid();
    let grants = std::mem::take(&mut parts.grants);
    let r = ts
        .import_tenant(tokio_stream::iter(import_stream(
            "imp",
            settings(),
            vec![
                parts,
                pb::TenantRecords {
                    grants,
                    ..Default::default()
                },
            ],
        )))
        .await
        .expect("valid import")
        .into_inner();
    assert_eq!(r.counts.expect("counts").resources, 2);
    let again = ts
        .import_tenant(tokio_stream::iter(import_stream(
            "imp",
            settings(),
            vec![valid()],
        )))
        .await;
    assert_eq!(code_of(again), Code::AlreadyExists);
    // A retried import (same request id, same records) gets the first
    // answer again; the id reused for other records is refused.
    let with_id = |tenant: &str, id: &str, r: pb::TenantRecords| {
        let mut stream = import_stream(tenant, settings(), vec![r]);
        if let Some(pb::import_tenant_request::Part::Header(h)) = &mut stream[0].part {
            h.request_id = id.into();
        }
        tokio_stream::iter(stream)
    };
    let first = ts
        .import_tenant(with_id("imp3", "req-1", valid()))
        .await
        .expect("first attempt")
        .into_inner();
    let again = ts
        .import_tenant(with_id("imp3", "req-1", valid()))
        .await
        .expect("a retry is answered")
        .into_inner();
    assert_eq!(first, again);
    let mut other = valid();
    other.principals.push(principal("zoe"));
    let reused = ts.import_tenant(with_id("imp3", "req-1", other)).await;
    assert_eq!(code_of(reused), Code::FailedPrecondition);
    // Only operator keys import.
    let refused = tenants(&app, ADMIN_KEY)
        .import_tenant(tokio_stream::iter(import_stream(
            "imp2",
            settings(),
            vec![valid()],
        )))
        .await;
    assert_eq!(code_of(refused), Code::PermissionDenied);
    // A header first, and only first.
    let headless = ts
        .import_tenant(tokio_stream::iter(vec![pb::ImportTenantRequest {
            part: Some(pb::import_tenant_request::Part::Records(valid())),
        }]))
        .await;
    assert_eq!(code_of(headless), Code::InvalidArgument);
}

fn code_of<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}

async fn export_and_apply_are_authorized_as_the_actor(b: Backend) {
    let app = spawn_bare(b).await;
    walkthrough(&app, "acme").await;
    let mut ts = tenants(&app, ADMIN_KEY);
    let export = |actor: &str| pb::ExportTenantRequest {
        tenant_id: "acme".into(),
        actor_id: actor.into(),
    };
    let refused = ts.export_tenant(export("bob")).await;
    assert_eq!(
        code_of(refused),
        Code::PermissionDenied,
        "bob lacks tenant.manage"
    );
    let mut s = ts
        .export_tenant(export("ada"))
        .await
        .expect("ada exports")
        .into_inner();
    assert!(s.message().await.expect("header").is_some());
    let without_actor = ts.export_tenant(export("")).await;
    assert!(
        without_actor.is_ok(),
        "an admin key without an actor reads as the platform"
    );

    // bob, an editor of the billing folder, writes himself a file where he
    // is an account administrator: each change is his, so it is refused.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("acme.toml");
    let o = cli(
        &app,
        &[
            "tenant",
            "export",
            "acme",
            "-f",
            file.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let mut text = std::fs::read_to_string(&file).expect("file");
    text.push_str("\n[[grants]]\nprincipal = \"bob\"\nrole = \"account_admin\"\n");
    std::fs::write(&file, &text).expect("write");
    let o = cli_as(
        &app,
        ADMIN_KEY,
        &["apply", file.to_str().expect("utf-8"), "--actor", "bob"],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("PermissionDenied"), "{}", stderr(&o));
    let grants = app
        .operator()
        .list_grants(pb::ListGrantsRequest {
            tenant_id: "acme".into(),
            subject: Some(subj("bob")),
            ..Default::default()
        })
        .await
        .expect("grants")
        .into_inner()
        .grants;
    assert!(
        grants.iter().all(|g| g.role_id != "account_admin"),
        "{grants:?}"
    );
}

async fn a_deleted_tenant_is_forgotten_everywhere_and_its_id_starts_after_it(b: Backend) {
    let app = spawn_bare(b).await;
    let o = cli(
        &app,
        &["tenant", "import", example().to_str().expect("utf-8")],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    // A second replica on the same database, its cache and index warm.
    let mut cfg = test_config(&app.database_url);
    cfg.cache.poll_interval_ms = 100;
    let (_, other, stop, _) = serve(&cfg, false).await;
    let other_client =
        Client::from_channel(other, OPERATOR_KEY, RetryPolicy::default()).expect("client");
    assert!(other_client
        .check("acme", "bob", "view", "workflow", "invoice-sync")
        .await
        .expect("warm"));

    let o = cli(&app, &["tenant", "delete", "acme", "--yes", "-o", "json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let deleted_at: i64 = json(&o)["consistency_token"]
        .as_str()
        .expect("token")
        .parse()
        .expect("revision");
    let reason = |c: &Client| {
        let c = c.clone();
        async move {
            c.check_request(pb::CheckRequest {
                tenant_id: "acme".into(),
                principal_id: "bob".into(),
                action: "view".into(),
                resource: Some(res("workflow:invoice-sync")),
                ..Default::default()
            })
            .await
            .expect("check")
            .reason
        }
    };
    let here = client(&app);
    assert_eq!(
        reason(&here).await,
        pb::Reason::UnknownTenant as i32,
        "this replica forgot at once"
    );
    let mut waited = 0;
    while reason(&other_client).await != pb::Reason::UnknownTenant as i32 {
        waited += 50;
        assert!(
            waited < 5_000,
            "the other replica still answers for the deleted tenant"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The same id again, with bob in no team: the new tenant continues
    // after the deleted one, and no replica answers from the old one.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("acme.toml");
    let text = std::fs::read_to_string(example())
        .expect("example")
        .replace("members = [\"bob\"]", "members = []");
    std::fs::write(&file, text).expect("write");
    let o = cli(
        &app,
        &[
            "tenant",
            "import",
            file.to_str().expect("utf-8"),
            "-o",
            "json",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let created_at: i64 = json(&o)["consistency_token"]
        .as_str()
        .expect("token")
        .parse()
        .expect("revision");
    assert_eq!(created_at, deleted_at + 1);
    for c in [&here, &other_client] {
        let d = c
            .check_request(pb::CheckRequest {
                tenant_id: "acme".into(),
                principal_id: "bob".into(),
                action: "view".into(),
                resource: Some(res("workflow:invoice-sync")),
                consistency_token: created_at.to_string(),
                ..Default::default()
            })
            .await
            .expect("check");
        assert!(
            !d.allowed,
            "a replica answered from the deleted tenant: {d:?}"
        );
        assert_eq!(d.reason, pb::Reason::NoGrant as i32);
    }
    // The deletion is in the audit trail of the id.
    let events = app
        .operator()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner()
        .events;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["tenant.import", "tenant.delete"], "{events:?}");
    drop(stop);
}

async fn erasure_replaces_a_name_in_the_record_and_the_whole_audit_trail(b: Backend) {
    let app = spawn_app_on(b).await;
    let name = "Zed Secretname";
    app.operator()
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: "zed".into(),
            status: pb::PrincipalStatus::Active as i32,
            display_name: name.into(),
            ..Default::default()
        })
        .await
        .expect("zed");
    app.team("crew").await;
    app.add_member("crew", "zed").await.expect("member");
    app.resource("workspace:w", None).await;
    app.grant("zed", "viewer", "workspace:w").await;
    app.set_status(ADMIN, "zed", pb::PrincipalStatus::Suspended)
        .await
        .expect("suspend");
    let audit = |app: &TestApp| {
        let mut op = app.operator();
        async move {
            op.list_audit_events(pb::ListAuditEventsRequest {
                tenant_id: TENANT.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("audit")
            .into_inner()
            .events
        }
    };
    let before = audit(&app).await;
    assert!(
        before.iter().any(|e| e.after_json.contains("Secretname")),
        "the name is in the trail to begin with"
    );
    // A member without manage_members may not.
    app.user("nosy").await;
    let refused = tenants(&app, ADMIN_KEY)
        .erase_principal(pb::ErasePrincipalRequest {
            tenant_id: TENANT.into(),
            actor_id: "nosy".into(),
            principal_id: "zed".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(refused), Code::PermissionDenied);

    let r = tenants(&app, ADMIN_KEY)
        .erase_principal(pb::ErasePrincipalRequest {
            tenant_id: TENANT.into(),
            actor_id: ADMIN.into(),
            principal_id: "zed".into(),
            ..Default::default()
        })
        .await
        .expect("erase")
        .into_inner();
    assert!(r.pseudonym.starts_with("erased-"), "{r:?}");
    assert!(r.rewritten_audit_events >= 1, "{r:?}");
    let after = audit(&app).await;
    for e in &after {
        assert!(
            !e.before_json.contains("Secretname") && !e.after_json.contains("Secretname"),
            "the name survives in {e:?}"
        );
    }
    assert_eq!(after[0].action, "principal.erase");
    assert_eq!(after[0].actor, ADMIN);
    assert!(after
        .iter()
        .any(|e| e.after_json.contains(&r.pseudonym) && e.action == "principal.create"));
    let p = app
        .operator()
        .get_principal(pb::GetPrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: "zed".into(),
            actor_id: String::new(),
        })
        .await
        .expect("principal")
        .into_inner()
        .principal
        .expect("principal");
    assert_eq!(p.display_name, r.pseudonym);
    assert_eq!(
        p.status,
        pb::PrincipalStatus::Suspended as i32,
        "only the name changes"
    );
    // Nor does the export show it.
    let o = cli(&app, &["tenant", "export", TENANT]).await;
    assert!(!stdout(&o).contains("Secretname"));
}

on_every_backend!(
    exported_walkthrough_tenant_imported_as_another_answers_the_same,
    apply_dry_run_prints_the_plan_and_who_gains_or_loses_access,
    an_import_that_breaks_a_rule_writes_nothing,
    export_and_apply_are_authorized_as_the_actor,
    a_deleted_tenant_is_forgotten_everywhere_and_its_id_starts_after_it,
    erasure_replaces_a_name_in_the_record_and_the_whole_audit_trail,
);
