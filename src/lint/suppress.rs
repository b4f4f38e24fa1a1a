//! Suppression: the `portcullis.dev/ignore` annotation on an object, and `.portcullis.yaml`
//! (rules enabled and disabled, severity overrides, exemptions). Suppressions that suppress
//! nothing are reported, so they do not outlive the problem they hid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use serde_json::Value;

use super::finding::{Finding, ObjectRef, Severity};

/// The annotation that suppresses findings on its object: `RULE-ID=reason[,RULE-ID=reason]`.
pub const ANNOTATION: &str = "portcullis.dev/ignore";

/// The configuration file looked for in the working directory.
pub const CONFIG_FILE: &str = ".portcullis.yaml";

/// One `RULE-ID=reason` entry of the annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignore {
    /// The rule ID.
    pub rule: String,
    /// Why.
    pub reason: String,
}

/// Parses the annotation: the entries, or what is malformed.
pub fn parse_annotation(value: &str) -> Result<Vec<Ignore>, String> {
    let mut out = Vec::new();
    for entry in value.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((rule, reason)) = entry.split_once('=') else {
            return Err(format!(
                "`{entry}` has no reason: write `{entry}=<why it is safe>`"
            ));
        };
        let (rule, reason) = (rule.trim(), reason.trim());
        if rule.is_empty() || rule.contains(char::is_whitespace) {
            return Err(format!("`{entry}` does not start with a rule ID"));
        }
        if reason.is_empty() {
            return Err(format!(
                "`{entry}` has an empty reason: write `{rule}=<why it is safe>`"
            ));
        }
        out.push(Ignore {
            rule: rule.to_owned(),
            reason: reason.to_owned(),
        });
    }
    if out.is_empty() {
        return Err("the annotation names no rule".to_owned());
    }
    Ok(out)
}

/// `.portcullis.yaml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    exemptions: Vec<serde_saphyr::Spanned<RawExemption>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    /// When set, only these rules (or prefixes ending in `*`) run.
    #[serde(default)]
    enabled: Option<Vec<String>>,
    #[serde(default)]
    disabled: Vec<String>,
    #[serde(default)]
    severity: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExemption {
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    reason: String,
}

/// The validated configuration.
#[derive(Debug, Default)]
pub struct Config {
    /// Where it was read from, for findings about it.
    pub file: Option<String>,
    enabled: Option<Vec<String>>,
    disabled: Vec<String>,
    severity: Vec<(String, Severity)>,
    /// The exemptions, in file order.
    pub exemptions: Vec<Exemption>,
}

/// One exemption: rules, and globs on the object's namespace, name, kind and file.
#[derive(Debug)]
pub struct Exemption {
    /// Line in the configuration file.
    pub line: u64,
    rules: Vec<String>,
    namespace: Option<GlobMatcher>,
    name: Option<GlobMatcher>,
    kind: Option<GlobMatcher>,
    path: Option<GlobMatcher>,
    /// Why.
    pub reason: String,
}

fn rule_matches(pattern: &str, rule: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => rule.starts_with(prefix),
        None => pattern == rule,
    }
}

fn glob(field: &str, pattern: Option<String>) -> Result<Option<GlobMatcher>> {
    pattern
        .map(|p| {
            Glob::new(&p)
                .map(|g| g.compile_matcher())
                .with_context(|| format!("exemption {field} `{p}` is not a valid glob"))
        })
        .transpose()
}

impl Config {
    /// Reads `path`, or `.portcullis.yaml` in the working directory when `path` is `None` and
    /// the file exists.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let path: PathBuf = match path {
            Some(p) => p.to_path_buf(),
            None => {
                let p = PathBuf::from(CONFIG_FILE);
                if !p.is_file() {
                    return Ok(Config::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading `{}`", path.display()))?;
        Self::parse(&text, &path.to_string_lossy())
    }

    /// Parses the text of a configuration file named `file`.
    pub fn parse(text: &str, file: &str) -> Result<Config> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("`{file}`: {e}"))?
        };
        let mut severity = Vec::new();
        for (rule, s) in raw.rules.severity {
            let s: Severity = s
                .parse()
                .map_err(|e| anyhow::anyhow!("`{file}`: rules.severity.{rule}: {e}"))?;
            severity.push((rule, s));
        }
        let mut exemptions = Vec::new();
        for spanned in raw.exemptions {
            let line = spanned.referenced.line();
            let e = spanned.value;
            let mut rules = e.rules;
            rules.extend(e.rule);
            if rules.is_empty() {
                bail!("`{file}` line {line}: an exemption needs `rule` or `rules`");
            }
            if e.reason.trim().is_empty() {
                bail!("`{file}` line {line}: an exemption needs a `reason`");
            }
            let at =
                |r: Result<Option<GlobMatcher>>| r.with_context(|| format!("`{file}` line {line}"));
            exemptions.push(Exemption {
                line,
                rules,
                namespace: at(glob("namespace", e.namespace))?,
                name: at(glob("name", e.name))?,
                kind: at(glob("kind", e.kind))?,
                path: at(glob("path", e.path))?,
                reason: e.reason,
            });
        }
        Ok(Config {
            file: Some(file.to_owned()),
            enabled: raw.rules.enabled,
            disabled: raw.rules.disabled,
            severity,
            exemptions,
        })
    }

    /// Whether a rule runs.
    pub fn enabled(&self, rule: &str) -> bool {
        if self.disabled.iter().any(|p| rule_matches(p, rule)) {
            return false;
        }
        match &self.enabled {
            Some(list) => list.iter().any(|p| rule_matches(p, rule)),
            None => true,
        }
    }

    /// The severity of a rule after overrides.
    pub fn severity(&self, rule: &str, default: Severity) -> Severity {
        self.severity
            .iter()
            .find(|(p, _)| rule_matches(p, rule))
            .map_or(default, |(_, s)| *s)
    }

    /// The index of the first exemption covering a finding.
    pub fn exemption(&self, finding: &Finding) -> Option<usize> {
        let object = finding.object.clone().unwrap_or_default();
        self.exemptions
            .iter()
            .position(|e| e.covers(&finding.rule, &object, &finding.file))
    }
}

impl Exemption {
    fn covers(&self, rule: &str, object: &ObjectRef, file: &str) -> bool {
        let ok = |m: &Option<GlobMatcher>, v: &str| m.as_ref().is_none_or(|m| m.is_match(v));
        self.rules.iter().any(|p| rule_matches(p, rule))
            && ok(&self.namespace, &object.namespace)
            && ok(&self.name, &object.name)
            && ok(&self.kind, &object.kind)
            && ok(&self.path, file)
    }

    /// The rules, for messages.
    pub fn rules(&self) -> String {
        self.rules.join(", ")
    }
}

/// The annotation's value on an object, if any.
pub fn annotation(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations() {
        assert_eq!(
            parse_annotation("PCS-001=writes to /tmp, RBAC-003 = reads its own secret").unwrap(),
            vec![
                Ignore {
                    rule: "PCS-001".into(),
                    reason: "writes to /tmp".into()
                },
                Ignore {
                    rule: "RBAC-003".into(),
                    reason: "reads its own secret".into()
                }
            ]
        );
        assert!(parse_annotation("PCS-001").is_err());
        assert!(parse_annotation("PCS-001=").is_err());
        assert!(parse_annotation("=x").is_err());
        assert!(parse_annotation("").is_err());
    }

    #[test]
    fn config() {
        let c = Config::parse(
            "rules:\n  disabled: [PCS-007]\n  severity: {PCS-001: error, 'RBAC-*': note}\nexemptions:\n- rule: PCS-002\n  namespace: 'kube-*'\n  reason: system pods\n",
            ".portcullis.yaml",
        )
        .unwrap();
        assert!(!c.enabled("PCS-007"));
        assert!(c.enabled("PCS-001"));
        assert_eq!(c.severity("PCS-001", Severity::Warning), Severity::Error);
        assert_eq!(c.severity("RBAC-004", Severity::Error), Severity::Note);
        assert_eq!(c.exemptions[0].line, 5);
        let object = ObjectRef {
            namespace: "kube-system".into(),
            ..ObjectRef::default()
        };
        assert!(c.exemptions[0].covers("PCS-002", &object, "x.yaml"));
        assert!(!c.exemptions[0].covers("PCS-001", &object, "x.yaml"));
        assert!(Config::parse("exemptions:\n- rule: X\n", "c").is_err());
        assert!(Config::parse("bogus: 1\n", "c").is_err());
    }
}
