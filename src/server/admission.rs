//! Admission at the gateway: Pod Security Standards from namespace labels, as the built-in
//! PodSecurity admission plugin applies them.
//!
//! - `pod-security.kubernetes.io/enforce` (+ `-version`): a pod that violates it is refused with
//!   403 `pods "x" is forbidden: violates PodSecurity "restricted:latest": ...`; pods are checked on
//!   create, on every update that changes more than metadata, and on `ephemeralcontainers`.
//! - `warn` (and, for workloads, `enforce` too): `Warning` headers saying what would be violated.
//!   Workload kinds (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob) are never
//!   refused, as upstream.
//! - A label value that does not parse is treated as `restricted:latest`: fail closed.
//!
//! The decision is the `portcullis-admission` engine's; this module reads the namespace and
//! turns verdicts into responses.

use portcullis_admission::pod_security::{self, Level, LevelVersion, Version};
use portcullis_api::{Resource, Status};
use serde_json::Value;

use super::resources::{Ctx, store_error};

const ENFORCE: &str = "pod-security.kubernetes.io/enforce";
const WARN: &str = "pod-security.kubernetes.io/warn";

/// Checks an object about to be stored; `old` is the stored version for updates. Returns the
/// warnings to send, or the 403 that refuses the write.
pub(super) async fn check(
    ctx: &Ctx,
    new: &Value,
    old: Option<&Value>,
) -> Result<Vec<String>, Status> {
    let resource = ctx.resource;
    let is_pod = resource.plural == "pods" && resource.gv.group.is_empty();
    let template = if is_pod {
        None
    } else {
        match pod_security::pod_template_spec(resource.kind, new) {
            Some(t) => Some(t),
            None => return Ok(Vec::new()),
        }
    };
    if ctx.req.namespace.is_empty()
        || !matches!(ctx.req.subresource.as_str(), "" | "ephemeralcontainers")
    {
        return Ok(Vec::new());
    }
    // Updates that leave the pod spec alone (labels, annotations, status) are not re-checked.
    if let Some(old) = old
        && ctx.req.subresource.is_empty()
    {
        let spec = |v: &Value| match pod_security::pod_template_spec(resource.kind, v) {
            Some((_, spec)) => spec.clone(),
            None => v.get("spec").cloned().unwrap_or(Value::Null),
        };
        if spec(old) == spec(new) {
            return Ok(Vec::new());
        }
    }
    let (enforce, warn) = namespace_policies(ctx).await?;
    let mut warnings = Vec::new();
    let verdict = |policy: LevelVersion| match &template {
        Some((meta, spec)) => pod_security::check_pod_spec(policy, meta, spec),
        None => pod_security::check_pod(policy, new),
    };
    if let Some(policy) = enforce
        && let Err(v) = verdict(policy)
    {
        if is_pod {
            let name = new
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(Status::forbidden_with_message(resource, name, v.message()));
        }
        warnings.push(v.would_violate_message());
    }
    if let Some(policy) = warn
        && Some(policy) != enforce
        && let Err(v) = verdict(policy)
    {
        warnings.push(v.would_violate_message());
    }
    Ok(warnings)
}

/// The enforce and warn policies of the request's namespace (none = privileged).
async fn namespace_policies(
    ctx: &Ctx,
) -> Result<(Option<LevelVersion>, Option<LevelVersion>), Status> {
    let ns_resource: &Resource = portcullis_api::registry::lookup("", "v1", "namespaces")
        .ok_or_else(|| Status::internal("namespaces are not registered"))?;
    let kv = ctx
        .state
        .store
        .get(&ns_resource.key(None, &ctx.req.namespace))
        .await
        .map_err(store_error)?;
    let Some(kv) = kv else {
        return Ok((None, None));
    };
    let ns: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| Status::internal(format!("stored namespace is corrupt: {e}")))?;
    let labels = ns.pointer("/metadata/labels");
    let policy = |mode: &str| -> Option<LevelVersion> {
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let level = label(mode)?;
        let version = label(&format!("{mode}-version")).unwrap_or("latest");
        let parsed = pod_security::parse_level_version(level, version).unwrap_or(LevelVersion {
            level: Level::Restricted,
            version: Version::LATEST,
        });
        (parsed.level != Level::Privileged).then_some(parsed)
    };
    Ok((policy(ENFORCE), policy(WARN)))
}
