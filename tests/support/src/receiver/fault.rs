//! Scripted misbehaviour, one fault per push request.

use std::time::Duration;

/// A fault applied to the next push request, instead of (or around) normal handling.
///
/// Faults queue up with [`Receiver::push_faults`](crate::Receiver::push_faults) and each push
/// request (`POST /loki/api/v1/push`) takes the next one before anything else happens
/// (stalled mode, then the fault, then auth and validation). Other paths do not consume faults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Read the whole body, store nothing, answer `code` with `body` as `text/plain` and a
    /// `Retry-After` header when given (`"3"` or an HTTP date): a 429/5xx/4xx from Loki or a
    /// gateway in front of it.
    Status {
        /// HTTP status code.
        code: u16,
        /// `Retry-After` header value.
        retry_after: Option<String>,
        /// Response body.
        body: String,
    },
    /// Handle the request normally (validate, store) but answer `code` instead of the normal
    /// answer: a partial 429, or a 5xx after the write reached the ingesters. A client that
    /// retries produces duplicates.
    StatusAfterStore {
        /// HTTP status code.
        code: u16,
        /// `Retry-After` header value.
        retry_after: Option<String>,
        /// Response body.
        body: String,
    },
    /// Read about half of the body (at least one chunk) and reset the TCP connection
    /// (RST, `SO_LINGER` 0) without any response. Nothing is stored.
    ResetMidBody,
    /// Handle the request normally (store) and then reset the connection without a response:
    /// the client cannot know the push landed and will retry, producing duplicates.
    ResetAfterStore,
    /// Read the body, then hold the request this long before handling it normally. If the
    /// client gives up and closes the connection meanwhile, the request is dropped
    /// unanswered and *nothing is stored*; if it is still connected when the stall ends, it is
    /// stored and answered.
    Stall(Duration),
    /// Read the body at about this many bytes per second (the TCP window fills and the client's
    /// writes block), then handle it normally. A client whose timeout runs out first gives up:
    /// nothing is stored.
    SlowRead { bytes_per_sec: u64 },
}

impl Fault {
    /// `Fault::Status` with no `Retry-After` and a short body naming the status.
    pub fn status(code: u16) -> Self {
        Fault::Status {
            code,
            retry_after: None,
            body: default_body(code).to_owned(),
        }
    }

    /// A 429 `rate_limited` answer with `Retry-After: <secs>`, worded like Loki's.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Fault::Status {
            code: 429,
            retry_after: Some(retry_after_secs.to_string()),
            body: "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while \
                   attempting to ingest lines, reduce log volume or contact your Loki \
                   administrator to see if the limit can be increased (rate_limited)"
                .to_owned(),
        }
    }
}

/// A plain body for a status code.
pub(crate) fn default_body(code: u16) -> &'static str {
    match code {
        400 => "bad request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "404 page not found",
        413 => "request body too large",
        429 => "Too Many Requests (rate_limited)",
        500 => "internal server error",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => "injected fault",
    }
}
