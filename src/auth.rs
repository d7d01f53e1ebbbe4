//! auth: who is calling. A call proves itself with an API key
//! (`authorization: Bearer <key>`) or, when mutual TLS is configured, with a
//! client certificate that names a configured identity. Keys are kept only as
//! SHA-256 digests. An interceptor per service checks the credential's scope
//! and attaches the [`Caller`]; handlers then ask [`Caller::tenant`] before
//! touching a tenant, so a credential limited to some tenants reaches no other.

use crate::config::{ApiKey, ClientIdentity, KeyScope};
use crate::error::Error;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Status};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Name of the key or certificate identity (recorded in the audit trail).
    pub name: String,
    /// What it may call.
    pub scope: KeyScope,
    /// The tenants it may reach; `None` for every tenant.
    pub tenants: Option<Arc<[String]>>,
    /// Writes must prove their actor with a signed token.
    pub requires_actor_token: bool,
}

impl Caller {
    /// Validates a request's `tenant_id` and checks that this caller may
    /// reach it. The refusal is the same whether or not the tenant exists.
    pub fn tenant(&self, tenant_id: String) -> Result<String, Error> {
        crate::model::validate_id("tenant_id", &tenant_id)?;
        match &self.tenants {
            Some(allowed) if !allowed.contains(&tenant_id) => {
                Err(Error::PermissionDenied(format!(
                    "credential `{}` is not permitted for tenant `{tenant_id}`",
                    self.name
                )))
            }
            _ => {
                tracing::Span::current().record("tenant", tenant_id.as_str());
                Ok(tenant_id)
            }
        }
    }

    /// Refuses callers limited to some tenants (for instance-wide calls).
    pub fn require_every_tenant(&self) -> Result<(), Error> {
        match self.tenants {
            None => Ok(()),
            Some(_) => Err(Error::PermissionDenied(format!(
                "credential `{}` is limited to some tenants; this call spans every tenant",
                self.name
            ))),
        }
    }

    /// A configured credential; no tenants means every tenant.
    fn configured(name: &str, scope: KeyScope, tenants: &[String], proof: bool) -> Self {
        Self {
            name: name.to_owned(),
            scope,
            tenants: (!tenants.is_empty()).then(|| tenants.iter().cloned().collect()),
            requires_actor_token: proof,
        }
    }
}

/// The configured credentials: API keys by digest, and client-certificate
/// identities by subject.
#[derive(Clone, Default)]
pub struct Credentials {
    by_digest: Arc<HashMap<[u8; 32], Caller>>,
    by_certificate: Arc<HashMap<String, Caller>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials({} keys, {} certificate identities)",
            self.by_digest.len(),
            self.by_certificate.len()
        )
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Credentials {
    /// Hashes the configured keys and indexes the certificate identities.
    pub fn new(keys: &[ApiKey], identities: &[ClientIdentity]) -> Self {
        let by_digest = keys
            .iter()
            .map(|k| {
                (
                    digest(k.key.expose()),
                    Caller::configured(&k.name, k.scope, &k.tenants, k.require_actor_token),
                )
            })
            .collect();
        let by_certificate = identities
            .iter()
            .map(|c| {
                (
                    c.subject.clone(),
                    Caller::configured(&c.name, c.scope, &c.tenants, false),
                )
            })
            .collect();
        Self {
            by_digest: Arc::new(by_digest),
            by_certificate: Arc::new(by_certificate),
        }
    }

    /// Authenticates a request and checks that its credential reaches
    /// `required`. An `authorization` header wins; without one, a verified
    /// client certificate naming a configured identity is the credential.
    pub fn authenticate<T>(&self, req: &Request<T>, required: KeyScope) -> Result<Caller, Status> {
        let caller = match req.metadata().get("authorization") {
            Some(header) => self.by_key(header)?,
            None => match req.peer_certs() {
                Some(chain) => self.by_certificate(&chain)?,
                None => {
                    return Err(unauthenticated(
                        "missing `authorization: Bearer <api key>` (or a client certificate)",
                    ))
                }
            },
        };
        if caller.scope < required {
            return Err(Status::from(Error::PermissionDenied(format!(
                "credential `{}` has scope `{:?}`; this service needs `{:?}`",
                caller.name, caller.scope, required
            ))));
        }
        Ok(caller)
    }

    fn by_key(
        &self,
        header: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    ) -> Result<Caller, Status> {
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or_else(|| unauthenticated("`authorization` must be `Bearer <api key>`"))?;
        self.by_digest
            .get(&digest(token.trim()))
            .cloned()
            .ok_or_else(|| unauthenticated("unknown API key"))
    }

    /// The identity of the leaf certificate of a chain the TLS layer has
    /// already verified against the configured client CA.
    fn by_certificate(
        &self,
        chain: &[tonic::transport::CertificateDer<'static>],
    ) -> Result<Caller, Status> {
        let leaf = chain
            .first()
            .ok_or_else(|| unauthenticated("empty client certificate chain"))?;
        certificate_names(leaf.as_ref())
            .iter()
            .find_map(|n| self.by_certificate.get(n))
            .cloned()
            .ok_or_else(|| unauthenticated("client certificate names no configured identity"))
    }

    /// A tonic interceptor requiring `required`, attaching the [`Caller`].
    pub fn interceptor(
        &self,
        required: KeyScope,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static
    {
        let creds = self.clone();
        move |mut req: Request<()>| {
            let caller = creds.authenticate(&req, required)?;
            req.extensions_mut().insert(caller);
            Ok(req)
        }
    }
}

/// The names a certificate proves: its DNS and URI subject alternative
/// names (a SPIFFE id is a URI name), then its subject common names.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::URI(u) => names.push((*u).to_owned()),
                _ => {}
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            names.push(s.to_owned());
        }
    }
    names
}

/// An UNAUTHENTICATED refusal with its `ErrorInfo` detail.
fn unauthenticated(message: &str) -> Status {
    Status::from(Error::Unauthenticated(message.to_owned()))
}

/// The caller attached by the interceptor.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| unauthenticated("no authenticated caller"))
}

/// A fresh random key (32 bytes, URL-safe base64).
pub fn generate_key() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The client side's `Bearer` interceptor, where it always was.
pub use crate::client::Bearer;

/// The metadata header carrying an actor token.
pub const ACTOR_TOKEN_HEADER: &str = "x-portcullis-actor-token";

/// What a proven actor's token says.
#[derive(Debug, serde::Deserialize)]
struct ActorClaims {
    /// The acting principal (`super_user` for the instance super user).
    sub: String,
    /// Its tenant.
    tenant: String,
    /// Issued at (seconds).
    iat: u64,
    /// Expires at (seconds).
    exp: u64,
}

/// Verifies actor tokens: short-lived JWTs signed by the platform that
/// prove who acts, for keys with `require_actor_token`.
#[derive(Clone)]
pub struct ActorTokens {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    max_lifetime_s: u64,
}

impl std::fmt::Debug for ActorTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActorTokens")
    }
}

impl ActorTokens {
    /// A verifier for `algorithm` (`EdDSA` or `RS256`) with the PEM public
    /// key `pem`; `issuer` is required in tokens when set.
    pub fn new(
        algorithm: &str,
        pem: &[u8],
        issuer: Option<&str>,
        max_lifetime_s: u64,
    ) -> Result<Self, String> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let (alg, key) = match algorithm {
            "EdDSA" => (Algorithm::EdDSA, DecodingKey::from_ed_pem(pem)),
            "RS256" => (Algorithm::RS256, DecodingKey::from_rsa_pem(pem)),
            other => return Err(format!("unknown algorithm `{other}`")),
        };
        let key = key.map_err(|e| format!("not a {algorithm} public key: {e}"))?;
        let mut validation = Validation::new(alg);
        validation.leeway = 5;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(iss) = issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Self {
            key,
            validation,
            max_lifetime_s,
        })
    }

    /// Checks that `token` proves `actor` (`super_user` for the super user)
    /// in `tenant`: signature, expiry, issuer, lifetime and claims.
    pub fn verify(&self, token: &str, tenant: &str, actor: &str) -> Result<(), Error> {
        let refuse = |why: &str| Error::Unauthenticated(format!("actor token: {why}"));
        let data = jsonwebtoken::decode::<ActorClaims>(token, &self.key, &self.validation)
            .map_err(|e| refuse(&e.to_string()))?;
        let c = data.claims;
        if c.exp.saturating_sub(c.iat) > self.max_lifetime_s {
            return Err(refuse("lives longer than `actor_tokens.max_lifetime_s`"));
        }
        if c.tenant != tenant {
            return Err(refuse("issued for another tenant"));
        }
        if c.sub != actor {
            return Err(refuse("proves another actor than `actor_id`"));
        }
        Ok(())
    }
}
