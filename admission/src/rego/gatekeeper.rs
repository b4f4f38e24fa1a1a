//! Gatekeeper ConstraintTemplates and their Constraints.
//!
//! A template's Rego and libs are compiled into one engine of their own, so templates cannot
//! see each other's packages. Each Constraint is evaluated on its own clone of that engine,
//! with `input.review` set to the request and `input.parameters` to its `spec.parameters`
//! (an empty object when it has none).

use std::time::Duration;

use regorus::{Engine, Value as RegoValue};
use serde_json::Value;

use super::matching::{Match, RequestView};
use super::runtime::{self, Shape};
use super::{Document, Finding, GatekeeperPolicy, RegoError, RegoVersion, Verdict};

/// A compiled ConstraintTemplate and its Constraints.
#[derive(Clone, Debug)]
pub(super) struct Template {
    engine: Engine,
    /// The full path of the template's `violation` rule.
    rule: String,
    constraints: Vec<Constraint>,
    time_limit: Duration,
}

#[derive(Clone, Debug)]
struct Constraint {
    name: String,
    action: Action,
    matcher: Match,
    parameters: RegoValue,
}

/// `spec.enforcementAction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Deny,
    DryRun,
    Warn,
}

impl Template {
    pub(super) fn compile(
        policy: &GatekeeperPolicy,
        time_limit: Duration,
    ) -> Result<Self, RegoError> {
        let Document { path, value } = &policy.template;
        expect_type(
            value,
            path,
            "templates.gatekeeper.sh/",
            "ConstraintTemplate",
        )?;
        let name = string_at(value, path, &["metadata", "name"])?;
        let kind = string_at(value, path, &["spec", "crd", "spec", "names", "kind"])?;
        if name != kind.to_lowercase() {
            let problem = format!("`{name}` must be the lowercase of the kind `{kind}`");
            return Err(RegoError::document(path, "metadata.name", problem));
        }
        let targets = match value.get("spec").and_then(|spec| spec.get("targets")) {
            Some(Value::Array(targets)) => targets.as_slice(),
            _ => {
                return Err(RegoError::document(
                    path,
                    "spec.targets",
                    "must be an array",
                ));
            }
        };
        let [target] = targets else {
            let problem = "must hold exactly one target";
            return Err(RegoError::document(path, "spec.targets", problem));
        };
        let target_name = string_at(target, path, &["target"])
            .map_err(|_| RegoError::document(path, "spec.targets[0].target", "must be a string"))?;
        if target_name != TARGET {
            let problem = format!("must be `{TARGET}`");
            return Err(RegoError::document(path, "spec.targets[0].target", problem));
        }
        // The Rego is `rego` and `libs` on the target, or, in the multi-engine form, the
        // `source` of the `code` entry whose engine is `Rego` (a CEL-only template has none).
        let (source, at, version) = match target.get("rego") {
            Some(_) => (target, "spec.targets[0]".to_owned(), RegoVersion::V0),
            None => {
                let code = target.get("code").and_then(Value::as_array);
                let entry =
                    code.into_iter().flatten().enumerate().find(|(_, entry)| {
                        entry.get("engine").and_then(Value::as_str) == Some("Rego")
                    });
                let Some((index, entry)) = entry else {
                    let problem = "has neither `rego` nor a `code` entry with `engine: Rego` \
                         (templates written only in CEL are not supported)";
                    return Err(RegoError::document(path, "spec.targets[0]", problem));
                };
                let source = entry.get("source").unwrap_or(&Value::Null);
                // Gatekeeper reads v0 unless the source says `version: v1`.
                let version = match source.get("version").and_then(Value::as_str) {
                    Some("v1") => RegoVersion::V1,
                    _ => RegoVersion::V0,
                };
                (
                    source,
                    format!("spec.targets[0].code[{index}].source"),
                    version,
                )
            }
        };
        let rego = string_at(source, path, &["rego"])
            .map_err(|_| RegoError::document(path, format!("{at}.rego"), "must be a string"))?;

        // Gatekeeper reads `rego` and `libs` as Rego v0 (unless the multi-engine source says
        // v1); a module may opt in to v1 itself.
        let mut engine = runtime::new_engine(version);
        let rego_path = format!("{path}#{at}.rego");
        let package = runtime::add_policy(&mut engine, &rego_path, rego)?;
        let libs = match source.get("libs") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(libs)) => libs.as_slice(),
            Some(_) => {
                return Err(RegoError::document(
                    path,
                    format!("{at}.libs"),
                    "must be an array",
                ));
            }
        };
        for (index, lib) in libs.iter().enumerate() {
            let field = format!("{at}.libs[{index}]");
            let Some(lib) = lib.as_str() else {
                return Err(RegoError::document(path, field, "must be a string"));
            };
            let lib_package = runtime::add_policy(&mut engine, &format!("{path}#{field}"), lib)?;
            if !lib_package.starts_with("data.lib.") {
                let problem = format!("declares package `{lib_package}`, not one under `lib`");
                return Err(RegoError::document(path, field, problem));
            }
        }
        let declared = engine
            .has_declared_rule_rooted_at(&rego_path, "violation")
            .unwrap_or(false);
        if !declared {
            let problem = "must declare a `violation` rule";
            return Err(RegoError::document(path, format!("{at}.rego"), problem));
        }
        engine
            .add_data(runtime::object([("inventory", RegoValue::new_object())]))
            .map_err(|error| RegoError::Compile {
                path: rego_path.clone(),
                detail: runtime::one_line(&format!("{error:#}")),
            })?;
        runtime::set_time_limit(&mut engine, time_limit);

        let mut template = Template {
            engine,
            rule: format!("{package}.violation"),
            constraints: Vec::new(),
            time_limit,
        };
        template.prepare(&rego_path)?;
        for constraint in &policy.constraints {
            template
                .constraints
                .push(Constraint::compile(constraint, kind)?);
        }
        Ok(template)
    }

    /// Evaluates `violation` once on an empty review, on the stored engine itself: this runs
    /// regorus' analysis (so every clone starts prepared) and reports, at load time, errors
    /// that do not depend on the request.
    fn prepare(&mut self, rego_path: &str) -> Result<(), RegoError> {
        self.engine
            .set_input(input(RegoValue::new_object(), RegoValue::new_object()));
        let trial = runtime::eval_rule(&mut self.engine, &self.rule, rego_path, self.time_limit)
            .and_then(|value| {
                runtime::messages(
                    &value,
                    Shape::Violation,
                    rego_path,
                    "violation",
                    &mut Vec::new(),
                )
            });
        trial.map_err(|error| RegoError::Compile {
            path: rego_path.to_owned(),
            detail: error.to_string(),
        })
    }

    pub(super) fn set_time_limit(&mut self, limit: Duration) {
        runtime::set_time_limit(&mut self.engine, limit);
        self.time_limit = limit;
    }

    /// Replaces `data.inventory`, the replicated objects referential templates read.
    pub(super) fn set_inventory(&mut self, inventory: RegoValue) -> Result<(), RegoError> {
        self.engine.clear_data();
        self.engine
            .add_data(runtime::object([("inventory", inventory)]))
            .map_err(|error| RegoError::Compile {
                path: self.rule.clone(),
                detail: runtime::one_line(&format!("{error:#}")),
            })?;
        let rule = self.rule.clone();
        self.prepare(&rule)
    }

    pub(super) fn constraints(&self) -> impl Iterator<Item = &str> {
        self.constraints
            .iter()
            .map(|constraint| constraint.name.as_str())
    }

    /// Evaluates every Constraint that matches `request` against `review` (the request,
    /// already converted).
    pub(super) fn evaluate(
        &self,
        review: &RegoValue,
        request: &RequestView<'_>,
        verdict: &mut Verdict,
    ) -> Result<(), RegoError> {
        let mut messages = Vec::new();
        for constraint in &self.constraints {
            if !constraint.matcher.matches(request) {
                continue;
            }
            let mut engine = self.engine.clone();
            engine.set_input(input(review.clone(), constraint.parameters.clone()));
            let value =
                runtime::eval_rule(&mut engine, &self.rule, &constraint.name, self.time_limit)?;
            runtime::messages(
                &value,
                Shape::Violation,
                &constraint.name,
                "violation",
                &mut messages,
            )?;
            let out = match constraint.action {
                Action::Deny => &mut verdict.denials,
                Action::DryRun => &mut verdict.dry_runs,
                Action::Warn => &mut verdict.warnings,
            };
            out.extend(messages.drain(..).map(|message| Finding {
                policy: constraint.name.clone(),
                message,
            }));
        }
        Ok(())
    }
}

impl Constraint {
    fn compile(document: &Document, kind: &str) -> Result<Self, RegoError> {
        let Document { path, value } = document;
        expect_type(value, path, "constraints.gatekeeper.sh/", kind)?;
        let name = string_at(value, path, &["metadata", "name"])?.to_owned();
        let spec = match value.get("spec") {
            None | Some(Value::Null) => None,
            Some(spec @ Value::Object(_)) => Some(spec),
            Some(_) => return Err(RegoError::document(path, "spec", "must be an object")),
        };
        let field = |name: &str| spec.and_then(|spec| spec.get(name));
        let action = match field("enforcementAction") {
            None | Some(Value::Null) => Action::Deny,
            Some(Value::String(action)) if action == "deny" => Action::Deny,
            Some(Value::String(action)) if action == "dryrun" => Action::DryRun,
            Some(Value::String(action)) if action == "warn" => Action::Warn,
            Some(_) => {
                let problem = "must be one of `deny`, `warn`, `dryrun`";
                return Err(RegoError::document(path, "spec.enforcementAction", problem));
            }
        };
        let parameters = match field("parameters") {
            None | Some(Value::Null) => RegoValue::new_object(),
            Some(parameters) => runtime::to_rego(parameters)
                .map_err(|_| RegoError::document(path, "spec.parameters", "nests too deeply"))?,
        };
        Ok(Constraint {
            name,
            action,
            matcher: Match::from_value(field("match"), path)?,
            parameters,
        })
    }
}

/// Gatekeeper's input: `{"review": <request>, "parameters": <spec.parameters>}`.
fn input(review: RegoValue, parameters: RegoValue) -> RegoValue {
    runtime::object([("parameters", parameters), ("review", review)])
}

/// Checks `apiVersion` (a group prefix such as `templates.gatekeeper.sh/`) and `kind`.
fn expect_type(value: &Value, path: &str, group: &str, kind: &str) -> Result<(), RegoError> {
    let api_version = string_at(value, path, &["apiVersion"])?;
    if !api_version.starts_with(group) {
        let problem = format!(
            "`{api_version}` is not in the group `{}`",
            group.trim_end_matches('/')
        );
        return Err(RegoError::document(path, "apiVersion", problem));
    }
    let found = string_at(value, path, &["kind"])?;
    if found != kind {
        return Err(RegoError::document(
            path,
            "kind",
            format!("`{found}` is not `{kind}`"),
        ));
    }
    Ok(())
}

/// The non-empty string at `fields` under `value`.
fn string_at<'v>(value: &'v Value, path: &str, fields: &[&str]) -> Result<&'v str, RegoError> {
    let found = fields
        .iter()
        .try_fold(value, |value, field| value.get(field))
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty());
    found.ok_or_else(|| RegoError::document(path, fields.join("."), "must be a non-empty string"))
}

/// The only target Gatekeeper's admission webhook evaluates.
const TARGET: &str = "admission.k8s.gatekeeper.sh";
