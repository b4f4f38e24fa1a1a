//! conftest-style policies: every package's `deny`, `violation` and `warn` rules.
//!
//! All files share one engine, so files that declare the same package merge as they do in
//! conftest, and one clone of the engine serves every package of a request.
//!
//! regorus forgets every rule value between two `eval_rule` calls, so evaluating each
//! package's rules one by one evaluates the helpers they share (`data.portcullis.lib`) once per
//! rule. The set therefore also keeps a second engine holding one more module, compiled at load
//! time, whose single rule gathers every `data.<package>.<rule>` in order: a request costs one
//! evaluation. When that evaluation fails (an error, the time limit), the request is evaluated
//! again rule by rule on the engine without the gathering module, which names the failing
//! package exactly as before. The gathering engine is only built when some policy reads another
//! package (otherwise rules share nothing and one evaluation per rule is cheaper), and when no
//! policy can see it: every reference to `data` must name a package root, and no package may
//! share its root.

use std::collections::BTreeMap;
use std::time::Duration;

use regorus::{Engine, Value as RegoValue};

use super::runtime::{self, Shape};
use super::{Finding, RegoError, RegoFile, RegoVersion, Verdict};

/// Every conftest file, compiled into one prepared engine.
#[derive(Clone, Debug)]
pub(super) struct Conftest {
    /// The policies alone: prepared, evaluated rule by rule.
    engine: Engine,
    /// The policies and the gathering module ([`GATHER_RULE`]), when it could be built.
    gather: Option<Engine>,
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

        // Gathering pays only when rules share work: a policy reads another package (a lib).
        // Without that, one evaluation per rule is cheaper than the gathering rule's lookups.
        let references: Option<Vec<bool>> = files
            .iter()
            .map(|file| package_references(&file.text))
            .collect();
        let gather_ready = references.is_some_and(|refs| refs.contains(&true))
            && packages.keys().all(|name| gatherable(name));
        let mut compiled = Conftest {
            engine,
            gather: None,
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
        if gather_ready {
            compiled.gather = compiled.gathering_engine();
        }
        Ok(compiled)
    }

    /// The prepared engine plus the gathering module, or `None` when it does not compile or
    /// fails on an empty review (then every request is evaluated rule by rule, as before).
    fn gathering_engine(&self) -> Option<Engine> {
        let mut items = Vec::new();
        for package in &self.packages {
            for (_, path) in &package.rules {
                items.push(format!("\t[x | x := {path}],\n"));
            }
        }
        let text = format!(
            "package {GATHER_PACKAGE}\n\n{GATHER_NAME} := [\n{}]\n",
            items.concat()
        );
        let mut engine = self.engine.clone();
        engine.set_rego_v0(false);
        engine.add_policy(GATHER_FILE.to_owned(), text).ok()?;
        engine.set_input(review_input(RegoValue::new_object()));
        let trial = engine.eval_rule(GATHER_RULE.to_owned()).ok()?;
        self.gathered(&trial).is_some().then_some(engine)
    }

    /// The gathering rule's value cut into one value per (package, rule), in order; `None`
    /// when it does not have that shape.
    fn gathered<'v>(&self, value: &'v RegoValue) -> Option<Vec<&'v RegoValue>> {
        let RegoValue::Array(slots) = value else {
            return None;
        };
        let expected: usize = self
            .packages
            .iter()
            .map(|package| package.rules.len())
            .sum();
        if slots.len() != expected {
            return None;
        }
        slots
            .iter()
            .map(|slot| match slot {
                RegoValue::Array(found) => match found.as_slice() {
                    [] => Some(&RegoValue::Undefined),
                    [value] => Some(value),
                    _ => None,
                },
                _ => None,
            })
            .collect()
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
        if let Some(gather) = &mut self.gather {
            runtime::set_time_limit(gather, limit);
        }
        self.time_limit = limit;
    }

    /// Whether requests are evaluated with the gathering rule.
    #[cfg(test)]
    pub(super) fn gathers(&self) -> bool {
        self.gather.is_some()
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
        if let Some(gather) = &self.gather {
            let mut engine = gather.clone();
            engine.set_input(review_input(review.clone()));
            if let Ok(value) = engine.eval_rule(GATHER_RULE.to_owned())
                && let Some(values) = self.gathered(&value)
            {
                // INVARIANT: `gathered` checked that there is one value per rule.
                let mut values = values.into_iter();
                let next = |_: &Package, _: &str| {
                    Ok(values.next().cloned().unwrap_or(RegoValue::Undefined))
                };
                return self.collect(next, verdict);
            }
            // An error, or the time limit: evaluate again rule by rule to name the package.
        }
        self.evaluate_each_rule(review, verdict)
    }

    /// Evaluates every rule on its own, on the engine without the gathering module.
    fn evaluate_each_rule(
        &self,
        review: &RegoValue,
        verdict: &mut Verdict,
    ) -> Result<(), RegoError> {
        let mut engine = self.engine.clone();
        engine.set_input(review_input(review.clone()));
        let time_limit = self.time_limit;
        self.collect(
            |package, path| runtime::eval_rule(&mut engine, path, &package.name, time_limit),
            verdict,
        )
    }

    /// Reads every (package, rule) value that `value_of` gives, in order, into `verdict`.
    fn collect(
        &self,
        mut value_of: impl FnMut(&Package, &str) -> Result<RegoValue, RegoError>,
        verdict: &mut Verdict,
    ) -> Result<(), RegoError> {
        let mut messages = Vec::new();
        for package in &self.packages {
            for (rule, path) in &package.rules {
                let value = value_of(package, path)?;
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

/// Whether `text` refers to other packages (`data.<name>...`): `None` when some reference to
/// `data` does not name a package root (`data[...]`, `data` alone, our [`GATHER_PACKAGE`]),
/// so that a policy might see the gathering module or depend on it. Comments and strings are
/// skipped; anything unusual (an unterminated string) answers `None` too, which only costs
/// the faster path.
fn package_references(text: &str) -> Option<bool> {
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut references = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'#' => {
                while bytes.get(i).is_some_and(|&b| b != b'\n') {
                    i += 1;
                }
            }
            b'"' | b'`' => {
                let quote = b;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return None,
                        Some(&b'\\') if quote == b'"' => i += 2,
                        Some(&c) if c == quote => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
            }
            b if is_ident(b) => {
                let start = i;
                while bytes.get(i).copied().is_some_and(is_ident) {
                    i += 1;
                }
                if text.get(start..i) == Some("data") {
                    if bytes.get(i) != Some(&b'.') {
                        return None;
                    }
                    let root = i + 1;
                    let mut end = root;
                    while bytes.get(end).copied().is_some_and(is_ident) {
                        end += 1;
                    }
                    if end == root || text.get(root..end) == Some(GATHER_PACKAGE) {
                        return None;
                    }
                    references = true;
                }
            }
            _ => i += 1,
        }
    }
    Some(references)
}

#[cfg(test)]
impl Conftest {
    /// [`Conftest::evaluate`] without the gathering rule: the reference the fast path must agree with.
    pub(super) fn evaluate_rule_by_rule(
        &self,
        review: &RegoValue,
        verdict: &mut Verdict,
    ) -> Result<(), RegoError> {
        self.evaluate_each_rule(review, verdict)
    }
}

/// Whether the package `name` (`kubernetes.pods`) can be written as a plain reference in the
/// gathering module and does not share its root.
fn gatherable(name: &str) -> bool {
    name.split('.').next() != Some(GATHER_PACKAGE)
        && name.split('.').all(|component| {
            let mut chars = component.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !KEYWORDS.contains(&component)
        })
}

/// The package of the gathering module; no policy may use it as a root.
const GATHER_PACKAGE: &str = "portcullis_gather__";
/// The gathering rule's name in [`GATHER_PACKAGE`].
const GATHER_NAME: &str = "all";
/// The gathering rule's full path.
const GATHER_RULE: &str = "data.portcullis_gather__.all";
/// The name regorus gives the gathering module in its messages.
const GATHER_FILE: &str = "<portcullis: every conftest rule>";
/// Rego keywords, which cannot be written as a reference component.
const KEYWORDS: [&str; 15] = [
    "as", "contains", "default", "else", "every", "false", "if", "import", "in", "not", "null",
    "package", "some", "true", "with",
];
