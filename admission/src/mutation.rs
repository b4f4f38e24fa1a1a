//! Opt-in mutation: the defaults that make a pod `restricted`-compliant where that is safe,
//! returned as RFC 6902 JSON Patch operations.
//!
//! Only absent fields are filled; an explicit value is never changed (so an explicit
//! `privileged: true` stays and validation still refuses it):
//! - every container (including init and ephemeral ones): `allowPrivilegeEscalation: false` and
//!   `capabilities.drop: [ALL]`;
//! - the pod: `seccompProfile: {type: RuntimeDefault}` unless the pod or a container sets one;
//! - `runAsNonRoot: true` on the pod when it declares a non-zero `runAsUser` (the image user is
//!   not known here, so nothing else can prove a non-root user).

use serde_json::{Value, json};

/// The JSON Patch operations that apply the restricted defaults to the pod spec at `spec_path`
/// (`/spec` for a Pod, `/spec/template/spec` for a Deployment, ...) inside `object`.
pub fn restricted_defaults(object: &Value, spec_path: &str) -> Vec<Value> {
    let mut ops = Vec::new();
    let Some(spec) = object.pointer(spec_path).and_then(Value::as_object) else {
        return ops;
    };
    for field in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(containers) = spec.get(field).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in containers.iter().enumerate() {
            let Some(c) = c.as_object() else { continue };
            let base = format!("{spec_path}/{field}/{i}/securityContext");
            match c.get("securityContext").and_then(Value::as_object) {
                None if c.get("securityContext").is_none_or(Value::is_null) => ops.push(json!({
                    "op": "add", "path": base,
                    "value": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                })),
                None => {}
                Some(sc) => {
                    if sc
                        .get("allowPrivilegeEscalation")
                        .is_none_or(Value::is_null)
                    {
                        ops.push(json!({"op": "add", "path": format!("{base}/allowPrivilegeEscalation"), "value": false}));
                    }
                    match sc.get("capabilities").and_then(Value::as_object) {
                        None if sc.get("capabilities").is_none_or(Value::is_null) => ops.push(json!({
                            "op": "add", "path": format!("{base}/capabilities"), "value": {"drop": ["ALL"]},
                        })),
                        None => {}
                        Some(caps) if caps.get("drop").is_none_or(Value::is_null) => {
                            ops.push(json!({"op": "add", "path": format!("{base}/capabilities/drop"), "value": ["ALL"]}));
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
    let container_sets_seccomp = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .any(|f| {
            spec.get(*f)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| {
                    c.pointer("/securityContext/seccompProfile")
                        .is_some_and(|v| !v.is_null())
                })
        });
    let pod_sc = spec.get("securityContext");
    let mut pod_additions = serde_json::Map::new();
    if !container_sets_seccomp
        && pod_sc
            .and_then(|sc| sc.get("seccompProfile"))
            .is_none_or(Value::is_null)
    {
        pod_additions.insert("seccompProfile".into(), json!({"type": "RuntimeDefault"}));
    }
    let run_as_user = pod_sc
        .and_then(|sc| sc.get("runAsUser"))
        .and_then(Value::as_i64);
    if run_as_user.is_some_and(|u| u != 0)
        && pod_sc
            .and_then(|sc| sc.get("runAsNonRoot"))
            .is_none_or(Value::is_null)
    {
        pod_additions.insert("runAsNonRoot".into(), json!(true));
    }
    if !pod_additions.is_empty() {
        match pod_sc {
            Some(Value::Object(_)) => {
                for (k, v) in pod_additions {
                    ops.push(json!({"op": "add", "path": format!("{spec_path}/securityContext/{k}"), "value": v}));
                }
            }
            None | Some(Value::Null) => {
                ops.push(json!({"op": "add", "path": format!("{spec_path}/securityContext"), "value": Value::Object(pod_additions)}));
            }
            // A securityContext of the wrong type is left for validation to refuse.
            Some(_) => {}
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(mut doc: Value, ops: &[Value]) -> Value {
        for op in ops {
            let path = op["path"].as_str().unwrap();
            let (parent, key) = path.rsplit_once('/').unwrap();
            doc.pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert(key.to_owned(), op["value"].clone());
        }
        doc
    }

    #[test]
    fn a_bare_pod_gets_every_restricted_default() {
        let pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}], "initContainers": [{"name": "i", "image": "x", "securityContext": {}}]}});
        let out = apply(pod.clone(), &restricted_defaults(&pod, "/spec"));
        for c in ["/spec/containers/0", "/spec/initContainers/0"] {
            assert_eq!(
                out.pointer(&format!("{c}/securityContext/allowPrivilegeEscalation")),
                Some(&json!(false))
            );
            assert_eq!(
                out.pointer(&format!("{c}/securityContext/capabilities/drop")),
                Some(&json!(["ALL"]))
            );
        }
        assert_eq!(
            out.pointer("/spec/securityContext/seccompProfile/type"),
            Some(&json!("RuntimeDefault"))
        );
    }

    #[test]
    fn explicit_values_are_never_changed() {
        let pod = json!({"spec": {"securityContext": {"runAsUser": 1000, "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}},
            "containers": [{"name": "a", "securityContext": {"privileged": true, "allowPrivilegeEscalation": true, "capabilities": {"add": ["NET_ADMIN"], "drop": []}}}]}});
        let ops = restricted_defaults(&pod, "/spec");
        assert_eq!(
            ops,
            vec![json!({"op": "add", "path": "/spec/securityContext/runAsNonRoot", "value": true})]
        );
    }

    #[test]
    fn templates_and_hostile_shapes() {
        let deploy = json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}});
        let ops = restricted_defaults(&deploy, "/spec/template/spec");
        assert!(ops.iter().all(|o| {
            o["path"]
                .as_str()
                .unwrap()
                .starts_with("/spec/template/spec/")
        }));
        assert_eq!(ops.len(), 2);
        for hostile in [
            json!({"spec": "x"}),
            json!({"spec": {"containers": "x"}}),
            json!({"spec": {"containers": [1, null]}}),
            json!(null),
        ] {
            let _ = restricted_defaults(&hostile, "/spec");
        }
    }
}
