//! Admission at the gateway and as a kube-apiserver webhook: Pod Security Standards from namespace
//! labels and the PodSecurity AdmissionConfiguration, as the built-in PodSecurity plugin applies
//! them.
//!
//! - `pod-security.kubernetes.io/enforce` (+ `-version`): a pod that violates it is refused with
//!   403 `pods "x" is forbidden: violates PodSecurity "restricted:latest": ...`; pods are checked on
//!   create, on every update that changes more than metadata, and on `ephemeralcontainers`.
//! - `warn` (and, for workloads, `enforce` too): warnings saying what would be violated. Workload
//!   kinds (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ...) are never refused.
//! - A namespace without a label uses the configuration's defaults (privileged when none).
//! - Exempt usernames, runtime classes and namespaces are not checked.
//! - A label value that does not parse is treated as `restricted:latest`: fail closed.
//!
//! The verdicts are the `portcullis-admission` engine's; this module finds the policy and turns
//! verdicts into responses.

use std::path::Path;

use anyhow::{Context, Result, bail};
use portcullis_admission::pod_security::{self, Level, LevelVersion, Version};
use portcullis_api::{Resource, Status, UserInfo};
use serde_json::{Value, json};

use super::resources::{Ctx, store_error};

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
pub(super) struct Request<'a> {
    pub(super) kind: &'a str,
    pub(super) is_pod: bool,
    pub(super) subresource: &'a str,
    pub(super) namespace: &'a str,
    pub(super) namespace_labels: Option<&'a Value>,
    pub(super) user: &'a UserInfo,
    pub(super) new: &'a Value,
    pub(super) old: Option<&'a Value>,
}

/// The verdict on one write.
#[derive(Debug, Default)]
pub(super) struct Verdict {
    /// Set when the write is refused: the violation message.
    pub(super) denied: Option<String>,
    /// Warnings to return.
    pub(super) warnings: Vec<String>,
    /// Audit annotations (`pod-security.kubernetes.io/...`).
    pub(super) annotations: Vec<(String, String)>,
}

/// Pod Security for one write.
pub(super) fn pod_security(config: &PodSecurityConfig, req: &Request<'_>) -> Verdict {
    let mut verdict = Verdict::default();
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
                return verdict;
            }
            verdict.warnings.push(v.would_violate_message());
        }
    }
    if let Some(policy) = audit
        && let Err(v) = check(policy)
    {
        verdict.annotations.push((
            "pod-security.kubernetes.io/audit-violations".into(),
            v.would_violate_message(),
        ));
    }
    if let Some(policy) = warn
        && Some(policy) != enforce
        && let Err(v) = check(policy)
    {
        verdict.warnings.push(v.would_violate_message());
    }
    verdict
}

/// The enforce, audit and warn policies of a namespace (labels first, then the defaults).
fn policies(config: &PodSecurityConfig, labels: Option<&Value>) -> [Option<LevelVersion>; 3] {
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

/// The labels of a stored namespace, if it exists.
pub(super) async fn namespace_labels(
    ctx_store: &dyn crate::storage::Store,
    namespace: &str,
) -> Result<Option<Value>, Status> {
    if namespace.is_empty() {
        return Ok(None);
    }
    let ns_resource: &Resource = portcullis_api::registry::lookup("", "v1", "namespaces")
        .ok_or_else(|| Status::internal("namespaces are not registered"))?;
    let Some(kv) = ctx_store
        .get(&ns_resource.key(None, namespace))
        .await
        .map_err(store_error)?
    else {
        return Ok(None);
    };
    let ns: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| Status::internal(format!("stored namespace is corrupt: {e}")))?;
    Ok(ns.pointer("/metadata/labels").cloned())
}

/// Admission of a write through the gateway: the warnings to send, or the 403 that refuses it.
pub(super) async fn check(
    ctx: &Ctx,
    new: &Value,
    old: Option<&Value>,
) -> Result<Vec<String>, Status> {
    let resource = ctx.resource;
    if resource.plural == "namespaces" && resource.gv.group.is_empty() {
        return namespace_change(ctx, new, old).await;
    }
    let labels = namespace_labels(ctx.state.store.as_ref(), &ctx.req.namespace).await?;
    let verdict = pod_security(
        &ctx.state.pod_security.load(),
        &Request {
            kind: resource.kind,
            is_pod: resource.plural == "pods" && resource.gv.group.is_empty(),
            subresource: &ctx.req.subresource,
            namespace: &ctx.req.namespace,
            namespace_labels: labels.as_ref(),
            user: &ctx.user,
            new,
            old,
        },
    );
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(record) = &ctx.audit {
        for (key, value) in &verdict.annotations {
            record.annotate(key.clone(), value.clone());
        }
    }
    if let Some(message) = verdict.denied {
        return Err(Status::forbidden_with_message(resource, name, message));
    }
    let annotate = |key: &str, value: &str| {
        if let Some(record) = &ctx.audit {
            record.annotate(key, value);
        }
    };
    if let Some(message) = image_policy(&ctx.state, resource.kind, labels.as_ref(), new) {
        annotate("image-policy.portcullis.dev/violations", &message);
        return Err(Status::forbidden_with_message(resource, name, message));
    }
    let mut warnings = verdict.warnings;
    let review = json!({
        "uid": uuid::Uuid::new_v4().to_string(),
        "kind": {"group": resource.gv.group, "version": resource.gv.version, "kind": resource.kind},
        "resource": {"group": resource.gv.group, "version": resource.gv.version, "resource": resource.plural},
        "subResource": ctx.req.subresource,
        "name": name,
        "namespace": ctx.req.namespace,
        "operation": if old.is_some() { "UPDATE" } else { "CREATE" },
        "userInfo": ctx.user,
        "object": new,
        "oldObject": old,
        "dryRun": false,
    });
    match rego(&ctx.state, &review, labels.as_ref()) {
        RegoOutcome::Allowed(w) => {
            if !w.is_empty() {
                annotate("policy.portcullis.dev/warnings", &w.join(", "));
            }
            warnings.extend(w);
        }
        RegoOutcome::Denied(message) => {
            annotate("policy.portcullis.dev/denials", &message);
            return Err(Status::forbidden_with_message(resource, name, message));
        }
        RegoOutcome::Failed(message) => {
            annotate("policy.portcullis.dev/error", &message);
            return Err(Status::internal(message));
        }
    }
    Ok(warnings)
}

/// The outcome of the Rego policies on one request.
pub(super) enum RegoOutcome {
    /// Allowed, with these warnings.
    Allowed(Vec<String>),
    /// Denied: the findings, joined.
    Denied(String),
    /// A policy failed or ran out of time: the request is refused (fail closed).
    Failed(String),
}

/// Runs the Rego and Gatekeeper policies on an AdmissionReview request.
pub(super) fn rego(
    state: &super::AppState,
    request: &Value,
    labels: Option<&Value>,
) -> RegoOutcome {
    let Some(set) = state.policies.load_full() else {
        return RegoOutcome::Allowed(Vec::new());
    };
    let empty = Value::Object(serde_json::Map::new());
    match set.evaluate(request, labels.unwrap_or(&empty)) {
        Ok(v) if v.denials.is_empty() => {
            RegoOutcome::Allowed(v.warnings.iter().map(ToString::to_string).collect())
        }
        Ok(v) => RegoOutcome::Denied(
            v.denials
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Err(e) => {
            tracing::error!(error = %e, "admission policy evaluation failed; the request is refused");
            RegoOutcome::Failed(format!("admission policy evaluation failed: {e}"))
        }
    }
}

/// The image policy's refusal of an object, if any (pods and every pod-template kind).
pub(super) fn image_policy(
    state: &super::AppState,
    kind: &str,
    labels: Option<&Value>,
    object: &Value,
) -> Option<String> {
    let policy = state.image_policy.load_full()?;
    let empty = Value::Object(serde_json::Map::new());
    let violations =
        portcullis_admission::image_policy::check(&policy, labels.unwrap_or(&empty), kind, object);
    (!violations.is_empty()).then(|| portcullis_admission::image_policy::message(&violations))
}

/// Most pods named in the warnings of an enforce-label change.
const MAX_POD_WARNINGS: usize = 10;

/// A namespace whose enforce level changes: warnings naming the existing pods that would violate
/// the new level, as upstream answers `kubectl label ns ... enforce=restricted`.
async fn namespace_change(
    ctx: &Ctx,
    new: &Value,
    old: Option<&Value>,
) -> Result<Vec<String>, Status> {
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let labels = |v: Option<&Value>| v.and_then(|v| v.pointer("/metadata/labels")).cloned();
    let config = ctx.state.pod_security.load();
    let [new_enforce, _, _] = policies(&config, labels(Some(new)).as_ref());
    let [old_enforce, _, _] = policies(&config, labels(old).as_ref());
    let Some(policy) = new_enforce else {
        return Ok(Vec::new());
    };
    if old.is_some() && old_enforce == new_enforce {
        return Ok(Vec::new());
    }
    if config.exempt_namespaces.iter().any(|n| n == name) {
        return Ok(Vec::new());
    }
    let pods = portcullis_api::registry::lookup("", "v1", "pods")
        .ok_or_else(|| Status::internal("pods are not registered"))?;
    let all = |_: &crate::storage::KeyValue| true;
    let page = ctx
        .state
        .store
        .list(&pods.key_prefix(Some(name)), None, 0, &all)
        .await
        .map_err(store_error)?;
    let mut offenders = Vec::new();
    for kv in &page.items {
        let Ok(pod) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        if let Err(v) = pod_security::check_pod(policy, &pod) {
            let pod_name = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            offenders.push(format!("{pod_name}: {}", v.forbidden_reason()));
        }
    }
    if offenders.is_empty() {
        return Ok(Vec::new());
    }
    let mut warnings = vec![format!(
        "existing pods in namespace {name:?} violate the new PodSecurity enforce level {:?}",
        policy.to_string()
    )];
    let extra = offenders.len().saturating_sub(MAX_POD_WARNINGS);
    warnings.extend(offenders.into_iter().take(MAX_POD_WARNINGS));
    if extra > 0 {
        warnings.push(format!("(and {extra} other pods)"));
    }
    Ok(warnings)
}

/// The namespace label that opts a namespace into the restricted defaults (mutation).
pub(super) const MUTATE_LABEL: &str = "portcullis.dev/pod-security-defaults";

/// Where the pod spec of an object of `kind` sits, as a JSON pointer.
pub(super) fn pod_spec_path(kind: &str) -> Option<&'static str> {
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
pub(super) fn mutation_ops(kind: &str, object: &Value) -> Vec<Value> {
    match pod_spec_path(kind) {
        Some(path) => portcullis_admission::mutation::restricted_defaults(object, path),
        None => Vec::new(),
    }
}

/// Mutating admission at the gateway: applies the restricted defaults to pods and pod templates
/// in namespaces labelled `portcullis.dev/pod-security-defaults=restricted`.
pub(super) async fn mutate(ctx: &Ctx, object: &mut Value) -> Result<(), Status> {
    let resource = ctx.resource;
    if pod_spec_path(resource.kind).is_none()
        || !matches!(ctx.req.subresource.as_str(), "" | "ephemeralcontainers")
    {
        return Ok(());
    }
    let labels = namespace_labels(ctx.state.store.as_ref(), &ctx.req.namespace).await?;
    let opted_in = labels
        .as_ref()
        .and_then(|l| l.get(MUTATE_LABEL))
        .and_then(Value::as_str)
        == Some("restricted");
    if !opted_in {
        return Ok(());
    }
    let ops = mutation_ops(resource.kind, object);
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))
        .map_err(|e| Status::internal(format!("mutation patch: {e}")))?;
    json_patch::patch(object, &patch)
        .map_err(|e| Status::internal(format!("applying the mutation: {e}")))
}
