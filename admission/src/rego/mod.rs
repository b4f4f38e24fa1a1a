//! Rego policies: conftest-style packages and Gatekeeper ConstraintTemplates.
//!
//! This module owns one question: what do the operator's Rego policies say about an admission
//! request? [`PolicySet::compile`] parses and prepares every policy once, when a snapshot is
//! built; [`PolicySet::evaluate`] runs them on a cheap clone of the prepared engine for each
//! request and returns a [`Verdict`]: the messages that deny and the messages that warn, each
//! naming the policy that produced it.
//!
//! Two kinds of source are understood:
//!
//! - **conftest-style `.rego` files** ([`RegoFile`]). Every package is evaluated (as
//!   `conftest --all-namespaces` does); its `deny` and `violation` rules deny, its `warn` rule
//!   warns. A rule may be a set of strings, a set of objects with a `msg` string, or a boolean
//!   (`true` reports the rule's name). Rules with a suffix (`deny_foo`) are not read. The input
//!   is an `admission.k8s.io/v1` AdmissionReview around the request:
//!   `{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": <request>}`,
//!   so policies read `input.request.object`, as conftest policies written for admission
//!   webhooks do.
//! - **Gatekeeper ConstraintTemplates with their Constraints** ([`GatekeeperPolicy`]). The
//!   template's `spec.targets[0].rego` (Rego v0, as Gatekeeper reads that field) and `libs` are
//!   compiled together; each Constraint whose `spec.match` selects the request is evaluated
//!   with Gatekeeper's input, `input.review` (the AdmissionReview request as given: `object`,
//!   `oldObject`, `kind`, `operation`, `userInfo`, `namespace`, `name`, ...) and
//!   `input.parameters` (the Constraint's `spec.parameters`). Every `violation` result's `msg`
//!   is a finding, routed by `spec.enforcementAction`: `deny` (the default), `warn`, or
//!   `dryrun` (kept apart for audit, never denying). `data.inventory` is empty: Gatekeeper's
//!   replicated cluster state is not available to a pure engine, so templates that look objects
//!   up there see nothing.
//!
//! The engine is pure. It reads no files (the caller passes the text and the parsed YAML),
//! and the OPA builtins that read clocks, randomness or the environment are not compiled in.
//! Its one look at a clock is the evaluation time limit ([`PolicySet::with_time_limit`],
//! [`DEFAULT_TIME_LIMIT`] by default), a bound on the work, never an input to the decision.
//!
//! Everything fails closed. A policy that does not parse, a rule head of the wrong shape, a
//! template or constraint with a malformed field: [`PolicySet::compile`] fails as a whole, and
//! the caller keeps the previous set. A policy that errors, runs past the time limit or
//! returns something other than messages while evaluating: [`PolicySet::evaluate`] fails with
//! an error naming the policy, and the caller denies the request. Input deeper than
//! [`MAX_INPUT_DEPTH`] is refused before any policy sees it.
//!
//! [`PolicySet::compile`]: crate::rego::PolicySet::compile
//! [`PolicySet::evaluate`]: crate::rego::PolicySet::evaluate
//! [`PolicySet::with_time_limit`]: crate::rego::PolicySet::with_time_limit
//! [`Verdict`]: crate::rego::Verdict
//! [`RegoFile`]: crate::rego::RegoFile
//! [`GatekeeperPolicy`]: crate::rego::GatekeeperPolicy
//! [`DEFAULT_TIME_LIMIT`]: crate::rego::DEFAULT_TIME_LIMIT
//! [`MAX_INPUT_DEPTH`]: crate::rego::MAX_INPUT_DEPTH
// The links above are spelt in full because lib.rs may add an outer doc line to this module, and
// rustdoc then resolves the module's links from the crate root.

mod conftest;
mod error;
mod gatekeeper;
mod matching;
mod runtime;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use serde_json::Value;

pub use error::RegoError;
pub use runtime::{DEFAULT_TIME_LIMIT, MAX_INPUT_DEPTH};

use conftest::Conftest;
use gatekeeper::Template;
use matching::RequestView;

/// One source of policy, as the caller read it from disk.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicySource {
    /// A Gatekeeper ConstraintTemplate and the Constraints of its kind.
    Gatekeeper(GatekeeperPolicy),
    /// A conftest-style `.rego` file.
    Rego(RegoFile),
}

/// A conftest-style `.rego` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegoFile {
    /// Where the text came from; compile errors name it, with the line and column.
    pub path: String,
    /// The Rego source.
    pub text: String,
    /// The Rego syntax the file is written in.
    pub version: RegoVersion,
}

impl RegoFile {
    /// A file written in Rego v1, conftest's default since v0.56.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        RegoFile {
            path: path.into(),
            text: text.into(),
            version: RegoVersion::V1,
        }
    }
}

/// The Rego syntax a file is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RegoVersion {
    /// Rego v0: `deny[msg] { ... }`; a file may still opt in to v1 with `import rego.v1`.
    V0,
    /// Rego v1: `deny contains msg if { ... }`.
    #[default]
    V1,
}

/// A Gatekeeper ConstraintTemplate and the Constraints of its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct GatekeeperPolicy {
    /// The `templates.gatekeeper.sh` ConstraintTemplate.
    pub template: Document,
    /// The Constraints whose kind is the template's `spec.crd.spec.names.kind`, in the order
    /// their findings are reported.
    pub constraints: Vec<Document>,
}

/// One parsed YAML or JSON document and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Where the document came from (a file, or a file and document index); errors name it.
    pub path: String,
    /// The document.
    pub value: Value,
}

impl Document {
    /// A document read from `path`.
    pub fn new(path: impl Into<String>, value: Value) -> Self {
        Document {
            path: path.into(),
            value,
        }
    }
}

/// What the policies said about one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Messages that deny the request: conftest `deny` and `violation`, and Gatekeeper
    /// constraints with `enforcementAction: deny`. Empty means allowed.
    pub denials: Vec<Finding>,
    /// Messages to return as warnings: conftest `warn`, and Gatekeeper constraints with
    /// `enforcementAction: warn`.
    pub warnings: Vec<Finding>,
    /// Violations of Gatekeeper constraints with `enforcementAction: dryrun`: for the audit
    /// log only, neither denying nor warning.
    pub dry_runs: Vec<Finding>,
}

impl Verdict {
    /// Whether no policy denies the request.
    pub fn is_allowed(&self) -> bool {
        self.denials.is_empty()
    }
}

/// One message from one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The policy that produced it: a conftest package (`main`, `kubernetes.pods`) or a
    /// Gatekeeper constraint's `metadata.name`.
    pub policy: String,
    /// The message, as the policy wrote it.
    pub message: String,
}

impl fmt::Display for Finding {
    /// Gatekeeper's shape: `[policy] message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.policy, self.message)
    }
}

/// Every policy, compiled once and ready to evaluate many times. Cheap to share between
/// threads (`Send + Sync`), so it can live in a snapshot behind an atomic pointer.
#[derive(Clone, Debug)]
pub struct PolicySet {
    conftest: Option<Conftest>,
    templates: Vec<Template>,
    time_limit: Duration,
}

impl PolicySet {
    /// Parses and prepares every source. Any error fails the whole set, naming the file (and,
    /// for Rego, the line and column); the caller keeps the set it had.
    ///
    /// ```
    /// use portcullis_admission::rego::{PolicySet, PolicySource, RegoFile};
    /// use serde_json::json;
    ///
    /// let policy = RegoFile::new(
    ///     "policies/no-default.rego",
    ///     r#"
    ///     package main
    ///
    ///     deny contains msg if {
    ///         input.request.namespace == "default"
    ///         msg := "do not use the default namespace"
    ///     }
    ///     "#,
    /// );
    /// let set = PolicySet::compile(&[PolicySource::Rego(policy)]).unwrap();
    ///
    /// let request = json!({"namespace": "default", "kind": {"group": "", "version": "v1", "kind": "Pod"}});
    /// let verdict = set.evaluate(&request, &json!(null)).unwrap();
    /// assert_eq!(verdict.denials[0].to_string(), "[main] do not use the default namespace");
    /// ```
    pub fn compile(sources: &[PolicySource]) -> Result<PolicySet, RegoError> {
        let mut files = Vec::new();
        let mut templates = Vec::new();
        for source in sources {
            match source {
                PolicySource::Rego(file) => files.push(file),
                PolicySource::Gatekeeper(policy) => {
                    templates.push(Template::compile(policy, DEFAULT_TIME_LIMIT)?);
                }
            }
        }
        let conftest = if files.is_empty() {
            None
        } else {
            Some(Conftest::compile(&files, DEFAULT_TIME_LIMIT)?)
        };
        Ok(PolicySet {
            conftest,
            templates,
            time_limit: DEFAULT_TIME_LIMIT,
        })
    }

    /// The same set with another limit on the wall-clock time of each policy's evaluation.
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        if let Some(conftest) = &mut self.conftest {
            conftest.set_time_limit(limit);
        }
        for template in &mut self.templates {
            template.set_time_limit(limit);
        }
        self.time_limit = limit;
        self
    }

    /// The same set with Gatekeeper's `data.inventory` replaced: the objects referential
    /// templates read (`data.inventory.namespace[ns][apiVersion][kind][name]` and
    /// `data.inventory.cluster[apiVersion][kind][name]`), as Gatekeeper's sync or `gator`'s
    /// `inventory` files provide them. The set starts with an empty inventory.
    pub fn with_inventory(mut self, inventory: &Value) -> Result<Self, RegoError> {
        let inventory = runtime::to_rego(inventory)?;
        for template in &mut self.templates {
            template.set_inventory(inventory.clone())?;
        }
        Ok(self)
    }

    /// The limit on the wall-clock time of each policy's evaluation.
    pub fn time_limit(&self) -> Duration {
        self.time_limit
    }

    /// Evaluates every policy against an `admission.k8s.io/v1` AdmissionReview `request`
    /// (the object under the review's `request` key). `namespace_labels` are the labels of the
    /// request's namespace (a JSON object of strings, or `null` for none), read by Gatekeeper
    /// `namespaceSelector`s.
    ///
    /// Findings come conftest packages first (in package order), then Gatekeeper constraints
    /// in the order they were given. An error means the request could not be judged and must
    /// be denied.
    pub fn evaluate(
        &self,
        request: &Value,
        namespace_labels: &Value,
    ) -> Result<Verdict, RegoError> {
        let mut verdict = Verdict::default();
        if self.conftest.is_none() && self.templates.is_empty() {
            return Ok(verdict);
        }
        let review = runtime::to_rego(request)?;
        if let Some(conftest) = &self.conftest {
            conftest.evaluate(&review, &mut verdict)?;
        }
        if !self.templates.is_empty() {
            let view = RequestView::new(request, namespace_labels)?;
            for template in &self.templates {
                template.evaluate(&review, &view, &mut verdict)?;
            }
        }
        Ok(verdict)
    }

    /// The names of the policies in the set: conftest packages, then Gatekeeper constraints.
    pub fn policies(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        if let Some(conftest) = &self.conftest {
            names.extend(conftest.packages());
        }
        for template in &self.templates {
            names.extend(template.constraints());
        }
        names
    }
}
