//! A Gatekeeper Constraint's `spec.match`: which requests it applies to.
//!
//! Semantics are Gatekeeper's: every criterion that is set must hold. `kinds` matches the
//! request's group and kind (`*` or an empty list matches any); `scope` is `*`, `Cluster` or
//! `Namespaced`; `namespaces` and `excludedNamespaces` take names with a `*` at the start
//! and/or end as a glob, and never disqualify a cluster-scoped object that is not a Namespace;
//! `labelSelector` reads the object's labels (the old object's on DELETE); `namespaceSelector`
//! reads the namespace's labels, or a Namespace's own, and matches every other cluster-scoped
//! object; `name` is a glob over the object's name. For a Namespace, its namespace is itself.

use serde_json::{Map, Value};

use super::RegoError;

/// A parsed `spec.match`.
#[derive(Clone, Debug, Default)]
pub(super) struct Match {
    kinds: Vec<Kinds>,
    scope: Scope,
    namespaces: Vec<String>,
    excluded_namespaces: Vec<String>,
    label_selector: Option<LabelSelector>,
    namespace_selector: Option<LabelSelector>,
    name: Option<String>,
}

#[derive(Clone, Debug)]
struct Kinds {
    groups: Vec<String>,
    kinds: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Scope {
    #[default]
    All,
    Cluster,
    Namespaced,
}

/// What matching needs from a request, read once per request.
#[derive(Debug)]
pub(super) struct RequestView<'a> {
    group: &'a str,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    labels: Option<&'a Map<String, Value>>,
    namespace_labels: Option<&'a Map<String, Value>>,
}

impl<'a> RequestView<'a> {
    pub(super) fn new(request: &'a Value, namespace_labels: &'a Value) -> Result<Self, RegoError> {
        let text = |value: Option<&'a Value>| value.and_then(Value::as_str).unwrap_or("");
        let kind = request.get("kind");
        // DELETE carries no object; Gatekeeper then reads the old one.
        let object = match request.get("object") {
            Some(Value::Null) | None => request.get("oldObject"),
            object => object,
        };
        let metadata = object.and_then(|object| object.get("metadata"));
        let labels = match metadata.and_then(|metadata| metadata.get("labels")) {
            None | Some(Value::Null) => None,
            Some(Value::Object(labels)) => Some(labels),
            Some(_) => return Err(input("the object's labels must be an object")),
        };
        let namespace_labels = match namespace_labels {
            Value::Null => None,
            Value::Object(labels) => Some(labels),
            _ => return Err(input("namespace labels must be an object of strings")),
        };
        let name = match text(request.get("name")) {
            "" => text(metadata.and_then(|metadata| metadata.get("name"))),
            name => name,
        };
        Ok(RequestView {
            group: text(kind.and_then(|kind| kind.get("group"))),
            kind: text(kind.and_then(|kind| kind.get("kind"))),
            namespace: text(request.get("namespace")),
            name,
            labels,
            namespace_labels,
        })
    }

    fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.kind == "Namespace"
    }

    /// The namespace that `namespaces` and `excludedNamespaces` test, if any.
    fn namespace(&self) -> Option<&str> {
        if self.is_namespace() {
            Some(self.name)
        } else if self.namespace.is_empty() {
            None
        } else {
            Some(self.namespace)
        }
    }
}

impl Match {
    /// Reads `spec.match` of the Constraint at `path`; absent or `null` matches everything.
    pub(super) fn from_value(value: Option<&Value>, path: &str) -> Result<Self, RegoError> {
        let fields = match value {
            None | Some(Value::Null) => return Ok(Match::default()),
            Some(Value::Object(fields)) => fields,
            Some(_) => return Err(RegoError::document(path, FIELD, "must be an object")),
        };
        let field = |name: &str| format!("{FIELD}.{name}");
        let mut result = Match::default();
        for (key, value) in fields {
            match key.as_str() {
                "kinds" => {
                    for (index, entry) in array(value, path, &field(key))?.iter().enumerate() {
                        let at = format!("{FIELD}.kinds[{index}]");
                        if !entry.is_object() {
                            return Err(RegoError::document(path, at, "must be an object"));
                        }
                        result.kinds.push(Kinds {
                            groups: strings(
                                entry.get("apiGroups"),
                                path,
                                &format!("{at}.apiGroups"),
                            )?,
                            kinds: strings(entry.get("kinds"), path, &format!("{at}.kinds"))?,
                        });
                    }
                }
                "scope" => {
                    result.scope = match value.as_str() {
                        Some("*") => Scope::All,
                        Some("Cluster") => Scope::Cluster,
                        Some("Namespaced") => Scope::Namespaced,
                        _ => {
                            let problem = "must be one of `*`, `Cluster`, `Namespaced`";
                            return Err(RegoError::document(path, field(key), problem));
                        }
                    }
                }
                "namespaces" => result.namespaces = strings(Some(value), path, &field(key))?,
                "excludedNamespaces" => {
                    result.excluded_namespaces = strings(Some(value), path, &field(key))?;
                }
                "labelSelector" => {
                    result.label_selector =
                        Some(LabelSelector::from_value(value, path, &field(key))?);
                }
                "namespaceSelector" => {
                    let selector = LabelSelector::from_value(value, path, &field(key))?;
                    result.namespace_selector = Some(selector);
                }
                "name" => match value.as_str() {
                    Some("") => {}
                    Some(name) => result.name = Some(name.to_owned()),
                    None => return Err(RegoError::document(path, field(key), "must be a string")),
                },
                // Only meaningful for generated resources (expansion), which are not ours.
                "source" => {}
                _ => {
                    return Err(RegoError::document(
                        path,
                        field(key),
                        "is not a known field",
                    ));
                }
            }
        }
        Ok(result)
    }

    /// Whether the Constraint applies to `request`.
    pub(super) fn matches(&self, request: &RequestView<'_>) -> bool {
        let kinds = self.kinds.is_empty()
            || self.kinds.iter().any(|entry| {
                listed(&entry.kinds, request.kind) && listed(&entry.groups, request.group)
            });
        let has_namespace = !request.namespace.is_empty();
        let scope = match self.scope {
            Scope::All => true,
            Scope::Cluster => request.is_namespace() || !has_namespace,
            Scope::Namespaced => !request.is_namespace() && has_namespace,
        };
        let namespace = request.namespace();
        let namespaces = self.namespaces.is_empty()
            || namespace.is_none_or(|ns| self.namespaces.iter().any(|w| wildcard(w, ns)));
        let not_excluded =
            namespace.is_none_or(|ns| !self.excluded_namespaces.iter().any(|w| wildcard(w, ns)));
        let labels = self
            .label_selector
            .as_ref()
            .is_none_or(|selector| selector.matches(request.labels));
        let namespace_labels = self.namespace_selector.as_ref().is_none_or(|selector| {
            if request.is_namespace() {
                selector.matches(request.labels)
            } else if has_namespace {
                selector.matches(request.namespace_labels)
            } else {
                true
            }
        });
        let name = self.name.as_ref().is_none_or(|w| wildcard(w, request.name));
        kinds && scope && namespaces && not_excluded && labels && namespace_labels && name
    }
}

/// Gatekeeper's wildcard: `*x*` contains, `*x` ends with, `x*` starts with, else equals.
fn wildcard(pattern: &str, candidate: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(rest), Some(_)) => candidate.contains(rest.strip_suffix('*').unwrap_or("")),
        (Some(suffix), None) => candidate.ends_with(suffix),
        (None, Some(prefix)) => candidate.starts_with(prefix),
        (None, None) => pattern == candidate,
    }
}

/// A list of `apiGroups` or `kinds`: empty or `*` means any.
fn listed(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|entry| entry == "*" || entry == value)
}

/// A `metav1.LabelSelector`: `matchLabels` and every `matchExpressions` entry must hold.
#[derive(Clone, Debug, Default)]
struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug)]
struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    DoesNotExist,
    Exists,
    In,
    NotIn,
}

impl LabelSelector {
    fn from_value(value: &Value, path: &str, field: &str) -> Result<Self, RegoError> {
        let mut requirements = Vec::new();
        let fields = match value {
            Value::Null => return Ok(LabelSelector { requirements }),
            Value::Object(fields) => fields,
            _ => return Err(RegoError::document(path, field, "must be an object")),
        };
        for (key, value) in fields {
            let at = format!("{field}.{key}");
            match key.as_str() {
                "matchLabels" => {
                    let labels = match value {
                        Value::Null => continue,
                        Value::Object(labels) => labels,
                        _ => return Err(RegoError::document(path, at, "must be an object")),
                    };
                    for (key, value) in labels {
                        let Some(value) = value.as_str() else {
                            let problem = "must be a string";
                            return Err(RegoError::document(path, format!("{at}.{key}"), problem));
                        };
                        requirements.push(Requirement {
                            key: key.clone(),
                            operator: Operator::In,
                            values: vec![value.to_owned()],
                        });
                    }
                }
                "matchExpressions" => {
                    for (index, entry) in array(value, path, &at)?.iter().enumerate() {
                        let at = format!("{at}[{index}]");
                        requirements.push(Requirement::from_value(entry, path, &at)?);
                    }
                }
                _ => return Err(RegoError::document(path, at, "is not a known field")),
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether labels `labels` (none when `None`) are selected.
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|requirement| {
            let value = labels
                .and_then(|labels| labels.get(&requirement.key))
                .and_then(Value::as_str);
            let listed = value.is_some_and(|v| requirement.values.iter().any(|w| w == v));
            match requirement.operator {
                Operator::DoesNotExist => value.is_none(),
                Operator::Exists => value.is_some(),
                Operator::In => listed,
                Operator::NotIn => !listed,
            }
        })
    }
}

impl Requirement {
    fn from_value(value: &Value, path: &str, field: &str) -> Result<Self, RegoError> {
        let Some(key) = value.get("key").and_then(Value::as_str) else {
            return Err(RegoError::document(
                path,
                format!("{field}.key"),
                "must be a string",
            ));
        };
        let operator = match value.get("operator").and_then(Value::as_str) {
            Some("In") => Operator::In,
            Some("NotIn") => Operator::NotIn,
            Some("Exists") => Operator::Exists,
            Some("DoesNotExist") => Operator::DoesNotExist,
            _ => {
                let problem = "must be one of `In`, `NotIn`, `Exists`, `DoesNotExist`";
                return Err(RegoError::document(
                    path,
                    format!("{field}.operator"),
                    problem,
                ));
            }
        };
        let values_field = format!("{field}.values");
        let values = strings(value.get("values"), path, &values_field)?;
        let needs_values = matches!(operator, Operator::In | Operator::NotIn);
        if needs_values == values.is_empty() {
            let problem = if needs_values {
                "must not be empty for `In` and `NotIn`"
            } else {
                "must be empty for `Exists` and `DoesNotExist`"
            };
            return Err(RegoError::document(path, values_field, problem));
        }
        Ok(Requirement {
            key: key.to_owned(),
            operator,
            values,
        })
    }
}

fn array<'v>(value: &'v Value, path: &str, field: &str) -> Result<&'v [Value], RegoError> {
    match value {
        Value::Null => Ok(&[]),
        Value::Array(items) => Ok(items),
        _ => Err(RegoError::document(path, field, "must be an array")),
    }
}

/// A list of strings at `field`; absent or `null` is empty.
fn strings(value: Option<&Value>, path: &str, field: &str) -> Result<Vec<String>, RegoError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    array(value, path, field)?
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_owned)
                .ok_or_else(|| RegoError::document(path, field, "must be an array of strings"))
        })
        .collect()
}

fn input(reason: &str) -> RegoError {
    RegoError::Input {
        reason: reason.to_owned(),
    }
}

const FIELD: &str = "spec.match";
