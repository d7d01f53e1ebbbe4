//! client: how a sibling service in Rust should call Portcullis — one
//! channel shared by every call (HTTP/2 multiplexes them), a deadline on
//! every call, and retries on `UNAVAILABLE` only (a store outage, a replica
//! shutting down, a connection being set up): every other code is an
//! answer, and a denial is not an error at all. [`Client`] covers Check,
//! BatchCheck, ListAccessible (a page, or every page), ListSubjects and
//! Watch. Without the server: `portcullis = { default-features = false,
//! features = ["client"] }` (tonic, prost and tokio only).
//!
//! ```no_run
//! # async fn demo() -> Result<(), tonic::Status> {
//! use portcullis::client::{CheckClient, RetryPolicy};
//! let client = CheckClient::connect("http://portcullis:50051", "check-key…", RetryPolicy::default())
//!     .map_err(|e| tonic::Status::invalid_argument(e))?;
//! // Share `client` (it is cheap to clone) across the service's requests.
//! let allowed = client.check("acme", "alice", "execute", "workflow", "invoice-sync").await?;
//! # Ok(()) }
//! ```

use crate::grpc::pb;
use pb::check_service_client::CheckServiceClient;
use pb::list_accessible_service_client::ListAccessibleServiceClient;
use pb::watch_service_client::WatchServiceClient;
use std::future::Future;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;
use tonic::{Code, Status};

/// Deadline and retries of every call.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Deadline of one attempt (sent as `grpc-timeout` and enforced here).
    pub deadline: Duration,
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled for each next one.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(500),
            attempts: 4,
            backoff: Duration::from_millis(25),
        }
    }
}

/// Runs `call` until it returns anything but `UNAVAILABLE`, at most
/// `policy.attempts` times, with exponential backoff. Returns the result
/// and the attempts made.
pub async fn with_retries<T, F, Fut>(policy: RetryPolicy, mut call: F) -> (Result<T, Status>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut wait = policy.backoff;
    let mut attempt = 1;
    loop {
        let result = match tokio::time::timeout(policy.deadline, call()).await {
            Ok(r) => r,
            Err(_) => Err(Status::deadline_exceeded("deadline exceeded")),
        };
        match result {
            Err(s) if s.code() == Code::Unavailable && attempt < policy.attempts => {
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            other => return (other, attempt),
        }
    }
}

type Authed = InterceptedService<Channel, Bearer>;

/// A client of the calls a sibling service makes (Check, BatchCheck,
/// ListAccessible, ListSubjects, Watch) over one shared channel: every
/// unary call with the policy's deadline and retries.
#[derive(Debug, Clone)]
pub struct Client {
    inner: CheckServiceClient<Authed>,
    lists: ListAccessibleServiceClient<Authed>,
    watches: WatchServiceClient<Authed>,
    policy: RetryPolicy,
}

/// The name this client had when it only made checks.
pub type CheckClient = Client;

impl Client {
    /// A client of `endpoint` (`http://host:port`, or `https://` with TLS
    /// configured on an [`Endpoint`] and [`CheckClient::from_channel`]). The
    /// channel connects lazily and reconnects by itself.
    pub fn connect(endpoint: &str, key: &str, policy: RetryPolicy) -> Result<Self, String> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| format!("endpoint: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .connect_lazy();
        Self::from_channel(channel, key, policy)
    }

    /// A client over an existing channel.
    pub fn from_channel(channel: Channel, key: &str, policy: RetryPolicy) -> Result<Self, String> {
        let bearer = Bearer::new(key).ok_or("the key is not valid header text")?;
        Ok(Self {
            inner: CheckServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            lists: ListAccessibleServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            watches: WatchServiceClient::with_interceptor(channel, bearer),
            policy,
        })
    }

    /// Runs a unary call with the deadline (sent as `grpc-timeout` too) and
    /// the retries of the policy; the answer and the attempts it took.
    async fn unary_counted<Req, Res, F, Fut>(&self, req: Req, call: F) -> (Result<Res, Status>, u32)
    where
        Req: Clone,
        F: Fn(tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
    {
        let deadline = self.policy.deadline;
        with_retries(self.policy, || {
            let mut r = tonic::Request::new(req.clone());
            r.set_timeout(deadline);
            let fut = call(r);
            async move { fut.await.map(tonic::Response::into_inner) }
        })
        .await
    }

    /// [`Client::unary_counted`], the answer only.
    async fn unary<Req, Res, F, Fut>(&self, req: Req, call: F) -> Result<Res, Status>
    where
        Req: Clone,
        F: Fn(tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
    {
        self.unary_counted(req, call).await.0
    }

    /// Many questions of one tenant at once.
    pub async fn batch_check(
        &self,
        req: pb::BatchCheckRequest,
    ) -> Result<pb::BatchCheckResponse, Status> {
        self.unary(req, |r| {
            let mut c = self.inner.clone();
            async move { c.batch_check(r).await }
        })
        .await
    }

    /// One page of the resources the principal may act on.
    pub async fn list_accessible(
        &self,
        req: pb::ListAccessibleRequest,
    ) -> Result<pb::ListAccessibleResponse, Status> {
        self.unary(req, |r| {
            let mut c = self.lists.clone();
            async move { c.list_accessible(r).await }
        })
        .await
    }

    /// Every resource of `resource_type` the principal may do `action` on:
    /// all pages, each at least at the first page's revision, as one answer
    /// (with the last page's consistency token and no next page).
    pub async fn list_all_accessible(
        &self,
        tenant: &str,
        principal: &str,
        action: &str,
        resource_type: &str,
    ) -> Result<pb::ListAccessibleResponse, Status> {
        let mut ids = Vec::new();
        let mut req = pb::ListAccessibleRequest {
            tenant_id: tenant.to_owned(),
            principal_id: principal.to_owned(),
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            page_size: 1_000,
            ..Default::default()
        };
        loop {
            let page = self.list_accessible(req.clone()).await?;
            ids.extend(page.resource_ids);
            if page.next_page_token.is_empty() {
                return Ok(pb::ListAccessibleResponse {
                    resource_ids: ids,
                    next_page_token: String::new(),
                    consistency_token: page.consistency_token,
                });
            }
            req.page_token = page.next_page_token;
            req.consistency_token = page.consistency_token;
        }
    }

    /// One page of the principals who may do an action on a resource.
    pub async fn list_subjects(
        &self,
        req: pb::ListSubjectsRequest,
    ) -> Result<pb::ListSubjectsResponse, Status> {
        self.unary(req, |r| {
            let mut c = self.lists.clone();
            async move { c.list_subjects(r).await }
        })
        .await
    }

    /// The tenant's changes after `after_revision` (empty: from now on), as
    /// a stream; opening it is retried like a unary call, the stream itself
    /// has no deadline. To resume after an error, call again with the last
    /// `revision` received.
    pub async fn watch(
        &self,
        tenant: &str,
        after_revision: &str,
    ) -> Result<tonic::Streaming<pb::WatchResponse>, Status> {
        let req = pb::WatchRequest {
            tenant_id: tenant.to_owned(),
            after_revision: after_revision.to_owned(),
        };
        with_retries(self.policy, || {
            let mut c = self.watches.clone();
            let r = tonic::Request::new(req.clone());
            async move { c.watch(r).await.map(tonic::Response::into_inner) }
        })
        .await
        .0
    }

    /// Whether `subject` may do `action` on the resource.
    pub async fn check(
        &self,
        tenant: &str,
        subject: &str,
        action: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<bool, Status> {
        let req = pb::CheckRequest {
            tenant_id: tenant.to_owned(),
            principal_id: subject.to_owned(),
            action: action.to_owned(),
            resource: Some(pb::ResourceRef {
                r#type: resource_type.to_owned(),
                id: resource_id.to_owned(),
            }),
            ..Default::default()
        };
        self.check_request(req).await.map(|r| r.allowed)
    }

    /// A full Check, with the deadline and retries.
    pub async fn check_request(&self, req: pb::CheckRequest) -> Result<pb::CheckResponse, Status> {
        self.check_counted(req).await.0
    }

    /// [`CheckClient::check_request`] and the attempts it took.
    pub async fn check_counted(
        &self,
        req: pb::CheckRequest,
    ) -> (Result<pb::CheckResponse, Status>, u32) {
        self.unary_counted(req, |r| {
            let mut c = self.inner.clone();
            async move { c.check(r).await }
        })
        .await
    }
}

/// The client side: a tonic interceptor adding `authorization: Bearer <key>`
/// to every call (used by `portcullis bench` and the tests; a sibling
/// service in Rust can use it too).
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl Bearer {
    /// `None` when the key is not valid header text.
    pub fn new(key: &str) -> Option<Self> {
        format!("Bearer {key}").parse().ok().map(Bearer)
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(***)")
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}
