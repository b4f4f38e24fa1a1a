//! Why a policy set could not be compiled, or a request could not be judged.

use std::time::Duration;

/// An error compiling a [`PolicySet`](super::PolicySet) or evaluating a request against it.
/// Compile errors name the file; evaluation errors name the policy. Either way the caller
/// fails closed: it keeps the previous set, or denies the request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegoError {
    /// Rego that does not parse or compile. `detail` is the compiler's message, led by the
    /// file, line and column (`policies/pods.rego:4:7: expecting ...`).
    #[error("rego policy `{path}` does not compile: {detail}")]
    Compile {
        /// The file (for a template, the file and field) that holds the Rego.
        path: String,
        /// Where and what, on one line.
        detail: String,
    },
    /// A ConstraintTemplate or Constraint document of the wrong shape.
    #[error("`{path}`: {field} {problem}")]
    Document {
        /// The document's path, as the caller gave it.
        path: String,
        /// The field, e.g. `spec.crd.spec.names.kind`.
        field: String,
        /// What is wrong with it, e.g. `must be a string`.
        problem: String,
    },
    /// The request (or the namespace labels) cannot be given to a policy.
    #[error("admission request cannot be evaluated: {reason}")]
    Input {
        /// Why, e.g. the request is nested too deeply.
        reason: String,
    },
    /// A policy that failed while evaluating.
    #[error("policy `{policy}` failed: {detail}")]
    Evaluation {
        /// The conftest package or Gatekeeper constraint.
        policy: String,
        /// The evaluator's message, on one line.
        detail: String,
    },
    /// A rule that returned something other than messages.
    #[error("policy `{policy}` rule `{rule}` returned {found}, not {expected}")]
    Result {
        /// The conftest package or Gatekeeper constraint.
        policy: String,
        /// The rule: `deny`, `violation` or `warn`.
        rule: String,
        /// What it returned, briefly (`a number`).
        found: String,
        /// What a rule of that kind must return.
        expected: &'static str,
    },
    /// A policy that ran longer than the time limit.
    #[error("policy `{policy}` ran longer than the limit of {limit:?}")]
    TimeLimit {
        /// The conftest package or Gatekeeper constraint.
        policy: String,
        /// The limit it ran past.
        limit: Duration,
    },
}

impl RegoError {
    pub(super) fn document(
        path: &str,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> RegoError {
        RegoError::Document {
            path: path.to_owned(),
            field: field.into(),
            problem: problem.into(),
        }
    }
}
