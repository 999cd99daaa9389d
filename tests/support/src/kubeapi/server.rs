//! The HTTP side of the fake API server: the accept loop, one hyper HTTP/1.1 connection per
//! client, routing, and the list / watch / get handlers.

use crate::net::{accept_loop as accept_until_stopped, StopSignal};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::select::{FieldReq, Filter};
use super::status::ApiError;
use super::store::{parse_rv, ListOpts, Resource, Store};
use super::watch::{WatchBody, WatchFrom};
use super::ApiRequest;

/// How long an idle keep-alive connection (or a slow request head) is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A watch without `timeoutSeconds` ends after this long; the API server picks a random time
/// between `--min-request-timeout` (1800 s) and twice that.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Everything the connection tasks share with the [`KubeApi`](super::KubeApi) handle.
pub(crate) struct Shared {
    state: Mutex<Inner>,
    /// Notified whenever a request is recorded or a watch closes.
    pub changed: Condvar,
}

pub(crate) struct Inner {
    pub store: Store,
    pub requests: Vec<ApiRequest>,
    /// Resources (plural) whose reads are answered with 403.
    pub forbidden: BTreeSet<String>,
    /// A watch from a compacted version is refused with a 410 response instead of starting with
    /// a 410 `ERROR` event.
    pub gone_as_status: bool,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            state: Mutex::new(Inner {
                store: Store::new(),
                requests: Vec::new(),
                forbidden: BTreeSet::new(),
                gone_as_status: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// Locks the state; a panic in another test thread does not poison it for us.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Accepts connections until `stop` fires, then closes them all, watches included.
pub(crate) async fn accept_loop(listener: std::net::TcpListener, shared: Arc<Shared>, stop: StopSignal) {
    accept_until_stopped(listener, "kubeapi", stop, move |stream| {
        serve_connection(stream, shared.clone())
    })
    .await
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req| {
        let resp = handle(&shared, &req);
        async move { Ok::<_, Infallible>(resp) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(IDLE_TIMEOUT);
    // An error here is a client gone or a watch aborted on purpose: nothing to report.
    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
}

type RespBody = BoxBody<Bytes, std::io::Error>;

/// Answers one request and records it. A watch is recorded when its stream starts (under the
/// same lock as its registration, so a test that saw the watch open also sees its request).
fn handle(shared: &Arc<Shared>, req: &Request<Incoming>) -> Response<RespBody> {
    let query = parse_query(req.uri().query().unwrap_or(""));
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut record = Some(ApiRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        watch: matches!(first(&query, "watch"), Some("true" | "1")),
        query: query.clone(),
        status: 0,
        authorization: header(AUTHORIZATION),
        user_agent: header(hyper::header::USER_AGENT),
        accept: header(hyper::header::ACCEPT),
    });
    let resp = route(shared, req, &query, &mut record).unwrap_or_else(|e| json_response(e.code, &e.to_json()));
    if let Some(mut record) = record {
        record.status = resp.status().as_u16();
        shared.lock().requests.push(record);
    }
    shared.changed.notify_all();
    resp
}

fn route(
    shared: &Arc<Shared>,
    req: &Request<Incoming>,
    query: &[(String, String)],
    record: &mut Option<ApiRequest>,
) -> Result<Response<RespBody>, ApiError> {
    let path = req.uri().path().trim_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    let (resource, namespace, name) = match segments.as_slice() {
        ["version"] if req.method() == Method::GET => return Ok(json_response(200, &version())),
        ["version"] => return Err(ApiError::method_not_allowed()),
        ["api", "v1", "pods"] => (Resource::Pods, None, None),
        ["api", "v1", "namespaces"] => (Resource::Namespaces, None, None),
        ["api", "v1", "namespaces", name] => (Resource::Namespaces, None, Some(*name)),
        ["api", "v1", "namespaces", ns, "pods"] => (Resource::Pods, Some(*ns), None),
        ["api", "v1", "namespaces", ns, "pods", name] => (Resource::Pods, Some(*ns), Some(*name)),
        _ => return Err(ApiError::no_route()),
    };
    if req.method() != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let param = |name| first(query, name);
    let watch = record.as_ref().is_some_and(|r| r.watch);
    let verb = match (watch, name) {
        (true, _) => "watch",
        (false, Some(_)) => "get",
        (false, None) => "list",
    };
    if shared.lock().forbidden.contains(resource.plural()) {
        return Err(ApiError::forbidden(verb, resource.plural(), namespace));
    }
    let mut filter = Filter::parse(resource, namespace, param("fieldSelector"), param("labelSelector"))?;
    match (verb, name) {
        ("get", Some(name)) => {
            let key = (namespace.unwrap_or("").to_owned(), name.to_owned());
            match shared.lock().store.objects(resource).get(&key) {
                Some(obj) => Ok(json_response(200, obj)),
                None => Err(ApiError::not_found(resource.plural(), name)),
            }
        }
        ("watch", name) => {
            // Watching one object by its path is a watch with a name selector.
            if let Some(name) = name {
                filter.fields.push(FieldReq {
                    field: "metadata.name".into(),
                    value: name.into(),
                    negated: false,
                });
            }
            watch_response(shared, resource, filter, query, record)
        }
        _ => {
            let limit = match param("limit").filter(|l| !l.is_empty()) {
                Some(l) => Some(
                    l.parse()
                        .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?,
                ),
                None => None,
            };
            let opts = ListOpts {
                limit,
                continue_token: param("continue"),
                resource_version: param("resourceVersion"),
                version_match: param("resourceVersionMatch"),
            };
            let list = shared.lock().store.list(resource, &filter, &opts)?;
            Ok(json_response(200, &list))
        }
    }
}

/// Starts a watch: validates the parameters like the API server, registers the watch with its
/// initial events, and returns the streaming response.
fn watch_response(
    shared: &Arc<Shared>,
    resource: Resource,
    filter: Filter,
    query: &[(String, String)],
    record: &mut Option<ApiRequest>,
) -> Result<Response<RespBody>, ApiError> {
    let param = |name| first(query, name);
    let timeout = match param("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {t:?}")))?,
        ),
        None => DEFAULT_WATCH_TIMEOUT,
    };
    let bookmarks = param("allowWatchBookmarks") == Some("true");
    let send_initial = param("sendInitialEvents").map(|v| v == "true");
    let version_match = param("resourceVersionMatch").filter(|m| !m.is_empty());
    let rv = param("resourceVersion").filter(|v| !v.is_empty());
    match (send_initial, version_match) {
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ))
        }
        (Some(_), m) if m != Some("NotOlderThan") => {
            return Err(ApiError::invalid(
                "resourceVersionMatch: Unsupported value: sendInitialEvents requires resourceVersionMatch=NotOlderThan",
            ))
        }
        (Some(true), _) if !bookmarks => {
            return Err(ApiError::invalid(
                "allowWatchBookmarks: Required value: sendInitialEvents requires allowWatchBookmarks=true",
            ))
        }
        _ => {}
    }
    let from = match (send_initial, rv) {
        (Some(true), _) => WatchFrom::InitialEvents,
        (Some(false), None) => WatchFrom::Now,
        (None, None | Some("0")) => WatchFrom::Current,
        (_, Some(rv)) => WatchFrom::After(parse_rv(rv)?),
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let start = {
        let mut inner = shared.lock();
        let oldest = inner.store.compacted();
        match from {
            // As a proxy or an aggregated API server answers: the request fails, no stream.
            WatchFrom::After(rv) if rv < oldest && inner.gone_as_status => {
                return Err(ApiError::too_old(rv, oldest));
            }
            _ => {}
        }
        let start = inner.store.open_watch(resource, filter, from, bookmarks, tx);
        if let Some(mut record) = record.take() {
            record.status = 200;
            inner.requests.push(record);
        }
        start
    };
    let body = WatchBody::new(shared.clone(), start, rx, timeout);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-cache, private")
        .body(body.boxed())
        .expect("a response of a valid status and ASCII headers"))
}

/// What `GET /version` answers: a Kubernetes 1.33 server.
fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0",
        "gitCommit": "60a317eadfcb839692a68eab88b2096f4d708f4f",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T13:04:07Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn json_response(code: u16, body: &Value) -> Response<RespBody> {
    let mut bytes = serde_json::to_vec(body).expect("JSON values serialize");
    bytes.push(b'\n');
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-cache, private")
        .body(Full::new(Bytes::from(bytes)).map_err(|e| match e {}).boxed())
        .expect("a response of a valid status and ASCII headers")
}

/// The first value of query parameter `name`, as Go's `url.Values.Get` takes it.
pub(crate) fn first<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Decodes an `application/x-www-form-urlencoded` query (what kube's `form_urlencoded` and
/// Go's `url.Values` write): `&`-separated pairs, `+` for space, `%XX` escapes.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_like_form_urlencoded() {
        let q = parse_query(
            "fieldSelector=spec.nodeName%3Dnode-a&limit=500&labelSelector=app+in+%28a%2Cb%29&watch&x=%zz%4",
        );
        let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("fieldSelector", "spec.nodeName=node-a"),
                ("limit", "500"),
                ("labelSelector", "app in (a,b)"),
                ("watch", ""),
                ("x", "%zz%4"),
            ]
        );
        assert_eq!(first(&q, "limit"), Some("500"));
        assert_eq!(first(&q, "continue"), None);
        assert!(parse_query("").is_empty());
    }
}
