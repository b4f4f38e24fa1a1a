//! Finding the pod inside a workload: the kinds upstream extracts a pod spec from.

use serde_json::Value;

/// The pod metadata and spec that `object` of kind `kind` would create, as upstream's pod spec
/// extractor finds them: the object itself for `Pod`, `template` for `PodTemplate`,
/// `spec.template` for ReplicationController, ReplicaSet, Deployment, StatefulSet, DaemonSet
/// and Job, and `spec.jobTemplate.spec.template` for CronJob.
///
/// Returns `None` for any other kind. A known kind always returns `Some`, so the caller never
/// mistakes a broken workload for one without a pod: an absent part reads as `null` (which
/// [`evaluate`](super::evaluate) treats as empty, as upstream does), and a part of the wrong
/// JSON type is returned as it is, so that evaluating it fails closed.
///
/// ```
/// use portcullis_admission::pod_security::pod_template_spec;
/// use serde_json::json;
///
/// let cronjob = json!({"spec": {"jobTemplate": {"spec": {"template": {
///     "metadata": {"labels": {"app": "x"}},
///     "spec": {"containers": [{"name": "x"}]},
/// }}}}});
/// let (metadata, spec) = pod_template_spec("CronJob", &cronjob).unwrap();
/// assert_eq!(metadata["labels"]["app"], "x");
/// assert_eq!(spec["containers"][0]["name"], "x");
/// assert!(pod_template_spec("ConfigMap", &json!({})).is_none());
/// ```
pub fn pod_template_spec<'a>(kind: &str, object: &'a Value) -> Option<(&'a Value, &'a Value)> {
    let template: &[&str] = match kind {
        "Pod" => &[],
        "PodTemplate" => &["template"],
        "ReplicationController"
        | "ReplicaSet"
        | "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "Job" => &["spec", "template"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template"],
        _ => return None,
    };
    let template = walk(object, template);
    Some((walk(template, &["metadata"]), walk(template, &["spec"])))
}

/// Follows `path` through objects. An absent field gives `null`; a value that is not an object
/// where one was needed is returned itself, so the caller sees the wrong type.
fn walk<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    let mut current = value;
    for key in path {
        match current {
            Value::Object(map) => current = map.get(*key).unwrap_or(&Value::Null),
            _ => return current,
        }
    }
    current
}
