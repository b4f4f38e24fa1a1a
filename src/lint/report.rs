//! Report formats: text (grouped by file), JSON, SARIF 2.1.0, JUnit XML and GitHub Actions
//! workflow commands.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::checks::rule_info;
use super::finding::{Finding, Severity};

/// Everything a report shows.
pub struct Report<'a> {
    /// Active and suppressed findings, sorted by file, line, rule.
    pub findings: &'a [Finding],
    /// Every object checked: file, line, document, object, gateway verdict.
    pub objects: &'a [Value],
    /// Files read.
    pub files: usize,
    /// The threshold for failure.
    pub fail_on: Option<Severity>,
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Active errors.
    pub errors: usize,
    /// Active warnings.
    pub warnings: usize,
    /// Active notes.
    pub notes: usize,
    /// Suppressed findings.
    pub suppressed: usize,
}

impl Report<'_> {
    fn active(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.suppressed.is_none())
    }

    /// The counts.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for f in self.findings {
            if f.suppressed.is_some() {
                c.suppressed += 1;
                continue;
            }
            match f.severity {
                Severity::Error => c.errors += 1,
                Severity::Warning => c.warnings += 1,
                Severity::Note => c.notes += 1,
            }
        }
        c
    }

    /// `portcullis lint: 12 objects in 3 files: 2 errors, 1 warning, 0 notes (1 suppressed)`.
    pub fn summary(&self) -> String {
        let c = self.counts();
        let plural = |n: usize, word: &str| {
            if n == 1 {
                format!("{n} {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        format!(
            "portcullis lint: {} in {}: {}, {}, {} ({} suppressed)",
            plural(self.objects.len(), "object"),
            plural(self.files, "file"),
            plural(c.errors, "error"),
            plural(c.warnings, "warning"),
            plural(c.notes, "note"),
            c.suppressed
        )
    }

    fn fails(&self, f: &Finding) -> bool {
        self.fail_on.is_some_and(|t| f.severity >= t)
    }

    /// Human text, grouped by file; ANSI colour when `colour`.
    pub fn text(&self, colour: bool) -> String {
        let paint = |code: &str, s: &str| {
            if colour {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_owned()
            }
        };
        let mut out = String::new();
        let mut by_file: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
        for f in self.active() {
            by_file.entry(&f.file).or_default().push(f);
        }
        for (file, findings) in by_file {
            let _ = writeln!(out, "{}", paint("1", file));
            for f in findings {
                let sev = match f.severity {
                    Severity::Error => paint("31", "error  "),
                    Severity::Warning => paint("33", "warning"),
                    Severity::Note => paint("36", "note   "),
                };
                let object = f
                    .object
                    .as_ref()
                    .map(|o| format!("{o}: "))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {:>5}  {sev}  {}  {object}{}",
                    f.line,
                    paint("2", &f.rule),
                    f.message
                );
                if let Some(fix) = &f.fix {
                    let _ = writeln!(out, "                  fix: {fix}");
                }
            }
            out.push('\n');
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// The JSON report.
    pub fn json(&self) -> String {
        let c = self.counts();
        let active: Vec<&Finding> = self.active().collect();
        let suppressed: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.suppressed.is_some())
            .collect();
        let doc = json!({
            "version": 1,
            "summary": {
                "files": self.files,
                "objects": self.objects.len(),
                "errors": c.errors,
                "warnings": c.warnings,
                "notes": c.notes,
                "suppressed": c.suppressed,
            },
            "findings": active,
            "suppressed": suppressed,
            "objects": self.objects,
        });
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    }

    /// SARIF 2.1.0: one rule per rule ID, results with file and line, suppressed results
    /// carrying their suppression.
    pub fn sarif(&self) -> String {
        let mut rules: BTreeMap<&str, &Finding> = BTreeMap::new();
        for f in self.findings {
            rules.entry(&f.rule).or_insert(f);
        }
        let index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, r)| (*r, i)).collect();
        let level = |s: Severity| match s {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        let rules_json: Vec<Value> = rules
            .iter()
            .map(|(id, example)| {
                let info = rule_info(id, Some(example));
                json!({
                    "id": id,
                    "name": id,
                    "shortDescription": {"text": info.description},
                    "fullDescription": {"text": info.description},
                    "help": {"text": info.help, "markdown": format!("**{}**: {}", info.id, info.help)},
                    "defaultConfiguration": {"level": level(example.severity)},
                    "properties": {"tags": ["security", "kubernetes", example.source]},
                })
            })
            .collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let mut text = f.message.clone();
                if let Some(o) = &f.object {
                    text = format!("{o}: {text}");
                }
                if let Some(fix) = &f.fix {
                    text.push_str(&format!(" (fix: {fix})"));
                }
                let mut location = json!({
                    "physicalLocation": {
                        "artifactLocation": {"uri": sarif_uri(&f.file)},
                        "region": {"startLine": f.line.max(1)},
                    },
                });
                if let Some(o) = &f.object {
                    location["logicalLocations"] = json!([{
                        "name": o.name,
                        "fullyQualifiedName": format!("{}/{}/{}", o.namespace, o.kind, o.name),
                        "kind": "object",
                    }]);
                }
                let mut result = json!({
                    "ruleId": f.rule,
                    "ruleIndex": index.get(f.rule.as_str()).copied().unwrap_or(0),
                    "level": level(f.severity),
                    "message": {"text": text},
                    "locations": [location],
                    "partialFingerprints": {
                        "portcullis/v1": format!("{}:{}:{}", f.rule, f.file,
                            f.object.as_ref().map(|o| format!("{}/{}/{}", o.namespace, o.kind, o.name)).unwrap_or_default()),
                    },
                });
                if let Some(s) = &f.suppressed {
                    result["suppressions"] = json!([{
                        "kind": if s.kind == "annotation" { "inSource" } else { "external" },
                        "justification": s.reason,
                    }]);
                }
                result
            })
            .collect();
        let doc = json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "portcullis",
                    "informationUri": "https://example.invalid/portcullis",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules_json,
                }},
                "results": results,
                "columnKind": "unicodeCodePoints",
            }],
        });
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    }

    /// JUnit XML: a test suite per file, a test case per object; a case fails when it has a
    /// finding at or above `--fail-on`, other findings go to its `system-out`.
    pub fn junit(&self) -> String {
        #[derive(Default)]
        struct Case<'a> {
            name: String,
            findings: Vec<&'a Finding>,
        }
        let mut suites: BTreeMap<String, BTreeMap<(u64, String), Case<'_>>> = BTreeMap::new();
        for o in self.objects {
            let file = o["file"].as_str().unwrap_or("").to_owned();
            let name = object_name(&o["object"]);
            let line = o["line"].as_u64().unwrap_or(0);
            suites
                .entry(file)
                .or_default()
                .entry((line, name.clone()))
                .or_insert_with(|| Case {
                    name,
                    findings: Vec::new(),
                });
        }
        for f in self.active() {
            let name = f
                .object
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "input".to_owned());
            suites
                .entry(f.file.clone())
                .or_default()
                .entry((f.line, name.clone()))
                .or_insert_with(|| Case {
                    name,
                    findings: Vec::new(),
                })
                .findings
                .push(f);
        }
        let total: usize = suites.values().map(BTreeMap::len).sum();
        let failed = |c: &Case<'_>| c.findings.iter().any(|f| self.fails(f));
        let total_failures: usize = suites
            .values()
            .map(|s| s.values().filter(|c| failed(c)).count())
            .sum();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"portcullis lint\" tests=\"{total}\" failures=\"{total_failures}\" errors=\"0\">"
        );
        for (file, cases) in &suites {
            let failures = cases.values().filter(|c| failed(c)).count();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">",
                xml(file),
                cases.len()
            );
            for ((line, _), case) in cases {
                let _ = write!(
                    out,
                    "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" line=\"{line}\"",
                    xml(&case.name),
                    xml(file),
                    xml(file)
                );
                if case.findings.is_empty() {
                    out.push_str("/>\n");
                    continue;
                }
                out.push_str(">\n");
                let body: String = case
                    .findings
                    .iter()
                    .map(|f| {
                        let fix = f
                            .fix
                            .as_deref()
                            .map(|x| format!(" (fix: {x})"))
                            .unwrap_or_default();
                        format!(
                            "{}:{}: {} {}: {}{fix}\n",
                            f.file, f.line, f.severity, f.rule, f.message
                        )
                    })
                    .collect();
                if failed(case) {
                    let first = case.findings.iter().find(|f| self.fails(f)).copied();
                    let (rule, message) =
                        first.map_or(("", ""), |f| (f.rule.as_str(), f.message.as_str()));
                    let _ = writeln!(
                        out,
                        "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                        xml(message),
                        xml(rule),
                        xml(&body)
                    );
                } else {
                    let _ = writeln!(out, "      <system-out>{}</system-out>", xml(&body));
                }
                out.push_str("    </testcase>\n");
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }

    /// GitHub Actions workflow commands: `::error file=F,line=L,title=T::message`.
    pub fn github(&self) -> String {
        let mut out = String::new();
        for f in self.active() {
            let command = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Note => "notice",
            };
            let mut message = f.message.clone();
            if let Some(o) = &f.object {
                message = format!("{o}: {message}");
            }
            if let Some(fix) = &f.fix {
                message.push_str(&format!("\nfix: {fix}"));
            }
            let _ = writeln!(
                out,
                "::{command} file={},line={},title={}::{}",
                github_property(&f.file),
                f.line.max(1),
                github_property(&format!("{} ({})", f.rule, f.severity)),
                github_data(&message)
            );
        }
        out
    }
}

fn object_name(o: &Value) -> String {
    let kind = o["kind"].as_str().unwrap_or("object");
    let ns = o["namespace"].as_str().unwrap_or("");
    let name = o["name"].as_str().unwrap_or("");
    if ns.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {ns}/{name}")
    }
}

/// A relative URI reference for a file path (`stdin` for standard input).
fn sarif_uri(file: &str) -> String {
    if file == super::input::STDIN {
        return "stdin".to_owned();
    }
    let mut out = String::new();
    for b in file.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Escapes the message of a workflow command.
pub fn github_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value of a workflow command.
pub fn github_property(s: &str) -> String {
    github_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Escapes text for XML content and attributes; drops characters XML 1.0 cannot hold.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(github_data("50% a\r\nb"), "50%25 a%0D%0Ab");
        assert_eq!(github_property("a:b,c%"), "a%3Ab%2Cc%25");
        assert_eq!(xml("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
        assert_eq!(sarif_uri("dir/my file.yaml"), "dir/my%20file.yaml");
    }
}
