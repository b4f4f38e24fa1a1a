//! Policy evaluation: which rule applies to a request, with kube-apiserver's matching semantics
//! (`pkg/audit/policy/checker.go`).

use portcullis_api::{RequestInfo, UserInfo};

use super::{Level, Policy, PolicyRule, Stage, StageSet};

/// The attributes of a request that audit rules look at. Borrowed: building one costs nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestAttributes<'a> {
    /// The authenticated user (before impersonation); `None` when authentication failed.
    pub user: Option<&'a UserInfo>,
    /// The Kubernetes verb, or the lower-cased HTTP method of a non-resource request.
    pub verb: &'a str,
    /// Whether this is a resource request (`/api/...`, `/apis/...` naming a resource).
    pub resource_request: bool,
    /// API group; empty for the core group.
    pub api_group: &'a str,
    /// API version.
    pub api_version: &'a str,
    /// Resource (plural).
    pub resource: &'a str,
    /// Subresource; empty when none.
    pub subresource: &'a str,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: &'a str,
    /// Object name; empty for collections.
    pub name: &'a str,
    /// The request path (without the query).
    pub path: &'a str,
}

impl<'a> RequestAttributes<'a> {
    /// The attributes of a parsed request. `path` is the request path as sent.
    pub fn from_request_info(
        info: &'a RequestInfo,
        user: Option<&'a UserInfo>,
        path: &'a str,
    ) -> Self {
        match info {
            RequestInfo::Resource(r) => RequestAttributes {
                user,
                verb: &r.verb,
                resource_request: true,
                api_group: &r.group,
                api_version: &r.version,
                resource: &r.resource,
                subresource: &r.subresource,
                namespace: &r.namespace,
                name: &r.name,
                path,
            },
            RequestInfo::NonResource { verb, path } => RequestAttributes {
                user,
                verb,
                resource_request: false,
                path,
                ..RequestAttributes::default()
            },
        }
    }
}

/// What the policy says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// The level to record at; `None` means no event at all.
    pub level: Level,
    /// Stages not to emit (the policy's and the matching rule's).
    pub omit_stages: StageSet,
    /// Whether to strip `metadata.managedFields` from logged bodies.
    pub omit_managed_fields: bool,
}

impl AuditConfig {
    /// Whether an event is emitted for `stage`.
    pub fn emits(&self, stage: Stage) -> bool {
        self.level > Level::None && !self.omit_stages.contains(stage)
    }
}

/// A policy compiled for evaluation: stage unions precomputed once, as upstream does when the
/// evaluator is built.
#[derive(Clone, Debug)]
pub struct PolicyEvaluator {
    rules: Vec<(PolicyRule, StageSet)>,
    omit_stages: StageSet,
    omit_managed_fields: bool,
    /// Whether some rule names users or groups.
    depends_on_user: bool,
}

impl PolicyEvaluator {
    /// Compiles a policy (which should have passed [`Policy::validate`]).
    pub fn new(policy: Policy) -> Self {
        let omit_stages: StageSet = policy.omit_stages.iter().copied().collect();
        let depends_on_user = policy
            .rules
            .iter()
            .any(|rule| !rule.users.is_empty() || !rule.user_groups.is_empty());
        let rules = policy
            .rules
            .into_iter()
            .map(|rule| {
                let stages = rule
                    .omit_stages
                    .iter()
                    .copied()
                    .collect::<StageSet>()
                    .union(omit_stages);
                (rule, stages)
            })
            .collect();
        PolicyEvaluator {
            rules,
            omit_stages,
            omit_managed_fields: policy.omit_managed_fields,
            depends_on_user,
        }
    }

    /// Whether the verdict can depend on the user: some rule names users or groups. When it
    /// does not, a request's verdict without a user is its verdict for any user, and the
    /// gateway evaluates once per request.
    pub fn depends_on_user(&self) -> bool {
        self.depends_on_user
    }

    /// The audit configuration of a request: from the first rule that matches, or level `None`
    /// with the policy-wide settings when none does.
    pub fn evaluate(&self, attrs: &RequestAttributes<'_>) -> AuditConfig {
        for (rule, omit_stages) in &self.rules {
            if rule_matches(rule, attrs) {
                return AuditConfig {
                    level: rule.level,
                    omit_stages: *omit_stages,
                    omit_managed_fields: rule
                        .omit_managed_fields
                        .unwrap_or(self.omit_managed_fields),
                };
            }
        }
        AuditConfig {
            level: Level::None,
            omit_stages: self.omit_stages,
            omit_managed_fields: self.omit_managed_fields,
        }
    }
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|s| s == value)
}

fn rule_matches(rule: &PolicyRule, attrs: &RequestAttributes<'_>) -> bool {
    // A rule naming users or groups never matches a request without a user (failed
    // authentication): recording 401s takes a catch-all rule.
    if !rule.users.is_empty() {
        match attrs.user {
            Some(user) if has(&rule.users, &user.username) => {}
            _ => return false,
        }
    }
    if !rule.user_groups.is_empty() {
        match attrs.user {
            Some(user) if user.groups.iter().any(|g| has(&rule.user_groups, g)) => {}
            _ => return false,
        }
    }
    if !rule.verbs.is_empty() && !has(&rule.verbs, attrs.verb) {
        return false;
    }
    if !rule.namespaces.is_empty() || !rule.resources.is_empty() {
        return matches_resource(rule, attrs);
    }
    if !rule.non_resource_urls.is_empty() {
        return !attrs.resource_request
            && rule
                .non_resource_urls
                .iter()
                .any(|spec| path_matches(attrs.path, spec));
    }
    true
}

/// `*` matches everything, otherwise an exact match or, for a spec ending in `*`, a plain
/// string prefix (`/healthz*` matches `/healthzfoo`).
fn path_matches(path: &str, spec: &str) -> bool {
    if spec == "*" || spec == path {
        return true;
    }
    spec.ends_with('*') && path.starts_with(spec.trim_end_matches('*'))
}

fn matches_resource(rule: &PolicyRule, attrs: &RequestAttributes<'_>) -> bool {
    if !attrs.resource_request {
        return false;
    }
    // Cluster-scoped objects have the empty namespace, which `""` in the rule names.
    if !rule.namespaces.is_empty() && !has(&rule.namespaces, attrs.namespace) {
        return false;
    }
    if rule.resources.is_empty() {
        return true;
    }
    for gr in &rule.resources {
        if gr.group != attrs.api_group && gr.group != "*" {
            continue;
        }
        if gr.resources.is_empty() {
            return true;
        }
        if !gr.resource_names.is_empty() && !has(&gr.resource_names, attrs.name) {
            continue;
        }
        if gr
            .resources
            .iter()
            .any(|spec| resource_matches(spec, attrs.resource, attrs.subresource))
        {
            return true;
        }
    }
    false
}

/// Matches `pods` (the resource only), `pods/log`, `*`, `*/log` and `pods/*` (which upstream
/// also lets match `pods` itself).
pub(super) fn resource_matches(spec: &str, resource: &str, subresource: &str) -> bool {
    if spec == "*" {
        return true;
    }
    // The request as `resource` or `resource/subresource`, compared without building it.
    let combined = if subresource.is_empty() {
        spec == resource
    } else {
        spec.strip_prefix(resource)
            .and_then(|rest| rest.strip_prefix('/'))
            == Some(subresource)
    };
    if combined {
        return true;
    }
    if !subresource.is_empty() && spec.strip_prefix("*/") == Some(subresource) {
        return true;
    }
    spec.strip_suffix("/*") == Some(resource)
}
