//! tls: the gRPC listener's TLS (rustls), reloaded when its files change.
//!
//! The certificate, key and client CA files are read at start (a bad file
//! stops the start) and then checked every `tls.reload_interval_ms`: when
//! one changes, the whole server configuration is rebuilt and used for the
//! connections accepted from then on; connections already open keep theirs.
//! A file that does not load (half written, a key that does not match) is
//! logged and the previous configuration stays in use.
//!
//! Handshakes run beside the accept loop, each bounded in time, so a client
//! that never finishes its handshake cannot hold up anyone else's.

use crate::config::TlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// Longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes under way at once; connections past it are closed at
/// once (a flood of connections that never finish their handshake costs a
/// bounded number of tasks and sockets).
const MAX_HANDSHAKES: usize = 1024;

/// The TLS files of the listener.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    client_auth_optional: bool,
}

impl Files {
    /// When each file last changed (`None` for one that cannot be read).
    fn stamp(&self) -> Vec<Option<SystemTime>> {
        std::iter::once(&self.cert)
            .chain(std::iter::once(&self.key))
            .chain(self.client_ca.iter())
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// The server configuration the files make, or what is wrong with them.
    fn load(&self) -> Result<ServerConfig, String> {
        let certs = certificates("tls.cert_file", &self.cert)?;
        if certs.is_empty() {
            return Err(format!(
                "tls.cert_file `{}`: no certificate",
                self.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("tls.key_file `{}`: {e}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in certificates("tls.client_ca_file", ca)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("tls.client_ca_file `{}`: {e}", ca.display()))?;
                }
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                if self.client_auth_optional {
                    verifier = verifier.allow_unauthenticated();
                }
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("tls.client_ca_file `{}`: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut cfg = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("tls: the certificate and key do not make a pair: {e}"))?;
        // HTTP/1.1 too, for JSON calls (`grpc/json.rs`).
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

/// Every certificate of the PEM file at `path` (named `field` in errors).
fn certificates(
    field: &str,
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{field} `{}`: {e}", path.display()))
}

/// The listener's TLS configuration, current as of the last change to its
/// files.
#[derive(Debug)]
pub struct ReloadingTls {
    files: Files,
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadingTls {
    /// Loads the files of `tls`; `Ok(None)` when TLS is off (no certificate).
    pub fn load(tls: &TlsConfig) -> Result<Option<Arc<Self>>, String> {
        let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) else {
            return Ok(None);
        };
        let files = Files {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: tls.client_ca_file.clone(),
            client_auth_optional: tls.client_auth_optional,
        };
        let cfg = files.load()?;
        Ok(Some(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(cfg)),
        })))
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Checks the files every `every` and reloads them when they change,
    /// until `self` is the last reference left.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        if every.is_zero() {
            return;
        }
        let me = Arc::downgrade(self);
        let mut seen = self.files.stamp();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(tls) = me.upgrade() else {
                    return;
                };
                let stamp = tls.files.stamp();
                if stamp == seen {
                    continue;
                }
                seen = stamp;
                match tls.files.load() {
                    Ok(cfg) => {
                        *tls.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg);
                        tracing::info!("TLS files changed: reloaded for new connections");
                    }
                    Err(error) => {
                        tracing::warn!(%error, "TLS files changed but do not load; keeping the previous ones");
                    }
                }
            }
        });
    }

    /// The connections of `listener`, each through its TLS handshake with
    /// the configuration current when it was accepted, as the server's
    /// incoming stream. Nagle's algorithm is off on each (see `app.rs`).
    pub fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
    ) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
        let (tx, rx) = mpsc::channel(64);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = tx.closed() => return,
                };
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(error) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    tracing::warn!("too many TLS handshakes under way; connection closed");
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = tokio_rustls::TlsAcceptor::from(self.current());
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                    drop(permit);
                    match handshake {
                        Ok(Ok(stream)) => {
                            let _ = tx.send(Ok(stream)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(rx)
    }
}
