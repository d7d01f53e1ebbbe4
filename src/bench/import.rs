//! `portcullis bench --scenario import`: how fast `ImportTenant` loads a
//! tenant through the real server (the records streamed over gRPC as the
//! CLI streams a file, checked by the import rules, written in one
//! transaction), into an empty database.

use super::dataset::{self, Shape};
use super::{start_server, Row, TENANT};
use crate::client::Bearer;
use crate::grpc::pb;
use crate::model::{Effect, Scope};
use crate::store::sql::BulkTenant;
use std::collections::HashMap;
use std::time::Instant;

/// The dataset as the records of an import.
fn records(b: &BulkTenant) -> pb::TenantRecords {
    let refs: HashMap<i64, pb::ResourceRef> = b
        .resources
        .iter()
        .map(|r| (r.pk, r.resource.clone().into()))
        .collect();
    pb::TenantRecords {
        roles: Vec::new(),
        principals: b.principals.iter().cloned().map(Into::into).collect(),
        teams: b
            .teams
            .iter()
            .map(|(id, _)| pb::Team {
                id: id.clone(),
                display_name: id.clone(),
            })
            .collect(),
        members: b
            .teams
            .iter()
            .flat_map(|(id, ms)| {
                ms.iter().map(move |m| pb::TeamMember {
                    team_id: id.clone(),
                    member: Some(m.clone().into()),
                })
            })
            .collect(),
        resources: b
            .resources
            .iter()
            .map(|r| pb::Resource {
                links: Default::default(),
                r#ref: Some(r.resource.clone().into()),
                parent: r.parent_pk.and_then(|p| refs.get(&p).cloned()),
                private: r.private,
                create_time: None,
                attributes: Default::default(),
                restricted: false,
            })
            .collect(),
        grants: b
            .grants
            .iter()
            .map(|(g, _)| {
                let mut p: pb::Grant = g.clone().into();
                p.id = String::new();
                p.create_time = None;
                if g.scope == Scope::Tenant {
                    p.scope = None;
                }
                if g.effect == Effect::Deny {
                    p.effect = pb::Effect::Deny as i32;
                }
                p
            })
            .collect(),
    }
}

/// Imports the dataset of `shape` into the empty database at `url` through
/// a server started on it; one row per import.
pub async fn run(shape: Shape, url: &str, core: Option<usize>) -> Result<Vec<Row>, String> {
    let data = dataset::generate(TENANT, shape, 0, 42);
    let all = records(&data.bulk);
    let resources = all.resources.len();
    let total =
        resources + all.principals.len() + all.teams.len() + all.members.len() + all.grants.len();
    let key = crate::auth::generate_key();
    let server = start_server(url, &key, core)?;
    let bearer = Bearer::new(&key).ok_or("bad key")?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut client =
        pb::tenant_service_client::TenantServiceClient::with_interceptor(channel, bearer)
            .max_encoding_message_size(crate::app::MAX_TENANT_MESSAGE_BYTES);
    let header = pb::ImportTenantRequest {
        part: Some(pb::import_tenant_request::Part::Header(pb::ImportHeader {
            tenant_id: TENANT.to_owned(),
            settings: Some(pb::Tenant {
                display_name: "Bench".to_owned(),
                single_owner_types: vec!["project".to_owned()],
                ..Default::default()
            }),
            request_id: String::new(),
        })),
    };
    let messages: Vec<pb::ImportTenantRequest> = std::iter::once(header)
        .chain(
            crate::cli::split(all, 5_000)
                .into_iter()
                .map(|r| pb::ImportTenantRequest {
                    part: Some(pb::import_tenant_request::Part::Records(r)),
                }),
        )
        .collect();
    let started = Instant::now();
    let r = client
        .import_tenant(tokio_stream::iter(messages))
        .await
        .map_err(|s| format!("import: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    let secs = started.elapsed().as_secs_f64();
    let (hwm, _) = server.memory();
    let c = r.counts.unwrap_or_default();
    Ok(vec![Row {
        name: format!("import {resources} resources ({total} records)"),
        calls: 1,
        per_second: resources as f64 / secs,
        latencies: vec![(secs * 1e6) as u32],
        note: format!(
            "{:.1} s; {:.0} records/s; {} principals, {} memberships, {} grants; server peak RSS {} MiB",
            secs,
            total as f64 / secs,
            c.principals,
            c.members,
            c.grants,
            hwm / 1024
        ),
    }])
}
