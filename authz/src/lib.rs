//! May they do it.
//!
//! The authorization stage: a pure decision engine that takes the caller ([`UserInfo`]) and the
//! request attributes ([`RequestInfo`]) and returns a [`Decision`] carrying its reason. It reads no
//! files, sockets or clocks. In the pipeline it runs after authentication (and impersonation) and
//! before admission.
//!
//! The chain follows kube-apiserver's: the superuser group `system:masters` is allowed everything,
//! first, with an empty reason; then the configured authorizers. Until the RBAC engine lands no
//! other authorizer exists, so every other request ends with no opinion, which the gateway turns
//! into 403 Forbidden: the chain fails closed.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use portcullis_api::user::{SYSTEM_AUTHENTICATED, SYSTEM_MASTERS, SYSTEM_UNAUTHENTICATED};
use portcullis_api::{RequestInfo, UserInfo};

/// The verdict of an authorizer, with the reason recorded in audit and shown in 403 bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request is allowed.
    Allow {
        /// Why (empty for the superuser group, as upstream).
        reason: String,
    },
    /// The request is denied; no later authorizer is asked.
    Deny {
        /// Why.
        reason: String,
    },
    /// This authorizer has no opinion; the chain asks the next one, and denies at the end.
    NoOpinion {
        /// Errors or notes met on the way; empty when none.
        reason: String,
    },
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The reason string.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow { reason }
            | Decision::Deny { reason }
            | Decision::NoOpinion { reason } => reason,
        }
    }
}

/// The authorizer chain of the gateway.
#[derive(Clone, Debug, Default)]
pub struct Authorizer {
    _private: (),
}

impl Authorizer {
    /// The chain with only the superuser authorizer.
    pub fn new() -> Self {
        Authorizer::default()
    }

    /// Decides whether `user` may perform the request described by `request`.
    pub fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        if user.in_group(SYSTEM_MASTERS) {
            return Decision::Allow {
                reason: String::new(),
            };
        }
        // kube-apiserver's bootstrap binding `system:public-info-viewer` grants these paths to
        // authenticated and unauthenticated callers alike.
        if let RequestInfo::NonResource { verb, path } = request
            && verb == "get"
            && PUBLIC_INFO_PATHS.contains(&path.as_str())
            && (user.in_group(SYSTEM_AUTHENTICATED) || user.in_group(SYSTEM_UNAUTHENTICATED))
        {
            return Decision::Allow {
                reason: "public info paths are readable by everyone".to_owned(),
            };
        }
        Decision::NoOpinion {
            reason: String::new(),
        }
    }
}

/// The non-resource paths of the `system:public-info-viewer` bootstrap role.
const PUBLIC_INFO_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RequestInfo {
        RequestInfo::parse("GET", "/api/v1/namespaces/default/pods", None).unwrap()
    }

    #[test]
    fn system_masters_is_allowed_with_an_empty_reason() {
        let user = UserInfo {
            username: "admin".into(),
            groups: vec!["system:masters".into()],
            ..UserInfo::default()
        };
        assert_eq!(
            Authorizer::new().authorize(&user, &request()),
            Decision::Allow {
                reason: String::new()
            }
        );
    }

    #[test]
    fn health_and_version_are_public_but_metrics_is_not() {
        let anon = UserInfo {
            username: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..UserInfo::default()
        };
        let get = |p: &str| RequestInfo::parse("GET", p, None).unwrap();
        assert!(
            Authorizer::new()
                .authorize(&anon, &get("/healthz"))
                .is_allowed()
        );
        assert!(
            Authorizer::new()
                .authorize(&anon, &get("/version"))
                .is_allowed()
        );
        assert!(
            !Authorizer::new()
                .authorize(&anon, &get("/metrics"))
                .is_allowed()
        );
        let post = RequestInfo::parse("POST", "/healthz", None).unwrap();
        assert!(!Authorizer::new().authorize(&anon, &post).is_allowed());
    }

    #[test]
    fn anyone_else_gets_no_opinion_and_is_not_allowed() {
        let user = UserInfo {
            username: "bob".into(),
            groups: vec!["system:authenticated".into(), "system:masters-not".into()],
            ..UserInfo::default()
        };
        let d = Authorizer::new().authorize(&user, &request());
        assert!(!d.is_allowed());
    }
}
