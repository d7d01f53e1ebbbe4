//! client: how a sibling service in Rust should call Portcullis — one
//! channel shared by every call (HTTP/2 multiplexes them), a deadline on
//! every call, and retries on `UNAVAILABLE` only (a store outage, a replica
//! shutting down, a connection being set up): every other code is an
//! answer, and a denial is not an error at all.
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

use crate::auth::Bearer;
use crate::grpc::pb;
use pb::check_service_client::CheckServiceClient;
use std::future::Future;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
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

/// A CheckService client over one shared channel.
#[derive(Debug, Clone)]
pub struct CheckClient {
    inner: CheckServiceClient<InterceptedService<Channel, Bearer>>,
    policy: RetryPolicy,
}

impl CheckClient {
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
            inner: CheckServiceClient::with_interceptor(channel, bearer),
            policy,
        })
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
        let deadline = self.policy.deadline;
        with_retries(self.policy, || {
            let mut inner = self.inner.clone();
            let mut r = tonic::Request::new(req.clone());
            r.set_timeout(deadline);
            async move { inner.check(r).await.map(tonic::Response::into_inner) }
        })
        .await
    }
}
