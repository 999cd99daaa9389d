//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream`, for testing the receiver
//! itself and for tests that want to poke it by hand (one request per connection,
//! `Connection: close`; `http://`, and `https://` through [`request_tls`]).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::logproto::{encode_snappy, PushRequest};

/// A response: status, headers (names lower-cased) and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Default timeout of the helpers below.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one request and reads the response until the server closes the connection.
///
/// Errors: the URL is not `http://host:port/path`, connecting fails (refused while the
/// receiver is down), the connection is reset, or it closes before a complete response head
/// (`UnexpectedEof`), or `timeout` passes while waiting (`WouldBlock`/`TimedOut`).
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let (host, path) = split_url(url, "http://")?;
    let mut conn = connect(host, timeout)?;
    exchange(&mut conn, method, host, path, headers, body)
}

/// [`request`] for an `https://host:port/path` URL, over TLS with `tls` (e.g.
/// [`TestPki::client_config`](crate::TestPki::client_config)); the name verified against the
/// server certificate (and sent as SNI) is `host`.
///
/// Errors: those of [`request`], and a failed handshake (`InvalidData`, wrapping the rustls
/// error: an untrusted certificate, a name mismatch, a client certificate the server refused).
pub fn request_tls(
    tls: &Arc<rustls::ClientConfig>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let (host, path) = split_url(url, "https://")?;
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => name,
        _ => host,
    };
    let name = rustls::pki_types::ServerName::try_from(name.trim_start_matches('[').trim_end_matches(']'))
        .map_err(|e| invalid(format!("{url}: bad server name: {e}")))?
        .to_owned();
    let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(io::Error::other)?;
    let mut conn = rustls::StreamOwned::new(conn, connect(host, timeout)?);
    conn.flush()?; // the handshake, so that its errors are not mistaken for the request's
    exchange(&mut conn, method, host, path, headers, body)
}

fn connect(host: &str, timeout: Duration) -> io::Result<TcpStream> {
    let addr = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("{host} resolves to nothing")))?;
    let conn = TcpStream::connect_timeout(&addr, timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

fn exchange(
    conn: &mut impl ReadWrite,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut msg = head.into_bytes();
    msg.extend_from_slice(body);
    conn.write_all(&msg)?;
    conn.flush()?;
    let mut raw = Vec::new();
    match conn.read_to_end(&mut raw) {
        Ok(_) => {}
        // TLS without close_notify: the response, if complete, is judged by its Content-Length.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse_response(&raw)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// `POST url` with `body` and `headers`.
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<HttpResponse> {
    request("POST", url, headers, body, DEFAULT_TIMEOUT)
}

/// `GET url`.
pub fn get(url: &str) -> io::Result<HttpResponse> {
    request("GET", url, &[], &[], DEFAULT_TIMEOUT)
}

/// Pushes `req` as `application/x-protobuf` (snappy block), like Promtail and Alloy do.
pub fn push_protobuf(url: &str, req: &PushRequest) -> io::Result<HttpResponse> {
    post(url, &[("Content-Type", "application/x-protobuf")], &encode_snappy(req))
}

/// Pushes a JSON body, gzip-compressed with `Content-Encoding: gzip` when `gzip`.
pub fn push_json(url: &str, json: &str, gzip: bool) -> io::Result<HttpResponse> {
    if !gzip {
        return post(url, &[("Content-Type", "application/json")], json.as_bytes());
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(json.as_bytes())?;
    let body = enc.finish()?;
    post(
        url,
        &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        &body,
    )
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn split_url<'a>(url: &'a str, scheme: &str) -> io::Result<(&'a str, &'a str)> {
    let rest = url.strip_prefix(scheme).ok_or_else(|| {
        let hint = if scheme == "http://" {
            " (use request_tls for https://)"
        } else {
            ""
        };
        invalid(format!("{url}: only {scheme} URLs are supported here{hint}"))
    })?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

fn parse_response(raw: &[u8]) -> io::Result<HttpResponse> {
    let eof = || {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a complete response",
        )
    };
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(eof)?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|e| invalid(e.to_string()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(eof)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if let Some(len) = length {
        if body.len() < len {
            return Err(eof());
        }
        body.truncate(len);
    }
    Ok(HttpResponse { status, headers, body })
}
