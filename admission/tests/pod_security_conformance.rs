//! Fixture conformance for the Pod Security Standards engine.
//!
//! Reads every fixture under `$PORTCULLIS_CONFORMANCE_DIR/pod-security/` (by default
//! `<crate>/../../shared/conformance/pod-security/`) in place. The layout is
//! `<level>/<version>/{pass,fail}/*.yaml`: a `pass` pod must be allowed at that level and
//! version, a `fail` pod denied. Versions newer than the engine knows are evaluated with its
//! newest checks, as upstream does.
//!
//! Fixtures that cannot pass yet are listed in `pod_security_known_failures.txt` with a reason;
//! the runner fails when a listed fixture starts passing, so the list only shrinks.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use portcullis_admission::pod_security::{check_pod_spec, parse_level_version, pod_template_spec};
use serde_json::Value;

#[test]
fn every_pod_security_fixture_is_allowed_or_denied_as_upstream_says() {
    let root = fixture_root();
    if !root.is_dir() {
        eprintln!();
        eprintln!(
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        );
        eprintln!(
            "!!! POD SECURITY CONFORMANCE FIXTURES NOT FOUND: {}",
            root.display()
        );
        eprintln!("!!! set PORTCULLIS_CONFORMANCE_DIR to the folder holding pod-security/");
        eprintln!("!!! NOTHING WAS CHECKED");
        eprintln!(
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        );
        return;
    }
    let known = known_failures();
    let fixtures = collect_fixtures(&root);
    assert!(!fixtures.is_empty(), "no fixtures under {}", root.display());

    let mut failures = Vec::new();
    let mut now_passing = Vec::new();
    let mut passed = 0usize;
    let mut by_expectation: BTreeMap<&str, usize> = BTreeMap::new();
    for fixture in &fixtures {
        *by_expectation.entry(fixture.expectation()).or_default() += 1;
        let outcome = run_fixture(fixture);
        let listed = known.contains_key(&fixture.relative);
        match (outcome, listed) {
            (Ok(()), false) => passed += 1,
            (Ok(()), true) => now_passing.push(fixture.relative.clone()),
            (Err(_), true) => {}
            (Err(message), false) => failures.push(format!("{}\n{message}", fixture.relative)),
        }
    }
    let missing: Vec<&String> = known
        .keys()
        .filter(|listed| !fixtures.iter().any(|f| &f.relative == *listed))
        .collect();

    eprintln!(
        "pod security conformance: {passed}/{} fixtures pass ({:?}), {} known failures listed, root {}",
        fixtures.len(),
        by_expectation,
        known.len(),
        root.display()
    );
    let mut report = String::new();
    for failure in &failures {
        report.push_str(&format!("\nFAILED {failure}\n"));
    }
    for fixture in &now_passing {
        report.push_str(&format!(
            "\nNOW PASSING {fixture}: remove it from pod_security_known_failures.txt\n"
        ));
    }
    for fixture in &missing {
        report.push_str(&format!(
            "\nSTALE {fixture}: listed in pod_security_known_failures.txt but not on disk\n"
        ));
    }
    assert!(
        report.is_empty(),
        "{} fixture(s) failed, {} known failure(s) now pass, {} stale:{report}",
        failures.len(),
        now_passing.len(),
        missing.len()
    );
}

struct Fixture {
    path: PathBuf,
    /// `<level>/<version>/<pass|fail>/<file>`, with `/` separators.
    relative: String,
    level: String,
    version: String,
    expect_allowed: bool,
}

impl Fixture {
    fn expectation(&self) -> &'static str {
        if self.expect_allowed { "pass" } else { "fail" }
    }
}

/// Evaluates one fixture; `Err` holds an expected-vs-actual report.
fn run_fixture(fixture: &Fixture) -> Result<(), String> {
    let text = fs::read_to_string(&fixture.path).map_err(|e| format!("  cannot read: {e}"))?;
    let object: Value =
        serde_saphyr::from_str(&text).map_err(|e| format!("  cannot parse YAML: {e}"))?;
    let policy = parse_level_version(&fixture.level, &fixture.version)
        .map_err(|e| format!("  bad fixture folder: {e}"))?;
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("Pod");
    let (metadata, spec) =
        pod_template_spec(kind, &object).ok_or_else(|| format!("  kind `{kind}` has no pod"))?;
    let actual = check_pod_spec(policy, metadata, spec);
    match (fixture.expect_allowed, actual) {
        (true, Ok(())) | (false, Err(_)) => Ok(()),
        (true, Err(violation)) => Err(format!(
            "  expected: allowed at {policy}\n  actual:   denied: {}",
            violation.message()
        )),
        (false, Ok(())) => Err(format!(
            "  expected: denied at {policy}\n  actual:   allowed"
        )),
    }
}

fn fixture_root() -> PathBuf {
    match std::env::var_os("PORTCULLIS_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir).join("pod-security"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/pod-security"),
    }
}

fn collect_fixtures(root: &Path) -> Vec<Fixture> {
    let mut fixtures = Vec::new();
    for level in sorted_dirs(root) {
        for version in sorted_dirs(&level) {
            for expectation in ["pass", "fail"] {
                let dir = version.join(expectation);
                if !dir.is_dir() {
                    continue;
                }
                let mut files: Vec<PathBuf> = fs::read_dir(&dir)
                    .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                    .map(|entry| entry.unwrap().path())
                    .filter(|p| {
                        p.extension()
                            .is_some_and(|ext| ext == "yaml" || ext == "yml")
                    })
                    .collect();
                files.sort();
                for path in files {
                    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
                    let level_name = name(&level);
                    let version_name = name(&version);
                    fixtures.push(Fixture {
                        relative: format!(
                            "{level_name}/{version_name}/{expectation}/{}",
                            name(&path)
                        ),
                        path,
                        level: level_name,
                        version: version_name,
                        expect_allowed: expectation == "pass",
                    });
                }
            }
        }
    }
    fixtures
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// `relative path -> reason` from `pod_security_known_failures.txt`: one fixture per line,
/// `<level>/<version>/<pass|fail>/<file> <reason>`; `#` starts a comment line.
fn known_failures() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pod_security_known_failures.txt");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut known = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (fixture, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        assert!(
            !reason.trim().is_empty(),
            "{}: `{fixture}` needs a reason",
            path.display()
        );
        known.insert(fixture.to_owned(), reason.trim().to_owned());
    }
    known
}
