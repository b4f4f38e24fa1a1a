//! Image policy: which container images a pod may run, per namespace.
//!
//! This module owns one question: do the images of a pod (or of a workload's pod template) meet
//! the rules of an [`ImagePolicy`] that select the pod's namespace? A rule can allow or block
//! registries (a host, or a host and repository path prefix), refuse `:latest` and untagged
//! images, require a digest, and require an `imagePullPolicy`. Every container is checked:
//! `initContainers`, `containers` and `ephemeralContainers`, in that order (Kubernetes'
//! `VisitContainers` order).
//!
//! Image references are read with Docker's grammar and normalisation ([`ImageReference`]), the
//! way the container runtime will read them, so that `nginx`, `library/nginx` and
//! `docker.io/library/nginx` are one image, and registry entries match whole host and path
//! components, never raw string prefixes.
//!
//! It deliberately does not read the policy file or the namespace: the caller turns YAML into a
//! [`serde_json::Value`], builds the policy once with [`ImagePolicy::from_value`], and passes the
//! namespace's labels with each request. It does not decide which requests are checked
//! (subresources, updates); the gateway does.
//!
//! Input of the wrong shape fails closed: a pod spec, container list, container, name, image or
//! `imagePullPolicy` of the wrong JSON type, an image that is not a valid reference, and
//! namespace labels that cannot be read by a rule's selector are all violations, and nothing
//! panics.
//!
//! [`ImagePolicy`]: crate::image_policy::ImagePolicy
//! [`ImagePolicy::from_value`]: crate::image_policy::ImagePolicy::from_value
//! [`ImageReference`]: crate::image_policy::ImageReference
// The links above are spelt in full because lib.rs adds an outer doc line to this module, and
// rustdoc then resolves the module's links from the crate root.

mod config;
mod reference;
mod registry;
mod selector;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

pub use config::{API_VERSION, ImagePolicy, ImagePolicyError, KIND, PullPolicy, Rule};
pub use reference::{ImageReference, ReferenceError};

use crate::pod_security::pod_template_spec;

/// One container (or one part of the pod spec) that breaks one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The name of the rule that is broken.
    pub rule: String,
    /// The container's name; when the container has no name (or it could not be read), its
    /// field path such as `containers[2]`; for a problem with the pod spec as a whole, the field
    /// path (`initContainers`) or empty (the spec itself, or the namespace's labels).
    pub container: String,
    /// The whole sentence, naming the container, the image and the rule, e.g.
    /// `container "app" image "nginx:latest" uses the :latest tag (rule "prod-registries")`.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Checks the images of `object` of kind `kind` against every rule of `policy` whose
/// `namespaceSelector` selects a namespace with `namespace_labels` (a JSON object of strings,
/// or `null` for none). Returns the violations, rule by rule in configuration order and
/// container by container within a rule; empty means the object is allowed.
///
/// `kind` is one of the kinds [`pod_template_spec`] knows (Pod, PodTemplate, Deployment,
/// ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ReplicationController); any other kind
/// has no pod and yields no violations.
///
/// ```
/// use portcullis_admission::image_policy::{ImagePolicy, check, message};
/// use serde_json::json;
///
/// let policy = ImagePolicy::from_value(&json!({
///     "apiVersion": "portcullis.dev/v1",
///     "kind": "ImagePolicy",
///     "rules": [{
///         "name": "prod-registries",
///         "namespaceSelector": {"matchLabels": {"env": "prod"}},
///         "disallowLatestTag": true,
///     }],
/// }))
/// .unwrap();
/// let pod = json!({"spec": {"containers": [{"name": "app", "image": "nginx:latest"}]}});
///
/// let violations = check(&policy, &json!({"env": "prod"}), "Pod", &pod);
/// assert_eq!(
///     message(&violations),
///     r#"violates ImagePolicy: container "app" image "nginx:latest" uses the :latest tag (rule "prod-registries")"#
/// );
/// assert!(check(&policy, &json!({"env": "dev"}), "Pod", &pod).is_empty());
/// ```
pub fn check(
    policy: &ImagePolicy,
    namespace_labels: &Value,
    kind: &str,
    object: &Value,
) -> Vec<Violation> {
    let Some((_, spec)) = pod_template_spec(kind, object) else {
        return Vec::new();
    };
    let labels = read_labels(namespace_labels);
    // Read once, on the first rule that applies, and shared by every rule.
    let mut items: Option<Vec<Item<'_>>> = None;
    let mut violations = Vec::new();
    for rule in &policy.rules {
        if !rule.namespace_selector.is_everything() {
            let Some(labels) = labels else {
                violations.push(Violation {
                    rule: rule.name.clone(),
                    container: String::new(),
                    message: format!(
                        "namespace labels must be an object of strings to evaluate the namespaceSelector (rule {:?})",
                        rule.name
                    ),
                });
                continue;
            };
            let label = |key: &str| labels.and_then(|map| map.get(key)).and_then(Value::as_str);
            if !rule.namespace_selector.matches(label) {
                continue;
            }
        }
        let items = items.get_or_insert_with(|| read_items(spec));
        for item in items.iter() {
            check_item(rule, item, &mut violations);
        }
    }
    violations
}

/// The text of a 403 response for `violations`:
/// `violates ImagePolicy: <message>; <message>; ...`. Empty when there are none.
pub fn message(violations: &[Violation]) -> String {
    if violations.is_empty() {
        return String::new();
    }
    let messages: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
    format!("violates ImagePolicy: {}", messages.join("; "))
}

/// What the pod spec holds, read once: containers to check, and parts that could not be read.
#[derive(Debug)]
enum Item<'a> {
    Container(Container<'a>),
    Malformed {
        container: String,
        /// The sentence without the rule.
        message: String,
    },
}

#[derive(Debug)]
struct Container<'a> {
    /// The container's name, or its field path when it has none.
    label: Cow<'a, str>,
    named: bool,
    image: &'a str,
    reference: Result<ImageReference<'a>, ReferenceError>,
    pull_policy: Option<PullPolicy>,
}

impl Container<'_> {
    /// How messages name the container: `container "app"`, or `containers[0]` when unnamed.
    fn subject(&self) -> Subject<'_> {
        Subject {
            label: &self.label,
            named: self.named,
        }
    }
}

struct Subject<'a> {
    label: &'a str,
    named: bool,
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.named {
            write!(f, "container {:?}", self.label)
        } else {
            f.write_str(self.label)
        }
    }
}

/// The namespace labels: `Some(None)` for none, `None` when they are not an object of strings.
fn read_labels(labels: &Value) -> Option<Option<&Map<String, Value>>> {
    match labels {
        Value::Null => Some(None),
        Value::Object(map) if map.values().all(Value::is_string) => Some(Some(map)),
        _ => None,
    }
}

fn read_items(spec: &Value) -> Vec<Item<'_>> {
    let mut items = Vec::new();
    let spec = match spec {
        Value::Null => return items,
        Value::Object(spec) => spec,
        _ => {
            items.push(Item::Malformed {
                container: String::new(),
                message: "pod spec must be an object".to_owned(),
            });
            return items;
        }
    };
    for list in CONTAINER_LISTS {
        match spec.get(list) {
            None | Some(Value::Null) => {}
            Some(Value::Array(entries)) => {
                for (index, entry) in entries.iter().enumerate() {
                    items.push(read_container(list, index, entry));
                }
            }
            Some(_) => items.push(Item::Malformed {
                container: list.to_owned(),
                message: format!("{list} must be an array"),
            }),
        }
    }
    items
}

fn read_container<'a>(list: &str, index: usize, entry: &'a Value) -> Item<'a> {
    let path = format!("{list}[{index}]");
    let Value::Object(fields) = entry else {
        return Item::Malformed {
            message: format!("{path} must be an object"),
            container: path,
        };
    };
    let (label, named) = match fields.get("name") {
        Some(Value::String(name)) if !name.is_empty() => (Cow::Borrowed(name.as_str()), true),
        None | Some(Value::Null | Value::String(_)) => (Cow::Owned(path), false),
        Some(_) => {
            return Item::Malformed {
                message: format!("{path}.name must be a string"),
                container: path,
            };
        }
    };
    let subject = Subject {
        label: &label,
        named,
    };
    let malformed = |message: String| Item::Malformed {
        container: label.clone().into_owned(),
        message,
    };
    let image = match fields.get("image") {
        Some(Value::String(image)) => image.as_str(),
        None | Some(Value::Null) => return malformed(format!("{subject} has no image")),
        Some(_) => return malformed(format!("{subject} image must be a string")),
    };
    let pull_policy = match fields.get("imagePullPolicy") {
        None | Some(Value::Null) => None,
        // Go reads an empty string as unset, and defaulting fills it in.
        Some(Value::String(policy)) if policy.is_empty() => None,
        Some(Value::String(policy)) => match PullPolicy::from_name(policy) {
            Some(policy) => Some(policy),
            None => {
                return malformed(format!(
                    "{subject} imagePullPolicy {policy:?} is not one of {}",
                    PullPolicy::SUPPORTED
                ));
            }
        },
        Some(_) => return malformed(format!("{subject} imagePullPolicy must be a string")),
    };
    Item::Container(Container {
        label,
        named,
        image,
        reference: ImageReference::parse(image),
        pull_policy,
    })
}

fn check_item(rule: &Rule, item: &Item<'_>, out: &mut Vec<Violation>) {
    let container = match item {
        Item::Malformed { container, message } => {
            out.push(Violation {
                rule: rule.name.clone(),
                container: container.clone(),
                message: format!("{message} (rule {:?})", rule.name),
            });
            return;
        }
        Item::Container(container) => container,
    };
    let subject = container.subject();
    let mut push = |problem: fmt::Arguments<'_>| {
        out.push(Violation {
            rule: rule.name.clone(),
            container: container.label.clone().into_owned(),
            message: format!("{subject} {problem} (rule {:?})", rule.name),
        });
    };
    let image = container.image;
    let reference = match &container.reference {
        Ok(reference) => reference,
        Err(ReferenceError::Empty) => return push(format_args!("has an empty image")),
        // Never echo input longer than any valid reference.
        Err(ReferenceError::TooLong) => {
            return push(format_args!(
                "image is not a valid image reference: it is {} bytes long",
                image.len()
            ));
        }
        Err(error) => {
            return push(format_args!(
                "image {image:?} is not a valid image reference: {error}"
            ));
        }
    };

    if let Some(blocked) = rule
        .blocked_registries
        .iter()
        .find(|entry| entry.matches(reference))
    {
        push(format_args!(
            "image {image:?} is from a blocked registry ({})",
            blocked.as_written()
        ));
    }
    if !rule.allowed_registries.is_empty()
        && !rule
            .allowed_registries
            .iter()
            .any(|entry| entry.matches(reference))
    {
        let allowed: Vec<&str> = rule.allowed_registries().collect();
        push(format_args!(
            "image {image:?} is not from an allowed registry (allowed: {})",
            allowed.join(", ")
        ));
    }
    if rule.disallow_latest_tag {
        match (reference.tag(), reference.digest()) {
            (Some("latest"), _) => push(format_args!("image {image:?} uses the :latest tag")),
            (None, None) => push(format_args!(
                "image {image:?} has no tag or digest, so it means :latest"
            )),
            _ => {}
        }
    }
    if rule.require_digest && reference.digest().is_none() {
        push(format_args!("image {image:?} must be pinned by digest"));
    }
    if let Some(required) = rule.required_image_pull_policy {
        let effective = container
            .pull_policy
            .unwrap_or_else(|| default_pull_policy(reference));
        if effective != required {
            push(format_args!(
                "image {image:?} must set imagePullPolicy: {required}"
            ));
        }
    }
}

/// Kubernetes' defaulting of an unset `imagePullPolicy`: `Always` for `:latest` (which an
/// untagged, undigested image means), `IfNotPresent` otherwise.
fn default_pull_policy(reference: &ImageReference<'_>) -> PullPolicy {
    if reference.effective_tag() == Some("latest") {
        PullPolicy::Always
    } else {
        PullPolicy::IfNotPresent
    }
}

/// The container lists of a pod spec, in Kubernetes' `VisitContainers` order.
const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];
