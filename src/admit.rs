//! The admission decision the gateway, the admission webhook and `portcullis lint` share: Pod
//! Security Standards from namespace labels and the PodSecurity AdmissionConfiguration (as the
//! built-in PodSecurity plugin applies them), then the image policy, then the Rego policies.
//!
//! Everything here is a pure function of its arguments (the namespace's labels, the engines'
//! snapshots, the object); the callers read the store or the manifests and turn the
//! [`Outcome`] into a response or into findings. Keeping one copy of this logic is what makes
//! lint's verdict the gateway's verdict.
//!
//! - `pod-security.kubernetes.io/enforce` (+ `-version`): a pod that violates it is refused with
//!   `violates PodSecurity "restricted:latest": ...`; pods are checked on create, on every update
//!   that changes more than metadata, and on `ephemeralcontainers`.
//! - `warn` (and, for workloads, `enforce` too): warnings saying what would be violated. Workload
//!   kinds (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ...) are never refused.
//! - A namespace without a label uses the configuration's defaults (privileged when none).
//! - Exempt usernames, runtime classes and namespaces are not checked.
//! - A label value that does not parse is treated as `restricted:latest`: fail closed.

use std::path::Path;

use anyhow::{Context, Result, bail};
use portcullis_admission::image_policy::{self, ImagePolicy};
use portcullis_admission::pod_security::{self, Level, LevelVersion, Version, Violation};
use portcullis_admission::rego::{self, PolicySet, RegoError};
use portcullis_api::UserInfo;
use serde_json::{Value, json};

const ENFORCE: &str = "enforce";
const AUDIT: &str = "audit";
const WARN: &str = "warn";
const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// The PodSecurity plugin's configuration: defaults for unlabelled namespaces and exemptions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSecurityConfig {
    /// Policies of namespaces that do not set the labels: enforce, audit, warn.
    pub defaults: [Option<LevelVersion>; 3],
    /// Users whose requests are not checked.
    pub exempt_usernames: Vec<String>,
    /// Runtime classes whose pods are not checked.
    pub exempt_runtime_classes: Vec<String>,
    /// Namespaces that are not checked.
    pub exempt_namespaces: Vec<String>,
}

impl PodSecurityConfig {
    /// Reads an `apiserver.config.k8s.io/v1` AdmissionConfiguration (its `PodSecurity` plugin
    /// entry) or a bare `pod-security.admission.config.k8s.io/v1` PodSecurityConfiguration.
    pub fn load(path: &Path) -> Result<PodSecurityConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading `{}`", path.display()))?;
        let doc: Value = serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))?;
        Self::from_value(&doc).with_context(|| format!("`{}`", path.display()))
    }

    /// As [`PodSecurityConfig::load`], from a parsed document.
    pub fn from_value(doc: &Value) -> Result<PodSecurityConfig> {
        let psc = match doc["kind"].as_str() {
            Some("AdmissionConfiguration") => {
                let Some(plugin) = doc["plugins"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["name"] == "PodSecurity")
                else {
                    return Ok(PodSecurityConfig::default());
                };
                if plugin.get("path").is_some_and(|p| !p.is_null()) {
                    bail!(
                        "the PodSecurity plugin entry must embed its configuration (a `path` is not supported)"
                    );
                }
                plugin["configuration"].clone()
            }
            Some("PodSecurityConfiguration") => doc.clone(),
            other => bail!(
                "expected an AdmissionConfiguration or PodSecurityConfiguration, found kind {other:?}"
            ),
        };
        if psc["kind"] != "PodSecurityConfiguration" {
            bail!("the PodSecurity plugin configuration must be a PodSecurityConfiguration");
        }
        let defaults = &psc["defaults"];
        let mode = |m: &str| -> Result<Option<LevelVersion>> {
            let level = defaults[m].as_str().unwrap_or("privileged");
            let version = defaults[format!("{m}-version")]
                .as_str()
                .unwrap_or("latest");
            let lv = pod_security::parse_level_version(level, version)
                .map_err(|e| anyhow::anyhow!("defaults.{m}: {e}"))?;
            Ok((lv.level != Level::Privileged).then_some(lv))
        };
        let list = |k: &str| -> Vec<String> {
            psc["exemptions"][k]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        Ok(PodSecurityConfig {
            defaults: [mode(ENFORCE)?, mode(AUDIT)?, mode(WARN)?],
            exempt_usernames: list("usernames"),
            exempt_runtime_classes: list("runtimeClasses"),
            exempt_namespaces: list("namespaces"),
        })
    }
}

/// What one write asks admission about.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The object's kind, e.g. `Pod` or `Deployment`.
    pub kind: &'a str,
    /// Whether the resource is core/v1 `pods` (only pods are refused by Pod Security).
    pub is_pod: bool,
    /// The subresource written, empty for the object itself.
    pub subresource: &'a str,
    /// The namespace, empty for cluster-scoped objects.
    pub namespace: &'a str,
    /// The labels of the namespace, when it exists.
    pub namespace_labels: Option<&'a Value>,
    /// Who writes.
    pub user: &'a UserInfo,
    /// The object as it would be stored.
    pub new: &'a Value,
    /// The stored object, for an update.
    pub old: Option<&'a Value>,
}

/// The Pod Security verdict on one write.
#[derive(Debug, Default)]
pub struct PodSecurityVerdict {
    /// Set when the write is refused: the violation message.
    pub denied: Option<String>,
    /// Warnings to return.
    pub warnings: Vec<String>,
    /// Audit annotations (`pod-security.kubernetes.io/...`).
    pub annotations: Vec<(String, String)>,
    /// The violation of the enforce policy, whether it refuses (pods) or warns (workloads).
    pub enforce: Option<Violation>,
    /// The violation of the warn policy, when it differs from the enforce policy.
    pub warn: Option<Violation>,
    /// The violation of the audit policy.
    pub audit: Option<Violation>,
}

/// Pod Security for one write.
pub fn pod_security(config: &PodSecurityConfig, req: &Request<'_>) -> PodSecurityVerdict {
    let mut verdict = PodSecurityVerdict::default();
    let template = if req.is_pod {
        None
    } else {
        match pod_security::pod_template_spec(req.kind, req.new) {
            Some(t) => Some(t),
            None => return verdict,
        }
    };
    if req.namespace.is_empty() || !matches!(req.subresource, "" | "ephemeralcontainers") {
        return verdict;
    }
    if config.exempt_namespaces.iter().any(|n| n == req.namespace)
        || config.exempt_usernames.contains(&req.user.username)
    {
        verdict.annotations.push((
            "pod-security.kubernetes.io/exempt".into(),
            "namespace-or-user".into(),
        ));
        return verdict;
    }
    let runtime_class = match &template {
        Some((_, spec)) => spec.get("runtimeClassName"),
        None => req.new.pointer("/spec/runtimeClassName"),
    }
    .and_then(Value::as_str);
    if runtime_class.is_some_and(|rc| config.exempt_runtime_classes.iter().any(|e| e == rc)) {
        verdict.annotations.push((
            "pod-security.kubernetes.io/exempt".into(),
            "runtimeClass".into(),
        ));
        return verdict;
    }
    // Updates that leave the pod spec alone (labels, annotations, status) are not re-checked.
    if let Some(old) = req.old
        && req.subresource.is_empty()
    {
        let spec = |v: &Value| match pod_security::pod_template_spec(req.kind, v) {
            Some((_, spec)) => spec.clone(),
            None => v.get("spec").cloned().unwrap_or(Value::Null),
        };
        if spec(old) == spec(req.new) {
            return verdict;
        }
    }
    let [enforce, audit, warn] = policies(config, req.namespace_labels);
    let check = |policy: LevelVersion| match &template {
        Some((meta, spec)) => pod_security::check_pod_spec(policy, meta, spec),
        None => pod_security::check_pod(policy, req.new),
    };
    if let Some(policy) = enforce {
        verdict.annotations.push((
            "pod-security.kubernetes.io/enforce-policy".into(),
            policy.to_string(),
        ));
        if let Err(v) = check(policy) {
            if req.is_pod {
                verdict.denied = Some(v.message());
                verdict.enforce = Some(v);
                return verdict;
            }
            verdict.warnings.push(v.would_violate_message());
            verdict.enforce = Some(v);
        }
    }
    if let Some(policy) = audit
        && let Err(v) = check(policy)
    {
        verdict.annotations.push((
            "pod-security.kubernetes.io/audit-violations".into(),
            v.would_violate_message(),
        ));
        verdict.audit = Some(v);
    }
    if let Some(policy) = warn
        && Some(policy) != enforce
        && let Err(v) = check(policy)
    {
        verdict.warnings.push(v.would_violate_message());
        verdict.warn = Some(v);
    }
    verdict
}

/// The enforce, audit and warn policies of a namespace (labels first, then the defaults).
pub fn policies(config: &PodSecurityConfig, labels: Option<&Value>) -> [Option<LevelVersion>; 3] {
    let policy = |i: usize, mode: &str| -> Option<LevelVersion> {
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let Some(level) = label(&format!("{LABEL_PREFIX}{mode}")) else {
            return config.defaults.get(i).copied().flatten();
        };
        let version = label(&format!("{LABEL_PREFIX}{mode}-version")).unwrap_or("latest");
        let parsed = pod_security::parse_level_version(level, version).unwrap_or(LevelVersion {
            level: Level::Restricted,
            version: Version::LATEST,
        });
        (parsed.level != Level::Privileged).then_some(parsed)
    };
    [policy(0, ENFORCE), policy(1, AUDIT), policy(2, WARN)]
}

/// The image policy's violations for an object (pods and every pod-template kind); empty when
/// there is no policy or nothing is wrong.
pub fn image_policy(
    policy: Option<&ImagePolicy>,
    kind: &str,
    labels: Option<&Value>,
    object: &Value,
) -> Vec<image_policy::Violation> {
    let Some(policy) = policy else {
        return Vec::new();
    };
    let empty = Value::Object(serde_json::Map::new());
    image_policy::check(policy, labels.unwrap_or(&empty), kind, object)
}

/// Runs the Rego and Gatekeeper policies on an AdmissionReview request; `None` without policies.
pub fn rego(
    set: Option<&PolicySet>,
    request: &Value,
    labels: Option<&Value>,
) -> Option<Result<rego::Verdict, RegoError>> {
    let set = set?;
    let empty = Value::Object(serde_json::Map::new());
    Some(set.evaluate(request, labels.unwrap_or(&empty)))
}

/// What an `admission.k8s.io/v1` AdmissionReview request says about one write.
#[derive(Clone, Copy, Debug)]
pub struct ReviewRequest<'a> {
    /// A unique id of the request.
    pub uid: &'a str,
    /// The API group of the object.
    pub group: &'a str,
    /// The API version of the object.
    pub version: &'a str,
    /// The object's kind.
    pub kind: &'a str,
    /// The resource's plural name.
    pub resource: &'a str,
    /// The subresource, empty for none.
    pub subresource: &'a str,
    /// The object's name.
    pub name: &'a str,
    /// The namespace, empty for cluster-scoped objects.
    pub namespace: &'a str,
    /// Who writes.
    pub user: &'a UserInfo,
    /// The object as it would be stored.
    pub object: &'a Value,
    /// The stored object, for an update.
    pub old: Option<&'a Value>,
}

impl ReviewRequest<'_> {
    /// The request as JSON, as the Rego policies read it (`input.request`).
    pub fn to_json(&self) -> Value {
        json!({
            "uid": self.uid,
            "kind": {"group": self.group, "version": self.version, "kind": self.kind},
            "resource": {"group": self.group, "version": self.version, "resource": self.resource},
            "subResource": self.subresource,
            "name": self.name,
            "namespace": self.namespace,
            "operation": if self.old.is_some() { "UPDATE" } else { "CREATE" },
            "userInfo": self.user,
            "object": self.object,
            "oldObject": self.old,
            "dryRun": false,
        })
    }
}

/// The engines in force, as one request sees them.
#[derive(Clone, Copy, Debug)]
pub struct Engines<'a> {
    /// Pod Security defaults and exemptions.
    pub pod_security: &'a PodSecurityConfig,
    /// The image policy, if any.
    pub image_policy: Option<&'a ImagePolicy>,
    /// The Rego policies, if any.
    pub policies: Option<&'a PolicySet>,
}

/// How far to go once a stage has refused the write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evaluate {
    /// Stop at the first refusal, as a server answering a request does.
    UntilDenied,
    /// Run every stage, so every finding is known (lint).
    Everything,
}

/// Everything admission found about one write.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Pod Security.
    pub pod_security: PodSecurityVerdict,
    /// The image policy's violations.
    pub images: Vec<image_policy::Violation>,
    /// The Rego policies' verdict; `None` when there are none or they were not run.
    pub rego: Option<Result<rego::Verdict, RegoError>>,
}

/// Why a write is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// A policy refuses it: the 403 message.
    Forbidden(String),
    /// A policy failed or ran out of time: the write is refused (fail closed); the 500 message.
    Failed(String),
}

impl Denial {
    /// The message of either kind.
    pub fn message(&self) -> &str {
        match self {
            Denial::Forbidden(m) | Denial::Failed(m) => m,
        }
    }
}

impl Outcome {
    /// The refusal the gateway sends, if any: Pod Security first, then the image policy, then
    /// the Rego policies.
    pub fn denial(&self) -> Option<Denial> {
        if let Some(message) = &self.pod_security.denied {
            return Some(Denial::Forbidden(message.clone()));
        }
        if !self.images.is_empty() {
            return Some(Denial::Forbidden(image_policy::message(&self.images)));
        }
        match &self.rego {
            Some(Ok(v)) if !v.denials.is_empty() => Some(Denial::Forbidden(
                v.denials
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
            Some(Err(e)) => Some(Denial::Failed(format!(
                "admission policy evaluation failed: {e}"
            ))),
            _ => None,
        }
    }

    /// The warnings the gateway returns: Pod Security's, then the Rego policies' (when they
    /// do not refuse the write).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.pod_security.warnings.clone();
        if let Some(Ok(v)) = &self.rego
            && v.denials.is_empty()
        {
            warnings.extend(v.warnings.iter().map(ToString::to_string));
        }
        warnings
    }
}

/// Validating admission of one write: Pod Security, the image policy, then the Rego policies
/// over `review` (the AdmissionReview request, see [`ReviewRequest::to_json`]).
pub fn validate(
    engines: &Engines<'_>,
    req: &Request<'_>,
    review: &Value,
    evaluate: Evaluate,
) -> Outcome {
    let mut outcome = Outcome {
        pod_security: pod_security(engines.pod_security, req),
        ..Outcome::default()
    };
    if evaluate == Evaluate::UntilDenied && outcome.pod_security.denied.is_some() {
        return outcome;
    }
    outcome.images = image_policy(
        engines.image_policy,
        req.kind,
        req.namespace_labels,
        req.new,
    );
    if evaluate == Evaluate::UntilDenied && !outcome.images.is_empty() {
        return outcome;
    }
    outcome.rego = rego(engines.policies, review, req.namespace_labels);
    outcome
}

/// The namespace label that opts a namespace into the restricted defaults (mutation).
pub const MUTATE_LABEL: &str = "portcullis.dev/pod-security-defaults";

/// Where the pod spec of an object of `kind` sits, as a JSON pointer.
pub fn pod_spec_path(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Pod" => "/spec",
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => "/spec/template/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        "PodTemplate" => "/template/spec",
        _ => return None,
    })
}

/// The mutation ops for an object of `kind` (restricted defaults), empty when none apply.
pub fn mutation_ops(kind: &str, object: &Value) -> Vec<Value> {
    match pod_spec_path(kind) {
        Some(path) => portcullis_admission::mutation::restricted_defaults(object, path),
        None => Vec::new(),
    }
}
