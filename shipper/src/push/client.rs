//! The HTTP side of pushing: a hyper client with keep-alive and rustls, and the request headers Loki
//! expects (content type, tenant, auth, user agent).

use crate::config::ClientConfig;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use std::path::Path;
use std::time::Duration;

/// What one push request came back with.
pub enum Outcome {
    Status {
        code: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    /// Connection refused or reset, TLS failure, timeout: no answer.
    Failed(String),
}

pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: http::Uri,
    headers: HeaderMap,
    timeout: Duration,
}

fn read_secret(path: &Path, key: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| format!("`{key}`: cannot read {}: {e}", path.display()))
}

fn tls_config(cfg: &ClientConfig) -> Result<rustls::ClientConfig, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &cfg.tls.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("`client.tls.ca_file`: cannot read {}: {e}", ca.display()))?;
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            let cert = cert.map_err(|e| format!("`client.tls.ca_file`: {}: bad PEM: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("`client.tls.ca_file`: {}: bad certificate: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("`client.tls.ca_file`: {} holds no certificate", ca.display()));
        }
    } else {
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // Skip the odd unparsable system certificate, like every other client does.
            let _ = roots.add(cert);
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots);
    match (&cfg.tls.cert_file, &cfg.tls.key_file) {
        (Some(cert), Some(key)) => {
            let pem = std::fs::read(cert)
                .map_err(|e| format!("`client.tls.cert_file`: cannot read {}: {e}", cert.display()))?;
            let chain = rustls_pemfile::certs(&mut &pem[..])
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("`client.tls.cert_file`: {}: bad PEM: {e}", cert.display()))?;
            let pem =
                std::fs::read(key).map_err(|e| format!("`client.tls.key_file`: cannot read {}: {e}", key.display()))?;
            let key_der = rustls_pemfile::private_key(&mut &pem[..])
                .map_err(|e| format!("`client.tls.key_file`: {}: bad PEM: {e}", key.display()))?
                .ok_or_else(|| format!("`client.tls.key_file`: {} holds no private key", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("`client.tls`: client certificate rejected: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

impl HttpClient {
    pub fn new(cfg: &ClientConfig) -> Result<Self, String> {
        let uri: http::Uri = cfg
            .url
            .parse()
            .map_err(|e| format!("`client.url`: `{}` is not a URL: {e}", cfg.url))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("shipper/", env!("CARGO_PKG_VERSION"))),
        );
        if !cfg.tenant_id.is_empty() {
            let v = HeaderValue::from_str(&cfg.tenant_id)
                .map_err(|_| "`client.tenant_id` has characters not allowed in a header".to_string())?;
            headers.insert("X-Scope-OrgID", v);
        }
        let auth = if let Some(b) = &cfg.basic_auth {
            use base64::Engine;
            let pass = read_secret(&b.password_file, "client.basic_auth.password_file")?;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{pass}", b.username));
            Some(format!("Basic {token}"))
        } else if let Some(f) = &cfg.bearer_token_file {
            Some(format!("Bearer {}", read_secret(f, "client.bearer_token_file")?))
        } else {
            None
        };
        if let Some(a) = auth {
            let mut v = HeaderValue::from_str(&a)
                .map_err(|_| "the credentials have characters not allowed in a header".to_string())?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.timeout.0));
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls_config(cfg)?);
        let builder = builder.https_or_http();
        let builder = match &cfg.tls.server_name {
            Some(name) => builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(
                name.clone()
                    .try_into()
                    .map_err(|_| format!("`client.tls.server_name`: `{name}` is not a DNS name"))?,
            )),
            None => builder,
        };
        let connector = builder.enable_http1().wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(HttpClient {
            client,
            uri,
            headers,
            timeout: cfg.timeout.0,
        })
    }

    /// The push URL, for messages.
    pub fn url(&self) -> &http::Uri {
        &self.uri
    }

    /// Sends one body and waits for the answer (status and the start of the body) within the timeout.
    /// `tenant` (from a `tenant` stage) replaces the client's `tenant_id`.
    pub async fn post(&self, body: Bytes, tenant: Option<&str>) -> Outcome {
        let mut req = http::Request::post(self.uri.clone());
        if let Some(h) = req.headers_mut() {
            h.extend(self.headers.clone());
            if let Some(t) = tenant {
                match HeaderValue::from_str(t) {
                    Ok(v) => {
                        h.insert("X-Scope-OrgID", v);
                    }
                    Err(_) => {
                        return Outcome::Status {
                            code: 400,
                            retry_after: None,
                            body: format!("tenant {t:?} (from a tenant stage) has characters not allowed in a header"),
                        }
                    }
                }
            }
        }
        let req = match req.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("cannot build the request: {e}")),
        };
        let fut = async {
            let resp = self.client.request(req).await.map_err(|e| error_chain(&e))?;
            let code = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| format!("reading the answer: {e}"))?;
            let body = String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned();
            Ok::<_, String>(Outcome::Status {
                code,
                retry_after,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Failed(format!("no answer within client.timeout {:?}", self.timeout)),
        }
    }
}

/// hyper's errors hide the cause (refused, reset, TLS) in their source chain; show all of it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
