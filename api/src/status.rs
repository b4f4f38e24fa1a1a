//! `Status`, the error body of every failed Kubernetes API request.
//!
//! Each constructor reproduces the code, reason, message shape and details kube-apiserver sends for
//! the same failure (`k8s.io/apimachinery/pkg/api/errors`), so clients that switch on `reason`
//! (kubectl, client-go, controllers) behave as they would against kube-apiserver. Handlers build
//! errors only through these constructors; nothing else invents a status code.

use serde::{Deserialize, Serialize};

use crate::registry::Resource;
use crate::request::RequestInfo;

/// A `v1` `Status` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Always `Status`.
    pub kind: String,
    /// Always `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always empty.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `Success` or `Failure`.
    pub status: String,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine-readable reason, e.g. `NotFound`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Extra data about the object concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// HTTP status code.
    pub code: u16,
}

/// `StatusDetails`: which object a status is about, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    /// Object name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// API group of the object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Resource (plural) or kind, as upstream chooses per error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Object uid, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Field-level causes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// Seconds the client should wait before retrying.
    #[serde(
        rename = "retryAfterSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after_seconds: Option<u32>,
}

/// One field-level cause of an `Invalid` status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// e.g. `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`.
    pub reason: String,
    /// The message of this cause alone.
    pub message: String,
    /// The field path, e.g. `metadata.name`.
    pub field: String,
}

/// One field error of a validation, in the shape of apimachinery's `field.Error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `metadata.name`.
    pub field: String,
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The offending value, rendered as upstream renders it (strings quoted).
    pub value: String,
    /// Extra explanation.
    pub detail: String,
}

/// The kinds of field error kube-apiserver reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `Duplicate value`.
    Duplicate,
    /// `Forbidden`.
    Forbidden,
    /// `Invalid value`.
    Invalid,
    /// `Unsupported value`.
    NotSupported,
    /// `Required value`.
    Required,
    /// `Too long`.
    TooLong,
}

impl FieldError {
    /// `field: Invalid value: "value": detail`.
    pub fn invalid(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Invalid,
            value: format!("{value:?}"),
            detail: detail.into(),
        }
    }

    /// `field: Required value: detail`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Required,
            value: String::new(),
            detail: detail.into(),
        }
    }

    /// `field: Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Forbidden,
            value: String::new(),
            detail: detail.into(),
        }
    }

    fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::TooLong => "FieldValueTooLong",
        }
    }

    /// The message without the field path, as in a `StatusCause`.
    pub fn body(&self) -> String {
        let kind = match self.kind {
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::TooLong => "Too long",
        };
        let mut s = kind.to_owned();
        if matches!(
            self.kind,
            FieldErrorKind::Invalid | FieldErrorKind::NotSupported | FieldErrorKind::Duplicate
        ) {
            s.push_str(": ");
            s.push_str(&self.value);
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl Status {
    fn failure(code: u16, reason: &str, message: String, details: Option<StatusDetails>) -> Self {
        Status {
            kind: "Status".to_owned(),
            api_version: "v1".to_owned(),
            metadata: serde_json::Map::new(),
            status: "Failure".to_owned(),
            message,
            reason: reason.to_owned(),
            details,
            code,
        }
    }

    fn object_details(resource: &Resource, name: &str) -> Option<StatusDetails> {
        Some(StatusDetails {
            name: name.to_owned(),
            group: resource.gv.group.to_owned(),
            kind: resource.plural.to_owned(),
            ..StatusDetails::default()
        })
    }

    /// A `Success` status about a deleted object, as returned by DELETE for most resources.
    pub fn success_deleted(resource: &Resource, name: &str, uid: &str) -> Self {
        let mut s = Self::failure(200, "", String::new(), Self::object_details(resource, name));
        s.status = "Success".to_owned();
        if let Some(d) = s.details.as_mut() {
            d.uid = uid.to_owned();
        }
        s
    }

    /// 404 `NotFound` for an object: `deployments.apps "web" not found`.
    pub fn not_found(resource: &Resource, name: &str) -> Self {
        Self::failure(
            404,
            "NotFound",
            format!("{} {name:?} not found", resource.group_resource()),
            Self::object_details(resource, name),
        )
    }

    /// 404 `NotFound` for a path the server does not serve.
    pub fn path_not_found() -> Self {
        Self::failure(
            404,
            "NotFound",
            "the server could not find the requested resource".to_owned(),
            Some(StatusDetails::default()),
        )
    }

    /// 409 `AlreadyExists`: `pods "web" already exists`.
    pub fn already_exists(resource: &Resource, name: &str) -> Self {
        Self::failure(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", resource.group_resource()),
            Self::object_details(resource, name),
        )
    }

    /// 409 `Conflict` for a stale resourceVersion or failed precondition.
    pub fn conflict(resource: &Resource, name: &str, detail: &str) -> Self {
        Self::failure(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {detail}",
                resource.group_resource()
            ),
            Self::object_details(resource, name),
        )
    }

    /// The detail of a conflict caused by a stale resourceVersion.
    pub const STALE_OBJECT: &'static str = "the object has been modified; please apply your changes to the latest version and try again";

    /// 422 `Invalid`: `Pod "Bad" is invalid: metadata.name: Invalid value: ...`.
    pub fn invalid(resource: &Resource, name: &str, errors: &[FieldError]) -> Self {
        let joined = match errors {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let causes = errors
            .iter()
            .map(|e| StatusCause {
                reason: e.reason().to_owned(),
                message: e.body(),
                field: e.field.clone(),
            })
            .collect();
        Self::failure(
            422,
            "Invalid",
            format!("{} {name:?} is invalid: {joined}", resource.kind),
            Some(StatusDetails {
                name: name.to_owned(),
                group: resource.gv.group.to_owned(),
                kind: resource.kind.to_owned(),
                causes,
                ..StatusDetails::default()
            }),
        )
    }

    /// 400 `BadRequest` with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::failure(400, "BadRequest", message.into(), None)
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized() -> Self {
        Self::failure(401, "Unauthorized", "Unauthorized".to_owned(), None)
    }

    /// 403 `Forbidden` for a request the authorizer did not allow, with kube-apiserver's
    /// message: `pods is forbidden: User "bob" cannot list resource "pods" in API group "" in
    /// the namespace "default"`, followed by `: <reason>` when the authorizer gave one.
    pub fn forbidden_request(user: &str, request: &RequestInfo, reason: &str) -> Self {
        let (mut message, details) = match request {
            RequestInfo::NonResource { verb, path } => (
                format!("forbidden: User {user:?} cannot {verb} path {path:?}"),
                StatusDetails::default(),
            ),
            RequestInfo::Resource(r) => {
                let mut target = r.resource.clone();
                if !r.group.is_empty() {
                    target.push('.');
                    target.push_str(&r.group);
                }
                if !r.name.is_empty() {
                    target.push_str(&format!(" {:?}", r.name));
                }
                let mut resource = r.resource.clone();
                if !r.subresource.is_empty() {
                    resource.push('/');
                    resource.push_str(&r.subresource);
                }
                let scope = if r.namespace.is_empty() {
                    "at the cluster scope".to_owned()
                } else {
                    format!("in the namespace {:?}", r.namespace)
                };
                (
                    format!(
                        "{target} is forbidden: User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                        r.verb, r.group
                    ),
                    StatusDetails {
                        name: r.name.clone(),
                        group: r.group.clone(),
                        kind: r.resource.clone(),
                        ..StatusDetails::default()
                    },
                )
            }
        };
        if !reason.is_empty() {
            message.push_str(": ");
            message.push_str(reason);
        }
        let message = message
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        Self::failure(403, "Forbidden", message, Some(details))
    }

    /// 403 `Forbidden` about an object, with a message built by the stage that refused it:
    /// `roles.rbac.authorization.k8s.io "r" is forbidden: <message>`.
    pub fn forbidden_with_message(resource: &Resource, name: &str, message: String) -> Self {
        let target = if name.is_empty() {
            resource.group_resource()
        } else {
            format!("{} {name:?}", resource.group_resource())
        };
        Self::failure(
            403,
            "Forbidden",
            format!("{target} is forbidden: {message}"),
            Self::object_details(resource, name),
        )
    }

    /// 405 `MethodNotAllowed`.
    pub fn method_not_allowed() -> Self {
        Self::failure(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_owned(),
            Some(StatusDetails::default()),
        )
    }

    /// 406 `NotAcceptable`.
    pub fn not_acceptable(accepted: &str) -> Self {
        Self::failure(
            406,
            "NotAcceptable",
            format!("only the following media types are accepted: {accepted}"),
            None,
        )
    }

    /// 410 `Expired`: a watch or continue token asked for history the server no longer holds.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::failure(410, "Expired", message.into(), None)
    }

    /// 413 `RequestEntityTooLarge`.
    pub fn too_large(limit: usize) -> Self {
        Self::failure(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
            None,
        )
    }

    /// 413 `RequestEntityTooLarge`, as kube-apiserver answers when etcd refuses a value.
    pub fn request_too_large(message: impl Into<String>) -> Self {
        Self::failure(413, "RequestEntityTooLarge", message.into(), None)
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::failure(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    /// 429 `TooManyRequests`.
    pub fn too_many_requests(retry_after: u32) -> Self {
        Self::failure(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.".to_owned(),
            Some(StatusDetails {
                retry_after_seconds: Some(retry_after),
                ..StatusDetails::default()
            }),
        )
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::failure(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
            Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: String::new(),
                    message: message.to_string(),
                    field: String::new(),
                }],
                ..StatusDetails::default()
            }),
        )
    }

    /// 503 `ServiceUnavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::failure(503, "ServiceUnavailable", message.into(), None)
    }

    /// 504 `Timeout`: the request did not finish within its `timeout`.
    pub fn timeout() -> Self {
        Self::failure(
            504,
            "Timeout",
            "Timeout: request did not complete within the allotted timeout".to_owned(),
            Some(StatusDetails::default()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn not_found_has_upstream_shape() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let s = serde_json::to_string(&Status::not_found(deploy, "web")).unwrap();
        assert_eq!(
            s,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \"web\" not found","reason":"NotFound","details":{"name":"web","group":"apps","kind":"deployments"},"code":404}"#
        );
    }

    #[test]
    fn forbidden_message_matches_kube_apiserver() {
        let r = RequestInfo::parse("GET", "/api/v1/namespaces/default/pods", None).unwrap();
        let s = Status::forbidden_request("bob", &r, "");
        assert_eq!(
            s.message,
            r#"pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let r = RequestInfo::parse(
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
            None,
        )
        .unwrap();
        let s = Status::forbidden_request("bob", &r, "no <rule>");
        assert_eq!(
            s.message,
            r#"clusterroles.rbac.authorization.k8s.io "admin" is forbidden: User "bob" cannot get resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope: no &lt;rule&gt;"#
        );
        let r = RequestInfo::parse("GET", "/metrics", None).unwrap();
        assert_eq!(
            Status::forbidden_request("bob", &r, "").message,
            r#"forbidden: User "bob" cannot get path "/metrics""#
        );
    }

    #[test]
    fn invalid_lists_every_cause() {
        let pods = lookup("", "v1", "pods").unwrap();
        let s = Status::invalid(
            pods,
            "Bad",
            &[FieldError::invalid(
                "metadata.name",
                "Bad",
                "must be lower case",
            )],
        );
        assert_eq!(
            s.message,
            r#"Pod "Bad" is invalid: metadata.name: Invalid value: "Bad": must be lower case"#
        );
        let d = s.details.unwrap();
        assert_eq!(d.kind, "Pod");
        assert_eq!(d.causes[0].reason, "FieldValueInvalid");
        assert_eq!(d.causes[0].field, "metadata.name");
    }
}
