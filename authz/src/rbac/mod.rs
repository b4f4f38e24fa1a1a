//! Kubernetes RBAC, with upstream semantics and an index that keeps a decision's cost
//! independent of the number of bindings.
//!
//! kube-apiserver's RBAC authorizer walks every ClusterRoleBinding, then every RoleBinding of the
//! request's namespace, and allows at the first rule that matches. [`Snapshot`] reaches the same
//! verdict, with the same reason string, by looking bindings up by subject instead: each binding
//! is filed under the user name (User and ServiceAccount subjects) or group (Group subjects) it
//! applies to, in the order upstream would visit it, so the first allowing binding found in the
//! index is the one the linear walk would have found. [`reference::authorize`] is that linear
//! walk, kept as the test oracle.
//!
//! Visiting order (upstream leaves it to the informer cache): ClusterRoleBindings by name, then
//! RoleBindings of the namespace by name.

pub mod escalation;
pub mod reference;
mod rules;
mod types;

use std::collections::HashMap;
use std::sync::Arc;

use portcullis_api::{RequestInfo, UserInfo};

pub use rules::{rule_allows, rules_allow};
pub use types::{Policy, PolicyRule, Role, RoleBinding, RoleRef, Subject};

use crate::Decision;

/// The `system:serviceaccount:` prefix of service-account user names.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// A compiled, immutable view of a cluster's RBAC objects.
#[derive(Debug, Default)]
pub struct Snapshot {
    cluster_bindings: Vec<Compiled>,
    cluster_index: SubjectIndex,
    namespaces: HashMap<Box<str>, Namespace>,
    roles: Vec<Arc<[PolicyRule]>>,
}

#[derive(Debug, Default)]
struct Namespace {
    bindings: Vec<Compiled>,
    index: SubjectIndex,
}

/// Bindings filed by the user name or group a subject of theirs applies to. Each posting is
/// (binding position, subject position); lists are in visiting order.
#[derive(Debug, Default)]
struct SubjectIndex {
    by_user: HashMap<Box<str>, Vec<(u32, u32)>>,
    by_group: HashMap<Box<str>, Vec<(u32, u32)>>,
}

/// One binding, with its role resolved and its reason strings made once.
#[derive(Debug)]
struct Compiled {
    role: Result<usize, Arc<str>>,
    /// The allow reason for each subject, by subject position.
    reasons: Vec<Arc<str>>,
}

impl Snapshot {
    /// Compiles the objects of `policy`. Nothing here can fail: a binding to a missing role is
    /// kept and reported by every decision that reaches it, as upstream does.
    pub fn build(policy: &Policy) -> Snapshot {
        let mut roles: Vec<Arc<[PolicyRule]>> = Vec::new();
        let mut cluster_roles = HashMap::new();
        for r in &policy.cluster_roles {
            cluster_roles.insert(r.metadata.name.as_str(), roles.len());
            roles.push(r.rules().to_vec().into());
        }
        let mut ns_roles = HashMap::new();
        for r in &policy.roles {
            ns_roles.insert(
                (r.metadata.namespace.as_str(), r.metadata.name.as_str()),
                roles.len(),
            );
            roles.push(r.rules().to_vec().into());
        }

        let mut snapshot = Snapshot {
            roles,
            ..Snapshot::default()
        };
        let mut crbs: Vec<&RoleBinding> = policy.cluster_role_bindings.iter().collect();
        crbs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for b in crbs {
            let role = if b.role_ref.kind == "ClusterRole" {
                cluster_roles
                    .get(b.role_ref.name.as_str())
                    .copied()
                    .ok_or_else(|| not_found("clusterrole", &b.role_ref.name))
            } else {
                Err(unsupported_kind(&b.role_ref.kind))
            };
            let position = snapshot.cluster_bindings.len() as u32;
            snapshot.cluster_index.add(b, "", position);
            snapshot.cluster_bindings.push(Compiled {
                role,
                reasons: reasons(b, ""),
            });
        }
        let mut rbs: Vec<&RoleBinding> = policy.role_bindings.iter().collect();
        rbs.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        for b in rbs {
            let ns = b.metadata.namespace.as_str();
            let role = match b.role_ref.kind.as_str() {
                "ClusterRole" => cluster_roles
                    .get(b.role_ref.name.as_str())
                    .copied()
                    .ok_or_else(|| not_found("clusterrole", &b.role_ref.name)),
                "Role" => ns_roles
                    .get(&(ns, b.role_ref.name.as_str()))
                    .copied()
                    .ok_or_else(|| not_found("role", &b.role_ref.name)),
                other => Err(unsupported_kind(other)),
            };
            let entry = snapshot.namespaces.entry(ns.into()).or_default();
            let position = entry.bindings.len() as u32;
            entry.index.add(b, ns, position);
            entry.bindings.push(Compiled {
                role,
                reasons: reasons(b, ns),
            });
        }
        snapshot
    }

    /// Decides a request as the RBAC authorizer does: Allow with the reason naming the first
    /// binding that grants it, or NoOpinion with the resolution errors met (RBAC never denies).
    pub fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        let mut errors: Vec<Arc<str>> = Vec::new();
        if let Some(reason) = self.first_allow(
            &self.cluster_index,
            &self.cluster_bindings,
            user,
            request,
            &mut errors,
        ) {
            return Decision::Allow { reason };
        }
        if let RequestInfo::Resource(r) = request
            && !r.namespace.is_empty()
            && let Some(ns) = self.namespaces.get(r.namespace.as_str())
            && let Some(reason) =
                self.first_allow(&ns.index, &ns.bindings, user, request, &mut errors)
        {
            return Decision::Allow { reason };
        }
        Decision::NoOpinion {
            reason: error_reason(&errors),
        }
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide rules included), and the
    /// resolution errors met, as `SelfSubjectRulesReview` reports them.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<Arc<str>>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        let mut collect = |index: &SubjectIndex, bindings: &[Compiled]| {
            for (b, _) in index.candidates(user) {
                let Some(binding) = bindings.get(b as usize) else {
                    continue;
                };
                match &binding.role {
                    Ok(role) => {
                        if let Some(r) = self.roles.get(*role) {
                            rules.extend(r.iter().cloned());
                        }
                    }
                    Err(e) => errors.push(e.clone()),
                }
            }
        };
        collect(&self.cluster_index, &self.cluster_bindings);
        if !namespace.is_empty()
            && let Some(ns) = self.namespaces.get(namespace)
        {
            collect(&ns.index, &ns.bindings);
        }
        (rules, errors)
    }

    /// How many bindings the snapshot holds.
    pub fn binding_count(&self) -> usize {
        self.cluster_bindings.len()
            + self
                .namespaces
                .values()
                .map(|n| n.bindings.len())
                .sum::<usize>()
    }

    fn first_allow(
        &self,
        index: &SubjectIndex,
        bindings: &[Compiled],
        user: &UserInfo,
        request: &RequestInfo,
        errors: &mut Vec<Arc<str>>,
    ) -> Option<Arc<str>> {
        for (b, subject) in index.candidates(user) {
            let binding = bindings.get(b as usize)?;
            match &binding.role {
                Ok(role) => {
                    let rules = self.roles.get(*role)?;
                    if rules_allow(rules, request) {
                        return binding.reasons.get(subject as usize).cloned();
                    }
                }
                Err(e) => errors.push(e.clone()),
            }
        }
        None
    }
}

impl SubjectIndex {
    fn add(&mut self, binding: &RoleBinding, binding_ns: &str, position: u32) {
        for (i, s) in binding.subjects().iter().enumerate() {
            let posting = (position, i as u32);
            match s.kind.as_str() {
                "User" => push(&mut self.by_user, &s.name, posting),
                "Group" => push(&mut self.by_group, &s.name, posting),
                "ServiceAccount" => {
                    let ns = if s.namespace.is_empty() {
                        binding_ns
                    } else {
                        s.namespace.as_str()
                    };
                    if !ns.is_empty() {
                        let user = format!("{SERVICE_ACCOUNT_PREFIX}{ns}:{}", s.name);
                        push(&mut self.by_user, &user, posting);
                    }
                }
                _ => {}
            }
        }
    }

    /// The bindings that apply to `user`, in visiting order, each with the position of the first
    /// subject that applies.
    fn candidates(&self, user: &UserInfo) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        if let Some(p) = self.by_user.get(user.username.as_str()) {
            out.extend_from_slice(p);
        }
        for g in &user.groups {
            if let Some(p) = self.by_group.get(g.as_str()) {
                out.extend_from_slice(p);
            }
        }
        // Sorting by (binding, subject) then keeping the first of each binding gives visiting
        // order and the first applicable subject.
        out.sort_unstable();
        out.dedup_by_key(|(b, _)| *b);
        out
    }
}

fn push(map: &mut HashMap<Box<str>, Vec<(u32, u32)>>, key: &str, posting: (u32, u32)) {
    match map.get_mut(key) {
        Some(v) => v.push(posting),
        None => {
            map.insert(key.into(), vec![posting]);
        }
    }
}

/// The allow reason of a binding for each of its subjects.
fn reasons(b: &RoleBinding, ns: &str) -> Vec<Arc<str>> {
    b.subjects()
        .iter()
        .map(|s| {
            let subject = describe_subject(s, ns);
            let reason = if ns.is_empty() {
                format!(
                    "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {:?} to {subject}",
                    b.metadata.name, b.role_ref.name
                )
            } else {
                format!(
                    "RBAC: allowed by RoleBinding \"{}/{ns}\" of {} {:?} to {subject}",
                    b.metadata.name, b.role_ref.kind, b.role_ref.name
                )
            };
            reason.into()
        })
        .collect()
}

/// `User "alice"`, `Group "dev"`, `ServiceAccount "sa/ns"` (name before namespace, the
/// namespace defaulted to the binding's).
pub fn describe_subject(s: &Subject, binding_ns: &str) -> String {
    match s.kind.as_str() {
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() {
                binding_ns
            } else {
                s.namespace.as_str()
            };
            format!("ServiceAccount \"{}/{ns}\"", s.name)
        }
        kind => format!("{kind} {:?}", s.name),
    }
}

fn not_found(kind: &str, name: &str) -> Arc<str> {
    format!("{kind}.rbac.authorization.k8s.io {name:?} not found").into()
}

fn unsupported_kind(kind: &str) -> Arc<str> {
    format!("unsupported role reference kind: {kind:?}").into()
}

/// `RBAC: <err>` or `RBAC: [<err>, <err>]`; empty when there were no errors.
fn error_reason(errors: &[Arc<str>]) -> Arc<str> {
    match errors {
        [] => "".into(),
        [one] => format!("RBAC: {one}").into(),
        many => format!(
            "RBAC: [{}]",
            many.iter()
                .map(|e| e.as_ref())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .into(),
    }
}

#[cfg(test)]
mod tests;
