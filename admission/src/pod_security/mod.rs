//! Pod Security Standards: the `baseline` and `restricted` levels, every version.
//!
//! This module owns one question: does a pod (or a workload's pod template) meet a
//! `level:version` policy? It answers as kube-apiserver's PodSecurity admission plugin does
//! (kubernetes/pod-security-admission): the same checks with the same IDs, the same per-version
//! definitions from `v1.0` to `latest`, and the same message,
//! `violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (...), ...`.
//!
//! It deliberately does not decide which policy applies (namespace labels, exemptions, the
//! AdmissionConfiguration defaults) nor which requests are evaluated (subresources, updates);
//! the gateway does, and calls [`check_pod`] or [`evaluate`].
//!
//! Pods are read as raw [`serde_json::Value`], not a typed model, so nothing a typed model
//! would drop can slip past a check. Input of the wrong shape fails closed: the check that
//! meets it reports a violation naming the field, and nothing panics.

mod checks;
mod json;
mod policy;
mod template;
#[cfg(test)]
mod tests;

use serde_json::Value;

use checks::{CHECKS, Check};
use json::{Malformed, Pod};
pub use policy::{Level, LevelVersion, PodSecurityError, Version, parse_level_version};
pub use template::pod_template_spec;

/// The result of one check on one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// Upstream's check ID, e.g. `allowPrivilegeEscalation` or `capabilities_baseline`; the
    /// pseudo-ID [`MALFORMED_POD`] when the pod's metadata or spec is not an object.
    pub id: &'static str,
    /// Whether the pod passed this check.
    pub allowed: bool,
    /// Upstream's short reason, e.g. `allowPrivilegeEscalation != false`; empty when allowed.
    pub forbidden_reason: &'static str,
    /// What exactly is wrong, e.g. `container "app" must set ...`; empty when allowed.
    pub forbidden_detail: String,
}

/// The check ID reported when the pod's metadata or spec is not a JSON object at all.
pub const MALFORMED_POD: &str = "malformedPod";

/// Runs every check of `level` at `version` over a pod's metadata and spec, in upstream's order
/// (baseline checks by ID, then restricted checks by ID), returning one result per check that
/// exists at that version. `privileged` runs no checks. Versions newer than
/// [`Version::NEWEST_KNOWN`] and `latest` run the newest checks.
///
/// `pod_metadata` and `pod_spec` may be `null` (read as empty); anything else that is not an
/// object yields a single failed [`MALFORMED_POD`] result.
pub fn evaluate(
    level: Level,
    version: Version,
    pod_metadata: &Value,
    pod_spec: &Value,
) -> Vec<CheckResult> {
    let mut results = Vec::with_capacity(CHECKS.len());
    run_checks(level, version, pod_metadata, pod_spec, |result| {
        results.push(result);
    });
    results
}

/// Checks a Pod object (`{"metadata": ..., "spec": ...}`) against `policy`.
///
/// ```
/// use portcullis_admission::pod_security::{check_pod, parse_level_version};
/// use serde_json::json;
///
/// let policy = parse_level_version("baseline", "latest").unwrap();
/// let pod = json!({"spec": {"hostNetwork": true, "containers": [{"name": "app"}]}});
/// let violation = check_pod(policy, &pod).unwrap_err();
/// assert_eq!(
///     violation.message(),
///     r#"violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)"#
/// );
/// ```
pub fn check_pod(policy: LevelVersion, pod: &Value) -> Result<(), Violation> {
    match pod {
        Value::Object(object) => {
            let metadata = object.get("metadata").unwrap_or(&Value::Null);
            let spec = object.get("spec").unwrap_or(&Value::Null);
            check_pod_spec(policy, metadata, spec)
        }
        // A pod that is not an object at all fails every level but privileged.
        _ if policy.level == Level::Privileged => Ok(()),
        _ => Err(Violation {
            policy,
            failures: vec![malformed_pod(&Malformed::not_an_object())],
        }),
    }
}

/// Checks a pod's (or a pod template's) metadata and spec against `policy`; see
/// [`pod_template_spec`] to find them in a workload.
pub fn check_pod_spec(
    policy: LevelVersion,
    pod_metadata: &Value,
    pod_spec: &Value,
) -> Result<(), Violation> {
    let mut failures = Vec::new();
    run_checks(
        policy.level,
        policy.version,
        pod_metadata,
        pod_spec,
        |result| {
            if !result.allowed {
                failures.push(result);
            }
        },
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Violation { policy, failures })
    }
}

/// A pod that fails its policy, with the failed checks in evaluation order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Violation {
    policy: LevelVersion,
    // INVARIANT: non-empty, and every entry has `allowed == false`.
    failures: Vec<CheckResult>,
}

impl Violation {
    /// The policy the pod violates, as requested (e.g. `restricted:latest`).
    pub fn policy(&self) -> LevelVersion {
        self.policy
    }

    /// The failed checks, in evaluation order.
    pub fn failures(&self) -> &[CheckResult] {
        &self.failures
    }

    /// The reasons joined with `, `, e.g. `privileged, host namespaces`.
    pub fn forbidden_reason(&self) -> String {
        let reasons: Vec<&str> = self.failures.iter().map(|f| f.forbidden_reason).collect();
        reasons.join(", ")
    }

    /// Each reason followed by its detail in parentheses, joined with `, `, as upstream's
    /// `ForbiddenDetail`.
    pub fn forbidden_detail(&self) -> String {
        let mut out = String::new();
        for (index, failure) in self.failures.iter().enumerate() {
            if index > 0 {
                out.push_str(", ");
            }
            out.push_str(failure.forbidden_reason);
            if !failure.forbidden_detail.is_empty() {
                out.push_str(" (");
                out.push_str(&failure.forbidden_detail);
                out.push(')');
            }
        }
        out
    }

    /// The enforce message: `violates PodSecurity "<level>:<version>": <detail>`.
    pub fn message(&self) -> String {
        format!(
            "violates PodSecurity \"{}\": {}",
            self.policy,
            self.forbidden_detail()
        )
    }

    /// The audit annotation and warning text: `would violate PodSecurity "<level>:<version>": <detail>`.
    pub fn would_violate_message(&self) -> String {
        format!(
            "would violate PodSecurity \"{}\": {}",
            self.policy,
            self.forbidden_detail()
        )
    }
}

/// Runs the checks in force for `level` at `version`, handing each result to `emit`.
fn run_checks(
    level: Level,
    version: Version,
    pod_metadata: &Value,
    pod_spec: &Value,
    mut emit: impl FnMut(CheckResult),
) {
    if level == Level::Privileged {
        return;
    }
    let pod = Pod::new(pod_metadata, pod_spec);
    if let Err(malformed) = pod.validate_shape() {
        emit(malformed_pod(&malformed));
        return;
    }
    let minor = version.effective_minor();
    for check in CHECKS {
        if check.level > level {
            continue;
        }
        let Some(definition) = check.at(minor) else {
            continue;
        };
        if level == Level::Restricted
            && check.level == Level::Baseline
            && overridden(check.id, minor)
        {
            continue;
        }
        emit(run_one(check, (definition.check)(&pod)));
    }
}

fn run_one(check: &Check, outcome: checks::Outcome) -> CheckResult {
    match outcome {
        Ok(None) => CheckResult {
            id: check.id,
            allowed: true,
            forbidden_reason: "",
            forbidden_detail: String::new(),
        },
        Ok(Some(forbidden)) => CheckResult {
            id: check.id,
            allowed: false,
            forbidden_reason: forbidden.reason,
            forbidden_detail: forbidden.detail,
        },
        Err(malformed) => CheckResult {
            id: check.id,
            allowed: false,
            forbidden_reason: check.malformed_reason,
            forbidden_detail: malformed.to_string(),
        },
    }
}

/// Whether a restricted check in force at `minor` replaces the baseline check `id`.
fn overridden(id: &str, minor: u32) -> bool {
    CHECKS.iter().any(|check| {
        check.level == Level::Restricted
            && check
                .at(minor)
                .is_some_and(|definition| definition.overrides.contains(&id))
    })
}

fn malformed_pod(malformed: &Malformed) -> CheckResult {
    CheckResult {
        id: MALFORMED_POD,
        allowed: false,
        forbidden_reason: "malformed pod",
        forbidden_detail: malformed.to_string(),
    }
}
