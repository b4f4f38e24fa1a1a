//! The `audit.k8s.io/v1` `Policy`: which requests are recorded, at which level, in which stages.
//!
//! A policy file is decoded once ([`Policy::from_slice`]), checked with the rules
//! kube-apiserver's validation applies, and compiled into a [`PolicyEvaluator`] that the gateway
//! consults for every request ([`PolicyEvaluator::evaluate`]). Evaluation is pure: it reads the
//! request attributes and nothing else.
//!
//! Decoding is strict by default: an unknown field is an error naming its path (upstream falls
//! back to lenient decoding with a warning; [`Policy::from_slice_lenient`] does that on request).

mod evaluate;
mod validate;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use evaluate::{AuditConfig, PolicyEvaluator, RequestAttributes};
pub use validate::{FieldError, ValidationErrors};

/// The group-version of audit objects this crate reads and writes.
pub const API_VERSION: &str = "audit.k8s.io/v1";

/// How much of a request is recorded. Ordered: `None < Metadata < Request < RequestResponse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Nothing is recorded.
    None,
    /// Who, what, when and the outcome; no bodies.
    Metadata,
    /// Metadata and the request body.
    Request,
    /// Metadata, the request body and the response body.
    RequestResponse,
}

impl Level {
    /// All levels, lowest first.
    pub const ALL: [Level; 4] = [
        Level::None,
        Level::Metadata,
        Level::Request,
        Level::RequestResponse,
    ];

    /// The wire name, e.g. `RequestResponse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }

    /// Parses a wire name; case-sensitive, as upstream.
    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == name)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point in the life of a request at which an event is emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// As soon as the request is received, before it is handled.
    RequestReceived,
    /// Once the response headers are sent (long-running requests such as watch only).
    ResponseStarted,
    /// When the response body is complete.
    ResponseComplete,
    /// When the handler panicked.
    Panic,
}

impl Stage {
    /// All stages, in the order they happen.
    pub const ALL: [Stage; 4] = [
        Stage::RequestReceived,
        Stage::ResponseStarted,
        Stage::ResponseComplete,
        Stage::Panic,
    ];

    /// The wire name, e.g. `ResponseComplete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }

    /// Parses a wire name; case-sensitive, as upstream.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn bit(self) -> u8 {
        match self {
            Stage::RequestReceived => 1,
            Stage::ResponseStarted => 2,
            Stage::ResponseComplete => 4,
            Stage::Panic => 8,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of stages (e.g. the stages a rule omits); `Copy`, no allocation.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StageSet(u8);

impl StageSet {
    /// The empty set.
    pub const EMPTY: StageSet = StageSet(0);

    /// Whether `stage` is in the set.
    pub fn contains(self, stage: Stage) -> bool {
        self.0 & stage.bit() != 0
    }

    /// The set with `stage` added.
    #[must_use]
    pub fn with(self, stage: Stage) -> StageSet {
        StageSet(self.0 | stage.bit())
    }

    /// The union of two sets.
    #[must_use]
    pub fn union(self, other: StageSet) -> StageSet {
        StageSet(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The stages in the set, in [`Stage::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Stage> for StageSet {
    fn from_iter<I: IntoIterator<Item = Stage>>(iter: I) -> Self {
        iter.into_iter().fold(StageSet::EMPTY, StageSet::with)
    }
}

impl fmt::Debug for StageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A validated audit policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Rules, matched in order; the first match decides.
    pub rules: Vec<PolicyRule>,
    /// Stages never emitted, whatever rule matches.
    pub omit_stages: Vec<Stage>,
    /// Default for stripping `metadata.managedFields` from logged bodies.
    pub omit_managed_fields: bool,
}

/// One rule of a [`Policy`]. Every field that is set must match (an empty list means "any").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    /// The level recorded for requests this rule matches.
    pub level: Level,
    /// Authenticated user names.
    pub users: Vec<String>,
    /// Groups; the rule matches when the user is in any of them.
    pub user_groups: Vec<String>,
    /// Verbs (`get`, `list`, ...; the lower-cased HTTP method for non-resource requests).
    pub verbs: Vec<String>,
    /// Resources, per API group.
    pub resources: Vec<GroupResources>,
    /// Namespaces; `""` means cluster-scoped objects.
    pub namespaces: Vec<String>,
    /// Non-resource paths: exact, `*`, or a prefix ending in `*`.
    pub non_resource_urls: Vec<String>,
    /// Stages not emitted for requests this rule matches (in addition to the policy's).
    pub omit_stages: Vec<Stage>,
    /// Overrides [`Policy::omit_managed_fields`] when set.
    pub omit_managed_fields: Option<bool>,
}

impl PolicyRule {
    /// A rule that matches every request, at `level`.
    pub fn new(level: Level) -> Self {
        PolicyRule {
            level,
            users: Vec::new(),
            user_groups: Vec::new(),
            verbs: Vec::new(),
            resources: Vec::new(),
            namespaces: Vec::new(),
            non_resource_urls: Vec::new(),
            omit_stages: Vec::new(),
            omit_managed_fields: None,
        }
    }
}

/// Resources of one API group that a rule names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupResources {
    /// API group; `""` is the core group, `*` every group.
    pub group: String,
    /// `pods`, `pods/log`, `pods/*`, `*/scale` or `*`; empty means every resource of the group.
    pub resources: Vec<String>,
    /// Object names; empty means any.
    pub resource_names: Vec<String>,
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read audit policy `{path}`")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The document is larger than [`MAX_POLICY_BYTES`].
    #[error("audit policy is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The document is not YAML or JSON.
    #[error("audit policy is not valid YAML or JSON")]
    Syntax(#[source] serde_saphyr::Error),
    /// The document is not a mapping.
    #[error("audit policy must be a mapping with apiVersion, kind and rules")]
    NotAnObject,
    /// `apiVersion` is missing or not `audit.k8s.io/v1`.
    #[error("unknown group version field `{0}` in policy (want apiVersion `audit.k8s.io/v1`)")]
    GroupVersion(String),
    /// `kind` is missing or not `Policy`.
    #[error("audit policy has kind `{0}`, want `Policy`")]
    Kind(String),
    /// A field the policy schema does not know (strict decoding).
    #[error("unknown field `{0}` in audit policy")]
    UnknownField(String),
    /// A field has the wrong type.
    #[error("audit policy field `{path}`: {message}")]
    Decode {
        /// The field path, e.g. `rules[1].verbs`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Validation failed.
    #[error("invalid audit policy: {0}")]
    Invalid(ValidationErrors),
    /// The policy has no rules.
    #[error("loaded illegal policy with 0 rules")]
    NoRules,
}

/// The largest policy document accepted.
pub const MAX_POLICY_BYTES: usize = 4 << 20;

impl Policy {
    /// The policy portcullis uses when no policy file is given: every request at `Metadata`,
    /// every stage.
    pub fn default_metadata() -> Policy {
        Policy {
            rules: vec![PolicyRule::new(Level::Metadata)],
            omit_stages: Vec::new(),
            omit_managed_fields: false,
        }
    }

    /// Decodes and validates a policy from YAML or JSON bytes. Unknown fields are errors.
    pub fn from_slice(bytes: &[u8]) -> Result<Policy, PolicyError> {
        let (policy, unknown) = decode(bytes)?;
        if let Some(first) = unknown.into_iter().next() {
            return Err(PolicyError::UnknownField(first));
        }
        Ok(policy)
    }

    /// As [`Policy::from_slice`], but unknown fields are ignored (upstream's fallback) and returned
    /// as warnings, one field path each.
    pub fn from_slice_lenient(bytes: &[u8]) -> Result<(Policy, Vec<String>), PolicyError> {
        decode(bytes)
    }

    /// Reads and decodes a policy file strictly ([`Policy::from_slice`]).
    pub fn from_file(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let bytes = read_bounded(path)?;
        Policy::from_slice(&bytes)
    }

    /// Checks the policy as kube-apiserver's validation does (levels, stages, group names,
    /// non-resource URLs, field combinations). An empty rule list passes here; loading refuses it.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        validate::validate_policy(self)
    }
}

fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>, PolicyError> {
    use std::io::Read;
    let read_err = |source| PolicyError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            size: bytes.len(),
            limit: MAX_POLICY_BYTES,
        });
    }
    Ok(bytes)
}

// === decoding ===

/// The wire shape, with levels and stages still strings so validation can name each bad value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPolicy {
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    omit_stages: Vec<String>,
    #[serde(default)]
    omit_managed_fields: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    #[serde(default)]
    level: String,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<RawGroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
    #[serde(default)]
    omit_stages: Vec<String>,
    #[serde(default)]
    omit_managed_fields: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

const POLICY_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "rules",
    "omitStages",
    "omitManagedFields",
];
const RULE_FIELDS: &[&str] = &[
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "nonResourceURLs",
    "omitStages",
    "omitManagedFields",
];
const GROUP_RESOURCES_FIELDS: &[&str] = &["group", "resources", "resourceNames"];

/// Decodes a policy; returns it with the paths of the unknown fields met.
fn decode(bytes: &[u8]) -> Result<(Policy, Vec<String>), PolicyError> {
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            size: bytes.len(),
            limit: MAX_POLICY_BYTES,
        });
    }
    // JSON is YAML; one parser (with its alias and depth budget) serves both.
    let doc: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_saphyr::from_slice(bytes).map_err(PolicyError::Syntax)?
    };
    let Value::Object(map) = &doc else {
        return Err(PolicyError::NotAnObject);
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if api_version != API_VERSION {
        return Err(PolicyError::GroupVersion(api_version.to_owned()));
    }
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != "Policy" {
        return Err(PolicyError::Kind(kind.to_owned()));
    }
    let unknown = unknown_fields(&doc);
    let raw: RawPolicy = serde_path_to_error::deserialize(&doc).map_err(|e| {
        let path = e.path().to_string();
        PolicyError::Decode {
            path,
            message: e.into_inner().to_string(),
        }
    })?;
    let policy = validate::from_raw(raw).map_err(PolicyError::Invalid)?;
    if policy.rules.is_empty() {
        return Err(PolicyError::NoRules);
    }
    Ok((policy, unknown))
}

/// Paths of the fields the schema does not know (sorted by key within each object).
fn unknown_fields(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Value::Object(top) = doc else {
        return out;
    };
    collect_unknown(top, POLICY_FIELDS, "", &mut out);
    if let Some(Value::Array(rules)) = top.get("rules") {
        for (i, rule) in rules.iter().enumerate() {
            let Value::Object(rule) = rule else { continue };
            let prefix = format!("rules[{i}].");
            collect_unknown(rule, RULE_FIELDS, &prefix, &mut out);
            if let Some(Value::Array(resources)) = rule.get("resources") {
                for (j, gr) in resources.iter().enumerate() {
                    if let Value::Object(gr) = gr {
                        let prefix = format!("rules[{i}].resources[{j}].");
                        collect_unknown(gr, GROUP_RESOURCES_FIELDS, &prefix, &mut out);
                    }
                }
            }
        }
    }
    out
}

fn collect_unknown(
    map: &serde_json::Map<String, Value>,
    known: &[&str],
    prefix: &str,
    out: &mut Vec<String>,
) {
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            out.push(format!("{prefix}{key}"));
        }
    }
}

#[cfg(test)]
mod tests;
