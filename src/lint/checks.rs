//! One object through the checks: the gateway's admission decision ([`crate::admit`], the same
//! code the gateway runs) turned into findings, plus the RBAC risk checks.

use std::collections::HashMap;

use portcullis_admission::image_policy::ImagePolicy;
use portcullis_admission::pod_security::Violation;
use portcullis_admission::rego::PolicySet;
use portcullis_api::UserInfo;
use serde::Serialize;
use serde_json::{Map, Value};

use super::finding::{Finding, ObjectRef, RuleInfo, Severity, Suppression};
use super::rbac;
use super::suppress::{self, Config};
use crate::admit::{self, Engines, Evaluate, PodSecurityConfig, Request, ReviewRequest};

/// What the gateway would answer to a create of the object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GatewayVerdict {
    /// Whether the create is admitted.
    pub allowed: bool,
    /// Why not, when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The warnings returned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The engines and what lint knows about namespaces.
pub struct Linter {
    /// Pod Security defaults and exemptions.
    pub pod_security: PodSecurityConfig,
    /// The image policy.
    pub image_policy: Option<ImagePolicy>,
    /// The Rego policies, compiled once.
    pub policies: Option<PolicySet>,
    /// Labels of the namespaces lint knows (Namespace objects and `--namespace-labels`).
    pub namespaces: HashMap<String, Map<String, Value>>,
    /// Labels every namespace gets (`--namespace-labels` without a namespace).
    pub base_labels: Map<String, Value>,
    /// The namespace of namespaced objects that name none.
    pub default_namespace: String,
    /// The user the requests are made as.
    pub user: UserInfo,
}

/// The findings about one object and the gateway's verdict on it.
pub struct Checked {
    /// Findings, suppressed ones included.
    pub findings: Vec<Finding>,
    /// The gateway's verdict; `None` for objects admission does not see (namespaces).
    pub verdict: Option<GatewayVerdict>,
    /// The object.
    pub object: ObjectRef,
}

/// Where an object was read from.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    /// The file.
    pub file: &'a str,
    /// The line of its document.
    pub line: u64,
    /// The document index.
    pub document: usize,
}

impl Linter {
    /// The labels of namespace `ns` as the gateway would read them (with
    /// `kubernetes.io/metadata.name`, which kube-apiserver sets on every namespace).
    pub fn labels(&self, ns: &str) -> Value {
        let mut labels = self.base_labels.clone();
        if let Some(known) = self.namespaces.get(ns) {
            labels.extend(known.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        labels.insert(
            "kubernetes.io/metadata.name".to_owned(),
            Value::String(ns.to_owned()),
        );
        Value::Object(labels)
    }

    /// Runs every check on one object.
    pub fn check(&self, value: &Value, place: Place<'_>, config: &Config) -> Checked {
        let api_version = value["apiVersion"].as_str().unwrap_or("");
        let kind = value["kind"].as_str().unwrap_or("");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = portcullis_api::registry::RESOURCES
            .iter()
            .find(|r| r.kind == kind && r.gv.group == group);
        let namespaced = resource.is_none_or(|r| r.namespaced);
        let namespace = if namespaced {
            value
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(&self.default_namespace)
                .to_owned()
        } else {
            String::new()
        };
        let name = value
            .pointer("/metadata/name")
            .or_else(|| value.pointer("/metadata/generateName"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let object = ObjectRef {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let mut raw: Vec<(String, Severity, &'static str, String, Option<String>)> = Vec::new();
        let mut verdict = None;
        if api_version.is_empty() || kind.is_empty() {
            raw.push((
                "LINT-OBJECT".into(),
                Severity::Warning,
                "lint",
                "the document is not a Kubernetes object (it has no apiVersion or kind)".into(),
                Some("give it apiVersion and kind, or keep it out of the linted paths".into()),
            ));
        } else if !(kind == "Namespace" && group.is_empty()) {
            let plural = resource.map_or_else(
                || format!("{}s", kind.to_lowercase()),
                |r| r.plural.to_owned(),
            );
            let labels = (!namespace.is_empty()).then(|| self.labels(&namespace));
            let review = ReviewRequest {
                uid: "portcullis-lint",
                group,
                version,
                kind,
                resource: &plural,
                subresource: "",
                name: &name,
                namespace: &namespace,
                user: &self.user,
                object: value,
                old: None,
            }
            .to_json();
            let outcome = admit::validate(
                &Engines {
                    pod_security: &self.pod_security,
                    image_policy: self.image_policy.as_ref(),
                    policies: self.policies.as_ref(),
                },
                &Request {
                    kind,
                    is_pod: kind == "Pod" && group.is_empty(),
                    subresource: "",
                    namespace: &namespace,
                    namespace_labels: labels.as_ref(),
                    user: &self.user,
                    new: value,
                    old: None,
                },
                &review,
                Evaluate::Everything,
            );
            let denial = outcome.denial();
            verdict = Some(GatewayVerdict {
                allowed: denial.is_none(),
                warnings: if denial.is_none() {
                    outcome.warnings()
                } else {
                    Vec::new()
                },
                message: denial.map(|d| d.message().to_owned()),
            });
            let ps = &outcome.pod_security;
            let mut seen = Vec::new();
            for (violation, severity, would) in [
                (&ps.enforce, Severity::Error, false),
                (&ps.warn, Severity::Warning, true),
                (&ps.audit, Severity::Note, true),
            ] {
                let Some(v) = violation else { continue };
                if seen.contains(&v.policy()) {
                    continue;
                }
                seen.push(v.policy());
                pod_security_findings(v, severity, would, &mut raw);
            }
            for v in &outcome.images {
                raw.push((
                    format!("IMG-{}", v.rule),
                    Severity::Error,
                    "image-policy",
                    format!("violates ImagePolicy: {}", v.message),
                    Some(format!(
                        "use an image that image policy rule `{}` allows",
                        v.rule
                    )),
                ));
            }
            match &outcome.rego {
                Some(Ok(v)) => {
                    for (list, severity) in [
                        (&v.denials, Severity::Error),
                        (&v.warnings, Severity::Warning),
                        (&v.dry_runs, Severity::Note),
                    ] {
                        for f in list {
                            let (rule, message, fix) = split_rego_message(&f.policy, &f.message);
                            raw.push((rule, severity, "rego", message, fix));
                        }
                    }
                }
                Some(Err(e)) => raw.push((
                    "REGO-ERROR".into(),
                    Severity::Error,
                    "rego",
                    format!("admission policy evaluation failed: {e}"),
                    Some("fix the policy; the gateway refuses the object while it fails".into()),
                )),
                None => {}
            }
            for (id, message) in rbac::check(kind, value) {
                let risk = rbac::risk(id);
                raw.push((
                    id.to_owned(),
                    risk.map_or(Severity::Warning, |r| r.severity),
                    "rbac",
                    message,
                    risk.map(|r| r.fix.to_owned()),
                ));
            }
        }
        let finding = |(rule, severity, source, message, fix): (
            String,
            Severity,
            &'static str,
            String,
            Option<String>,
        )| Finding {
            severity: config.severity(&rule, severity),
            rule,
            source,
            file: place.file.to_owned(),
            line: place.line,
            document: place.document,
            object: Some(object.clone()),
            message,
            fix,
            suppressed: None,
        };
        let mut findings: Vec<Finding> = raw
            .into_iter()
            .filter(|(rule, ..)| config.enabled(rule))
            .map(finding)
            .collect();
        if let Some(text) = suppress::annotation(value) {
            match suppress::parse_annotation(text) {
                Err(problem) => findings.push(Finding {
                    rule: "LINT-SUPPRESSION".into(),
                    severity: Severity::Error,
                    source: "lint",
                    file: place.file.to_owned(),
                    line: place.line,
                    document: place.document,
                    object: Some(object.clone()),
                    message: format!("malformed {} annotation: {problem}", suppress::ANNOTATION),
                    fix: Some("write `RULE-ID=reason[,RULE-ID=reason]`".into()),
                    suppressed: None,
                }),
                Ok(ignores) => {
                    for ignore in ignores {
                        let mut used = false;
                        for f in findings.iter_mut().filter(|f| f.rule == ignore.rule) {
                            used = true;
                            f.suppressed.get_or_insert(Suppression {
                                kind: "annotation",
                                reason: ignore.reason.clone(),
                            });
                        }
                        if !used {
                            findings.push(Finding {
                                rule: "LINT-UNUSED".into(),
                                severity: config.severity("LINT-UNUSED", Severity::Warning),
                                source: "lint",
                                file: place.file.to_owned(),
                                line: place.line,
                                document: place.document,
                                object: Some(object.clone()),
                                message: format!(
                                    "the {} annotation suppresses `{}` but the object has no such finding",
                                    suppress::ANNOTATION,
                                    ignore.rule
                                ),
                                fix: Some(format!("remove `{}` from the annotation", ignore.rule)),
                                suppressed: None,
                            });
                        }
                    }
                }
            }
        }
        Checked {
            findings,
            verdict,
            object,
        }
    }
}

/// One finding per failed Pod Security check, with upstream's check ID and message.
fn pod_security_findings(
    v: &Violation,
    severity: Severity,
    would: bool,
    out: &mut Vec<(String, Severity, &'static str, String, Option<String>)>,
) {
    for failure in v.failures() {
        let mut detail = failure.forbidden_reason.to_owned();
        if !failure.forbidden_detail.is_empty() {
            detail.push_str(&format!(" ({})", failure.forbidden_detail));
        }
        let verb = if would { "would violate" } else { "violates" };
        out.push((
            format!("PSS-{}", failure.id),
            severity,
            "pod-security",
            format!("{verb} PodSecurity \"{}\": {detail}", v.policy()),
            Some(pss_fix(failure.id).to_owned()),
        ));
    }
}

/// A rule ID, message and fix hint from a Rego finding. Messages of the form
/// `ID [severity]: text; fix: hint` (the shipped library's) give their ID and hint; other
/// messages are reported under the policy's name.
pub fn split_rego_message(policy: &str, message: &str) -> (String, String, Option<String>) {
    let first = message.split_whitespace().next().unwrap_or("");
    let id = first.trim_end_matches(':');
    let is_id = id.len() > 2
        && id.split_once('-').is_some_and(|(a, b)| {
            !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                && !b.is_empty()
                && b.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if !is_id {
        return (policy.to_owned(), message.to_owned(), None);
    }
    let mut rest = message[first.len()..].trim_start();
    if rest.starts_with('[')
        && let Some(end) = rest.find("]:")
    {
        rest = rest[end + 2..].trim_start();
    }
    let rest = rest.trim_start_matches(':').trim_start();
    match rest.split_once("; fix: ") {
        Some((text, fix)) => (id.to_owned(), text.to_owned(), Some(fix.to_owned())),
        None => (id.to_owned(), rest.to_owned(), None),
    }
}

/// Fix hints for upstream's Pod Security check IDs.
fn pss_fix(id: &str) -> &'static str {
    match id {
        "allowPrivilegeEscalation" => {
            "set securityContext.allowPrivilegeEscalation: false on every container"
        }
        "appArmorProfile" => "use the RuntimeDefault or a Localhost AppArmor profile",
        "capabilities_baseline" => {
            "add only capabilities from the baseline list (none beyond the defaults)"
        }
        "capabilities_restricted" => {
            "set securityContext.capabilities.drop: [ALL] and add at most NET_BIND_SERVICE"
        }
        "hostNamespaces" => "remove hostNetwork, hostPID and hostIPC",
        "hostPathVolumes" => {
            "replace hostPath volumes with persistentVolumeClaim, configMap, secret or emptyDir"
        }
        "hostPorts" => "remove hostPort from the container ports",
        "hostProbesAndHostLifecycle" => "remove the host field from probes and lifecycle handlers",
        "hostProcess" => "remove windowsOptions.hostProcess",
        "privileged" => "remove securityContext.privileged: true",
        "procMount" | "procMount_restricted" => {
            "remove securityContext.procMount or set it to Default"
        }
        "restrictedVolumes" => {
            "use only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected or secret volumes"
        }
        "runAsNonRoot" => "set securityContext.runAsNonRoot: true on the pod or every container",
        "runAsUser" => "set runAsUser to a non-zero UID, or leave it unset",
        "seLinuxOptions" => "remove seLinuxOptions.user and role, and use an allowed type",
        "seccompProfile_baseline" => "do not set seccompProfile.type: Unconfined",
        "seccompProfile_restricted" => {
            "set securityContext.seccompProfile.type: RuntimeDefault (or Localhost)"
        }
        "sysctls" => "use only the safe sysctls",
        "windowsHostProcess" => "remove windowsOptions.hostProcess",
        _ => "make the pod meet the Pod Security level",
    }
}

/// What a rule is, for reports: the static catalogue, else from its findings.
pub fn rule_info(rule: &str, example: Option<&Finding>) -> RuleInfo {
    let (description, help): (String, String) = if let Some(risk) = rbac::risk(rule) {
        (risk.description.to_owned(), risk.fix.to_owned())
    } else if let Some(id) = rule.strip_prefix("PSS-") {
        (
            format!("Pod Security Standards check `{id}` (kubernetes/pod-security-admission)"),
            pss_fix(id).to_owned(),
        )
    } else if let Some(name) = rule.strip_prefix("IMG-") {
        (
            format!("image policy rule `{name}`"),
            format!("use an image that image policy rule `{name}` allows"),
        )
    } else {
        match rule {
            "PCS-001" => (
                "root filesystem read-only".into(),
                "set securityContext.readOnlyRootFilesystem: true".into(),
            ),
            "PCS-002" => (
                "CPU and memory requests and limits".into(),
                "set resources.requests and resources.limits for cpu and memory".into(),
            ),
            "PCS-003" => (
                "no service-account token unless needed".into(),
                "set automountServiceAccountToken: false".into(),
            ),
            "PCS-004" => (
                "no hostPath volumes".into(),
                "use a persistentVolumeClaim, configMap, secret or emptyDir".into(),
            ),
            "PCS-005" => (
                "seccomp RuntimeDefault or Localhost only".into(),
                "use RuntimeDefault (or a Localhost profile)".into(),
            ),
            "PCS-006" => (
                "no privileged ports (< 1024)".into(),
                "listen on a port >= 1024 and map it in the Service".into(),
            ),
            "PCS-007" => (
                "`app.kubernetes.io/name` label".into(),
                "add the label".into(),
            ),
            "REGO-ERROR" => (
                "a Rego policy failed to evaluate".into(),
                "fix the policy".into(),
            ),
            "LINT-INPUT" => (
                "the input could not be read or parsed".into(),
                "fix the file's syntax, or keep it out of the linted paths".into(),
            ),
            "LINT-OBJECT" => (
                "a document is not a Kubernetes object".into(),
                "give it apiVersion and kind".into(),
            ),
            "LINT-SUPPRESSION" => (
                format!("a malformed {} annotation", suppress::ANNOTATION),
                "write `RULE-ID=reason[,RULE-ID=reason]`".into(),
            ),
            "LINT-UNUSED" => (
                "a suppression that suppresses nothing".into(),
                "remove it".into(),
            ),
            _ => (
                format!("Rego policy `{rule}`"),
                example
                    .and_then(|f| f.fix.clone())
                    .unwrap_or_else(|| "see the policy".into()),
            ),
        }
    };
    RuleInfo {
        id: rule.to_owned(),
        description,
        help,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rego_messages() {
        assert_eq!(
            split_rego_message(
                "portcullis.pcs004",
                "PCS-004 [high]: volume \"r\" uses hostPath \"/\"; fix: use a PVC"
            ),
            (
                "PCS-004".into(),
                "volume \"r\" uses hostPath \"/\"".into(),
                Some("use a PVC".into())
            )
        );
        assert_eq!(
            split_rego_message("main", "do not use the default namespace"),
            (
                "main".into(),
                "do not use the default namespace".into(),
                None
            )
        );
    }
}
