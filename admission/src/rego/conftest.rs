//! conftest-style policies: every package's `deny`, `violation` and `warn` rules.
//!
//! All files share one engine, so files that declare the same package merge as they do in
//! conftest, and one clone of the engine serves every package of a request.

use std::collections::BTreeMap;
use std::time::Duration;

use regorus::{Engine, Value as RegoValue};

use super::runtime::{self, Shape};
use super::{Finding, RegoError, RegoFile, RegoVersion, Verdict};

/// Every conftest file, compiled into one prepared engine.
#[derive(Clone, Debug)]
pub(super) struct Conftest {
    engine: Engine,
    packages: Vec<Package>,
    time_limit: Duration,
}

/// A package and the rules it declares, each with the full path to evaluate.
#[derive(Clone, Debug)]
struct Package {
    name: String,
    rules: Vec<(Rule, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    Deny,
    Violation,
    Warn,
}

impl Rule {
    const ALL: [Rule; 3] = [Rule::Deny, Rule::Violation, Rule::Warn];

    fn name(self) -> &'static str {
        match self {
            Rule::Deny => "deny",
            Rule::Violation => "violation",
            Rule::Warn => "warn",
        }
    }
}

impl Conftest {
    pub(super) fn compile(files: &[&RegoFile], time_limit: Duration) -> Result<Self, RegoError> {
        let mut engine = runtime::new_engine(RegoVersion::V1);
        // Package name -> (the first file that declares it, its rules).
        let mut packages: BTreeMap<String, (String, Vec<Rule>)> = BTreeMap::new();
        for (index, file) in files.iter().enumerate() {
            if files
                .iter()
                .take(index)
                .any(|other| other.path == file.path)
            {
                return Err(RegoError::Compile {
                    path: file.path.clone(),
                    detail: "the same path is given twice".to_owned(),
                });
            }
            engine.set_rego_v0(file.version == RegoVersion::V0);
            let package = runtime::add_policy(&mut engine, &file.path, &file.text)?;
            let name = package.strip_prefix("data.").unwrap_or(&package).to_owned();
            let (_, rules) = packages
                .entry(name)
                .or_insert_with(|| (file.path.clone(), Vec::new()));
            for rule in Rule::ALL {
                let declared = engine
                    .has_declared_rule_rooted_at(&file.path, rule.name())
                    .map_err(|error| RegoError::Compile {
                        path: file.path.clone(),
                        detail: runtime::one_line(&format!("{error:#}")),
                    })?;
                if declared && !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
        runtime::set_time_limit(&mut engine, time_limit);

        let mut compiled = Conftest {
            engine,
            packages: Vec::new(),
            time_limit,
        };
        let mut first_files = Vec::new();
        for (name, (first_file, mut rules)) in packages {
            rules.sort_unstable();
            let rules = rules
                .into_iter()
                .map(|rule| (rule, format!("data.{name}.{}", rule.name())))
                .collect();
            compiled.packages.push(Package { name, rules });
            first_files.push(first_file);
        }
        compiled.prepare(&first_files)?;
        Ok(compiled)
    }

    /// Evaluates every rule once on an empty review, on the stored engine itself: this runs
    /// regorus' analysis (so every clone starts prepared) and reports, at load time, errors
    /// that do not depend on the request, such as calls to unknown functions.
    fn prepare(&mut self, first_files: &[String]) -> Result<(), RegoError> {
        self.engine.set_input(review_input(RegoValue::new_object()));
        let mut scratch = Vec::new();
        for (package, path) in self.packages.iter().zip(first_files) {
            for (rule, rule_path) in &package.rules {
                let trial =
                    runtime::eval_rule(&mut self.engine, rule_path, &package.name, self.time_limit)
                        .and_then(|value| {
                            runtime::messages(
                                &value,
                                Shape::Conftest,
                                &package.name,
                                rule.name(),
                                &mut scratch,
                            )
                        });
                if let Err(error) = trial {
                    return Err(RegoError::Compile {
                        path: path.clone(),
                        detail: error.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    pub(super) fn set_time_limit(&mut self, limit: Duration) {
        runtime::set_time_limit(&mut self.engine, limit);
        self.time_limit = limit;
    }

    pub(super) fn packages(&self) -> impl Iterator<Item = &str> {
        self.packages.iter().map(|package| package.name.as_str())
    }

    /// Evaluates every package against `review` (the request, already converted).
    pub(super) fn evaluate(
        &self,
        review: &RegoValue,
        verdict: &mut Verdict,
    ) -> Result<(), RegoError> {
        let mut engine = self.engine.clone();
        engine.set_input(review_input(review.clone()));
        let mut messages = Vec::new();
        for package in &self.packages {
            for (rule, path) in &package.rules {
                let value = runtime::eval_rule(&mut engine, path, &package.name, self.time_limit)?;
                runtime::messages(
                    &value,
                    Shape::Conftest,
                    &package.name,
                    rule.name(),
                    &mut messages,
                )?;
                let out = match rule {
                    Rule::Deny | Rule::Violation => &mut verdict.denials,
                    Rule::Warn => &mut verdict.warnings,
                };
                out.extend(messages.drain(..).map(|message| Finding {
                    policy: package.name.clone(),
                    message,
                }));
            }
        }
        Ok(())
    }
}

/// The input conftest policies see: an AdmissionReview around the request.
fn review_input(request: RegoValue) -> RegoValue {
    runtime::object([
        ("apiVersion", RegoValue::from("admission.k8s.io/v1")),
        ("kind", RegoValue::from("AdmissionReview")),
        ("request", request),
    ])
}
