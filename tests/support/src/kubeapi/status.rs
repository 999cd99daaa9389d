//! Kubernetes `Status` errors: the JSON body every API server error carries, and the one a
//! watch stream ends with when its resourceVersion is gone.
//!
//! Clients decide on `code` and `reason` (kube's watcher relists on 410, reports 403 as a
//! permission problem), so each constructor uses the pair a real API server uses for that case.

use serde_json::{json, Value};

/// An error answer: HTTP status `code`, machine-readable `reason` and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status (`{"kind": "pods", "name": ...}`), if any.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> ApiError {
        ApiError {
            code,
            reason,
            message,
            details: None,
        }
    }

    /// 400 BadRequest: a malformed selector, continue token or parameter.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message.into())
    }

    /// 403 Forbidden, worded like the RBAC authorizer's denial of `verb` on `resource`
    /// (cluster-wide when `namespace` is `None`).
    pub fn forbidden(verb: &str, resource: &str, namespace: Option<&str>) -> ApiError {
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        let message = format!(
            "{resource} is forbidden: User \"system:serviceaccount:monitoring:shipper\" cannot {verb} \
             resource \"{resource}\" in API group \"\" {scope}"
        );
        ApiError {
            details: Some(json!({ "kind": resource })),
            ..ApiError::new(403, "Forbidden", message)
        }
    }

    /// 404 NotFound for a path the server does not serve.
    pub fn no_route() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
        )
    }

    /// 404 NotFound for a missing object: `pods "web-0" not found`.
    pub fn not_found(resource: &str, name: &str) -> ApiError {
        ApiError {
            details: Some(json!({ "name": name, "kind": resource })),
            ..ApiError::new(404, "NotFound", format!("{resource} \"{name}\" not found"))
        }
    }

    /// 405 MethodNotAllowed: this fake only serves reads.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
        )
    }

    /// 410 Expired: `rv` is older than the retained history, which starts at `oldest`.
    pub fn too_old(rv: u64, oldest: u64) -> ApiError {
        ApiError::new(410, "Expired", format!("too old resource version: {rv} ({oldest})"))
    }

    /// 410 Expired for a continue token whose snapshot was compacted away (the API server's
    /// wording, shortened).
    pub fn continue_expired() -> ApiError {
        ApiError::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can \
             start a new list without the continue parameter."
                .into(),
        )
    }

    /// 422 Invalid: a parameter combination the API server rejects.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "Invalid", message.into())
    }

    /// 504 Timeout: a resourceVersion newer than the server's (a real one waits up to 3 s for
    /// its cache to catch up, then gives this).
    pub fn too_large(rv: u64, current: u64) -> ApiError {
        ApiError {
            details: Some(
                json!({ "causes": [{ "reason": "ResourceVersionTooLarge", "message": "Too large resource version" }], "retryAfterSeconds": 1 }),
            ),
            ..ApiError::new(
                504,
                "Timeout",
                format!("Too large resource version: {rv}, current: {current}"),
            )
        }
    }

    /// The `Status` object, as a response body or as the object of a watch `ERROR` event.
    pub fn to_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}
