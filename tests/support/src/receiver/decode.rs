//! Turning a push body into streams: content encodings, snappy + protobuf, and JSON.
//!
//! Mirrors Loki's `ParseLokiRequest`: `Content-Encoding` `gzip`/`deflate` is undone first (`snappy`
//! is accepted and changes nothing, any other is refused);
//! then `Content-Type: application/json` is parsed as JSON and anything else (including no
//! content type) as snappy-block-compressed protobuf.

use std::io::Read;

use prost::Message;
use serde_json::Value;

use crate::logproto::PushRequest;

/// One stream as decoded, before validation.
#[derive(Debug)]
pub(crate) struct IncomingStream {
    pub labels: String,
    pub entries: Vec<IncomingEntry>,
}

/// One entry as decoded, before validation.
#[derive(Debug)]
pub(crate) struct IncomingEntry {
    pub ts_ns: i64,
    pub line: String,
    pub structured_metadata: Vec<(String, String)>,
}

/// Why a body could not be decoded; each maps to the status Loki answers.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// 413: bigger than `max_recv_msg_size`, compressed or not.
    TooLarge(String),
    /// 415: a `Content-Encoding` Loki does not support.
    UnsupportedEncoding(String),
    /// 400: not snappy, not protobuf, not the JSON shape, or not UTF-8.
    Malformed(String),
}

impl DecodeError {
    pub(crate) fn status(&self) -> u16 {
        match self {
            DecodeError::TooLarge(_) => 413,
            DecodeError::UnsupportedEncoding(_) => 415,
            DecodeError::Malformed(_) => 400,
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            DecodeError::TooLarge(m) | DecodeError::UnsupportedEncoding(m) => m,
            DecodeError::Malformed(m) => m,
        }
    }
}

/// Decodes a push body given its `Content-Type` and `Content-Encoding` headers.
pub(crate) fn decode_body(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    max: usize,
) -> Result<Vec<IncomingStream>, DecodeError> {
    let decoded;
    let body = match content_encoding.map(str::trim).unwrap_or("") {
        // Loki takes `snappy` as a no-op: a protobuf body is snappy-decoded below in any case
        // (Vector's loki sink sends it).
        "" | "snappy" => body,
        "gzip" => {
            decoded = read_capped(flate2::read::GzDecoder::new(body), max, "gzip")?;
            &decoded[..]
        }
        "deflate" => {
            decoded = read_capped(flate2::read::DeflateDecoder::new(body), max, "deflate")?;
            &decoded[..]
        }
        other => {
            return Err(DecodeError::UnsupportedEncoding(format!(
                "Content-Encoding {other:?} not supported"
            )))
        }
    };
    let mime = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if mime == "application/json" {
        decode_json(body)
    } else {
        decode_protobuf(body, max)
    }
}

fn read_capped(reader: impl Read, max: usize, what: &str) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Malformed(format!("{what} decompression failed: {e}")))?;
    if out.len() > max {
        return Err(too_large(out.len(), max));
    }
    Ok(out)
}

fn too_large(size: usize, max: usize) -> DecodeError {
    DecodeError::TooLarge(format!(
        "request body too large: {size} bytes, limit: {max} bytes (request_body_too_large)"
    ))
}

fn decode_protobuf(body: &[u8], max: usize) -> Result<Vec<IncomingStream>, DecodeError> {
    let len = snap::raw::decompress_len(body).map_err(|e| DecodeError::Malformed(format!("snappy: decode: {e}")))?;
    if len > max {
        return Err(too_large(len, max));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Malformed(format!("snappy: decode: {e}")))?;
    let req = PushRequest::decode(raw.as_slice())
        .map_err(|e| DecodeError::Malformed(format!("proto: cannot parse PushRequest: {e}")))?;
    Ok(req
        .streams
        .into_iter()
        .map(|s| IncomingStream {
            labels: s.labels,
            entries: s
                .entries
                .into_iter()
                .map(|e| IncomingEntry {
                    ts_ns: e.timestamp.map_or(0, |t| t.to_nanos()),
                    line: e.line,
                    structured_metadata: e.structured_metadata.into_iter().map(|p| (p.name, p.value)).collect(),
                })
                .collect(),
        })
        .collect())
}

fn decode_json(body: &[u8]) -> Result<Vec<IncomingStream>, DecodeError> {
    let bad = |m: String| DecodeError::Malformed(m);
    let root: Value = serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    let streams = match root.get("streams") {
        Some(Value::Array(a)) => a,
        Some(Value::Null) | None => return Ok(Vec::new()),
        Some(_) => return Err(bad("\"streams\" must be an array".into())),
    };
    streams
        .iter()
        .enumerate()
        .map(|(i, s)| json_stream(s).map_err(|m| bad(format!("streams[{i}]: {m}"))))
        .collect()
}

fn json_stream(s: &Value) -> Result<IncomingStream, String> {
    let labels = match s.get("stream") {
        Some(Value::Object(m)) => {
            let mut pairs = m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k.clone(), v.clone())),
                    _ => Err(format!("label {k:?} must be a string")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            pairs.sort();
            super::labels::format_labels(&pairs)
        }
        None | Some(Value::Null) => "{}".to_owned(),
        Some(_) => return Err("\"stream\" must be an object".into()),
    };
    let values = match s.get("values") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => {
            return Ok(IncomingStream {
                labels,
                entries: vec![],
            })
        }
        Some(_) => return Err("\"values\" must be an array".into()),
    };
    let entries = values
        .iter()
        .enumerate()
        .map(|(j, v)| json_entry(v).map_err(|m| format!("values[{j}]: {m}")))
        .collect::<Result<_, _>>()?;
    Ok(IncomingStream { labels, entries })
}

fn json_entry(v: &Value) -> Result<IncomingEntry, String> {
    let arr = match v {
        Value::Array(a) if a.len() == 2 || a.len() == 3 => a,
        _ => return Err("an entry must be [\"<unix ns>\", \"<line>\"(, {metadata})]".into()),
    };
    let ts_ns = match &arr[0] {
        Value::String(s) => s
            .parse::<i64>()
            .map_err(|e| format!("timestamp {s:?} is not an integer of nanoseconds: {e}"))?,
        _ => return Err("timestamp must be a string of unix nanoseconds".into()),
    };
    let line = match &arr[1] {
        Value::String(s) => s.clone(),
        _ => return Err("line must be a string".into()),
    };
    let structured_metadata = match arr.get(2) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(v) => Ok((k.clone(), v.clone())),
                _ => Err(format!("structured metadata {k:?} must be a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("structured metadata must be an object".into()),
    };
    Ok(IncomingEntry {
        ts_ns,
        line,
        structured_metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn json_with_metadata_and_sorted_labels() {
        let body = br#"{"streams":[{"stream":{"b":"2","a":"1"},
            "values":[["10","one"],["20","two",{"trace_id":"t"}]]}]}"#;
        let s = decode_body(Some("application/json; charset=utf-8"), None, body, MAX).unwrap();
        assert_eq!(s[0].labels, r#"{a="1", b="2"}"#);
        assert_eq!(s[0].entries[1].ts_ns, 20);
        assert_eq!(
            s[0].entries[1].structured_metadata,
            vec![("trace_id".into(), "t".into())]
        );
    }

    #[test]
    fn malformed_bodies() {
        let e = decode_body(Some("application/x-protobuf"), None, b"\xffnot snappy", MAX);
        assert_eq!(e.unwrap_err().status(), 400);
        let e = decode_body(
            Some("application/json"),
            None,
            br#"{"streams":[{"values":[[1,"x"]]}]}"#,
            MAX,
        );
        assert_eq!(e.unwrap_err().status(), 400);
        let e = decode_body(None, Some("br"), b"", MAX);
        assert_eq!(e.unwrap_err().status(), 415);
        let e = decode_body(None, Some("identity"), b"", MAX);
        assert_eq!(e.unwrap_err().status(), 415);
    }

    #[test]
    fn content_encoding_snappy_is_the_protobuf_body_as_loki_takes_it() {
        let req = crate::logproto::PushRequest {
            streams: vec![crate::logproto::StreamAdapter {
                labels: "{job=\"x\"}".into(),
                entries: vec![crate::logproto::EntryAdapter {
                    timestamp: Some(crate::logproto::Timestamp { seconds: 1, nanos: 2 }),
                    line: "hello".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let body = crate::logproto::encode_snappy(&req);
        let s = decode_body(Some("application/x-protobuf"), Some("snappy"), &body, MAX).unwrap();
        assert_eq!(
            (s[0].labels.as_str(), s[0].entries[0].line.as_str()),
            ("{job=\"x\"}", "hello")
        );
        assert_eq!(s[0].entries[0].ts_ns, 1_000_000_002);
    }

    #[test]
    fn size_cap_applies_after_decompression() {
        let big = vec![b'a'; 4096];
        let body = snap::raw::Encoder::new().compress_vec(&big).unwrap();
        let e = decode_body(None, None, &body, 1024).unwrap_err();
        assert_eq!(e.status(), 413);
        assert!(e.message().contains("request_body_too_large"));
    }
}
