//! `portcullis lint`: the gateway's admission engine (Pod Security Standards, image policy, Rego
//! policies) and RBAC risk checks over manifest files, with reports for CI.
//!
//! The verdict is the gateway's: each object goes through [`crate::admit::validate`], the very
//! function the gateway and the admission webhook call, with the namespace labels lint knows
//! (Namespace objects in the input, `--namespace-labels`) and the same configuration files.
//! Files are parsed and checked in parallel; the policies are compiled once.

pub mod checks;
pub mod finding;
pub mod input;
pub mod rbac;
pub mod report;
pub mod suppress;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use portcullis_admission::pod_security::{self, Level};
use portcullis_api::UserInfo;
use rayon::prelude::*;
use serde_json::{Map, Value, json};

pub use finding::{Finding, ObjectRef, Severity};
pub use report::{github_data, github_property};

use checks::{Linter, Place};
use report::Report;
use suppress::Config;

/// Flags of `portcullis lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Manifest files or directories (recursive; .yaml, .yml, .json), or `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write a report to a file: `FORMAT=PATH` (e.g. `sarif=lint.sarif`); repeatable.
    #[arg(long = "output", value_name = "FORMAT=PATH")]
    pub outputs: Vec<String>,

    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,

    /// Pod Security level (and version) of namespaces without labels: `baseline`,
    /// `restricted:v1.30`, ... Overrides the AdmissionConfiguration's enforce default.
    #[arg(long, value_name = "LEVEL[:VERSION]")]
    pub pod_security: Option<String>,

    /// Labels of a namespace, as the gateway would read them: `[NAMESPACE:]KEY=VALUE[,KEY=VALUE]`;
    /// without a namespace, every namespace gets them. Repeatable; Namespace objects in the input
    /// count too.
    #[arg(long = "namespace-labels", value_name = "[NS:]KEY=VALUE,...")]
    pub namespace_labels: Vec<String>,

    /// The namespace of namespaced objects that set none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,

    /// More Rego policies: conftest `.rego` files and Gatekeeper templates with constraints;
    /// repeatable.
    #[arg(long = "policy", value_name = "DIR")]
    pub policy_dirs: Vec<PathBuf>,

    /// Do not use the policy library built into portcullis (`policies/`).
    #[arg(long)]
    pub no_default_policies: bool,

    /// Image policy (`portcullis.dev/v1` ImagePolicy), as `serve --image-policy-file`.
    #[arg(long, value_name = "FILE")]
    pub image_policy: Option<PathBuf>,

    /// PodSecurity AdmissionConfiguration, as `serve --admission-control-config-file`.
    #[arg(long, value_name = "FILE")]
    pub admission_control_config_file: Option<PathBuf>,

    /// Lint configuration (default: `.portcullis.yaml` in the working directory, if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable, grouped by file.
    Text,
    /// One JSON document.
    Json,
    /// SARIF 2.1.0.
    Sarif,
    /// JUnit XML.
    Junit,
    /// GitHub Actions workflow commands (annotations).
    Github,
}

/// The `--fail-on` threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Errors.
    Error,
    /// Warnings and errors.
    Warning,
    /// Any finding.
    Note,
    /// Never fail on findings.
    Never,
}

impl FailOn {
    fn severity(self) -> Option<Severity> {
        match self {
            FailOn::Error => Some(Severity::Error),
            FailOn::Warning => Some(Severity::Warning),
            FailOn::Note => Some(Severity::Note),
            FailOn::Never => None,
        }
    }
}

/// Runs `portcullis lint`; returns the exit code: 0 clean, 1 findings at or above `--fail-on`,
/// 2 unreadable input (usage errors return `Err`, which the binary also maps to 2).
pub fn run(args: &LintArgs) -> Result<i32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .stack_size(input::STACK_SIZE)
        .build()
        .context("starting the worker threads")?;
    pool.install(|| run_in_pool(args))
}

fn run_in_pool(args: &LintArgs) -> Result<i32> {
    let outputs = args
        .outputs
        .iter()
        .map(|o| {
            let (format, path) = o
                .split_once('=')
                .with_context(|| format!("--output `{o}`: expected FORMAT=PATH"))?;
            let format = Format::from_str(format, true)
                .map_err(|_| anyhow::anyhow!("--output `{o}`: unknown format `{format}`"))?;
            Ok((format, PathBuf::from(path)))
        })
        .collect::<Result<Vec<_>>>()?;
    let config = Config::load(args.config.as_deref())?;
    let mut linter = build_linter(args)?;
    let sources = input::discover(&args.paths).map_err(anyhow::Error::msg)?;

    let progress = progress_bar(sources.len() as u64);
    let parsed: Vec<(usize, Result<Vec<input::Object>, input::InputError>)> = sources
        .par_iter()
        .enumerate()
        .map(|(i, s)| {
            let r = input::read(s);
            progress.inc(1);
            (i, r)
        })
        .collect();
    progress.finish_and_clear();

    let mut findings = Vec::new();
    let mut unreadable = false;
    let mut objects: Vec<(usize, input::Object)> = Vec::new();
    for (i, result) in parsed {
        match result {
            Ok(list) => objects.extend(list.into_iter().map(|o| (i, o))),
            Err(e) => {
                unreadable = true;
                findings.push(Finding {
                    rule: "LINT-INPUT".into(),
                    severity: Severity::Error,
                    source: "lint",
                    file: sources[i].name.clone(),
                    line: e.line,
                    document: 0,
                    object: None,
                    message: e.message,
                    fix: Some("fix the file, or keep it out of the linted paths".into()),
                    suppressed: None,
                });
            }
        }
    }
    // Namespace objects decide the Pod Security level of their namespace.
    for (_, o) in &objects {
        if o.value["kind"] == "Namespace"
            && o.value["apiVersion"] == "v1"
            && let Some(name) = o.value.pointer("/metadata/name").and_then(Value::as_str)
        {
            let labels = o
                .value
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            linter
                .namespaces
                .entry(name.to_owned())
                .or_default()
                .extend(labels);
        }
    }
    for spec in &args.namespace_labels {
        let (ns, labels) = parse_namespace_labels(spec)?;
        match ns {
            Some(ns) => linter.namespaces.entry(ns).or_default().extend(labels),
            None => linter.base_labels.extend(labels),
        }
    }

    let progress = progress_bar(objects.len() as u64);
    let checked: Vec<checks::Checked> = objects
        .par_iter()
        .map(|(i, o)| {
            let c = linter.check(
                &o.value,
                Place {
                    file: &sources[*i].name,
                    line: o.line,
                    document: o.document,
                },
                &config,
            );
            progress.inc(1);
            c
        })
        .collect();
    progress.finish_and_clear();

    let mut object_list = Vec::with_capacity(checked.len());
    for ((i, o), c) in objects.iter().zip(checked) {
        object_list.push(json!({
            "file": sources[*i].name,
            "line": o.line,
            "document": o.document,
            "object": c.object,
            "admission": c.verdict,
        }));
        findings.extend(c.findings);
    }
    // Exemptions from the configuration file, and the ones that exempt nothing.
    let mut used = vec![false; config.exemptions.len()];
    for f in findings.iter_mut().filter(|f| f.suppressed.is_none()) {
        if f.rule.starts_with("LINT-") {
            continue;
        }
        if let Some(i) = config.exemption(f) {
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
            if let Some(e) = config.exemptions.get(i) {
                f.suppressed = Some(finding::Suppression {
                    kind: "config",
                    reason: e.reason.clone(),
                });
            }
        }
    }
    for (e, used) in config.exemptions.iter().zip(used) {
        if !used {
            findings.push(Finding {
                rule: "LINT-UNUSED".into(),
                severity: config.severity("LINT-UNUSED", Severity::Warning),
                source: "lint",
                file: config.file.clone().unwrap_or_default(),
                line: e.line,
                document: 0,
                object: None,
                message: format!("the exemption for `{}` exempts nothing", e.rules()),
                fix: Some("remove the exemption".into()),
                suppressed: None,
            });
        }
    }
    findings.sort_by(|a, b| {
        (&a.file, a.line, a.document, &a.rule, &a.message)
            .cmp(&(&b.file, b.line, b.document, &b.rule, &b.message))
    });

    let fail_on = args.fail_on.severity();
    let report = Report {
        findings: &findings,
        objects: &object_list,
        files: sources.len(),
        fail_on,
    };
    let render = |format: Format, colour: bool| match format {
        Format::Text => report.text(colour),
        Format::Json => report.json(),
        Format::Sarif => report.sarif(),
        Format::Junit => report.junit(),
        Format::Github => report.github(),
    };
    for (format, path) in &outputs {
        std::fs::write(path, render(*format, false))
            .with_context(|| format!("writing `{}`", path.display()))?;
    }
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    emit(&render(args.format, colour))?;
    if args.format != Format::Text {
        eprintln!("{}", report.summary());
    }
    let failed = fail_on.is_some_and(|t| {
        findings
            .iter()
            .any(|f| f.suppressed.is_none() && f.severity >= t)
    });
    Ok(if unreadable {
        2
    } else if failed {
        1
    } else {
        0
    })
}

fn emit(out: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the output")
        }
        _ => Ok(()),
    }
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() && len >= 50 {
        indicatif::ProgressBar::new(len)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// `[NS:]KEY=VALUE[,KEY=VALUE]`.
fn parse_namespace_labels(spec: &str) -> Result<(Option<String>, Map<String, Value>)> {
    let (ns, rest) = match spec.split_once(':') {
        Some((ns, rest)) if !ns.contains('=') && !ns.contains('/') => (Some(ns.to_owned()), rest),
        _ => (None, spec),
    };
    let mut labels = Map::new();
    for pair in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--namespace-labels `{spec}`: expected KEY=VALUE, found `{pair}`");
        };
        labels.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
    }
    Ok((ns, labels))
}

fn build_linter(args: &LintArgs) -> Result<Linter> {
    let mut pod_security = match &args.admission_control_config_file {
        Some(path) => crate::admit::PodSecurityConfig::load(path)
            .with_context(|| format!("--admission-control-config-file `{}`", path.display()))?,
        None => crate::admit::PodSecurityConfig::default(),
    };
    if let Some(spec) = &args.pod_security {
        let (level, version) = spec.split_once(':').unwrap_or((spec, "latest"));
        let lv = pod_security::parse_level_version(level, version)
            .map_err(|e| anyhow::anyhow!("--pod-security `{spec}`: {e}"))?;
        if let Some(enforce) = pod_security.defaults.first_mut() {
            *enforce = (lv.level != Level::Privileged).then_some(lv);
        }
    }
    let image_policy = args
        .image_policy
        .as_deref()
        .map(crate::cli::load_image_policy)
        .transpose()?;
    let mut sources = if args.no_default_policies {
        Vec::new()
    } else {
        crate::policies::library()
    };
    for dir in &args.policy_dirs {
        sources.extend(
            crate::policies::sources(dir)
                .with_context(|| format!("--policy `{}`", dir.display()))?,
        );
    }
    let policies = if sources.is_empty() {
        None
    } else {
        Some(
            portcullis_admission::rego::PolicySet::compile(&sources)
                .context("compiling the policies")?,
        )
    };
    Ok(Linter {
        pod_security,
        image_policy,
        policies,
        namespaces: HashMap::new(),
        base_labels: Map::new(),
        default_namespace: args.namespace.clone(),
        user: UserInfo {
            username: "portcullis:lint".to_owned(),
            groups: vec!["system:authenticated".to_owned()],
            ..UserInfo::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_label_flags() {
        let (ns, l) =
            parse_namespace_labels("team:pod-security.kubernetes.io/enforce=restricted,env=prod")
                .unwrap();
        assert_eq!(ns.as_deref(), Some("team"));
        assert_eq!(l["env"], "prod");
        let (ns, l) =
            parse_namespace_labels("pod-security.kubernetes.io/enforce=baseline").unwrap();
        assert_eq!(ns, None);
        assert_eq!(l["pod-security.kubernetes.io/enforce"], "baseline");
        assert!(parse_namespace_labels("team:oops").is_err());
    }
}
