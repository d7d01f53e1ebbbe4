//! auth: API keys. Keys are kept only as SHA-256 digests; a call presents
//! `authorization: Bearer <key>`, and an interceptor per service checks the
//! key's scope and attaches the [`Caller`] to the request.

use crate::config::{ApiKey, KeyScope};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Status};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Name of the key (recorded in the audit trail).
    pub name: String,
    /// What the key may call.
    pub scope: KeyScope,
}

/// The configured keys, by digest.
#[derive(Clone, Default)]
pub struct Keys {
    by_digest: Arc<HashMap<[u8; 32], Caller>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} configured)", self.by_digest.len())
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Keys {
    /// Hashes the configured keys.
    pub fn new(keys: &[ApiKey]) -> Self {
        let by_digest = keys
            .iter()
            .map(|k| {
                (
                    digest(k.key.expose()),
                    Caller {
                        name: k.name.clone(),
                        scope: k.scope,
                    },
                )
            })
            .collect();
        Self {
            by_digest: Arc::new(by_digest),
        }
    }

    /// Authenticates a request and checks that its key reaches `required`.
    pub fn authenticate<T>(&self, req: &Request<T>, required: KeyScope) -> Result<Caller, Status> {
        let header = req
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing `authorization: Bearer <api key>`"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or_else(|| Status::unauthenticated("`authorization` must be `Bearer <api key>`"))?;
        let caller = self
            .by_digest
            .get(&digest(token.trim()))
            .ok_or_else(|| Status::unauthenticated("unknown API key"))?;
        if caller.scope < required {
            return Err(Status::permission_denied(format!(
                "API key `{}` has scope `{:?}`; this service needs `{:?}`",
                caller.name, caller.scope, required
            )));
        }
        Ok(caller.clone())
    }

    /// A tonic interceptor requiring `required`, attaching the [`Caller`].
    pub fn interceptor(
        &self,
        required: KeyScope,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static
    {
        let keys = self.clone();
        move |mut req: Request<()>| {
            let caller = keys.authenticate(&req, required)?;
            req.extensions_mut().insert(caller);
            Ok(req)
        }
    }
}

/// The caller attached by the interceptor.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

/// A fresh random key (32 bytes, URL-safe base64).
pub fn generate_key() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
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
