//! The HTTP server for operators and orchestrators: `/metrics` (Prometheus text), `/ready` (200 once the
//! pipeline runs), `/healthz` (200 while the process serves), and `POST /reload` (also `/-/reload`):
//! reloads the config, 200 when applied, 500 with the error when rejected (as Prometheus answers).

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

/// A reload asked over HTTP, answered with its outcome.
pub type ReloadReply = tokio::sync::oneshot::Sender<Result<String, String>>;
pub type ReloadRequests = tokio::sync::mpsc::Receiver<ReloadReply>;

/// Serves until the runtime stops.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    reload: tokio::sync::mpsc::Sender<ReloadReply>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (metrics, ready, reload) = (metrics.clone(), ready.clone(), reload.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (metrics, ready, reload) = (metrics.clone(), ready.clone(), reload.clone());
                async move {
                    let path = req.uri().path();
                    let resp = if path == "/reload" || path == "/-/reload" {
                        reload_route(req.method(), &reload).await
                    } else {
                        route(path, &metrics, &ready)
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            // A client that hangs up mid-request is not our problem.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn reload_route(method: &http::Method, reload: &tokio::sync::mpsc::Sender<ReloadReply>) -> Response<Full<Bytes>> {
    if method != http::Method::POST && method != http::Method::PUT {
        return response(405, "text/plain", "use POST to reload the config\n".into());
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    if reload.send(tx).await.is_err() {
        return response(503, "text/plain", "the agent is stopping\n".into());
    }
    match rx.await {
        Ok(Ok(summary)) => response(200, "text/plain", format!("config reloaded: {summary}\n")),
        Ok(Err(e)) => response(
            500,
            "text/plain",
            format!("failed to reload config: {e}\nthe previous config keeps running\n"),
        ),
        Err(_) => response(503, "text/plain", "the agent is stopping\n".into()),
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
            "not found; try /metrics, /ready, /healthz or POST /reload\n".into(),
        ),
    };
    response(code, ctype, body)
}

fn response(code: u16, ctype: &str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}
