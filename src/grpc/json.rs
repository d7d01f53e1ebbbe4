//! json: Check, BatchCheck, ListAccessible and ListSubjects as JSON over
//! plain HTTP (HTTP/1.1 or HTTP/2), on the gRPC port, in the unary form of
//! the Connect protocol: `POST /portcullis.v1.CheckService/Check` with
//! `Content-Type: application/json` and the request in the protobuf JSON
//! mapping (field names in lowerCamelCase or as in the proto, enums by
//! name); the answer is the response in the same mapping, or an error
//! `{"code": "permission_denied", "message": "…"}` with the matching HTTP
//! status. Unknown fields are refused, naming them.
//!
//! A JSON call is re-encoded as the gRPC call and passed down the same
//! stack (credentials, validation, tenant shares, deadlines, metrics), so
//! the two forms cannot answer differently; only the encoding is here.

use super::pb;
use crate::error::Error;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use prost::Message;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::{Code, Status};

/// The methods served as JSON, by path.
const METHODS: [&str; 4] = [
    "/portcullis.v1.CheckService/Check",
    "/portcullis.v1.CheckService/BatchCheck",
    "/portcullis.v1.ListAccessibleService/ListAccessible",
    "/portcullis.v1.ListAccessibleService/ListSubjects",
];

/// Largest JSON request body (as for gRPC messages).
const MAX_BODY: usize = crate::app::MAX_MESSAGE_BYTES;

/// The layer answering JSON calls.
#[derive(Clone, Debug, Default)]
pub struct JsonLayer;

impl<S> tower_layer::Layer<S> for JsonLayer {
    type Service = Json<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Json { inner }
    }
}

/// A service behind [`JsonLayer`].
#[derive(Clone, Debug)]
pub struct Json<S> {
    inner: S,
}

fn is_json(req: &http::Request<Body>) -> bool {
    req.method() == http::Method::POST
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
}

impl<S> tower_service::Service<http::Request<Body>> for Json<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = super::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !is_json(&req) {
            return Box::pin(inner.call(req));
        }
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            let Some(&method) = METHODS.iter().find(|m| **m == path) else {
                return Ok(failure(&Status::unimplemented(format!(
                    "`{path}` is not served as JSON (Check, BatchCheck, ListAccessible and ListSubjects are)"
                ))));
            };
            let (parts, body) = req.into_parts();
            let bytes = match Limited::new(body, MAX_BODY).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    return Ok(failure(&Status::from(Error::invalid(
                        "request",
                        format!("the body cannot be read (at most {MAX_BODY} bytes): {e}"),
                    ))))
                }
            };
            let message = match serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| Error::invalid("request", format!("not JSON: {e}")))
                .and_then(|v| encode(method, v))
            {
                Ok(m) => m,
                Err(e) => return Ok(failure(&Status::from(e))),
            };
            let mut grpc = http::Request::new(Body::new(Full::new(frame(&message))));
            *grpc.method_mut() = http::Method::POST;
            *grpc.uri_mut() = parts.uri;
            *grpc.extensions_mut() = parts.extensions;
            let headers = grpc.headers_mut();
            for name in ["authorization", "x-request-id", "traceparent", "tracestate"] {
                if let Some(v) = parts.headers.get(name) {
                    headers.insert(name, v.clone());
                }
            }
            // Connect's deadline header, as gRPC's.
            if let Some(ms) = parts
                .headers
                .get("connect-timeout-ms")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|ms| *ms < 100_000_000)
            {
                if let Ok(v) = http::HeaderValue::from_str(&format!("{ms}m")) {
                    headers.insert("grpc-timeout", v);
                }
            }
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            headers.insert("te", http::HeaderValue::from_static("trailers"));
            let response = inner.call(grpc).await?;
            Ok(answer(method, response).await)
        })
    }
}

/// A gRPC message frame: uncompressed, length-prefixed.
fn frame(message: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(message.len() + 5);
    b.put_u8(0);
    b.put_u32(message.len() as u32);
    b.put_slice(message);
    b.freeze()
}

/// The gRPC answer as JSON.
async fn answer(method: &str, response: http::Response<Body>) -> http::Response<Body> {
    let (parts, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(c) => c,
        Err(e) => return failure(&Status::internal(format!("reading the answer: {e}"))),
    };
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status_of = |h: &http::HeaderMap| {
        h.get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
    };
    let code = status_of(&parts.headers).or_else(|| status_of(&trailers));
    if code != Some(0) {
        let from = if status_of(&parts.headers).is_some() {
            &parts.headers
        } else {
            &trailers
        };
        let message = from
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .map(percent_decode)
            .unwrap_or_default();
        return failure(&Status::new(Code::from(code.unwrap_or(2)), message));
    }
    let mut data = collected.to_bytes();
    if data.len() < 5 {
        return failure(&Status::internal("an answer without a message"));
    }
    data.advance(5);
    match decode(method, &data) {
        Ok(v) => respond(http::StatusCode::OK, 0, &v),
        Err(e) => failure(&Status::internal(format!("decoding the answer: {e}"))),
    }
}

fn respond(status: http::StatusCode, grpc_code: i32, body: &Value) -> http::Response<Body> {
    let mut r = http::Response::new(Body::new(Full::new(Bytes::from(body.to_string()))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    // For the metrics layer, which reads the outcome of every call here.
    r.headers_mut()
        .insert("grpc-status", http::HeaderValue::from(grpc_code));
    r
}

/// A Connect error: its code name and HTTP status.
fn failure(s: &Status) -> http::Response<Body> {
    let (name, http) = match s.code() {
        Code::Ok => ("ok", 200),
        Code::Cancelled => ("canceled", 499),
        Code::Unknown => ("unknown", 500),
        Code::InvalidArgument => ("invalid_argument", 400),
        Code::DeadlineExceeded => ("deadline_exceeded", 504),
        Code::NotFound => ("not_found", 404),
        Code::AlreadyExists => ("already_exists", 409),
        Code::PermissionDenied => ("permission_denied", 403),
        Code::ResourceExhausted => ("resource_exhausted", 429),
        Code::FailedPrecondition => ("failed_precondition", 400),
        Code::Aborted => ("aborted", 409),
        Code::OutOfRange => ("out_of_range", 400),
        Code::Unimplemented => ("unimplemented", 501),
        Code::Internal => ("internal", 500),
        Code::Unavailable => ("unavailable", 503),
        Code::DataLoss => ("data_loss", 500),
        Code::Unauthenticated => ("unauthenticated", 401),
    };
    respond(
        http::StatusCode::from_u16(http).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
        s.code() as i32,
        &json!({"code": name, "message": s.message()}),
    )
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---- the JSON mapping of the four methods ---------------------------------

/// A JSON object read field by field; [`Obj::done`] refuses what was not
/// read.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    read: HashSet<&'a str>,
}

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: &str) -> Result<Self, Error> {
        let map = v
            .as_object()
            .ok_or_else(|| Error::invalid(field_name(path, ""), "must be a JSON object"))?;
        Ok(Self {
            map,
            path: path.to_owned(),
            read: HashSet::new(),
        })
    }

    fn name(&self, snake: &str) -> String {
        field_name(&self.path, snake)
    }

    fn get(&mut self, snake: &str) -> Option<&'a Value> {
        let camel = camel(snake);
        for (k, v) in self.map {
            if k == snake || *k == camel {
                self.read.insert(k.as_str());
                return (!v.is_null()).then_some(v);
            }
        }
        None
    }

    fn string(&mut self, snake: &str) -> Result<String, Error> {
        match self.get(snake) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Error::invalid(self.name(snake), "must be a string")),
        }
    }

    fn boolean(&mut self, snake: &str) -> Result<bool, Error> {
        match self.get(snake) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Error::invalid(self.name(snake), "must be true or false")),
        }
    }

    fn uint32(&mut self, snake: &str) -> Result<u32, Error> {
        let name = self.name(snake);
        let bad = || Error::invalid(&name, "must be a non-negative 32-bit integer");
        match self.get(snake) {
            None => Ok(0),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(bad),
            // The mapping allows integers as strings too.
            Some(Value::String(s)) => s.parse().map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    fn resource(&mut self, snake: &str) -> Result<Option<pb::ResourceRef>, Error> {
        let Some(v) = self.get(snake) else {
            return Ok(None);
        };
        let mut o = Obj::new(v, &self.name(snake))?;
        let r = pb::ResourceRef {
            r#type: o.string("type")?,
            id: o.string("id")?,
        };
        o.done()?;
        Ok(Some(r))
    }

    fn strings(&mut self, snake: &str) -> Result<std::collections::HashMap<String, String>, Error> {
        let Some(v) = self.get(snake) else {
            return Ok(Default::default());
        };
        let name = self.name(snake);
        v.as_object()
            .ok_or_else(|| Error::invalid(&name, "must be an object of strings"))?
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(Error::invalid(format!("{name}.{k}"), "must be a string")),
            })
            .collect()
    }

    /// A JSON object as a `google.protobuf.Struct` (its JSON mapping).
    fn structure(&mut self, snake: &str) -> Result<Option<prost_types::Struct>, Error> {
        let Some(v) = self.get(snake) else {
            return Ok(None);
        };
        match v {
            Value::Object(o) => Ok(Some(super::watch::to_struct(o.clone()))),
            _ => Err(Error::invalid(self.name(snake), "must be a JSON object")),
        }
    }

    fn done(self) -> Result<(), Error> {
        match self.map.keys().find(|k| !self.read.contains(k.as_str())) {
            None => Ok(()),
            Some(k) => Err(Error::invalid(field_name(&self.path, k), "unknown field")),
        }
    }
}

fn field_name(path: &str, name: &str) -> String {
    match (path.is_empty(), name.is_empty()) {
        (true, _) => name.to_owned(),
        (false, true) => path.to_owned(),
        (false, false) => format!("{path}.{name}"),
    }
}

/// The JSON request of `method` as its protobuf bytes.
fn encode(method: &str, v: Value) -> Result<Vec<u8>, Error> {
    let mut o = Obj::new(&v, "")?;
    let bytes = match method {
        "/portcullis.v1.CheckService/Check" => pb::CheckRequest {
            tenant_id: o.string("tenant_id")?,
            principal_id: o.string("principal_id")?,
            action: o.string("action")?,
            resource: o.resource("resource")?,
            context: o.strings("context")?,
            consistency_token: o.string("consistency_token")?,
            explain: o.boolean("explain")?,
            typed_context: o.structure("typed_context")?,
        }
        .encode_to_vec(),
        "/portcullis.v1.CheckService/BatchCheck" => {
            let items = match o.get("items") {
                None => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let mut it = Obj::new(item, &format!("items[{i}]"))?;
                        let b = pb::BatchCheckItem {
                            principal_id: it.string("principal_id")?,
                            action: it.string("action")?,
                            resource: it.resource("resource")?,
                        };
                        it.done()?;
                        Ok(b)
                    })
                    .collect::<Result<_, Error>>()?,
                Some(_) => return Err(Error::invalid("items", "must be an array")),
            };
            pb::BatchCheckRequest {
                tenant_id: o.string("tenant_id")?,
                items,
                consistency_token: o.string("consistency_token")?,
                explain: o.boolean("explain")?,
                context: o.strings("context")?,
                typed_context: o.structure("typed_context")?,
            }
            .encode_to_vec()
        }
        "/portcullis.v1.ListAccessibleService/ListAccessible" => pb::ListAccessibleRequest {
            tenant_id: o.string("tenant_id")?,
            principal_id: o.string("principal_id")?,
            action: o.string("action")?,
            resource_type: o.string("resource_type")?,
            page_size: o.uint32("page_size")?,
            page_token: o.string("page_token")?,
            consistency_token: o.string("consistency_token")?,
            context: o.strings("context")?,
            typed_context: o.structure("typed_context")?,
        }
        .encode_to_vec(),
        _ => pb::ListSubjectsRequest {
            tenant_id: o.string("tenant_id")?,
            resource: o.resource("resource")?,
            action: o.string("action")?,
            page_size: o.uint32("page_size")?,
            page_token: o.string("page_token")?,
            consistency_token: o.string("consistency_token")?,
            context: o.strings("context")?,
            typed_context: o.structure("typed_context")?,
        }
        .encode_to_vec(),
    };
    o.done()?;
    Ok(bytes)
}

fn explanation(e: &Option<pb::Explanation>) -> Option<Value> {
    e.as_ref().map(|e| {
        json!({
            "grantId": e.grant_id,
            "roleId": e.role_id,
            "permission": e.permission,
            "scope": e.scope.as_ref().map(|s| json!({"type": s.r#type, "id": s.id})),
            "viaTeams": e.via_teams,
            "detail": e.detail,
            "condition": e.condition,
            "missingContext": e.missing_context,
            "linkedResource": e.linked_resource.as_ref().map(|s| json!({"type": s.r#type, "id": s.id})),
            "linkedAction": e.linked_action,
        })
    })
}

/// The protobuf answer of `method` as JSON (every field, defaults too).
fn decode(method: &str, bytes: &[u8]) -> Result<Value, prost::DecodeError> {
    Ok(match method {
        "/portcullis.v1.CheckService/Check" => {
            let r = pb::CheckResponse::decode(bytes)?;
            let mut v = json!({
                "allowed": r.allowed,
                "reason": super::reason_name(r.reason),
                "consistencyToken": r.consistency_token,
            });
            if let Some(e) = explanation(&r.explanation) {
                v["explanation"] = e;
            }
            v
        }
        "/portcullis.v1.CheckService/BatchCheck" => {
            let r = pb::BatchCheckResponse::decode(bytes)?;
            let results: Vec<Value> = r
                .results
                .iter()
                .map(|x| {
                    let mut v =
                        json!({"allowed": x.allowed, "reason": super::reason_name(x.reason)});
                    if let Some(e) = explanation(&x.explanation) {
                        v["explanation"] = e;
                    }
                    v
                })
                .collect();
            json!({"results": results, "consistencyToken": r.consistency_token})
        }
        "/portcullis.v1.ListAccessibleService/ListAccessible" => {
            let r = pb::ListAccessibleResponse::decode(bytes)?;
            json!({
                "resourceIds": r.resource_ids,
                "nextPageToken": r.next_page_token,
                "consistencyToken": r.consistency_token,
            })
        }
        _ => {
            let r = pb::ListSubjectsResponse::decode(bytes)?;
            json!({
                "principalIds": r.principal_ids,
                "nextPageToken": r.next_page_token,
                "consistencyToken": r.consistency_token,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_in_either_case_and_unknown_ones_refused() {
        let v = json!({"tenantId": "acme", "principal_id": "alice", "action": "view",
                       "resource": {"type": "workflow", "id": "w1"}, "explain": true});
        let bytes = encode("/portcullis.v1.CheckService/Check", v).expect("valid");
        let r = pb::CheckRequest::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(
            (r.tenant_id.as_str(), r.principal_id.as_str()),
            ("acme", "alice")
        );
        assert!(r.explain);
        let e = encode(
            "/portcullis.v1.CheckService/Check",
            json!({"tenantId": "acme", "resource": {"type": "w", "idd": "x"}}),
        )
        .expect_err("unknown");
        assert!(e.to_string().contains("resource.idd"), "{e}");
        let e = encode(
            "/portcullis.v1.CheckService/BatchCheck",
            json!({"items": [{"action": 3}]}),
        )
        .expect_err("type");
        assert!(e.to_string().contains("items[0].action"), "{e}");
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b%3A%zz%"), "a b:%zz%");
    }
}
