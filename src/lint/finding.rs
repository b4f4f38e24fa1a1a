//! What lint reports: findings with a stable rule ID, a severity and a place.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// How serious a finding is. Ordered: `Note < Warning < Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing (audit-mode Pod Security, Gatekeeper dry-run).
    Note,
    /// Should be fixed (warnings the gateway would return, risky RBAC).
    Warning,
    /// The gateway would refuse it, or it is dangerous.
    Error,
}

impl Severity {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "note" | "info" | "low" => Ok(Severity::Note),
            "warning" | "warn" | "medium" => Ok(Severity::Warning),
            "error" | "high" | "critical" => Ok(Severity::Error),
            other => Err(format!(
                "unknown severity `{other}` (expected error, warning or note)"
            )),
        }
    }
}

/// The object a finding is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    /// `apiVersion`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// The namespace it would be created in, empty for cluster-scoped objects.
    pub namespace: String,
    /// `metadata.name` (or `generateName`).
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.kind.is_empty() {
            "object"
        } else {
            &self.kind
        };
        if self.namespace.is_empty() {
            write!(f, "{kind} {}", self.name)
        } else {
            write!(f, "{kind} {}/{}", self.namespace, self.name)
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable rule ID, e.g. `PSS-runAsNonRoot`, `PCS-004`, `RBAC-005`, `LINT-INPUT`.
    pub rule: String,
    /// How serious it is (after the configuration's overrides).
    pub severity: Severity,
    /// Which engine produced it: `pod-security`, `image-policy`, `rego`, `rbac` or `lint`.
    pub source: &'static str,
    /// The file, as given (`<stdin>` for standard input).
    pub file: String,
    /// The line (1-based) the object's document starts at; 0 when unknown.
    pub line: u64,
    /// The document index in the file (0-based).
    pub document: usize,
    /// The object, when the finding is about one.
    pub object: Option<ObjectRef>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Why it is suppressed, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppression>,
}

/// How a finding was suppressed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suppression {
    /// `annotation` (on the object) or `config` (an exemption in `.portcullis.yaml`).
    pub kind: &'static str,
    /// The reason given.
    pub reason: String,
}

/// A rule's description, for SARIF and the JSON report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    /// The rule ID.
    pub id: String,
    /// One line.
    pub description: String,
    /// How to fix what it finds.
    pub help: String,
}
