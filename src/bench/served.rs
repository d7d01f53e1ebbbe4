//! Phases of the standard scenario added with the permission index (issue
//! 11), all through the server: the tenant's first call (its index built
//! from the database), ListAccessible pages of 100 and paging through a
//! tenant-wide list at 1,000 a page, a tenant-wide viewer denied on every
//! workspace (zero results), and checks at 64 in flight while 1% of the
//! calls are writes (grants made and revoked) as in SpiceDB's published
//! mixed benchmark.

use super::{check_load, check_req, row, Client, Dataset, Lister, Row, TENANT};
use crate::auth::Bearer;
use crate::grpc::pb;
use pb::admin_service_client::AdminServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

type Admin = AdminServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// The first call of the tenant after the server started: it builds the
/// tenant's index from the database.
pub(super) async fn first_call(data: &Dataset, c: &mut Client) -> Result<Row, String> {
    let start = Instant::now();
    // A tenant that takes longer to load than the server's call limit:
    // the build goes on without the caller, so ask again until it answers.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match c
            .check(check_req(&data.hot_users[0], &data.workflows[0], "view"))
            .await
        {
            Ok(_) => break,
            Err(s) if s.code() == tonic::Code::DeadlineExceeded && attempts < 10 => continue,
            Err(s) => return Err(s.to_string()),
        }
    }
    let took = start.elapsed();
    Ok(row(
        "First call of the tenant (index built from the database)",
        vec![took.as_micros() as u32],
        took,
        format!(
            "{} resources, {} principals; {attempts} call(s)",
            data.bulk.resources.len(),
            data.bulk.principals.len()
        ),
    ))
}

fn list_req(user: &str, page_size: u32, page_token: String) -> pb::ListAccessibleRequest {
    pb::ListAccessibleRequest {
        tenant_id: TENANT.into(),
        principal_id: user.into(),
        action: "view".into(),
        resource_type: "workflow".into(),
        page_size,
        page_token,
        ..Default::default()
    }
}

/// The user's first page of `page_size`, asked `times` times; each page's
/// length must pass `expect`. The latencies and the time it all took.
async fn first_pages(
    lister: &Lister,
    user: &str,
    page_size: u32,
    times: usize,
    expect: impl Fn(usize) -> Result<(), String>,
) -> Result<(Vec<u32>, Duration), String> {
    let mut l = lister.clone();
    let start = Instant::now();
    let mut lat = Vec::new();
    for _ in 0..times {
        let t = Instant::now();
        let page = l
            .list_accessible(list_req(user, page_size, String::new()))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        lat.push(t.elapsed().as_micros() as u32);
        expect(page.resource_ids.len())?;
    }
    Ok((lat, start.elapsed()))
}

/// The first page of 100 of the user's workflows, `times` times.
pub(super) async fn first_page(lister: &Lister, user: &str, times: usize) -> Result<Row, String> {
    let (lat, took) = first_pages(lister, user, 100, times, |n| match n {
        100 => Ok(()),
        n => Err(format!("a first page of {n}")),
    })
    .await?;
    Ok(row(
        "ListAccessible, first page of 100",
        lat,
        took,
        format!("user `{user}`"),
    ))
}

/// Pages through up to `upto` of the user's workflows at 1,000 a page,
/// `times` times; one latency per whole paging.
pub(super) async fn paging(
    lister: &Lister,
    user: &str,
    upto: usize,
    times: usize,
) -> Result<Row, String> {
    let mut l = lister.clone();
    let start = Instant::now();
    let mut lat = Vec::new();
    let (mut listed, mut pages) = (0, 0);
    for _ in 0..times {
        let t = Instant::now();
        let (mut token, mut n, mut p) = (String::new(), 0, 0);
        loop {
            let page = l
                .list_accessible(list_req(user, 1_000, token))
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            n += page.resource_ids.len();
            p += 1;
            token = page.next_page_token;
            if token.is_empty() || n >= upto {
                break;
            }
        }
        lat.push(t.elapsed().as_micros() as u32);
        (listed, pages) = (n, p);
    }
    Ok(row(
        &format!("ListAccessible, paging through {listed} at 1,000 a page"),
        lat,
        start.elapsed(),
        format!("user `{user}` (tenant-wide), {pages} pages per paging; latency per paging"),
    ))
}

/// Checks at 64 in flight while a writer makes and revokes grants of the
/// hot users at about 1% of the check rate (`writes_per_second`).
pub(super) async fn mixed(
    data: &Dataset,
    homes: &Arc<Vec<Vec<String>>>,
    client: &dyn Fn(usize) -> Client,
    admin: Admin,
    writes_per_second: f64,
    duration: Duration,
) -> Result<Row, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, users, workflows) =
            (stop.clone(), data.hot_users.clone(), data.workflows.clone());
        let mut admin = admin;
        let every = Duration::from_secs_f64(1.0 / writes_per_second.max(1.0));
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(11);
            let mut lat: Vec<u32> = Vec::new();
            let mut next = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let made = admin
                    .create_grant(pb::CreateGrantRequest {
                        tenant_id: TENANT.into(),
                        subject: Some(pb::SubjectRef {
                            kind: Some(pb::subject_ref::Kind::PrincipalId(
                                users[rng.random_range(0..users.len())].clone(),
                            )),
                        }),
                        role_id: "editor".into(),
                        scope: Some(pb::ResourceRef {
                            r#type: "workflow".into(),
                            id: workflows[rng.random_range(0..workflows.len())].clone(),
                        }),
                        effect: pb::Effect::Allow as i32,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                lat.push(t.elapsed().as_micros() as u32);
                next += every;
                tokio::time::sleep_until(next.into()).await;
                let t = Instant::now();
                let id = made.grant.map(|g| g.id).unwrap_or_default();
                admin
                    .delete_grant(pb::DeleteGrantRequest {
                        tenant_id: TENANT.into(),
                        grant_id: id,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                lat.push(t.elapsed().as_micros() as u32);
                next += every;
                tokio::time::sleep_until(next.into()).await;
            }
            Ok::<_, String>(lat)
        })
    };
    let checks = check_load(data, homes, client, 64, duration).await;
    stop.store(true, Ordering::SeqCst);
    let mut writes = writer.await.map_err(|e| e.to_string())??;
    let mut checks = checks?;
    writes.sort_unstable();
    let pct = |p: f64| {
        writes
            .get(((writes.len() as f64 * p) as usize).min(writes.len().saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    checks.name = "Check, 64 in flight, with 1% writes".into();
    checks.note = format!(
        "{}; {} writes ({:.2}% of calls), write p50 {:.1} ms, p99 {:.1} ms",
        checks.note,
        writes.len(),
        100.0 * writes.len() as f64 / (writes.len() + checks.calls).max(1) as f64,
        pct(0.5),
        pct(0.99)
    );
    Ok(checks)
}

/// A new principal with a tenant-wide `viewer` grant and a `viewer` deny on
/// every workspace (made through the admin API): its list is empty, and
/// each call should cost the denies, not the tenant.
pub(super) async fn denied_everywhere(
    data: &Dataset,
    lister: &Lister,
    mut admin: Admin,
    times: usize,
) -> Result<Row, String> {
    const WHO: &str = "denied-everywhere";
    let e = |s: tonic::Status| s.to_string();
    admin
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: WHO.into(),
            kind: pb::PrincipalKind::User as i32,
            status: pb::PrincipalStatus::Active as i32,
            display_name: WHO.into(),
            ..Default::default()
        })
        .await
        .map_err(e)?;
    let grant = |scope: Option<pb::ResourceRef>, effect: pb::Effect| pb::CreateGrantRequest {
        tenant_id: TENANT.into(),
        subject: Some(pb::SubjectRef {
            kind: Some(pb::subject_ref::Kind::PrincipalId(WHO.into())),
        }),
        role_id: "viewer".into(),
        scope,
        effect: effect as i32,
        ..Default::default()
    };
    admin
        .create_grant(grant(None, pb::Effect::Allow))
        .await
        .map_err(e)?;
    let workspaces: Vec<&str> = data
        .bulk
        .resources
        .iter()
        .filter(|r| r.resource.rtype == "workspace")
        .map(|r| r.resource.id.as_str())
        .collect();
    for ws in &workspaces {
        let scope = pb::ResourceRef {
            r#type: "workspace".into(),
            id: (*ws).to_owned(),
        };
        admin
            .create_grant(grant(Some(scope), pb::Effect::Deny))
            .await
            .map_err(e)?;
    }
    let (lat, took) = first_pages(lister, WHO, 1_000, times, |n| match n {
        0 => Ok(()),
        n => Err(format!("{n} listed under the denies")),
    })
    .await?;
    Ok(row(
        "ListAccessible, tenant-wide viewer denied on every workspace",
        lat,
        took,
        format!("0 listed; {} denies", workspaces.len()),
    ))
}
