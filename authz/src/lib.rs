//! May they do it.
//!
//! The authorization stage: a pure decision engine that takes the caller ([`UserInfo`]) and the
//! request attributes ([`RequestInfo`]) and returns a [`Decision`] carrying its reason. It reads no
//! files, sockets or clocks. In the pipeline it runs after authentication (and impersonation) and
//! before admission.
//!
//! The chain follows kube-apiserver's: the superuser group `system:masters` is allowed everything,
//! first, with an empty reason; then RBAC ([`rbac`]). A request nobody allows ends with no
//! opinion, which the gateway turns into 403 Forbidden: the chain fails closed.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod rbac;

use std::sync::Arc;

use portcullis_api::user::SYSTEM_MASTERS;
use portcullis_api::{RequestInfo, UserInfo};

/// The verdict of an authorizer, with the reason recorded in audit and shown in 403 bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request is allowed.
    Allow {
        /// Why (empty for the superuser group, as upstream).
        reason: Arc<str>,
    },
    /// The request is denied; no later authorizer is asked.
    Deny {
        /// Why.
        reason: Arc<str>,
    },
    /// This authorizer has no opinion; the chain asks the next one, and denies at the end.
    NoOpinion {
        /// Errors or notes met on the way; empty when none.
        reason: Arc<str>,
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

/// The authorizer chain of the gateway: the superuser group, then RBAC.
#[derive(Clone, Debug, Default)]
pub struct Authorizer {
    rbac: Option<Arc<rbac::Snapshot>>,
}

impl Authorizer {
    /// The chain with only the superuser authorizer: everyone but `system:masters` is denied.
    pub fn new() -> Self {
        Authorizer::default()
    }

    /// The chain with the superuser authorizer followed by RBAC over `snapshot`.
    pub fn with_rbac(snapshot: Arc<rbac::Snapshot>) -> Self {
        Authorizer {
            rbac: Some(snapshot),
        }
    }

    /// The RBAC snapshot, when the chain has one.
    pub fn rbac(&self) -> Option<&rbac::Snapshot> {
        self.rbac.as_deref()
    }

    /// Decides whether `user` may perform the request described by `request`.
    pub fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        if user.in_group(SYSTEM_MASTERS) {
            return Decision::Allow { reason: "".into() };
        }
        match &self.rbac {
            Some(rbac) => rbac.authorize(user, request),
            None => Decision::NoOpinion { reason: "".into() },
        }
    }
}

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
            Decision::Allow { reason: "".into() }
        );
    }

    #[test]
    fn without_rbac_anyone_else_gets_no_opinion_and_is_not_allowed() {
        let user = UserInfo {
            username: "bob".into(),
            groups: vec!["system:authenticated".into(), "system:masters-not".into()],
            ..UserInfo::default()
        };
        let d = Authorizer::new().authorize(&user, &request());
        assert!(!d.is_allowed());
    }
}
