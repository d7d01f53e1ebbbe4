//! Caller identity and the server's own limits, over real gRPC:
//! - TLS, and mutual TLS where a calling service is identified by its client
//!   certificate (URI or DNS name) instead of an API key;
//! - several keys active at once (rotation), keys limited to tenants;
//! - client request ids: a retried write is applied once;
//! - load shedding past `max_in_flight`, with health still answered;
//! - deadlines; the cache's capacity bounds what it holds.

use crate::helpers::*;
use crate::on_every_backend;
use pb::check_service_client::CheckServiceClient;
use portcullis::app::App;
use portcullis::config::{ApiKey, ClientIdentity, Config, KeyScope, Secret};
use portcullis::grpc::pb;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

// ---- certificates ------------------------------------------------------

/// A certificate authority made for the test.
pub(crate) struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA"),
        }
    }

    pub(crate) fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate with these DNS names, URI names and common name;
    /// (certificate PEM, key PEM).
    pub(crate) fn leaf(&self, dns: &[&str], uris: &[&str], cn: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(dns.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .expect("params");
        for u in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*u).try_into().expect("uri")));
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

struct TlsServer {
    addr: SocketAddr,
    ca: Ca,
    /// The certificates and the database; removed on drop.
    dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TlsServer {
    /// A server with TLS (server certificate for `localhost`); with
    /// `client_ca`, mutual TLS against it with these identities.
    async fn start(client_ca: Option<&Ca>, clients: Vec<ClientIdentity>, optional: bool) -> Self {
        Self::start_with(client_ca, clients, optional, |_| {}).await
    }

    /// [`TlsServer::start`], with `tweak` applied to its configuration.
    async fn start_with(
        client_ca: Option<&Ca>,
        clients: Vec<ClientIdentity>,
        optional: bool,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let ca = Ca::new("portcullis test server CA");
        let (cert, key) = ca.leaf(&["localhost"], &[], "portcullis");
        let write = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).expect("write pem");
            p
        };
        let url = fresh_database(&Backend::Sqlite, dir.path()).await;
        let mut cfg = test_config(&url);
        cfg.tls.cert_file = Some(write("server.pem", &cert));
        cfg.tls.key_file = Some(write("server.key", &key));
        if let Some(c) = client_ca {
            cfg.tls.client_ca_file = Some(write("clients-ca.pem", &c.pem()));
            cfg.tls.client_auth_optional = optional;
        }
        cfg.tls.clients = clients;
        tweak(&mut cfg);
        let (addr, stop) = serve_config(&cfg).await;
        TlsServer {
            addr,
            ca,
            dir,
            _stop: stop,
        }
    }

    /// A TLS channel trusting the server's CA, with an optional client
    /// certificate (PEM certificate, PEM key).
    async fn connect(&self, client: Option<&(String, String)>) -> Result<Channel, String> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca.pem()))
            .domain_name("localhost");
        if let Some((cert, key)) = client {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Endpoint::from_shared(format!("https://{}", self.addr))
            .expect("endpoint")
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("{e:?}"))
    }
}

fn identity(name: &str, subject: &str, scope: KeyScope, tenants: &[&str]) -> ClientIdentity {
    ClientIdentity {
        name: name.into(),
        subject: subject.into(),
        scope,
        tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
    }
}

async fn health(channel: Channel) -> Result<i32, tonic::Status> {
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status)
}

async fn bootstrap(channel: &Channel, tenant: &str) {
    let mut op = pb::admin_service_client::AdminServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(OPERATOR_KEY).expect("key"),
    );
    create_tenant(&mut op, tenant).await;
}

fn check_req(tenant: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        tenant_id: tenant.into(),
        principal_id: ADMIN.into(),
        action: "manage".into(),
        resource: Some(res("workspace:ws1")),
        ..Default::default()
    }
}

#[tokio::test]
async fn tls_serves_health_and_keys_and_refuses_plaintext() {
    let server = TlsServer::start(None, Vec::new(), false).await;
    let channel = server.connect(None).await.expect("TLS connect");
    assert_eq!(health(channel.clone()).await.expect("health"), 1);
    bootstrap(&channel, TENANT).await;
    let mut checker =
        CheckServiceClient::with_interceptor(channel, Bearer::new(CHECK_KEY).expect("key"));
    checker
        .check(check_req(TENANT))
        .await
        .expect("check over TLS");

    // A plaintext client gets no answer from the TLS port.
    let plain = Endpoint::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    assert!(health(plain).await.is_err(), "plaintext must not be served");
}

#[tokio::test]
async fn mutual_tls_identifies_services_by_certificate() {
    let clients_ca = Ca::new("clients CA");
    let server = TlsServer::start(
        Some(&clients_ca),
        vec![
            identity(
                "billing",
                "spiffe://cluster.local/ns/billing/sa/api",
                KeyScope::Check,
                &["acme"],
            ),
            identity(
                "ops-console",
                "ops.internal.example",
                KeyScope::Operator,
                &[],
            ),
        ],
        false,
    )
    .await;
    let ops = clients_ca.leaf(&["ops.internal.example"], &[], "ops");
    let billing = clients_ca.leaf(
        &[],
        &["spiffe://cluster.local/ns/billing/sa/api"],
        "billing",
    );
    let stranger = clients_ca.leaf(&["stranger.example"], &[], "stranger");
    let rogue_ca = Ca::new("rogue CA");
    let rogue = rogue_ca.leaf(&["ops.internal.example"], &[], "ops");

    // The operator identity (a DNS name) bootstraps two tenants with no key.
    let ops_channel = server.connect(Some(&ops)).await.expect("mTLS connect");
    let mut ops_admin = pb::admin_service_client::AdminServiceClient::new(ops_channel.clone());
    for t in ["acme", "globex"] {
        ops_admin
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: t.into(),
                display_name: t.into(),
                first_admin: Some(pb::FirstAdmin {
                    principal_id: ADMIN.into(),
                    kind: 0,
                    display_name: "Root".into(),
                }),
                ..Default::default()
            })
            .await
            .expect("operator identity creates a tenant");
    }
    // The audit trail names the certificate identity as the caller.
    let events = ops_admin
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner()
        .events;
    assert!(
        events.iter().any(|e| e.caller == "ops-console"),
        "audit names the certificate identity: {events:?}"
    );

    // The billing identity (a SPIFFE URI) checks in its tenant only.
    let billing_channel = server.connect(Some(&billing)).await.expect("mTLS connect");
    let mut billing_check = CheckServiceClient::new(billing_channel.clone());
    billing_check
        .check(check_req("acme"))
        .await
        .expect("billing checks in acme");
    let refused = billing_check.check(check_req("globex")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let mut billing_admin = pb::admin_service_client::AdminServiceClient::new(billing_channel);
    let refused = billing_admin
        .get_tenant(pb::GetTenantRequest {
            tenant_id: "acme".into(),
            actor_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "check scope only");

    // A certificate from the right CA naming no configured identity.
    let stranger_channel = server.connect(Some(&stranger)).await.expect("mTLS connect");
    let refused = CheckServiceClient::new(stranger_channel)
        .check(check_req("acme"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // A certificate from another CA, and no certificate at all, are refused
    // by the handshake: no call gets through.
    for client in [Some(&rogue), None] {
        let outcome = match server.connect(client).await {
            Err(_) => Err(()),
            Ok(ch) => CheckServiceClient::new(ch)
                .check(check_req("acme"))
                .await
                .map(|_| ())
                .map_err(|_| ()),
        };
        assert!(outcome.is_err(), "untrusted or missing client certificate");
    }
}

#[tokio::test]
async fn optional_client_certificates_still_accept_api_keys() {
    let clients_ca = Ca::new("clients CA");
    let server = TlsServer::start(
        Some(&clients_ca),
        vec![identity("billing", "billing.svc", KeyScope::Check, &[])],
        true,
    )
    .await;
    let channel = server
        .connect(None)
        .await
        .expect("TLS without a certificate");
    bootstrap(&channel, TENANT).await;
    // No certificate and no key: nothing proves who calls.
    let refused = CheckServiceClient::new(channel.clone())
        .check(check_req(TENANT))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    CheckServiceClient::with_interceptor(channel, Bearer::new(CHECK_KEY).expect("key"))
        .check(check_req(TENANT))
        .await
        .expect("API key over TLS");
}

// ---- keys --------------------------------------------------------------

fn key(name: &str, key: &str, scope: KeyScope, tenants: &[&str]) -> ApiKey {
    ApiKey {
        name: name.into(),
        key: Secret::new(key),
        scope,
        tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
        require_actor_token: false,
    }
}

async fn serve_with(cfg: &Config) -> (Channel, tokio::sync::oneshot::Sender<()>) {
    let (_, channel, stop, _) = serve(cfg, true).await;
    (channel, stop)
}

/// A new HTTP/2 connection to `addr`.
async fn connect(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

#[tokio::test]
async fn keys_rotate_without_downtime() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(&Backend::Sqlite, dir.path()).await;
    const OLD: &str = "old-check-key-0123456789";
    const NEW: &str = "new-check-key-0123456789";
    let check_with = |channel: &Channel, k: &str| {
        let mut c =
            CheckServiceClient::with_interceptor(channel.clone(), Bearer::new(k).expect("key"));
        async move { c.check(check_req(TENANT)).await.map(|_| ()) }
    };

    // Step 1: the old key alone.
    let mut cfg = test_config(&url);
    cfg.api_keys
        .push(key("svc-2026-10", OLD, KeyScope::Check, &[]));
    let (channel, stop) = serve_with(&cfg).await;
    bootstrap(&channel, TENANT).await;
    check_with(&channel, OLD).await.expect("old key");
    assert_eq!(
        check_with(&channel, NEW).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    drop(stop);

    // Step 2 (rolled out replica by replica): both keys are accepted while
    // callers switch over.
    cfg.api_keys
        .push(key("svc-2026-11", NEW, KeyScope::Check, &[]));
    let (channel, stop) = serve_with(&cfg).await;
    check_with(&channel, OLD)
        .await
        .expect("old key during rotation");
    check_with(&channel, NEW)
        .await
        .expect("new key during rotation");
    drop(stop);

    // Step 3: the old key is retired.
    cfg.api_keys.retain(|k| k.name != "svc-2026-10");
    let (channel, _stop) = serve_with(&cfg).await;
    check_with(&channel, NEW).await.expect("new key");
    let refused = check_with(&channel, OLD).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(
        !refused.message().contains(OLD),
        "a refusal never echoes the key"
    );
}

#[test]
fn configuration_never_prints_keys() {
    let mut cfg = Config::default();
    cfg.api_keys.push(key(
        "svc",
        "super-secret-key-0123456789",
        KeyScope::Check,
        &[],
    ));
    cfg.database.url = Secret::new("postgres://app:db-password-123@db/portcullis");
    let printed = format!("{cfg:?}");
    assert!(!printed.contains("super-secret-key"), "{printed}");
    assert!(!printed.contains("db-password-123"), "{printed}");
    let creds = portcullis::auth::Credentials::new(&cfg.api_keys, &[]);
    assert!(!format!("{creds:?}").contains("super-secret-key"));
}

// ---- client request ids -------------------------------------------------

on_every_backend!(retried_writes_apply_once);

async fn retried_writes_apply_once(backend: Backend) {
    let app = spawn_app_on(backend).await;
    app.user("alice").await;
    app.resource("folder:f1", None).await;
    let grant = |request_id: &str, role: &str| pb::CreateGrantRequest {
        tenant_id: TENANT.into(),
        subject: Some(subj("alice")),
        role_id: role.into(),
        scope: Some(res("folder:f1")),
        request_id: request_id.into(),
        ..Default::default()
    };
    let first = app
        .operator()
        .create_grant(grant("req-7f3a", "editor"))
        .await
        .expect("first attempt")
        .into_inner();
    // The retry (say, after a timeout) gets the first attempt's answer.
    let retry = app
        .operator()
        .create_grant(grant("req-7f3a", "editor"))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(first, retry, "same grant, same revision");
    let grants = app
        .operator()
        .list_grants(pb::ListGrantsRequest {
            tenant_id: TENANT.into(),
            subject: Some(subj("alice")),
            ..Default::default()
        })
        .await
        .expect("grants")
        .into_inner()
        .grants;
    assert_eq!(grants.len(), 1, "applied once: {grants:?}");
    let audit = app
        .operator()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: TENANT.into(),
            action: "grant.create".into(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner()
        .events;
    let for_alice = audit
        .iter()
        .filter(|e| e.after_json.contains("\"alice\"") && e.after_json.contains("editor"))
        .count();
    assert_eq!(for_alice, 1, "one audit event: {audit:?}");

    // The same id for another request is refused, and writes nothing.
    let reused = app
        .operator()
        .create_grant(grant("req-7f3a", "viewer"))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::FailedPrecondition);
    assert!(reused.message().contains("request_id_reused"), "{reused:?}");

    // Without an id, a repeat is a second write (here: a second grant).
    for _ in 0..2 {
        app.operator()
            .create_grant(grant("", "viewer"))
            .await
            .expect("write without id");
    }
    // A bad id is named.
    let bad = app
        .operator()
        .create_grant(grant("bad\u{0}id", "viewer"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("`request_id`"), "{bad:?}");

    // Ids are per tenant and per write kind: tenant creation replays too.
    let tenant = |id: &str| pb::CreateTenantRequest {
        tenant_id: "initech".into(),
        display_name: "Initech".into(),
        request_id: id.into(),
        ..Default::default()
    };
    let a = app
        .operator()
        .create_tenant(tenant("req-7f3a"))
        .await
        .expect("create tenant")
        .into_inner();
    let b = app
        .operator()
        .create_tenant(tenant("req-7f3a"))
        .await
        .expect("retried create tenant")
        .into_inner();
    assert_eq!(a, b);
    let plain_retry = app.operator().create_tenant(tenant("")).await.unwrap_err();
    assert_eq!(plain_retry.code(), Code::AlreadyExists);
}

// ---- overload, deadlines, cache bound -----------------------------------

/// A BatchCheck of `n` distinct, cold items (each a separate store read).
fn heavy_batch(n: usize, salt: usize) -> pb::BatchCheckRequest {
    pb::BatchCheckRequest {
        tenant_id: TENANT.into(),
        items: (0..n)
            .map(|i| pb::BatchCheckItem {
                principal_id: format!("user-{salt}-{i}"),
                action: "view".into(),
                resource: Some(res(&format!("workflow:w{i}"))),
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_while_health_and_admitted_calls_are_answered() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(&Backend::Sqlite, dir.path()).await;
    let mut cfg = test_config(&url);
    cfg.grpc.max_in_flight = 2;
    let (addr, channel, _stop, _) = serve(&cfg, true).await;
    bootstrap(&channel, TENANT).await;

    // 48 heavy calls at once on 4 connections against a limit of 2, and
    // health checks all the while.
    let mut channels = vec![channel.clone()];
    for _ in 0..3 {
        channels.push(connect(addr).await);
    }
    let flood = (0..48).map(|i| {
        let mut c = CheckServiceClient::with_interceptor(
            channels[i % channels.len()].clone(),
            Bearer::new(CHECK_KEY).expect("key"),
        );
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_secs(60),
                c.batch_check(heavy_batch(2_000, i)),
            )
            .await
            .expect("no call hangs")
        })
    });
    let flood: Vec<_> = flood.collect();
    let probes = tokio::spawn({
        let channel = channel.clone();
        async move {
            let mut answered = 0;
            for _ in 0..20 {
                let status = tokio::time::timeout(Duration::from_secs(5), health(channel.clone()))
                    .await
                    .expect("health answers promptly under load")
                    .expect("health answers");
                assert_eq!(status, 1, "SERVING");
                answered += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            answered
        }
    });
    let (mut ok, mut shed) = (0, 0);
    for task in flood {
        match task.await.expect("task") {
            Ok(resp) => {
                let results = resp.into_inner().results;
                assert_eq!(results.len(), 2_000, "an admitted call is answered in full");
                assert!(
                    results.iter().all(|r| !r.allowed),
                    "unknown users are denied"
                );
                ok += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    status.metadata().get("grpc-retry-pushback-ms").is_some(),
                    "shed calls say when to retry"
                );
                shed += 1;
            }
        }
    }
    let probes = probes.await.expect("probes");
    eprintln!("overload: 48 calls against max_in_flight=2: {ok} answered, {shed} shed; {probes} health checks answered");
    assert!(ok >= 2, "admitted calls finish: {ok}");
    assert!(shed >= 1, "the excess is shed, not queued: {shed}");
    // After the flood, the server answers as usual.
    CheckServiceClient::with_interceptor(channel, Bearer::new(CHECK_KEY).expect("key"))
        .check(check_req(TENANT))
        .await
        .expect("normal service after the flood");
}

/// The first message of an import that will wait for more.
fn waiting_import_header() -> pb::ImportTenantRequest {
    pb::ImportTenantRequest {
        part: Some(pb::import_tenant_request::Part::Header(pb::ImportHeader {
            tenant_id: "waiting".into(),
            settings: Some(pb::Tenant {
                display_name: "Waiting".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })),
    }
}

#[tokio::test]
async fn deadlines_are_enforced() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(&Backend::Sqlite, dir.path()).await;
    let cfg = test_config(&url);
    let (channel, _stop) = serve_with(&cfg).await;
    bootstrap(&channel, TENANT).await;
    let mut c =
        CheckServiceClient::with_interceptor(channel.clone(), Bearer::new(CHECK_KEY).expect("key"));
    // The caller's deadline (`grpc-timeout`, sent without a client-side
    // timer so that the server's answer is what arrives): tonic abandons the
    // call and answers CANCELLED. The call is an import whose stream stays
    // open, so that it cannot finish before the deadline, however fast the
    // machine (a batch answered from memory can finish within 1 ms).
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportTenantRequest>(1);
    tx.send(waiting_import_header()).await.expect("header");
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut()
        .insert("grpc-timeout", "50m".parse().expect("ascii"));
    let status = pb::tenant_service_client::TenantServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(OPERATOR_KEY).expect("key"),
    )
    .import_tenant(req)
    .await
    .unwrap_err();
    drop(tx);
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert_eq!(status.message(), "Timeout expired");
    c.check(check_req(TENANT))
        .await
        .expect("the server is fine afterwards");

    // The server's own limit, for callers that set none: a replica on the
    // same database with a 10 ms limit (whole-tenant calls too), and again an
    // import whose stream stays open, so that only the limit can end it.
    let mut cfg = test_config(&url);
    cfg.grpc.request_timeout_ms = 10;
    cfg.grpc.bulk_request_timeout_ms = 10;
    let (_, channel, _stop_short, _) = serve(&cfg, false).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportTenantRequest>(1);
    tx.send(waiting_import_header()).await.expect("header");
    let status = pb::tenant_service_client::TenantServiceClient::with_interceptor(
        channel,
        Bearer::new(OPERATOR_KEY).expect("key"),
    )
    .import_tenant(tokio_stream::wrappers::ReceiverStream::new(rx))
    .await
    .unwrap_err();
    drop(tx);
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}

#[tokio::test]
async fn the_cache_holds_no_more_than_its_capacity() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(&Backend::Sqlite, dir.path()).await;
    let mut cfg = test_config(&url);
    cfg.cache.max_subjects = 50;
    cfg.cache.max_resources = 50;
    // The caches a tenant too large for its index is answered from.
    cfg.cache.max_bytes = 0;
    let (channel, _stop) = serve_with(&cfg).await;
    bootstrap(&channel, TENANT).await;
    let mut c =
        CheckServiceClient::with_interceptor(channel.clone(), Bearer::new(CHECK_KEY).expect("key"));
    for round in 0..4 {
        c.batch_check(heavy_batch(1_000, round))
            .await
            .expect("batch");
    }
    let stats = pb::operator_service_client::OperatorServiceClient::with_interceptor(
        channel,
        Bearer::new(OPERATOR_KEY).expect("key"),
    )
    .get_cache_stats(pb::GetCacheStatsRequest {})
    .await
    .expect("stats")
    .into_inner();
    let subjects = stats.subjects.expect("subjects");
    let resources = stats.resources.expect("resources");
    eprintln!("cache bound: 4,000 subjects and 1,000 resources looked up; held {} subjects, {} resources; evicted {} + {}",
        subjects.entries, resources.entries, subjects.evictions, resources.evictions);
    assert!(subjects.entries <= 50, "{subjects:?}");
    assert!(resources.entries <= 50, "{resources:?}");
    assert!(subjects.evictions > 0 && resources.evictions > 0);
}

/// The permission indexes stay within `cache.max_bytes`: with room for one
/// small tenant, asking two in turn evicts one whole index for the other
/// (and answers stay right), and a tenant whose index alone is larger is
/// answered without one, exactly, lists included.
#[tokio::test]
async fn indexes_stay_within_max_bytes_and_a_larger_tenant_is_answered_without_one() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(&Backend::Sqlite, dir.path()).await;
    let mut cfg = test_config(&url);
    // A new tenant weighs about 5 KB; 8 KB holds one, not two (which one
    // moka keeps is its admission policy's choice).
    cfg.cache.max_bytes = 8_000;
    let (channel, _stop) = serve_with(&cfg).await;
    let mut op = pb::admin_service_client::AdminServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(OPERATOR_KEY).expect("key"),
    );
    let tenants = ["small-a", "small-b", "big"];
    for t in tenants {
        create_tenant(&mut op, t).await;
        op.create_resource(pb::CreateResourceRequest {
            tenant_id: t.into(),
            resource: Some(res("workspace:ws1")),
            ..Default::default()
        })
        .await
        .expect("workspace");
    }
    // `big`: 60 workflows (about 12 KB more), every other one viewable by
    // bob.
    op.create_principal(pb::CreatePrincipalRequest {
        tenant_id: "big".into(),
        principal_id: "bob".into(),
        kind: pb::PrincipalKind::User as i32,
        status: pb::PrincipalStatus::Active as i32,
        display_name: "Bob".into(),
        ..Default::default()
    })
    .await
    .expect("bob");
    let mut expected = Vec::new();
    for i in 0..60 {
        let id = format!("w{i:02}");
        op.create_resource(pb::CreateResourceRequest {
            tenant_id: "big".into(),
            resource: Some(res(&format!("workflow:{id}"))),
            parent: Some(res("workspace:ws1")),
            ..Default::default()
        })
        .await
        .expect("workflow");
        if i % 2 == 0 {
            op.create_grant(pb::CreateGrantRequest {
                tenant_id: "big".into(),
                subject: Some(subj("bob")),
                role_id: "viewer".into(),
                scope: Some(res(&format!("workflow:{id}"))),
                ..Default::default()
            })
            .await
            .expect("grant");
            expected.push(id);
        }
    }
    let mut c =
        CheckServiceClient::with_interceptor(channel.clone(), Bearer::new(CHECK_KEY).expect("key"));
    let mut ops = pb::operator_service_client::OperatorServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(OPERATOR_KEY).expect("key"),
    );
    for round in 0..3 {
        for t in ["small-a", "small-b"] {
            let a = c.check(check_req(t)).await.expect("check").into_inner();
            assert!(a.allowed, "{t}, round {round}: the account admin manages");
        }
    }
    let stats = ops
        .get_cache_stats(pb::GetCacheStatsRequest {})
        .await
        .expect("stats")
        .into_inner()
        .indexes
        .expect("indexes");
    assert!(stats.entries <= 1, "{stats:?}");
    assert!(stats.evictions >= 1, "{stats:?}");

    // `big` does not fit: answered from the other caches, exactly.
    for (i, allowed) in [(0, true), (1, false), (58, true), (59, false)] {
        let a = c
            .check(pb::CheckRequest {
                tenant_id: "big".into(),
                principal_id: "bob".into(),
                action: "view".into(),
                resource: Some(res(&format!("workflow:w{i:02}"))),
                ..Default::default()
            })
            .await
            .expect("check")
            .into_inner();
        assert_eq!(a.allowed, allowed, "w{i:02}");
    }
    let mut lister =
        pb::list_accessible_service_client::ListAccessibleServiceClient::with_interceptor(
            channel.clone(),
            Bearer::new(CHECK_KEY).expect("key"),
        );
    let (mut listed, mut token) = (Vec::new(), String::new());
    loop {
        let page = lister
            .list_accessible(pb::ListAccessibleRequest {
                tenant_id: "big".into(),
                principal_id: "bob".into(),
                action: "view".into(),
                resource_type: "workflow".into(),
                page_size: 7,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        listed.extend(page.resource_ids);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(listed, expected);
    let after = ops
        .get_cache_stats(pb::GetCacheStatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    let indexes = after.indexes.expect("indexes");
    assert!(indexes.entries <= 1, "`big` is not indexed: {indexes:?}");
    assert!(
        after.subjects.expect("subjects").misses >= 1,
        "bob was read through the subjects cache"
    );
}

/// A retried revoke answered by another replica from its request id must not
/// let that replica skip the revoke's invalidation: with the returned token,
/// and within a poll without it, the revoked grant no longer allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_revoke_is_still_seen_by_the_replica_that_replays_it() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(&Backend::Sqlite, dir.path()).await;
    // A polls rarely, so that only the fix keeps it exact.
    let mut slow = test_config(&url);
    slow.cache.poll_interval_ms = 1_000;
    let (_, a, _stop_a, _) = serve(&slow, true).await;
    let (_, b, _stop_b, _) = serve(&test_config(&url), false).await;
    bootstrap(&a, TENANT).await;
    let op = |ch: &Channel| {
        pb::admin_service_client::AdminServiceClient::with_interceptor(
            ch.clone(),
            Bearer::new(OPERATOR_KEY).expect("key"),
        )
    };
    let check = |ch: &Channel, token: String| {
        let mut c =
            CheckServiceClient::with_interceptor(ch.clone(), Bearer::new(CHECK_KEY).expect("key"));
        async move {
            c.check(pb::CheckRequest {
                tenant_id: TENANT.into(),
                principal_id: "alice".into(),
                action: "view".into(),
                resource: Some(res("workflow:w1")),
                consistency_token: token,
                ..Default::default()
            })
            .await
            .expect("check")
            .into_inner()
            .allowed
        }
    };
    op(&a)
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: TENANT.into(),
            principal_id: "alice".into(),
            status: pb::PrincipalStatus::Active as i32,
            ..Default::default()
        })
        .await
        .expect("principal");
    op(&a)
        .create_resource(pb::CreateResourceRequest {
            tenant_id: TENANT.into(),
            resource: Some(res("workflow:w1")),
            ..Default::default()
        })
        .await
        .expect("resource");
    let grant = op(&a)
        .create_grant(pb::CreateGrantRequest {
            tenant_id: TENANT.into(),
            subject: Some(subj("alice")),
            role_id: "viewer".into(),
            scope: Some(res("workflow:w1")),
            ..Default::default()
        })
        .await
        .expect("grant")
        .into_inner();
    // A has alice's grant cached.
    assert!(check(&a, grant.consistency_token.clone()).await);
    // The revoke commits on B; its answer is lost, and the caller retries
    // the same request id on A, which replays B's answer.
    let revoke = pb::DeleteGrantRequest {
        tenant_id: TENANT.into(),
        grant_id: grant.grant.expect("grant").id,
        request_id: "revoke-1".into(),
        ..Default::default()
    };
    let first = op(&b)
        .delete_grant(revoke.clone())
        .await
        .expect("revoke on B")
        .into_inner();
    let replayed = op(&a)
        .delete_grant(revoke)
        .await
        .expect("retry on A")
        .into_inner();
    assert_eq!(
        first.consistency_token, replayed.consistency_token,
        "the retry is a replay"
    );
    // With the revoke's token, A denies at once.
    assert!(
        !check(&a, replayed.consistency_token.clone()).await,
        "stale allow after a replay"
    );
    // Without it too, once A has polled (within the bound).
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(!check(&a, String::new()).await);
}

/// With TLS on the gRPC port, `grpc.health_addr` serves grpc.health.v1 (and
/// nothing else) in plaintext, for probes that cannot speak TLS; the
/// `portcullis health` command reaches either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_health_port_answers_probes_when_grpc_is_tls_only() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let health_port = crate::process::free_port().await;
    let health = SocketAddr::from(([127, 0, 0, 1], health_port));
    let server = TlsServer::start_with(None, vec![], false, |cfg| {
        cfg.grpc.health_addr = Some(health);
    })
    .await;
    let addr = server.addr;
    let ca_file = server.dir.path().join("ca.pem");
    std::fs::write(&ca_file, server.ca.pem()).expect("write CA");

    let plain = Endpoint::from_shared(format!("http://{health}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("plaintext connection to the health port");
    for service in ["", "liveness"] {
        let s = HealthClient::new(plain.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        assert_eq!(s, ServingStatus::Serving as i32, "service `{service}`");
    }
    // Health only: the authorization services are not on it.
    let other = CheckServiceClient::new(plain)
        .check(pb::CheckRequest::default())
        .await
        .expect_err("no CheckService on the health port");
    assert_eq!(other.code(), Code::Unimplemented);
    // The gRPC port stays TLS-only.
    let refused = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .map(HealthClient::new);
    match refused {
        Err(_) => {}
        Ok(mut c) => {
            let r = c
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            assert!(r.is_err(), "plaintext on the TLS port: {r:?}");
        }
    }

    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .env_remove("PORTCULLIS_ADDR")
            .env_remove("PORTCULLIS_CA_FILE")
            .output()
            .expect("run portcullis")
    };
    let h = format!("http://{health}");
    let o = cli(&["health", "--addr", &h]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tls = format!("https://localhost:{}", addr.port());
    let o = cli(&[
        "health",
        "--addr",
        &tls,
        "--ca-file",
        ca_file.to_str().expect("utf-8"),
    ]);
    assert!(
        o.status.success(),
        "over TLS: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = cli(&["health", "--addr", &tls, "--timeout-ms", "2000"]);
    assert!(
        !o.status.success(),
        "an untrusted server certificate is refused"
    );
}

/// A renewed certificate (written over the files, as cert-manager or a
/// secret volume does) is used for new connections without a restart;
/// connections already open keep working; files that do not load leave the
/// last good certificate in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificates_are_used_for_new_connections() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let dir = tempfile::tempdir().expect("dir");
    let replace = |name: &str, body: &str| {
        // Written aside, then renamed over: a reader never sees half a file.
        let p = dir.path().join(name);
        let tmp = dir.path().join(format!("{name}.tmp"));
        std::fs::write(&tmp, body).expect("write pem");
        std::fs::rename(&tmp, &p).expect("rename");
        p
    };
    let first = Ca::new("first CA");
    let (cert, key) = first.leaf(&["localhost"], &[], "portcullis");
    let url = fresh_database(&Backend::Sqlite, dir.path()).await;
    let mut cfg = test_config(&url);
    cfg.tls.cert_file = Some(replace("server.pem", &cert));
    cfg.tls.key_file = Some(replace("server.key", &key));
    cfg.tls.reload_interval_ms = 100;
    let (addr, _stop) = serve_config(&cfg).await;
    let connect = |ca: &Ca| {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca.pem()))
            .domain_name("localhost");
        async move {
            Endpoint::from_shared(format!("https://{addr}"))
                .expect("endpoint")
                .tls_config(tls)
                .expect("tls")
                .timeout(Duration::from_secs(2))
                .connect()
                .await
        }
    };
    let healthy = |c: Channel| async move {
        HealthClient::new(c)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok()
    };
    let old = connect(&first).await.expect("the first certificate");
    assert!(healthy(old.clone()).await);

    let renewed = Ca::new("renewed CA");
    let (cert, key) = renewed.leaf(&["localhost"], &[], "portcullis");
    replace("server.key", &key);
    replace("server.pem", &cert);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(c) = connect(&renewed).await {
            if healthy(c).await {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate was not served within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        connect(&first).await.is_err(),
        "new connections get the renewed certificate"
    );
    assert!(healthy(old).await, "an open connection keeps working");

    // A broken renewal: the last good certificate stays.
    replace("server.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = connect(&renewed)
        .await
        .expect("still the renewed certificate");
    assert!(healthy(c).await);
}

/// Serves `cfg` on a loopback port until the sender is dropped.
async fn serve_config(cfg: &Config) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    cfg.validate().expect("valid config");
    let app = App::build(cfg, true).await.expect("build");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(listener, async {
        let _ = rx.await;
    }));
    (addr, stop)
}
