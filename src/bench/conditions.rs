//! `bench --scenario conditions`: what a condition costs a `Check`.
//!
//! A tenant with one workspace of 1,000 workflows and three users holding
//! `editor` on the workspace: `plain` without a condition, `mfa` with
//! `request.mfa == true`, `office` with `inCidr(request.ip, '10.0.0.0/8')`.
//! Every request carries the same typed context (`mfa`, `ip`), so the only
//! difference between the rows is the condition evaluated. The variants are
//! measured in alternating rounds (so that drift of the machine spreads over
//! all of them), through the served `Check` with 1 and with `concurrency`
//! requests in flight, then in-process: the engine's `decide` alone, where
//! nothing else hides the condition's cost.

use super::{row, start_server, Row, TENANT};
use crate::auth::Bearer;
use crate::engine::{decide, Question, Subject};
use crate::grpc::pb;
use crate::model::condition::RequestContext;
use crate::model::{
    Binding, Condition, Effect, Grant, Principal, PrincipalKind, PrincipalStatus, ResourceNode,
    ResourceRef, RoleTable, Scope, SubjectRef,
};
use pb::admin_service_client::AdminServiceClient;
use pb::check_service_client::CheckServiceClient;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKFLOWS: usize = 1_000;
/// Rounds of alternating variants.
const ROUNDS: usize = 3;

/// The users and their grant's condition.
const VARIANTS: [(&str, &str); 3] = [
    ("plain", ""),
    ("mfa", "request.mfa == true"),
    ("office", "inCidr(request.ip, '10.0.0.0/8')"),
];

type Client = CheckServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

/// Seeds the tenant through the admin API, then measures.
pub(super) async fn run(
    url: &str,
    core: Option<usize>,
    concurrency: usize,
    duration: Duration,
) -> Result<Vec<Row>, String> {
    let key = crate::auth::generate_key();
    let server = start_server(url, &key, core)?;
    let bearer = Bearer::new(&key).ok_or("bad key")?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut admin = AdminServiceClient::with_interceptor(channel.clone(), bearer.clone());
    seed(&mut admin).await?;
    let client = CheckServiceClient::with_interceptor(channel, bearer);

    let mut lat: Vec<Vec<Vec<u32>>> = vec![vec![Vec::new(); 2]; VARIANTS.len()];
    let mut took = vec![[Duration::ZERO; 2]; VARIANTS.len()];
    let slice = duration / (ROUNDS as u32 * 2);
    // Warm every path once.
    for (user, _) in VARIANTS {
        load(&client, user, 1, Duration::from_millis(300)).await?;
    }
    for _ in 0..ROUNDS {
        for (v, (user, _)) in VARIANTS.iter().enumerate() {
            for (k, inflight) in [1, concurrency.max(1)].into_iter().enumerate() {
                let t = Instant::now();
                lat[v][k].extend(load(&client, user, inflight, slice).await?);
                took[v][k] += t.elapsed();
            }
        }
    }
    let mut rows = Vec::new();
    for k in 0..2 {
        let inflight = if k == 0 { 1 } else { concurrency.max(1) };
        let base = lat[0][k].len() as f64 / took[0][k].as_secs_f64();
        for (v, (_, condition)) in VARIANTS.iter().enumerate() {
            let name = match *condition {
                "" => format!("Check, no condition, {inflight} in flight"),
                c => format!("Check, `{c}`, {inflight} in flight"),
            };
            let r = row(
                &name,
                std::mem::take(&mut lat[v][k]),
                took[v][k],
                String::new(),
            );
            let note = format!("{:.2}× the time of no condition", base / r.per_second);
            rows.push(Row { note, ..r });
        }
    }
    rows.extend(in_process());
    Ok(rows)
}

async fn seed(
    admin: &mut AdminServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
    >,
) -> Result<(), String> {
    let e = |e: tonic::Status| e.to_string();
    admin
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: TENANT.into(),
            display_name: "conditions".into(),
            first_admin: Some(pb::FirstAdmin {
                principal_id: "root".into(),
                kind: 0,
                display_name: "root".into(),
            }),
            ..Default::default()
        })
        .await
        .map_err(e)?;
    let r = |t: &str, id: &str| pb::ResourceRef {
        r#type: t.into(),
        id: id.into(),
    };
    admin
        .create_resource(pb::CreateResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(r("workspace", "w")),
            ..Default::default()
        })
        .await
        .map_err(e)?;
    for i in 0..WORKFLOWS {
        admin
            .create_resource(pb::CreateResourceRequest {
                tenant_id: TENANT.into(),
                resource: Some(r("workflow", &format!("wf{i}"))),
                parent: Some(r("workspace", "w")),
                ..Default::default()
            })
            .await
            .map_err(e)?;
    }
    for (user, condition) in VARIANTS {
        admin
            .create_principal(pb::CreatePrincipalRequest {
                tenant_id: TENANT.into(),
                principal_id: user.into(),
                kind: pb::PrincipalKind::User as i32,
                status: pb::PrincipalStatus::Active as i32,
                display_name: user.into(),
                ..Default::default()
            })
            .await
            .map_err(e)?;
        admin
            .create_grant(pb::CreateGrantRequest {
                tenant_id: TENANT.into(),
                subject: Some(pb::SubjectRef {
                    kind: Some(pb::subject_ref::Kind::PrincipalId(user.into())),
                }),
                role_id: "editor".into(),
                scope: Some(r("workspace", "w")),
                effect: pb::Effect::Allow as i32,
                condition: condition.into(),
                ..Default::default()
            })
            .await
            .map_err(e)?;
    }
    Ok(())
}

fn context() -> prost_types::Struct {
    use prost_types::value::Kind;
    let v = |k: Kind| prost_types::Value { kind: Some(k) };
    prost_types::Struct {
        fields: [
            ("mfa".to_owned(), v(Kind::BoolValue(true))),
            ("ip".to_owned(), v(Kind::StringValue("10.1.2.3".into()))),
        ]
        .into(),
    }
}

/// `inflight` loops of checks by `user` for `slice`; every answer must be an
/// allow (the condition holds), else the row would measure something else.
async fn load(
    client: &Client,
    user: &str,
    inflight: usize,
    slice: Duration,
) -> Result<Vec<u32>, String> {
    let deadline = Instant::now() + slice;
    let mut tasks = Vec::new();
    for t in 0..inflight {
        let mut c = client.clone();
        let user = user.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = t;
            while Instant::now() < deadline {
                i = (i + 7) % WORKFLOWS;
                let req = pb::CheckRequest {
                    tenant_id: TENANT.into(),
                    principal_id: user.clone(),
                    action: "edit".into(),
                    resource: Some(pb::ResourceRef {
                        r#type: "workflow".into(),
                        id: format!("wf{i}"),
                    }),
                    typed_context: Some(context()),
                    ..Default::default()
                };
                let s = Instant::now();
                let a = c.check(req).await.map_err(|e| e.to_string())?;
                lat.push(s.elapsed().as_micros() as u32);
                if !a.into_inner().allowed {
                    return Err(format!("{user} was denied: the benchmark is broken"));
                }
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.extend(t.await.map_err(|e| e.to_string())??);
    }
    Ok(out)
}

/// The engine alone: `decide` for one principal with one editor grant on
/// the workspace, with and without each condition, 200,000 times each.
fn in_process() -> Vec<Row> {
    const N: usize = 200_000;
    let p = Principal {
        id: "alice".into(),
        kind: PrincipalKind::User,
        status: PrincipalStatus::Active,
        display_name: String::new(),
        invitation_expires_at: None,
        created_at: 0,
    };
    let node = |t: &str, id: &str| ResourceNode {
        links: Default::default(),
        resource: ResourceRef {
            rtype: t.into(),
            id: id.into(),
        },
        private: false,
        restricted: false,
        attributes: None,
    };
    let path = [node("workflow", "wf1"), node("workspace", "w")];
    let roles = RoleTable::new(Vec::new());
    let mut out = Vec::new();
    let mut base = 0.0;
    for (_, condition) in VARIANTS {
        let grant = Grant {
            id: "g".into(),
            subject: SubjectRef::Principal("alice".into()),
            role_id: "editor".into(),
            scope: Scope::Resource(path[1].resource.clone()),
            effect: Effect::Allow,
            expires_at: None,
            condition: (!condition.is_empty())
                .then(|| Condition::compile("condition", condition).expect("bench condition")),
            created_at: 0,
        };
        let bindings = [Binding {
            grant: Arc::new(grant),
            via_teams: Vec::new(),
        }];
        let typed: std::collections::BTreeMap<String, serde_json::Value> = [
            ("mfa".to_owned(), serde_json::Value::Bool(true)),
            (
                "ip".to_owned(),
                serde_json::Value::String("10.1.2.3".into()),
            ),
        ]
        .into();
        let mut lat = Vec::with_capacity(N / 1_000);
        let started = Instant::now();
        for _ in 0..N / 1_000 {
            let t = Instant::now();
            for _ in 0..1_000 {
                // A context per request, as the server builds one.
                let ctx = RequestContext::new([], typed.clone()).expect("context");
                let q = Question {
                    rtype: "workflow",
                    action: "edit",
                    path: Some(&path),
                    context: &ctx,
                };
                let d = decide(Subject::Principal(Some(&p)), &bindings, &roles, q, 0);
                assert!(d.allowed, "the condition holds");
            }
            // Microseconds per 1,000 decisions = nanoseconds per decision.
            lat.push(t.elapsed().as_micros() as u32);
        }
        let elapsed = started.elapsed();
        let name = match condition {
            "" => "decide in process, no condition".to_owned(),
            c => format!("decide in process, `{c}`"),
        };
        let mut r = row(&name, lat, elapsed, String::new());
        r.calls = N;
        r.per_second = N as f64 / elapsed.as_secs_f64();
        if condition.is_empty() {
            base = r.per_second;
        }
        r.note = format!(
            "{:.0} ns per decision (latency columns: µs per 1,000); {:.2}× no condition",
            1e9 / r.per_second,
            base / r.per_second
        );
        out.push(r);
    }
    out
}
