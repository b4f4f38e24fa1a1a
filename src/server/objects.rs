//! Object rules the API server applies around storage: strict decoding into the served types,
//! name validation, server-set metadata, status and generation handling.
//!
//! Every object is decoded into its `k8s-openapi` type before it is stored, and the stored form is
//! that type re-encoded: a field the type does not know is reported (Strict: 400, Warn: a
//! warning) and never kept, and a field of the wrong type is a 400. Nothing unknown is silently
//! dropped.

use jiff::Timestamp;
use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authn, authorization::v1 as authz, batch::v1 as batch,
    core::v1 as core, rbac::v1 as rbac,
};
use portcullis_api::Resource;
use portcullis_api::Status;
use portcullis_api::status::FieldError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// Server-side field validation, from the `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FieldValidation {
    /// Unknown fields are dropped silently (kubectl `--validate=false`).
    Ignore,
    /// Unknown fields are dropped with a warning (the default without the parameter).
    Warn,
    /// Unknown fields fail the request (kubectl's default).
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter; the default is Warn, as kube-apiserver's.
    pub(super) fn parse(v: Option<&str>) -> Result<Self, Status> {
        match v {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(Status::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}; must be one of Ignore, Warn or Strict"
            ))),
        }
    }
}

/// Decodes `value` as the resource's type and returns its canonical encoding, plus the warnings
/// to send (unknown fields under Warn).
pub(super) fn decode_strict(
    resource: &Resource,
    value: &Value,
    mode: FieldValidation,
) -> Result<(Value, Vec<String>), Status> {
    let mut unknown = Vec::new();
    let typed = match resource.kind {
        "ConfigMap" => roundtrip::<core::ConfigMap>(value, &mut unknown),
        "Event" => roundtrip::<core::Event>(value, &mut unknown),
        "Namespace" => roundtrip::<core::Namespace>(value, &mut unknown),
        "Pod" => roundtrip::<core::Pod>(value, &mut unknown),
        "Secret" => roundtrip::<core::Secret>(value, &mut unknown),
        "Service" => roundtrip::<core::Service>(value, &mut unknown),
        "ServiceAccount" => roundtrip::<core::ServiceAccount>(value, &mut unknown),
        "DaemonSet" => roundtrip::<apps::DaemonSet>(value, &mut unknown),
        "Deployment" => roundtrip::<apps::Deployment>(value, &mut unknown),
        "ReplicaSet" => roundtrip::<apps::ReplicaSet>(value, &mut unknown),
        "StatefulSet" => roundtrip::<apps::StatefulSet>(value, &mut unknown),
        "CronJob" => roundtrip::<batch::CronJob>(value, &mut unknown),
        "Job" => roundtrip::<batch::Job>(value, &mut unknown),
        "ClusterRole" => roundtrip::<rbac::ClusterRole>(value, &mut unknown),
        "ClusterRoleBinding" => roundtrip::<rbac::ClusterRoleBinding>(value, &mut unknown),
        "Role" => roundtrip::<rbac::Role>(value, &mut unknown),
        "RoleBinding" => roundtrip::<rbac::RoleBinding>(value, &mut unknown),
        "SelfSubjectReview" => roundtrip::<authn::SelfSubjectReview>(value, &mut unknown),
        "TokenReview" => roundtrip::<authn::TokenReview>(value, &mut unknown),
        "LocalSubjectAccessReview" => {
            roundtrip::<authz::LocalSubjectAccessReview>(value, &mut unknown)
        }
        "SelfSubjectAccessReview" => {
            roundtrip::<authz::SelfSubjectAccessReview>(value, &mut unknown)
        }
        "SelfSubjectRulesReview" => roundtrip::<authz::SelfSubjectRulesReview>(value, &mut unknown),
        "SubjectAccessReview" => roundtrip::<authz::SubjectAccessReview>(value, &mut unknown),
        other => Err(format!("no type is registered for kind {other:?}")),
    };
    let kind = resource.kind;
    let version = resource.gv.version;
    let typed = typed.map_err(|e| {
        Status::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {e}"
        ))
    })?;
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        match mode {
            FieldValidation::Strict => {
                let list = unknown
                    .iter()
                    .map(|f| format!("unknown field {f:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Status::bad_request(format!(
                    "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {list}"
                )));
            }
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|f| format!("unknown field {f:?}")))
            }
            FieldValidation::Ignore => {}
        }
    }
    Ok((typed, warnings))
}

fn roundtrip<T: DeserializeOwned + Serialize>(
    value: &Value,
    unknown: &mut Vec<String>,
) -> Result<Value, String> {
    let typed: T = serde_ignored::deserialize(value, |path| unknown.push(field_path(&path)))
        .map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Renders a serde path the way kube-apiserver names fields: `spec.containers[0].foo`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let p = field_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// Checks a name or namespace taken from the URL: a single path segment.
pub(super) fn check_path_segment(what: &str, name: &str) -> Result<(), Status> {
    let problems = path_segment_problems(name);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Status::bad_request(format!(
            "invalid {what} {name:?}: [{}]",
            problems.join(", ")
        )))
    }
}

fn path_segment_problems(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if name == "." {
        out.push("may not be '.'");
    }
    if name == ".." {
        out.push("may not be '..'");
    }
    if name.contains('/') {
        out.push("may not contain '/'");
    }
    if name.contains('%') {
        out.push("may not contain '%'");
    }
    out
}

const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

/// Validates an object name by the rule of its resource (field errors on `metadata.name`).
pub(super) fn name_errors(resource: &Resource, name: &str) -> Vec<FieldError> {
    let field = "metadata.name";
    match resource.plural {
        "namespaces" | "services" => {
            if name.len() > 63 {
                vec![FieldError::invalid(
                    field,
                    name,
                    "must be no more than 63 characters",
                )]
            } else if !is_label(name) {
                vec![FieldError::invalid(field, name, DNS1123_LABEL)]
            } else {
                Vec::new()
            }
        }
        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" | "events" => {
            path_segment_problems(name)
                .into_iter()
                .map(|p| FieldError::invalid(field, name, p))
                .collect()
        }
        _ => {
            if name.len() > 253 {
                vec![FieldError::invalid(
                    field,
                    name,
                    "must be no more than 253 characters",
                )]
            } else if !is_subdomain(name) {
                vec![FieldError::invalid(field, name, DNS1123_SUBDOMAIN)]
            } else {
                Vec::new()
            }
        }
    }
}

/// The time format of `creationTimestamp`: RFC 3339 in UTC, whole seconds.
pub(super) fn timestamp(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random suffix for `generateName`, from kube-apiserver's alphabet (no vowels, no
/// look-alike digits).
pub(super) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Whether the resource's `status` is owned by its `/status` subresource (so the main resource
/// never changes it).
pub(super) fn has_status_subresource(resource: &Resource) -> bool {
    resource.subresource("status").is_some()
}

/// Whether kube-apiserver tracks `metadata.generation` for this resource.
pub(super) fn tracks_generation(resource: &Resource) -> bool {
    matches!(resource.gv.group, "apps" | "batch") || resource.plural == "pods"
}

/// Sets what the server owns on a new object: uid, creation time, generation, status reset and
/// the defaults clients rely on (pod phase, namespace phase, workload replicas).
pub(super) fn prepare_create(resource: &Resource, object: &mut Value, now: Timestamp) {
    let Some(obj) = object.as_object_mut() else {
        return;
    };
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
        meta.insert("creationTimestamp".into(), timestamp(now).into());
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            meta.remove(k);
        }
        if tracks_generation(resource) {
            meta.insert("generation".into(), 1.into());
        } else {
            meta.remove("generation");
        }
    }
    if has_status_subresource(resource) {
        obj.remove("status");
    }
    match resource.plural {
        "pods" => {
            obj.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos_class(obj.get("spec"))}),
            );
        }
        "namespaces" => {
            obj.insert("status".into(), json!({"phase": "Active"}));
            let spec = obj.entry("spec").or_insert_with(|| json!({}));
            if let Some(spec) = spec.as_object_mut() {
                spec.entry("finalizers")
                    .or_insert_with(|| json!(["kubernetes"]));
            }
        }
        "deployments" | "replicasets" | "statefulsets" => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert(1.into());
            }
        }
        "secrets" => {
            obj.entry("type").or_insert_with(|| "Opaque".into());
        }
        _ => {}
    }
}

/// The QoS class of a pod spec, as the scheduler and kubelet compute it.
fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(|c| c.as_slice())
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        let full = |m: Option<&Map<String, Value>>| {
            m.is_some_and(|m| m.contains_key("cpu") && m.contains_key("memory"))
        };
        let lim_full = full(lim);
        let req_eq = match (req, lim) {
            (Some(r), Some(l)) => r.iter().all(|(k, v)| l.get(k) == Some(v)),
            (None, _) => true,
            _ => false,
        };
        if !lim_full || !req_eq {
            guaranteed = false;
        }
    }
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

/// Carries the server-owned fields of `old` over to an update and bumps the generation when
/// the object's desired state changed. `status_only` is the `/status` subresource: only the
/// status of `new` is taken.
pub(super) fn prepare_update(resource: &Resource, old: &Value, new: &mut Value, subresource: &str) {
    if subresource == "status" {
        let status = new.get("status").cloned();
        *new = old.clone();
        if let Some(obj) = new.as_object_mut() {
            match status {
                Some(s) => obj.insert("status".into(), s),
                None => obj.remove("status"),
            };
        }
        return;
    }
    if subresource == "ephemeralcontainers" {
        let eph = new.pointer("/spec/ephemeralContainers").cloned();
        *new = old.clone();
        if let (Some(spec), Some(eph)) = (new.get_mut("spec").and_then(Value::as_object_mut), eph) {
            spec.insert("ephemeralContainers".into(), eph);
        }
        return;
    }
    let Some(obj) = new.as_object_mut() else {
        return;
    };
    if has_status_subresource(resource) {
        match old.get("status") {
            Some(s) => obj.insert("status".into(), s.clone()),
            None => obj.remove("status"),
        };
    }
    let old_meta = old.get("metadata").and_then(Value::as_object);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.and_then(|m| m.get(k)) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        meta.remove("managedFields");
        meta.remove("selfLink");
    }
    if tracks_generation(resource) {
        let spec_changed = desired_state(old) != desired_state(new);
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let next = if spec_changed {
            generation + 1
        } else {
            generation
        };
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("generation".into(), next.into());
        }
    }
}

/// Everything but metadata and status: what a generation counts changes of.
fn desired_state(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

#[cfg(test)]
mod tests {
    use portcullis_api::registry::lookup;

    use super::*;

    #[test]
    fn strict_decoding_names_every_unknown_field_with_its_path() {
        let pods = lookup("", "v1", "pods").unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1},
            "spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolicyy": "Always"}]}});
        let err = decode_strict(pods, &pod, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains(r#"unknown field "metadata.bogus""#),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains(r#"unknown field "spec.containers[0].imagePullPolicyy""#),
            "{}",
            err.message
        );
        let (clean, warnings) = decode_strict(pods, &pod, FieldValidation::Warn).unwrap();
        assert_eq!(warnings.len(), 2);
        assert!(clean.pointer("/metadata/bogus").is_none());
        let (_, none) = decode_strict(pods, &pod, FieldValidation::Ignore).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn wrongly_typed_fields_are_a_bad_request() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": "three"}});
        let err = decode_strict(deploy, &d, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .starts_with(r#"Deployment in version "v1" cannot be handled as a Deployment"#),
            "{}",
            err.message
        );
    }

    #[test]
    fn names_follow_each_resources_rule() {
        let pods = lookup("", "v1", "pods").unwrap();
        let ns = lookup("", "v1", "namespaces").unwrap();
        let roles = lookup("rbac.authorization.k8s.io", "v1", "roles").unwrap();
        assert!(name_errors(pods, "web-1.a").is_empty());
        assert!(!name_errors(pods, "Web").is_empty());
        assert!(!name_errors(pods, "../etc").is_empty());
        assert!(!name_errors(ns, "a.b").is_empty());
        assert!(name_errors(roles, "system:aggregate-to-view").is_empty());
        assert!(!name_errors(roles, "..").is_empty());
        assert!(check_path_segment("name", "a/b").is_err());
    }

    #[test]
    fn generation_moves_with_the_spec_only() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "generation": 1, "uid": "u"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut same =
            json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}});
        prepare_update(deploy, &old, &mut same, "");
        assert_eq!(same.pointer("/metadata/generation"), Some(&json!(1)));
        assert_eq!(same.pointer("/metadata/uid"), Some(&json!("u")));
        assert_eq!(
            same.pointer("/status/replicas"),
            Some(&json!(1)),
            "status kept by the main resource"
        );
        let mut changed = json!({"metadata": {"name": "d"}, "spec": {"replicas": 2}});
        prepare_update(deploy, &old, &mut changed, "");
        assert_eq!(changed.pointer("/metadata/generation"), Some(&json!(2)));
    }
}
