//! The `namespaceSelector` of a rule: a `metav1.LabelSelector` over namespace labels.
//!
//! Semantics are `metav1.LabelSelectorAsSelector`: `matchLabels` and every `matchExpressions`
//! entry must all hold; `In` needs the label with one of the values, `NotIn` needs the label
//! absent or with none of them, `Exists` and `DoesNotExist` test presence. An empty selector
//! selects every namespace. Keys and values are validated as Kubernetes validates labels.

use serde_json::Value;

use super::config::{Fields, ImagePolicyError, string_at};

/// A validated label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Reads a selector at `field`; `null` is the empty selector.
    pub(super) fn from_value(value: &Value, field: &str) -> Result<Self, ImagePolicyError> {
        let fields = Fields::new(value, field, &["matchExpressions", "matchLabels"])?;
        let mut requirements = Vec::new();
        if let Some(labels) = fields.optional("matchLabels") {
            let labels_field = fields.path("matchLabels");
            let Value::Object(labels) = labels else {
                return Err(ImagePolicyError::wrong_type(&labels_field, "an object"));
            };
            for (key, value) in labels {
                let key_field = format!("{labels_field}.{key}");
                validate_key(key, &key_field)?;
                let value = string_at(value, &key_field)?;
                validate_value(value, &key_field)?;
                requirements.push(Requirement {
                    key: key.clone(),
                    operator: Operator::In,
                    values: vec![value.to_owned()],
                });
            }
        }
        if let Some(expressions) = fields.optional("matchExpressions") {
            let expressions_field = fields.path("matchExpressions");
            let Value::Array(expressions) = expressions else {
                return Err(ImagePolicyError::wrong_type(&expressions_field, "an array"));
            };
            for (index, expression) in expressions.iter().enumerate() {
                let field = format!("{expressions_field}[{index}]");
                requirements.push(Requirement::from_value(expression, &field)?);
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether the selector selects every namespace.
    pub(super) fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a namespace whose label `key` has the value `label(key)` is selected.
    pub(super) fn matches<'v>(&self, label: impl Fn(&str) -> Option<&'v str>) -> bool {
        self.requirements.iter().all(|requirement| {
            let value = label(&requirement.key);
            let listed = || value.is_some_and(|v| requirement.values.iter().any(|w| w == v));
            match requirement.operator {
                Operator::DoesNotExist => value.is_none(),
                Operator::Exists => value.is_some(),
                Operator::In => listed(),
                Operator::NotIn => !listed(),
            }
        })
    }
}

impl Requirement {
    fn from_value(value: &Value, field: &str) -> Result<Self, ImagePolicyError> {
        let fields = Fields::new(value, field, &["key", "operator", "values"])?;
        let key = fields.required_string("key")?;
        validate_key(key, &fields.path("key"))?;
        let operator_field = fields.path("operator");
        let operator = match fields.required_string("operator")? {
            "DoesNotExist" => Operator::DoesNotExist,
            "Exists" => Operator::Exists,
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            other => {
                return Err(ImagePolicyError::Unsupported {
                    field: operator_field,
                    value: other.to_owned(),
                    supported: r#""In", "NotIn", "Exists", "DoesNotExist""#,
                });
            }
        };
        let values_field = fields.path("values");
        let values = fields.optional_strings("values")?;
        for (index, value) in values.iter().enumerate() {
            validate_value(value, &format!("{values_field}[{index}]"))?;
        }
        let needs_values = matches!(operator, Operator::In | Operator::NotIn);
        if needs_values && values.is_empty() {
            return Err(ImagePolicyError::Invalid {
                field: values_field,
                value: String::new(),
                reason: "must be specified when `operator` is 'In' or 'NotIn'".to_owned(),
            });
        }
        if !needs_values && !values.is_empty() {
            return Err(ImagePolicyError::Invalid {
                field: values_field,
                value: values.join(","),
                reason: "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                    .to_owned(),
            });
        }
        Ok(Requirement {
            key: key.to_owned(),
            operator,
            values: values.into_iter().map(str::to_owned).collect(),
        })
    }
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters.
fn validate_key(key: &str, field: &str) -> Result<(), ImagePolicyError> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let reason = if prefix.is_some_and(|p| !valid_dns_subdomain(p)) {
        Some("prefix part must be a lowercase DNS subdomain of at most 253 characters")
    } else if name.is_empty() || !valid_label_name(name) {
        Some(
            "name part must be at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character",
        )
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ImagePolicyError::Invalid {
            field: field.to_owned(),
            value: key.to_owned(),
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

/// A label value: empty, or a name of at most 63 characters.
fn validate_value(value: &str, field: &str) -> Result<(), ImagePolicyError> {
    if value.is_empty() || valid_label_name(value) {
        Ok(())
    } else {
        Err(ImagePolicyError::Invalid {
            field: field.to_owned(),
            value: value.to_owned(),
            reason: "a label value must be empty or at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character".to_owned(),
        })
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn valid_label_name(name: &str) -> bool {
    let edge_ok = |c: Option<u8>| c.is_some_and(|b| b.is_ascii_alphanumeric());
    name.len() <= 63
        && edge_ok(name.bytes().next())
        && edge_ok(name.bytes().next_back())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, at most 253 characters.
fn valid_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}
