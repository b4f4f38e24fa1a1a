//! The `portcullis.dev/v1` `ImagePolicy` configuration: reading and validating it.
//!
//! The caller parses YAML or JSON into a [`serde_json::Value`]; this module turns it into an
//! [`ImagePolicy`] that cannot hold an invalid rule. Every error names the field, as
//! kube-apiserver's field errors do (`rules[1].requiredImagePullPolicy: unsupported value ...`),
//! and unknown fields are rejected so that a misspelt key never silently weakens a rule. As in
//! Kubernetes, a field set to `null` reads as absent.

use std::fmt;

use serde_json::{Map, Value};

use super::registry::RegistryPrefix;
use super::selector::LabelSelector;

/// A validated image policy: rules applied in order, each to the namespaces its selector picks.
///
/// ```
/// use portcullis_admission::image_policy::ImagePolicy;
/// use serde_json::json;
///
/// let policy = ImagePolicy::from_value(&json!({
///     "apiVersion": "portcullis.dev/v1",
///     "kind": "ImagePolicy",
///     "rules": [{"name": "pinned", "requireDigest": true}],
/// }))
/// .unwrap();
/// assert_eq!(policy.rules()[0].name(), "pinned");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImagePolicy {
    pub(super) rules: Vec<Rule>,
}

impl ImagePolicy {
    /// Reads and validates a policy document (`apiVersion: portcullis.dev/v1`,
    /// `kind: ImagePolicy`, `rules: [...]`).
    pub fn from_value(value: &Value) -> Result<Self, ImagePolicyError> {
        if !value.is_object() {
            return Err(ImagePolicyError::NotAnObject);
        }
        let fields = Fields::new(value, "", &["apiVersion", "kind", "rules"])?;
        expect_constant(&fields, "apiVersion", API_VERSION, QUOTED_API_VERSION)?;
        expect_constant(&fields, "kind", KIND, QUOTED_KIND)?;
        let mut rules: Vec<Rule> = Vec::new();
        if let Some(list) = fields.optional("rules") {
            let Value::Array(list) = list else {
                return Err(ImagePolicyError::wrong_type("rules", "an array"));
            };
            for (index, rule) in list.iter().enumerate() {
                let field = format!("rules[{index}]");
                let rule = Rule::from_value(rule, &field)?;
                if rules.iter().any(|r| r.name == rule.name) {
                    return Err(ImagePolicyError::Duplicate {
                        field: format!("{field}.name"),
                        value: rule.name,
                    });
                }
                rules.push(rule);
            }
        }
        Ok(ImagePolicy { rules })
    }

    /// The rules, in configuration order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// One rule of an [`ImagePolicy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub(super) name: String,
    pub(super) namespace_selector: LabelSelector,
    pub(super) allowed_registries: Vec<RegistryPrefix>,
    pub(super) blocked_registries: Vec<RegistryPrefix>,
    pub(super) disallow_latest_tag: bool,
    pub(super) require_digest: bool,
    pub(super) required_image_pull_policy: Option<PullPolicy>,
}

impl Rule {
    /// The rule's stable name, used in violation messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `allowedRegistries` entries as written; empty means any registry.
    pub fn allowed_registries(&self) -> impl Iterator<Item = &str> {
        self.allowed_registries
            .iter()
            .map(RegistryPrefix::as_written)
    }

    /// The `blockedRegistries` entries as written.
    pub fn blocked_registries(&self) -> impl Iterator<Item = &str> {
        self.blocked_registries
            .iter()
            .map(RegistryPrefix::as_written)
    }

    /// Whether `:latest` and untagged images are refused.
    pub fn disallow_latest_tag(&self) -> bool {
        self.disallow_latest_tag
    }

    /// Whether images must be pinned by digest.
    pub fn require_digest(&self) -> bool {
        self.require_digest
    }

    /// The `imagePullPolicy` every container must have, if the rule requires one.
    pub fn required_image_pull_policy(&self) -> Option<PullPolicy> {
        self.required_image_pull_policy
    }

    fn from_value(value: &Value, field: &str) -> Result<Self, ImagePolicyError> {
        let fields = Fields::new(value, field, RULE_FIELDS)?;
        let name = fields.required_string("name")?;
        if name.len() > MAX_RULE_NAME_LENGTH
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(ImagePolicyError::Invalid {
                field: fields.path("name"),
                value: name.to_owned(),
                reason: "must be at most 253 letters, digits, '-', '_' or '.'".to_owned(),
            });
        }
        let namespace_selector = match fields.optional("namespaceSelector") {
            Some(selector) => {
                LabelSelector::from_value(selector, &fields.path("namespaceSelector"))?
            }
            None => LabelSelector::default(),
        };
        let required_image_pull_policy =
            match fields.optional_string("requiredImagePullPolicy")? {
                None => None,
                Some(value) => Some(PullPolicy::from_name(value).ok_or_else(|| {
                    ImagePolicyError::Unsupported {
                        field: fields.path("requiredImagePullPolicy"),
                        value: value.to_owned(),
                        supported: PullPolicy::SUPPORTED,
                    }
                })?),
            };
        Ok(Rule {
            name: name.to_owned(),
            namespace_selector,
            allowed_registries: registries(&fields, "allowedRegistries")?,
            blocked_registries: registries(&fields, "blockedRegistries")?,
            disallow_latest_tag: fields.optional_bool("disallowLatestTag")?,
            require_digest: fields.optional_bool("requireDigest")?,
            required_image_pull_policy,
        })
    }
}

/// A container's `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PullPolicy {
    /// Pull the image every time the container starts.
    Always,
    /// Pull the image only if it is not already on the node.
    IfNotPresent,
    /// Never pull; the image must already be on the node.
    Never,
}

impl PullPolicy {
    /// The value as written in a pod spec: `Always`, `IfNotPresent` or `Never`.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }

    /// The supported values, quoted, for error messages.
    pub(super) const SUPPORTED: &'static str = r#""Always", "IfNotPresent", "Never""#;

    /// Reads the value as written in a pod spec; `None` for anything else.
    pub(super) fn from_name(name: &str) -> Option<Self> {
        match name {
            "Always" => Some(PullPolicy::Always),
            "IfNotPresent" => Some(PullPolicy::IfNotPresent),
            "Never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An image policy document that cannot be used; the message names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImagePolicyError {
    /// Two entries that must be unique are not (e.g. two rules with one name).
    #[error("{field}: duplicate value {value:?}")]
    Duplicate {
        /// Where, e.g. `rules[2].name`.
        field: String,
        /// The repeated value.
        value: String,
    },
    /// A value that breaks the field's rules.
    #[error("{field}: invalid value {value:?}: {reason}")]
    Invalid {
        /// Where, e.g. `rules[0].allowedRegistries[1]`.
        field: String,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The document is not an object.
    #[error("image policy must be an object")]
    NotAnObject,
    /// A required field is absent, `null` or empty.
    #[error("{field}: required value")]
    Required {
        /// Where, e.g. `rules[0].name`.
        field: String,
    },
    /// A field this version of the format does not define.
    #[error("unknown field {field:?}")]
    UnknownField {
        /// The field's full path, e.g. `rules[0].allowedRegistry`.
        field: String,
    },
    /// A value outside a fixed set.
    #[error("{field}: unsupported value {value:?}: supported values: {supported}")]
    Unsupported {
        /// Where, e.g. `rules[1].requiredImagePullPolicy`.
        field: String,
        /// The value as written.
        value: String,
        /// The values that are supported, quoted and separated by `, `.
        supported: &'static str,
    },
    /// A value of the wrong JSON type.
    #[error("{field}: must be {expected}")]
    WrongType {
        /// Where, e.g. `rules[0].requireDigest`.
        field: String,
        /// The type it should have, with its article (`a boolean`, `an array of strings`).
        expected: &'static str,
    },
}

impl ImagePolicyError {
    pub(super) fn wrong_type(field: &str, expected: &'static str) -> Self {
        ImagePolicyError::WrongType {
            field: field.to_owned(),
            expected,
        }
    }
}

/// The fields of one JSON object in the document, with the path that names them in errors.
pub(super) struct Fields<'v> {
    map: &'v Map<String, Value>,
    field: String,
}

impl<'v> Fields<'v> {
    /// Reads `value` (found at `field`) as an object whose keys are all in `known`.
    pub(super) fn new(
        value: &'v Value,
        field: &str,
        known: &[&str],
    ) -> Result<Self, ImagePolicyError> {
        let Value::Object(map) = value else {
            return Err(ImagePolicyError::wrong_type(field, "an object"));
        };
        let fields = Fields {
            map,
            field: field.to_owned(),
        };
        if let Some(unknown) = map.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(ImagePolicyError::UnknownField {
                field: fields.path(unknown),
            });
        }
        Ok(fields)
    }

    /// The path of the field `key` of this object, e.g. `rules[0].name`.
    pub(super) fn path(&self, key: &str) -> String {
        if self.field.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.field)
        }
    }

    /// The field's value; `None` when absent or `null`.
    pub(super) fn optional(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// A string field that must be present and non-empty.
    pub(super) fn required_string(&self, key: &str) -> Result<&'v str, ImagePolicyError> {
        match self.optional_string(key)? {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(ImagePolicyError::Required {
                field: self.path(key),
            }),
        }
    }

    /// An optional string field.
    pub(super) fn optional_string(&self, key: &str) -> Result<Option<&'v str>, ImagePolicyError> {
        self.optional(key)
            .map(|value| string_at(value, &self.path(key)))
            .transpose()
    }

    /// An optional boolean field; absent reads as `false`.
    pub(super) fn optional_bool(&self, key: &str) -> Result<bool, ImagePolicyError> {
        match self.optional(key) {
            None => Ok(false),
            Some(Value::Bool(value)) => Ok(*value),
            Some(_) => Err(ImagePolicyError::wrong_type(&self.path(key), "a boolean")),
        }
    }

    /// An optional array of strings; absent reads as empty.
    pub(super) fn optional_strings(&self, key: &str) -> Result<Vec<&'v str>, ImagePolicyError> {
        let Some(value) = self.optional(key) else {
            return Ok(Vec::new());
        };
        let field = self.path(key);
        let Value::Array(items) = value else {
            return Err(ImagePolicyError::wrong_type(&field, "an array of strings"));
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| string_at(item, &format!("{field}[{index}]")))
            .collect()
    }
}

/// `value` as a string, or a wrong-type error at `field`.
pub(super) fn string_at<'v>(value: &'v Value, field: &str) -> Result<&'v str, ImagePolicyError> {
    value
        .as_str()
        .ok_or_else(|| ImagePolicyError::wrong_type(field, "a string"))
}

fn expect_constant(
    fields: &Fields<'_>,
    key: &str,
    expected: &str,
    quoted: &'static str,
) -> Result<(), ImagePolicyError> {
    let value = fields.required_string(key)?;
    if value == expected {
        return Ok(());
    }
    Err(ImagePolicyError::Unsupported {
        field: fields.path(key),
        value: value.to_owned(),
        supported: quoted,
    })
}

fn registries(fields: &Fields<'_>, key: &str) -> Result<Vec<RegistryPrefix>, ImagePolicyError> {
    let field = fields.path(key);
    fields
        .optional_strings(key)?
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            RegistryPrefix::parse(entry).map_err(|reason| ImagePolicyError::Invalid {
                field: format!("{field}[{index}]"),
                value: entry.to_owned(),
                reason: reason.to_owned(),
            })
        })
        .collect()
}

/// The `apiVersion` of an image policy document.
pub const API_VERSION: &str = "portcullis.dev/v1";
/// The `kind` of an image policy document.
pub const KIND: &str = "ImagePolicy";
const QUOTED_API_VERSION: &str = "\"portcullis.dev/v1\"";
const QUOTED_KIND: &str = "\"ImagePolicy\"";
const RULE_FIELDS: &[&str] = &[
    "allowedRegistries",
    "blockedRegistries",
    "disallowLatestTag",
    "name",
    "namespaceSelector",
    "requireDigest",
    "requiredImagePullPolicy",
];
const MAX_RULE_NAME_LENGTH: usize = 253;
