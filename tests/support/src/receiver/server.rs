//! The HTTP side of the receiver: the accept loop, one hyper HTTP/1.1 connection per client
//! (over TLS for a TLS receiver), and the request handler that applies stalls, faults, auth,
//! decoding and validation.

use crate::net::{accept_loop as accept_until_stopped, StopSignal};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio_rustls::TlsAcceptor;

use super::decode::decode_body;
use super::fault::{default_body, Fault};
use super::limits::Limits;
use super::state::{RequestRecord, State};
use super::validate::ingest;
use super::PUSH_PATH;

/// How long an idle keep-alive connection (or a slow request head) is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a client gets to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the handler tasks share with the [`Receiver`](super::Receiver) handle.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Notified whenever `state` changes (a request completed).
    pub changed: Condvar,
    pub control: Mutex<Control>,
    /// `true` while every push request must hang.
    pub stalled: watch::Sender<bool>,
}

/// Test-scripted behaviour.
pub(crate) struct Control {
    pub faults: VecDeque<Fault>,
    /// TLS handshakes still to fail with a `handshake_failure` alert.
    pub broken_handshakes: usize,
    pub auth: Option<String>,
    pub limits: Limits,
}

impl Shared {
    pub(crate) fn new(limits: Limits) -> Self {
        Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            control: Mutex::new(Control {
                faults: VecDeque::new(),
                broken_handshakes: 0,
                auth: None,
                limits,
            }),
            stalled: watch::Sender::new(false),
        }
    }

    /// Locks the state; a panic in another test thread does not poison it for us.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Accepts connections until `stop` fires, then closes them all. With `tls`, each connection
/// does a TLS handshake first.
pub(crate) async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    stop: StopSignal,
) {
    accept_until_stopped(listener, "receiver", stop, move |stream| {
        serve_connection(stream, shared.clone(), tls.clone())
    })
    .await
}

/// Serves one connection, after a TLS handshake with `tls`. A failed or timed-out handshake
/// is recorded in [`State::tls_failures`] and closes the connection; nothing else happens.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, tls: Option<TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    // A second descriptor of the same socket, kept only to set SO_LINGER when resetting.
    let (stream, dup) = match duplicate(stream) {
        Ok(pair) => pair,
        Err(_) => return,
    };
    let Some(acceptor) = tls else {
        return serve_http(stream, dup, shared).await;
    };
    if take_broken_handshake(&shared) {
        return fail_handshake(stream, &shared).await;
    }
    let error = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => return serve_http(stream, dup, shared).await,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
    };
    shared.state().record_tls_failure(error);
    shared.changed.notify_all();
}

/// Serves HTTP/1.1 on `io` (the TCP stream or the TLS stream over it). A handler that wants the
/// connection reset notifies `kill`; the socket (`dup` is the same socket) then gets
/// `SO_LINGER` 0 so that closing it sends RST.
async fn serve_http<I>(io: I, dup: std::net::TcpStream, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let handler_kill = kill.clone();
    let service = hyper::service::service_fn(move |req| handle(shared.clone(), handler_kill.clone(), req));
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's header read timeout also closes idle keep-alive connections; 120 s is Loki's
    // `http_server_idle_timeout`.
    builder.timer(TokioTimer::new()).header_read_timeout(IDLE_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = &mut conn => {}
        _ = kill.notified() => {
            let _ = socket2::SockRef::from(&dup).set_linger(Some(Duration::ZERO));
        }
    }
}

fn take_broken_handshake(shared: &Shared) -> bool {
    let mut control = shared.control();
    let broken = control.broken_handshakes > 0;
    control.broken_handshakes = control.broken_handshakes.saturating_sub(1);
    broken
}

/// Reads the ClientHello and answers a fatal `handshake_failure` alert (a TLS terminator that
/// cannot agree on parameters, or is overloaded), then closes. Recorded like any failed handshake.
async fn fail_handshake(mut stream: TcpStream, shared: &Shared) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut hello = [0u8; 512];
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read(&mut hello)).await;
    // Record type alert (21), TLS 1.2 record version, length 2, level fatal (2), handshake_failure (40).
    let _ = stream.write_all(&[21, 3, 3, 0, 2, 2, 40]).await;
    let _ = stream.shutdown().await;
    shared
        .state()
        .record_tls_failure("injected: handshake_failure alert".to_owned());
    shared.changed.notify_all();
}

fn duplicate(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std = stream.into_std()?;
    let dup = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, dup))
}

/// Records the request when dropped, so requests that end without an answer (reset, client
/// gone, receiver down) are recorded too, with `status: None`.
struct Recorder {
    shared: Arc<Shared>,
    record: RequestRecord,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let record = std::mem::replace(&mut self.record, blank_record());
        self.shared.state().record(record);
        self.shared.changed.notify_all();
    }
}

fn blank_record() -> RequestRecord {
    RequestRecord {
        received_at: SystemTime::UNIX_EPOCH,
        method: String::new(),
        path: String::new(),
        status: None,
        org_id: None,
        authorization: None,
        user_agent: None,
        content_type: None,
        content_encoding: None,
        body_bytes: 0,
        entries: 0,
        stored: 0,
        fault: None,
        response_body: String::new(),
    }
}

type Resp = Response<Full<Bytes>>;

async fn handle(shared: Arc<Shared>, kill: Arc<Notify>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let h = req.headers();
    let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut rec = Recorder {
        shared: shared.clone(),
        record: RequestRecord {
            received_at: SystemTime::now(),
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            org_id: header("x-scope-orgid"),
            authorization: header("authorization"),
            user_agent: header("user-agent"),
            content_type: header("content-type"),
            content_encoding: header("content-encoding"),
            ..blank_record()
        },
    };
    let resp = route(&shared, &kill, req, &mut rec.record).await;
    rec.record.status = Some(resp.status().as_u16());
    Ok(resp)
}

async fn route(shared: &Shared, kill: &Notify, req: Request<Incoming>, rec: &mut RequestRecord) -> Resp {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/ready") => return text(200, None, "ready\n", rec),
        (&Method::POST, PUSH_PATH) => {}
        (_, PUSH_PATH) => return text(405, None, "method not allowed\n", rec),
        _ => return text(404, None, "404 page not found\n", rec),
    }
    // Stalled mode: hang until released (or until the connection is dropped).
    let mut stalled = shared.stalled.subscribe();
    let _ = stalled.wait_for(|s| !*s).await;

    let fault = shared.control().faults.pop_front();
    rec.fault = fault.as_ref().map(|f| format!("{f:?}"));
    let (headers, body) = req.into_parts();
    let headers = headers.headers;
    match fault {
        None => push(shared, &headers, body, rec).await,
        Some(Fault::Status {
            code,
            retry_after,
            body: text_body,
        }) => {
            let _ = read_body(body, usize::MAX, rec).await;
            text(code, retry_after.as_deref(), &text_body, rec)
        }
        Some(Fault::StatusAfterStore {
            code,
            retry_after,
            body: text_body,
        }) => {
            let _ = push(shared, &headers, body, rec).await;
            text(code, retry_after.as_deref(), &text_body, rec)
        }
        Some(Fault::ResetMidBody) => {
            let half = headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
                .map_or(1, |n| (n / 2).max(1));
            let _ = read_upto(body, half, None, rec).await;
            reset(kill).await
        }
        Some(Fault::ResetAfterStore) => {
            let _ = push(shared, &headers, body, rec).await;
            reset(kill).await
        }
        Some(Fault::Stall(d)) => {
            let limit = shared.control().limits.max_recv_msg_size;
            let bytes = match read_body(body, limit, rec).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            tokio::time::sleep(d).await;
            push_bytes(shared, &headers, &bytes, rec)
        }
        Some(Fault::SlowRead { bytes_per_sec }) => {
            let limit = shared.control().limits.max_recv_msg_size;
            match read_upto(body, limit.saturating_add(1), Some(bytes_per_sec), rec).await {
                Ok(bytes) => push_bytes(shared, &headers, &bytes, rec),
                Err(e) => text(400, None, &format!("reading body: {e}\n"), rec),
            }
        }
    }
}

/// Asks the connection task to reset the connection, and waits to be dropped with it.
async fn reset(kill: &Notify) -> Resp {
    kill.notify_one();
    std::future::pending().await
}

/// Normal push handling: body, auth, tenant, decode, validate, store.
async fn push(shared: &Shared, headers: &HeaderMap, body: Incoming, rec: &mut RequestRecord) -> Resp {
    let limit = shared.control().limits.max_recv_msg_size;
    match read_body(body, limit, rec).await {
        Ok(bytes) => push_bytes(shared, headers, &bytes, rec),
        Err(resp) => resp,
    }
}

/// [`push`] once the body is read: auth and tenant checks, then decoding and ingestion.
fn push_bytes(shared: &Shared, headers: &HeaderMap, body: &[u8], rec: &mut RequestRecord) -> Resp {
    let (auth, require_tenant) = {
        let c = shared.control();
        (c.auth.clone(), c.limits.require_tenant)
    };
    if let Some(expected) = auth {
        if rec.authorization.as_deref() != Some(expected.as_str()) {
            return text(401, None, "unauthorized\n", rec);
        }
    }
    if require_tenant && rec.org_id.as_deref().is_none_or(str::is_empty) {
        return text(401, None, "no org id\n", rec);
    }
    ingest_body(shared, headers, body, rec)
}

fn ingest_body(shared: &Shared, headers: &HeaderMap, body: &[u8], rec: &mut RequestRecord) -> Resp {
    let get = |n: HeaderName| headers.get(n).and_then(|v| v.to_str().ok());
    let limits = shared.control().limits.clone();
    let streams = match decode_body(
        get(CONTENT_TYPE),
        get(hyper::header::CONTENT_ENCODING),
        body,
        limits.max_recv_msg_size,
    ) {
        Ok(s) => s,
        Err(e) => return text(e.status(), None, &format!("{}\n", e.message()), rec),
    };
    let now = crate::time::now_nanos();
    let outcome = {
        let mut state = shared.state();
        let outcome = ingest(
            &mut state,
            &limits,
            now,
            get(HeaderName::from_static("x-scope-orgid")),
            streams,
        );
        drop(state);
        shared.changed.notify_all();
        outcome
    };
    rec.entries = outcome.entries;
    rec.stored = outcome.stored;
    match outcome.error_body() {
        Some(body) => text(400, None, &body, rec),
        None => text(204, None, "", rec),
    }
}

/// Reads the whole body. More than `max` bytes (`max_recv_msg_size`) gives the 413 the
/// caller should send.
async fn read_body(body: Incoming, max: usize, rec: &mut RequestRecord) -> Result<Bytes, Resp> {
    let buf = read_upto(body, max.saturating_add(1), None, rec)
        .await
        .map_err(|e| text(400, None, &format!("reading body: {e}\n"), rec))?;
    if buf.len() > max {
        return Err(text(
            413,
            None,
            &format!("request body too large: more than {max} bytes (request_body_too_large)\n"),
            rec,
        ));
    }
    Ok(buf)
}

/// Reads the body until its end or until at least `stop_at` bytes were read; with `rate`, at about
/// that many bytes per second.
async fn read_upto(
    mut body: Incoming,
    stop_at: usize,
    rate: Option<u64>,
    rec: &mut RequestRecord,
) -> Result<Bytes, hyper::Error> {
    let mut buf = Vec::new();
    while buf.len() < stop_at {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
            rec.body_bytes = buf.len();
            if let Some(rate) = rate.filter(|&r| r > 0) {
                tokio::time::sleep(Duration::from_secs_f64(data.len() as f64 / rate as f64)).await;
            }
        }
    }
    Ok(Bytes::from(buf))
}

fn text(code: u16, retry_after: Option<&str>, body: &str, rec: &mut RequestRecord) -> Resp {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = if body.is_empty() && code >= 400 {
        default_body(code)
    } else {
        body
    };
    rec.response_body = body.to_owned();
    let mut resp = Response::builder().status(status);
    if code != 204 && code != 304 {
        resp = resp.header(CONTENT_TYPE, "text/plain; charset=utf-8");
    }
    if let Some(ra) = retry_after.and_then(|v| hyper::header::HeaderValue::from_str(v).ok()) {
        resp = resp.header(RETRY_AFTER, ra);
    }
    let body = if code == 204 {
        Bytes::new()
    } else {
        Bytes::from(body.to_owned())
    };
    resp.body(Full::new(body))
        .expect("a response of a valid status and ASCII headers")
}
