//! Admission at the gateway and as a kube-apiserver webhook. The decision itself lives in
//! [`crate::admit`] (shared with `portcullis lint`); this module reads the namespace from the
//! store, runs the decision with the engines in force, and turns it into a response.

use portcullis_api::{Resource, Status};
use serde_json::Value;

use super::resources::{Ctx, store_error};
use crate::admit::{self, Denial, Engines, Evaluate, ReviewRequest};

pub use crate::admit::{MUTATE_LABEL, PodSecurityConfig, Request, mutation_ops, pod_spec_path};

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
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let uid = uuid::Uuid::new_v4().to_string();
    let review = ReviewRequest {
        uid: &uid,
        group: resource.gv.group,
        version: resource.gv.version,
        kind: resource.kind,
        resource: resource.plural,
        subresource: &ctx.req.subresource,
        name,
        namespace: &ctx.req.namespace,
        user: &ctx.user,
        object: new,
        old,
    }
    .to_json();
    let outcome = validate(
        &ctx.state,
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
        &review,
        ctx.audit.as_deref(),
    );
    match outcome.denial() {
        Some(Denial::Forbidden(message)) => {
            Err(Status::forbidden_with_message(resource, name, message))
        }
        Some(Denial::Failed(message)) => Err(Status::internal(message)),
        None => Ok(outcome.warnings()),
    }
}

/// The audit annotations of an admission outcome: Pod Security's (upstream keys), the image
/// policy's violations, and the Rego policies' findings with their policy names.
fn annotate(record: &super::audit::Record, outcome: &admit::Outcome) {
    for (key, value) in &outcome.pod_security.annotations {
        record.annotate(key.clone(), value.clone());
    }
    if !outcome.images.is_empty() {
        record.annotate(
            "image-policy.portcullis.dev/violations",
            portcullis_admission::image_policy::message(&outcome.images),
        );
    }
    let join = |findings: &[portcullis_admission::rego::Finding]| {
        findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &outcome.rego {
        Some(Ok(v)) => {
            for (key, findings) in [
                ("policy.portcullis.dev/denials", &v.denials),
                ("policy.portcullis.dev/warnings", &v.warnings),
                ("policy.portcullis.dev/dryrun-violations", &v.dry_runs),
            ] {
                if !findings.is_empty() {
                    record.annotate(key, join(findings));
                }
            }
        }
        Some(Err(e)) => record.annotate("policy.portcullis.dev/error", e.to_string()),
        None => {}
    }
}

/// Validating admission with the engines in force, stopping at the first refusal; the outcome
/// is recorded on the request's audit record, if any.
pub(super) fn validate(
    state: &super::AppState,
    req: &Request<'_>,
    review: &Value,
    record: Option<&super::audit::Record>,
) -> admit::Outcome {
    let policies = state.policies.load_full();
    let image_policy = state.image_policy.load_full();
    let outcome = admit::validate(
        &Engines {
            pod_security: &state.pod_security.load(),
            image_policy: image_policy.as_deref(),
            policies: policies.as_deref(),
        },
        req,
        review,
        Evaluate::UntilDenied,
    );
    if let Some(Err(e)) = &outcome.rego {
        tracing::error!(error = %e, "admission policy evaluation failed; the request is refused");
    }
    if let Some(record) = record {
        annotate(record, &outcome);
    }
    outcome
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
    let [new_enforce, _, _] = admit::policies(&config, labels(Some(new)).as_ref());
    let [old_enforce, _, _] = admit::policies(&config, labels(old).as_ref());
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
        .list(&pods.key_prefix(Some(name)), None, 0, 0, &all)
        .await
        .map_err(store_error)?;
    let mut offenders = Vec::new();
    for kv in &page.items {
        let Ok(pod) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        if let Err(v) = portcullis_admission::pod_security::check_pod(policy, &pod) {
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
