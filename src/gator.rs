//! `portcullis policy verify`: runs Gatekeeper test suites (`test.gatekeeper.sh/v1alpha1`
//! `Suite`, the format of `gator verify`) through portcullis' own Rego engine.
//!
//! A suite names tests; a test names a ConstraintTemplate file, a Constraint file and cases; a
//! case names an object file (a plain object, reviewed as a CREATE, or an `AdmissionReview`
//! whose `request` is used as it is), optional inventory files (the objects referential
//! templates read from `data.inventory`), and assertions: `violations` is `yes` (at least one,
//! the default), `no`, or an exact count, counted over the violations whose message matches
//! the optional `message` regular expression. Every constraint action counts, as with gator.
//!
//! Paths in a suite are relative to the suite file. A directory argument is walked for suite
//! files. A template that does not compile fails its cases with the compiler's message, so a
//! run over a policy library says which templates the engine cannot run and why.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use portcullis_admission::rego::{Document, GatekeeperPolicy, PolicySet, PolicySource};
use serde_json::{Map, Value, json};

/// Most suite files one run reads.
const MAX_SUITES: usize = 10_000;

/// `portcullis policy verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Suite files, or directories searched recursively for them.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Run only the tests and cases whose `test/case` name matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub run: Option<String>,
    /// Output format: `text` (a line per case) or `json` (a JSON object per case, one a line).
    #[arg(short = 'o', long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Every assertion held.
    Pass,
    /// An assertion did not hold: what was expected and what came.
    Fail(String),
    /// The case could not run: the template did not compile, a file is missing, ...
    Error(String),
    /// The suite marks the test or case `skip: true`.
    Skip,
}

/// One case's result, with where it came from.
#[derive(Debug)]
struct CaseResult {
    suite: PathBuf,
    test: String,
    template: String,
    case: String,
    outcome: Outcome,
}

/// Runs `portcullis policy verify`: exit code 0 when every case passes, 1 otherwise.
pub fn run(args: &VerifyArgs) -> Result<i32> {
    let filter = match &args.run {
        Some(re) => Some(regex::Regex::new(re).with_context(|| format!("--run `{re}`"))?),
        None => None,
    };
    let mut suites = Vec::new();
    for path in &args.paths {
        find_suites(path, &mut suites)?;
    }
    suites.sort();
    suites.dedup();
    if suites.is_empty() {
        bail!("no Suite (test.gatekeeper.sh/v1alpha1) found under the given paths");
    }
    let mut results = Vec::new();
    for suite in &suites {
        run_suite(suite, filter.as_ref(), &mut results);
    }
    let mut out = std::io::stdout().lock();
    let (mut pass, mut fail, mut error, mut skip) = (0, 0, 0, 0);
    for r in &results {
        let (word, detail) = match &r.outcome {
            Outcome::Pass => {
                pass += 1;
                ("pass", "")
            }
            Outcome::Fail(d) => {
                fail += 1;
                ("fail", d.as_str())
            }
            Outcome::Error(d) => {
                error += 1;
                ("error", d.as_str())
            }
            Outcome::Skip => {
                skip += 1;
                ("skip", "")
            }
        };
        if args.output == "json" {
            let line = json!({
                "suite": r.suite.display().to_string(),
                "test": r.test,
                "template": r.template,
                "case": r.case,
                "result": word,
                "detail": detail,
            });
            writeln!(out, "{line}")?;
        } else {
            // One line a case; a multi-line detail (a YAML error with its snippet) follows
            // it, indented.
            let upper = word.to_uppercase();
            let mut lines = detail.lines();
            let first = lines.next().unwrap_or("");
            let sep = if first.is_empty() { "" } else { ": " };
            writeln!(
                out,
                "{upper:<5} {} {}/{}{sep}{first}",
                r.suite.display(),
                r.test,
                r.case
            )?;
            for line in lines {
                writeln!(out, "      {line}")?;
            }
        }
    }
    if args.output == "text" {
        writeln!(
            out,
            "{} cases: {pass} passed, {fail} failed, {error} errors, {skip} skipped",
            results.len()
        )?;
    }
    Ok(if fail + error == 0 { 0 } else { 1 })
}

/// Adds the suite files at `path` (a suite file, or a directory walked for them).
fn find_suites(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading `{}`", path.display()))?;
    if meta.is_file() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading `{}`", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                )
                && is_suite(&path)
            {
                if out.len() >= MAX_SUITES {
                    bail!(
                        "more than {MAX_SUITES} suite files under `{}`",
                        dir.display()
                    );
                }
                out.push(path);
            }
        }
    }
    Ok(())
}

/// Whether a YAML file is a gator Suite (read cheaply: a `kind: Suite` line).
fn is_suite(path: &Path) -> bool {
    let Ok(text) = crate::policies::read_file(path) else {
        return false;
    };
    text.lines().any(|l| l.trim_end() == "kind: Suite") && text.contains("test.gatekeeper.sh/")
}

/// Every document of a YAML or JSON file.
fn documents(path: &Path) -> Result<Vec<Value>> {
    let text = crate::policies::read_file(path)?;
    let docs: Vec<Value> =
        serde_saphyr::from_str_multiple(&text).map_err(|e| anyhow!("`{}`: {e}", path.display()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The single document of a file.
fn document(path: &Path) -> Result<Value> {
    let mut docs = documents(path)?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => bail!("`{}` holds {n} documents; expected one", path.display()),
    }
}

fn run_suite(path: &Path, filter: Option<&regex::Regex>, results: &mut Vec<CaseResult>) {
    let base = path.parent().unwrap_or(Path::new("."));
    let result = |test: &str, template: &str, case: &str, outcome| CaseResult {
        suite: path.to_owned(),
        test: test.to_owned(),
        template: template.to_owned(),
        case: case.to_owned(),
        outcome,
    };
    let suite = match document(path) {
        Ok(s) if s["kind"] == "Suite" => s,
        Ok(_) => {
            results.push(result("", "", "", Outcome::Error("not a Suite".into())));
            return;
        }
        Err(e) => {
            results.push(result("", "", "", Outcome::Error(format!("{e:#}"))));
            return;
        }
    };
    for test in suite["tests"].as_array().into_iter().flatten() {
        let test_name = test["name"].as_str().unwrap_or("");
        let template_file = test["template"].as_str().unwrap_or("");
        let cases: Vec<&Value> = test["cases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                let name = format!("{test_name}/{}", c["name"].as_str().unwrap_or(""));
                filter.is_none_or(|f| f.is_match(&name))
            })
            .collect();
        if cases.is_empty() {
            continue;
        }
        let mut push = |case: &Value, outcome| {
            results.push(result(
                test_name,
                template_file,
                case["name"].as_str().unwrap_or(""),
                outcome,
            ));
        };
        if test["skip"] == true {
            cases.iter().for_each(|c| push(c, Outcome::Skip));
            continue;
        }
        let set = match compile(base, test) {
            Ok(set) => set,
            Err(e) => {
                let message = format!("{e:#}");
                cases
                    .iter()
                    .for_each(|c| push(c, Outcome::Error(message.clone())));
                continue;
            }
        };
        for case in cases {
            let outcome = if case["skip"] == true {
                Outcome::Skip
            } else {
                run_case(base, &set, case).unwrap_or_else(|e| Outcome::Error(format!("{e:#}")))
            };
            push(case, outcome);
        }
    }
}

/// The template and constraint of a test, compiled.
fn compile(base: &Path, test: &Value) -> Result<PolicySet> {
    let file = |key: &str| -> Result<PathBuf> {
        let name = test[key]
            .as_str()
            .ok_or_else(|| anyhow!("the test has no `{key}`"))?;
        Ok(base.join(name))
    };
    let template_path = file("template")?;
    let template = document(&template_path)?;
    let mut constraints = Vec::new();
    if test.get("constraint").is_some_and(|c| !c.is_null()) {
        let path = file("constraint")?;
        constraints.push(Document::new(path.display().to_string(), document(&path)?));
    }
    let source = PolicySource::Gatekeeper(GatekeeperPolicy {
        template: Document::new(template_path.display().to_string(), template),
        constraints,
    });
    Ok(PolicySet::compile(&[source])?)
}

fn run_case(base: &Path, set: &PolicySet, case: &Value) -> Result<Outcome> {
    let object_file = case["object"]
        .as_str()
        .ok_or_else(|| anyhow!("the case has no `object`"))?;
    let object = document(&base.join(object_file))?;
    let request = review_request(object)?;
    let mut inventory_objects = Vec::new();
    for file in case["inventory"].as_array().into_iter().flatten() {
        let file = file
            .as_str()
            .ok_or_else(|| anyhow!("`inventory` entries must be file names"))?;
        inventory_objects.extend(documents(&base.join(file))?);
    }
    let namespace = request["namespace"].as_str().unwrap_or("");
    let labels = inventory_objects
        .iter()
        .find(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == namespace)
        .and_then(|ns| ns.pointer("/metadata/labels"))
        .cloned()
        .unwrap_or(Value::Null);
    let owned;
    let set = if inventory_objects.is_empty() {
        set
    } else {
        owned = set.clone().with_inventory(&inventory(&inventory_objects))?;
        &owned
    };
    let verdict = set.evaluate(&request, &labels)?;
    let messages: Vec<&str> = verdict
        .denials
        .iter()
        .chain(&verdict.warnings)
        .chain(&verdict.dry_runs)
        .map(|f| f.message.as_str())
        .collect();
    for assertion in case["assertions"].as_array().into_iter().flatten() {
        if let Some(problem) = check_assertion(assertion, &messages)? {
            return Ok(Outcome::Fail(problem));
        }
    }
    Ok(Outcome::Pass)
}

/// What an assertion expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    AtLeastOne,
    Exactly(u64),
}

/// `None` when the assertion holds, else what went wrong.
fn check_assertion(assertion: &Value, messages: &[&str]) -> Result<Option<String>> {
    let expected = match &assertion["violations"] {
        Value::Null => Expected::AtLeastOne,
        Value::Bool(true) => Expected::AtLeastOne,
        Value::Bool(false) => Expected::Exactly(0),
        Value::String(s) if s == "yes" => Expected::AtLeastOne,
        Value::String(s) if s == "no" => Expected::Exactly(0),
        Value::Number(n) => Expected::Exactly(
            n.as_u64()
                .ok_or_else(|| anyhow!("`violations` must not be negative"))?,
        ),
        other => bail!("`violations` must be yes, no or a count, not {other}"),
    };
    let (counted, about) = match assertion["message"].as_str() {
        Some(re) => {
            let re = regex::Regex::new(re).with_context(|| format!("message regex `{re}`"))?;
            let n = messages.iter().filter(|m| re.is_match(m)).count();
            (n, format!(" matching `{}`", re.as_str()))
        }
        None => (messages.len(), String::new()),
    };
    let counted = counted as u64;
    let holds = match expected {
        Expected::AtLeastOne => counted >= 1,
        Expected::Exactly(n) => counted == n,
    };
    if holds {
        return Ok(None);
    }
    let want = match expected {
        Expected::AtLeastOne => "at least 1".to_owned(),
        Expected::Exactly(n) => n.to_string(),
    };
    Ok(Some(format!(
        "expected {want} violations{about}, got {counted}: {messages:?}"
    )))
}

/// The AdmissionReview request for a case's object: an `AdmissionReview`'s own request, or a
/// CREATE of a plain object.
fn review_request(object: Value) -> Result<Value> {
    if object["kind"] == "AdmissionReview" {
        let mut request = object
            .get("request")
            .filter(|r| r.is_object())
            .cloned()
            .ok_or_else(|| anyhow!("the AdmissionReview has no request"))?;
        let target = match request.get("object") {
            Some(o) if !o.is_null() => o.clone(),
            _ => request.get("oldObject").cloned().unwrap_or(Value::Null),
        };
        if let Value::Object(fields) = &mut request {
            fill_from_object(fields, &target);
        }
        return Ok(request);
    }
    let mut request = Map::new();
    request.insert("operation".into(), json!("CREATE"));
    fill_from_object(&mut request, &object);
    request.insert("object".into(), object);
    Ok(Value::Object(request))
}

/// Fills `kind`, `name` and `namespace` of a request from its object where the request lacks
/// them.
fn fill_from_object(request: &mut Map<String, Value>, object: &Value) {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or("");
    request
        .entry("kind")
        .or_insert_with(|| json!({"group": group, "version": version, "kind": kind}));
    for (key, pointer) in [
        ("name", "/metadata/name"),
        ("namespace", "/metadata/namespace"),
    ] {
        if let Some(v) = object.pointer(pointer).and_then(Value::as_str) {
            request.entry(key).or_insert_with(|| json!(v));
        }
    }
}

/// Gatekeeper's `data.inventory` layout of some objects: namespaced ones under
/// `namespace[ns][apiVersion][kind][name]`, the others under `cluster[apiVersion][kind][name]`.
fn inventory(objects: &[Value]) -> Value {
    let mut root = json!({"namespace": {}, "cluster": {}});
    for o in objects {
        let api_version = o["apiVersion"].as_str().unwrap_or("");
        let kind = o["kind"].as_str().unwrap_or("");
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        let path: Vec<&str> = match o["metadata"]["namespace"].as_str() {
            Some(ns) => vec!["namespace", ns, api_version, kind],
            None => vec!["cluster", api_version, kind],
        };
        let mut at = &mut root;
        for key in path {
            at = &mut at[key];
            if at.is_null() {
                *at = json!({});
            }
        }
        at[name] = o.clone();
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertions_count_messages_as_gator_does() {
        let msgs = [
            "container <a> is not allowed",
            "initContainer <b> is not allowed",
        ];
        let check = |a: Value| check_assertion(&a, &msgs).unwrap();
        assert_eq!(check(json!({"violations": "yes"})), None);
        assert_eq!(check(json!({})), None);
        assert!(check(json!({"violations": "no"})).is_some());
        assert_eq!(check(json!({"violations": 2})), None);
        assert_eq!(
            check(json!({"violations": 1, "message": "initContainer"})),
            None
        );
        // Unanchored and case-sensitive, like Go's regexp.MatchString.
        assert_eq!(
            check(json!({"violations": 1, "message": "container"})),
            None
        );
        assert_eq!(
            check(json!({"violations": 2, "message": "ontainer <"})),
            None
        );
        assert_eq!(
            check(json!({"violations": 0, "message": "ephemeral"})),
            None
        );
        assert!(check(json!({"violations": 1, "message": "ephemeral"})).is_some());
        assert!(check_assertion(&json!({"violations": -1}), &msgs).is_err());
        assert!(check_assertion(&json!({"violations": "maybe"}), &msgs).is_err());
        assert!(check_assertion(&json!({"message": "("}), &msgs).is_err());
    }

    #[test]
    fn plain_objects_are_reviewed_as_creates() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}});
        let r = review_request(pod.clone()).unwrap();
        assert_eq!(r["operation"], "CREATE");
        assert_eq!(
            r["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(
            (r["name"].as_str(), r["namespace"].as_str()),
            (Some("p"), Some("ns"))
        );
        assert_eq!(r["object"], pod);

        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let r = review_request(dep).unwrap();
        assert_eq!(r["kind"]["group"], "apps");
        assert!(r.get("namespace").is_none());
    }

    #[test]
    fn admission_reviews_keep_their_request() {
        let review = json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1",
            "request": {"operation": "UPDATE", "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}});
        let r = review_request(review).unwrap();
        assert_eq!(r["operation"], "UPDATE");
        assert_eq!(r["kind"]["kind"], "Pod");
        assert_eq!(r["name"], "p");
        assert!(review_request(json!({"kind": "AdmissionReview"})).is_err());
    }

    #[test]
    fn inventory_follows_gatekeepers_layout() {
        let inv = inventory(&[
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "a"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
        ]);
        assert_eq!(
            inv["namespace"]["a"]["v1"]["Service"]["s"]["kind"],
            "Service"
        );
        assert_eq!(inv["cluster"]["v1"]["Namespace"]["a"]["kind"], "Namespace");
    }
}
