//! The upstream algorithm as written: a linear walk over every binding. It is the oracle the
//! index is tested against (and the baseline of the benchmarks), not a production path.

use std::sync::Arc;

use portcullis_api::{RequestInfo, UserInfo};

use super::{
    Policy, RoleBinding, SERVICE_ACCOUNT_PREFIX, Subject, describe_subject, error_reason,
    not_found, rules_allow, unsupported_kind,
};
use crate::Decision;

/// Decides by walking ClusterRoleBindings (by name), then the namespace's RoleBindings (by
/// name), allowing at the first rule that matches.
pub fn authorize(policy: &Policy, user: &UserInfo, request: &RequestInfo) -> Decision {
    let mut errors: Vec<Arc<str>> = Vec::new();
    let mut crbs: Vec<&RoleBinding> = policy.cluster_role_bindings.iter().collect();
    crbs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for b in crbs {
        let Some(subject) = b.subjects().iter().find(|s| applies(s, user, "")) else {
            continue;
        };
        if b.role_ref.kind != "ClusterRole" {
            errors.push(unsupported_kind(&b.role_ref.kind));
            continue;
        }
        match policy
            .cluster_roles
            .iter()
            .find(|r| r.metadata.name == b.role_ref.name)
        {
            Some(role) if rules_allow(role.rules(), request) => {
                return Decision::Allow {
                    reason: format!(
                        "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {:?} to {}",
                        b.metadata.name,
                        b.role_ref.name,
                        describe_subject(subject, "")
                    )
                    .into(),
                };
            }
            Some(_) => {}
            None => errors.push(not_found("clusterrole", &b.role_ref.name)),
        }
    }
    if let RequestInfo::Resource(r) = request
        && !r.namespace.is_empty()
    {
        let ns = r.namespace.as_str();
        let mut rbs: Vec<&RoleBinding> = policy
            .role_bindings
            .iter()
            .filter(|b| b.metadata.namespace == ns)
            .collect();
        rbs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for b in rbs {
            let Some(subject) = b.subjects().iter().find(|s| applies(s, user, ns)) else {
                continue;
            };
            let role = match b.role_ref.kind.as_str() {
                "ClusterRole" => policy
                    .cluster_roles
                    .iter()
                    .find(|r| r.metadata.name == b.role_ref.name)
                    .ok_or_else(|| not_found("clusterrole", &b.role_ref.name)),
                "Role" => policy
                    .roles
                    .iter()
                    .find(|r| r.metadata.namespace == ns && r.metadata.name == b.role_ref.name)
                    .ok_or_else(|| not_found("role", &b.role_ref.name)),
                other => Err(unsupported_kind(other)),
            };
            match role {
                Ok(role) if rules_allow(role.rules(), request) => {
                    return Decision::Allow {
                        reason: format!(
                            "RBAC: allowed by RoleBinding \"{}/{ns}\" of {} {:?} to {}",
                            b.metadata.name,
                            b.role_ref.kind,
                            b.role_ref.name,
                            describe_subject(subject, ns)
                        )
                        .into(),
                    };
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
    }
    Decision::NoOpinion {
        reason: error_reason(&errors),
    }
}

/// Whether a subject applies to a user (`appliesToUser`).
pub fn applies(s: &Subject, user: &UserInfo, binding_ns: &str) -> bool {
    match s.kind.as_str() {
        "User" => user.username == s.name,
        "Group" => user.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() {
                binding_ns
            } else {
                s.namespace.as_str()
            };
            !ns.is_empty()
                && user
                    .username
                    .strip_prefix(SERVICE_ACCOUNT_PREFIX)
                    .and_then(|rest| rest.strip_prefix(ns))
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|name| name == s.name)
        }
        _ => false,
    }
}

/// One grant found by [`who_can`]: a subject, and the binding and role that give it the access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The subject, as written in the binding.
    pub subject: Subject,
    /// `ClusterRoleBinding/<name>` or `RoleBinding/<namespace>/<name>`.
    pub binding: String,
    /// `ClusterRole/<name>` or `Role/<name>`.
    pub role: String,
}

/// The subject locator: every subject of every binding whose role allows the request
/// (ClusterRoleBindings, then RoleBindings of the request's namespace), as upstream's "who can".
/// The superuser group `system:masters` is allowed everything and is not listed here.
pub fn who_can(policy: &Policy, request: &RequestInfo) -> Vec<Grant> {
    let mut out = Vec::new();
    let mut crbs: Vec<&RoleBinding> = policy.cluster_role_bindings.iter().collect();
    crbs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for b in crbs {
        if b.role_ref.kind != "ClusterRole" {
            continue;
        }
        let Some(role) = policy
            .cluster_roles
            .iter()
            .find(|r| r.metadata.name == b.role_ref.name)
        else {
            continue;
        };
        if rules_allow(role.rules(), request) {
            for s in b.subjects() {
                out.push(Grant {
                    subject: s.clone(),
                    binding: format!("ClusterRoleBinding/{}", b.metadata.name),
                    role: format!("ClusterRole/{}", role.metadata.name),
                });
            }
        }
    }
    if let RequestInfo::Resource(r) = request
        && !r.namespace.is_empty()
    {
        let ns = r.namespace.as_str();
        let mut rbs: Vec<&RoleBinding> = policy
            .role_bindings
            .iter()
            .filter(|b| b.metadata.namespace == ns)
            .collect();
        rbs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for b in rbs {
            let role = match b.role_ref.kind.as_str() {
                "ClusterRole" => policy
                    .cluster_roles
                    .iter()
                    .find(|r| r.metadata.name == b.role_ref.name),
                "Role" => policy
                    .roles
                    .iter()
                    .find(|r| r.metadata.namespace == ns && r.metadata.name == b.role_ref.name),
                _ => None,
            };
            let Some(role) = role else { continue };
            if rules_allow(role.rules(), request) {
                for s in b.subjects() {
                    let mut s = s.clone();
                    if s.kind == "ServiceAccount" && s.namespace.is_empty() {
                        s.namespace = ns.to_owned();
                    }
                    out.push(Grant {
                        subject: s,
                        binding: format!("RoleBinding/{ns}/{}", b.metadata.name),
                        role: format!("{}/{}", b.role_ref.kind, role.metadata.name),
                    });
                }
            }
        }
    }
    out
}
