//! app: wires config, store, authorizer and gRPC services together.
//! `App::build` connects and migrates; `App::serve` serves a listener until
//! the shutdown future completes, so tests bind port 0 and need no sleeps.

use crate::auth::Keys;
use crate::cache::{CacheSettings, CachedStore};
use crate::config::{Config, KeyScope};
use crate::engine::authorizer::Authorizer;
use crate::error::{Error, Result};
use crate::grpc::admin::AdminApi;
use crate::grpc::check::CheckApi;
use crate::grpc::pb;
use crate::store::sql::SqlStore;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;

/// Largest request message accepted (a full BatchCheck fits easily).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// A built application, ready to serve.
#[derive(Debug)]
pub struct App {
    store: SqlStore,
    keys: Keys,
    cache: CacheSettings,
}

impl App {
    /// Connects to the store and, unless `migrate` is false, migrates it.
    pub async fn build(config: &Config, migrate: bool) -> Result<Self> {
        let store = SqlStore::connect(
            config.database.url.expose(),
            config.database.max_connections,
        )
        .await?;
        if migrate {
            store.migrate().await?;
        }
        Ok(Self {
            store,
            keys: Keys::new(&config.api_keys),
            cache: config.cache.settings(),
        })
    }

    /// The store (for tests and tools).
    pub fn store(&self) -> &SqlStore {
        &self.store
    }

    /// Serves every service on `listener` until `shutdown` completes, then
    /// lets calls in flight finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| Error::Internal(format!("reflection: {e}")))?;

        let cache = CachedStore::new(self.store.clone(), self.cache);
        // Know every tenant's revision before the first check.
        cache.catch_up(None).await?;
        let (poll_stop, poll_stopped) = tokio::sync::oneshot::channel::<()>();
        let poller = tokio::spawn(cache.clone().poll(async {
            let _ = poll_stopped.await;
        }));
        let authz = Arc::new(Authorizer::new(cache.clone()));
        let check_api = CheckApi::new(authz);
        let admin_api = AdminApi::new(cache);
        let check = InterceptedService::new(
            pb::check_service_server::CheckServiceServer::new(check_api.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            self.keys.interceptor(KeyScope::Check),
        );
        let list = InterceptedService::new(
            pb::list_accessible_service_server::ListAccessibleServiceServer::new(check_api)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            self.keys.interceptor(KeyScope::Check),
        );
        let admin = InterceptedService::new(
            pb::admin_service_server::AdminServiceServer::new(admin_api)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            self.keys.interceptor(KeyScope::Admin),
        );

        // The store is migrated (App::build) before anything reports SERVING.
        health
            .set_serving::<pb::check_service_server::CheckServiceServer<CheckApi>>()
            .await;
        health
            .set_serving::<pb::list_accessible_service_server::ListAccessibleServiceServer<CheckApi>>()
            .await;
        health
            .set_serving::<pb::admin_service_server::AdminServiceServer<AdminApi>>()
            .await;

        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        // Tests and tools read the bound address from this line.
        tracing::info!(addr = %addr, "serving gRPC");
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down: health NOT_SERVING, finishing calls in flight");
            for service in [
                "",
                "portcullis.v1.CheckService",
                "portcullis.v1.ListAccessibleService",
                "portcullis.v1.AdminService",
            ] {
                health
                    .set_service_status(service, tonic_health::ServingStatus::NotServing)
                    .await;
            }
        };
        // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms
        // to every message that spans several segments (batches, lists).
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let served = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(check)
            .add_service(list)
            .add_service(admin)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| Error::Internal(format!("server: {e}")));
        let _ = poll_stop.send(());
        let _ = poller.await;
        served
    }
}
