//! Rules kube-apiserver applies to writes of RBAC objects, after the write itself was authorized:
//! field validation (422 with upstream's messages), immutable `roleRef`, and escalation
//! prevention (`escalate`, `bind`, or holding every granted rule; `aggregationRule` needs full
//! authority).

use portcullis_api::status::FieldError;
use portcullis_api::user::SYSTEM_MASTERS;
use portcullis_api::{RequestInfo, Resource, ResourceRequest, Status, UserInfo};
use portcullis_authz::Authorizer;
use portcullis_authz::rbac::escalation::{escalation_message, has_full_authority, uncovered};
use serde_json::Value;

use super::resources::store_error;
use crate::rbac::rules_of;
use crate::storage::Store;

/// Whether `resource` is one of the four RBAC kinds.
pub(super) fn is_rbac(resource: &Resource) -> bool {
    resource.gv.group == "rbac.authorization.k8s.io"
}

/// Validates a new (or updated) RBAC object; `old` is the stored one for updates.
pub(super) fn validate(
    resource: &Resource,
    new: &Value,
    old: Option<&Value>,
) -> Result<(), Status> {
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut errors = Vec::new();
    match resource.kind {
        "Role" | "ClusterRole" => {
            for (i, rule) in new
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let field = |f: &str| format!("rules[{i}].{f}");
                let list = |k: &str| {
                    rule.get(k)
                        .and_then(Value::as_array)
                        .map(Vec::len)
                        .unwrap_or(0)
                };
                if list("verbs") == 0 {
                    errors.push(FieldError::required(
                        field("verbs"),
                        "verbs must contain at least one value",
                    ));
                }
                let urls = list("nonResourceURLs");
                if urls > 0 {
                    if resource.kind == "Role" {
                        errors.push(FieldError::invalid(
                            field("nonResourceURLs"),
                            &format!("{}", rule["nonResourceURLs"]),
                            "namespaced rules cannot apply to non-resource URLs",
                        ));
                    }
                    if list("apiGroups") > 0 || list("resources") > 0 || list("resourceNames") > 0 {
                        errors.push(FieldError::invalid(
                            field("nonResourceURLs"),
                            &format!("{}", rule["nonResourceURLs"]),
                            "rules cannot apply to both regular resources and non-resource URLs",
                        ));
                    }
                } else {
                    if list("apiGroups") == 0 {
                        errors.push(FieldError::required(
                            field("apiGroups"),
                            "resource rules must supply at least one api group",
                        ));
                    }
                    if list("resources") == 0 {
                        errors.push(FieldError::required(
                            field("resources"),
                            "resource rules must supply at least one resource",
                        ));
                    }
                }
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let role_ref = &new["roleRef"];
            if role_ref["apiGroup"] != "rbac.authorization.k8s.io" {
                errors.push(FieldError {
                    field: "roleRef.apiGroup".into(),
                    kind: portcullis_api::status::FieldErrorKind::NotSupported,
                    value: format!("{:?}", role_ref["apiGroup"].as_str().unwrap_or("")),
                    detail: "supported values: \"rbac.authorization.k8s.io\"".into(),
                });
            }
            let kind = role_ref["kind"].as_str().unwrap_or("");
            let allowed: &[&str] = if resource.kind == "ClusterRoleBinding" {
                &["ClusterRole"]
            } else {
                &["Role", "ClusterRole"]
            };
            if !allowed.contains(&kind) {
                errors.push(FieldError {
                    field: "roleRef.kind".into(),
                    kind: portcullis_api::status::FieldErrorKind::NotSupported,
                    value: format!("{kind:?}"),
                    detail: format!(
                        "supported values: {}",
                        allowed
                            .iter()
                            .map(|k| format!("{k:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            if role_ref["name"].as_str().unwrap_or("").is_empty() {
                errors.push(FieldError::required("roleRef.name", ""));
            }
            for (i, s) in new
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let field = |f: &str| format!("subjects[{i}].{f}");
                if s["name"].as_str().unwrap_or("").is_empty() {
                    errors.push(FieldError::required(field("name"), ""));
                }
                let group = s["apiGroup"].as_str().unwrap_or("");
                match s["kind"].as_str().unwrap_or("") {
                    "ServiceAccount" => {
                        if !group.is_empty() {
                            errors.push(FieldError {
                                field: field("apiGroup"),
                                kind: portcullis_api::status::FieldErrorKind::NotSupported,
                                value: format!("{group:?}"),
                                detail: "supported values: \"\"".into(),
                            });
                        }
                        if resource.kind == "ClusterRoleBinding"
                            && s["namespace"].as_str().unwrap_or("").is_empty()
                        {
                            errors.push(FieldError::required(field("namespace"), ""));
                        }
                    }
                    "User" | "Group" => {
                        if group != "rbac.authorization.k8s.io" {
                            errors.push(FieldError {
                                field: field("apiGroup"),
                                kind: portcullis_api::status::FieldErrorKind::NotSupported,
                                value: format!("{group:?}"),
                                detail: "supported values: \"rbac.authorization.k8s.io\"".into(),
                            });
                        }
                    }
                    other => errors.push(FieldError {
                        field: field("kind"),
                        kind: portcullis_api::status::FieldErrorKind::NotSupported,
                        value: format!("{other:?}"),
                        detail: "supported values: \"ServiceAccount\", \"User\", \"Group\"".into(),
                    }),
                }
            }
            if let Some(old) = old
                && old.get("roleRef") != new.get("roleRef")
            {
                errors.push(FieldError::invalid(
                    "roleRef",
                    &format!("{}", new["roleRef"]),
                    "cannot change roleRef",
                ));
            }
        }
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Status::invalid(resource, name, &errors))
    }
}

/// Whether an update changes only garbage-collection fields, which needs no escalation check.
fn only_gc_fields(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "ownerReferences",
                "finalizers",
                "resourceVersion",
                "managedFields",
                "generation",
            ] {
                m.remove(k);
            }
        }
        v
    };
    strip(new) == strip(old)
}

/// Escalation prevention for a write of `new` (replacing `old`) by `user`.
pub(super) async fn check_escalation(
    store: &dyn Store,
    authorizer: &Authorizer,
    user: &UserInfo,
    resource: &Resource,
    new: &Value,
    old: Option<&Value>,
) -> Result<(), Status> {
    if user.in_group(SYSTEM_MASTERS) || old.is_some_and(|o| only_gc_fields(new, o)) {
        return Ok(());
    }
    let namespace = new
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let may = |verb: &str, plural: &str, target: &str| {
        authorizer
            .authorize(
                user,
                &RequestInfo::Resource(ResourceRequest {
                    verb: verb.into(),
                    group: "rbac.authorization.k8s.io".into(),
                    version: "*".into(),
                    resource: plural.into(),
                    namespace: namespace.clone(),
                    name: target.into(),
                    ..ResourceRequest::default()
                }),
            )
            .is_allowed()
    };
    let (owner, errors) = authorizer
        .rbac()
        .map(|s| s.rules_for(user, &namespace))
        .unwrap_or_default();
    let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let forbidden = |message: String| Status::forbidden_with_message(resource, &name, message);
    match resource.kind {
        "Role" | "ClusterRole" => {
            if may("escalate", resource.plural, &name) {
                return Ok(());
            }
            let aggregation = |v: Option<&Value>| {
                v.and_then(|v| v.get("aggregationRule"))
                    .is_some_and(|a| !a.is_null())
            };
            if resource.kind == "ClusterRole"
                && (aggregation(Some(new)) || aggregation(old))
                && !has_full_authority(&owner)
            {
                return Err(forbidden(
                    "must have cluster-admin privileges to use the aggregationRule".into(),
                ));
            }
            let missing = uncovered(&owner, &rules_of(new));
            if missing.is_empty() {
                Ok(())
            } else {
                Err(forbidden(escalation_message(
                    &user.username,
                    &user.groups,
                    &missing,
                    &errors,
                )))
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let kind = new
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            let role_name = new
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let role_plural = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if may("bind", role_plural, role_name) {
                return Ok(());
            }
            let role_resource =
                portcullis_api::registry::lookup("rbac.authorization.k8s.io", "v1", role_plural)
                    .ok_or_else(|| Status::internal("rbac roles are not registered"))?;
            let role_ns = (kind == "Role").then_some(namespace.as_str());
            let stored = store
                .get(&role_resource.key(role_ns, role_name))
                .await
                .map_err(store_error)?
                .ok_or_else(|| Status::not_found(role_resource, role_name))?;
            let role: Value = serde_json::from_slice(&stored.value)
                .map_err(|e| Status::internal(format!("stored role is corrupt: {e}")))?;
            let missing = uncovered(&owner, &rules_of(&role));
            if missing.is_empty() {
                Ok(())
            } else {
                Err(forbidden(escalation_message(
                    &user.username,
                    &user.groups,
                    &missing,
                    &errors,
                )))
            }
        }
        _ => Ok(()),
    }
}
