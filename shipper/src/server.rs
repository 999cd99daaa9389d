//! The HTTP server for operators and orchestrators: `/metrics` (Prometheus text), `/ready` (200 once the
//! pipeline runs), `/healthz` (200 while the process serves).

use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Binds `addr`; the error names the setting so the user knows what to change.
pub async fn bind(addr: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("`server.http_listen` ({addr}): cannot listen: {e}; choose another address or port"))
}

/// Serves until the runtime stops.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, ready: Arc<AtomicBool>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                let ready = ready.clone();
                async move { Ok::<_, Infallible>(route(req.uri().path(), &metrics, &ready)) }
            });
            // A client that hangs up mid-request is not our problem.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn route(path: &str, metrics: &Metrics, ready: &AtomicBool) -> Response<Full<Bytes>> {
    let (code, ctype, body) = match path {
        "/metrics" => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/ready" if ready.load(Ordering::Relaxed) => (200, "text/plain", "ready\n".into()),
        "/ready" => (503, "text/plain", "starting\n".into()),
        "/healthz" => (200, "text/plain", "ok\n".into()),
        _ => (
            404,
            "text/plain",
            "not found; try /metrics, /ready or /healthz\n".into(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}
