//! Policy validation, with the checks of kube-apiserver's `ValidatePolicy`.

use std::fmt;

use super::{GroupResources, Level, Policy, PolicyRule, RawPolicy, RawRule, Stage};

/// One validation failure, at a field path such as `rules[2].level`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field path.
    pub path: String,
    /// What is wrong, with the offending value in backticks.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every validation failure of a policy (never empty when returned as an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}

/// Turns the wire shape into a [`Policy`], reporting every bad level and stage and then every
/// structural problem.
pub(super) fn from_raw(raw: RawPolicy) -> Result<Policy, ValidationErrors> {
    let mut errs = Errors(Vec::new());
    let omit_stages = stages(&raw.omit_stages, "omitStages", &mut errs);
    let mut rules = Vec::with_capacity(raw.rules.len());
    for (i, rule) in raw.rules.into_iter().enumerate() {
        rules.push(rule_from_raw(rule, &format!("rules[{i}]"), &mut errs));
    }
    let policy = Policy {
        rules,
        omit_stages,
        omit_managed_fields: raw.omit_managed_fields,
    };
    if let Err(structural) = validate_policy(&policy) {
        errs.0.extend(structural.0);
    }
    errs.finish().map(|()| policy)
}

fn rule_from_raw(raw: RawRule, path: &str, errs: &mut Errors) -> PolicyRule {
    let level = match Level::from_name(&raw.level) {
        Some(level) => level,
        None if raw.level.is_empty() => {
            errs.push(format!("{path}.level"), "Required value");
            Level::None
        }
        None => {
            errs.push(
                format!("{path}.level"),
                format!(
                    "Unsupported value: `{}`: supported values: `None`, `Metadata`, `Request`, `RequestResponse`",
                    raw.level
                ),
            );
            Level::None
        }
    };
    PolicyRule {
        level,
        users: raw.users,
        user_groups: raw.user_groups,
        verbs: raw.verbs,
        resources: raw
            .resources
            .into_iter()
            .map(|gr| GroupResources {
                group: gr.group,
                resources: gr.resources,
                resource_names: gr.resource_names,
            })
            .collect(),
        namespaces: raw.namespaces,
        non_resource_urls: raw.non_resource_urls,
        omit_stages: stages(&raw.omit_stages, &format!("{path}.omitStages"), errs),
        omit_managed_fields: raw.omit_managed_fields,
    }
}

fn stages(names: &[String], path: &str, errs: &mut Errors) -> Vec<Stage> {
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        match Stage::from_name(name) {
            Some(stage) => out.push(stage),
            None => errs.push(
                format!("{path}[{i}]"),
                format!(
                    "Invalid value: `{name}`: allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic"
                ),
            ),
        }
    }
    out
}

/// The structural checks that the typed [`Policy`] cannot express.
pub(super) fn validate_policy(policy: &Policy) -> Result<(), ValidationErrors> {
    let mut errs = Errors(Vec::new());
    for (i, rule) in policy.rules.iter().enumerate() {
        let path = format!("rules[{i}]");
        validate_non_resource_urls(&rule.non_resource_urls, &path, &mut errs);
        validate_resources(&rule.resources, &path, &mut errs);
        if !rule.non_resource_urls.is_empty()
            && (!rule.resources.is_empty() || !rule.namespaces.is_empty())
        {
            errs.push(
                format!("{path}.nonResourceURLs"),
                "Invalid value: rules cannot apply to both regular resources and non-resource URLs",
            );
        }
    }
    errs.finish()
}

fn validate_non_resource_urls(urls: &[String], rule: &str, errs: &mut Errors) {
    for (i, url) in urls.iter().enumerate() {
        if url == "*" {
            continue;
        }
        let path = format!("{rule}.nonResourceURLs[{i}]");
        if !url.starts_with('/') {
            errs.push(
                path.clone(),
                format!(
                    "Invalid value: `{url}`: non-resource URL rules must begin with a '/' character"
                ),
            );
        }
        let head = url.strip_suffix('*').unwrap_or(url);
        if head.contains('*') {
            errs.push(
                path,
                format!(
                    "Invalid value: `{url}`: non-resource URL wildcards '*' must be the final character of the rule"
                ),
            );
        }
    }
}

fn validate_resources(groups: &[GroupResources], rule: &str, errs: &mut Errors) {
    for gr in groups {
        if !gr.group.is_empty() && gr.group != "*" && !is_dns_subdomain(&gr.group) {
            errs.push(
                format!("{rule}.resources.group"),
                format!(
                    "Invalid value: `{}`: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                    gr.group
                ),
            );
        }
        if !gr.resource_names.is_empty() && gr.resources.is_empty() {
            errs.push(
                format!("{rule}.resources.resourceNames"),
                "Invalid value: using resourceNames requires at least one resource",
            );
        }
    }
}

/// A lowercase RFC 1123 subdomain of at most 253 characters, as Kubernetes' `IsDNS1123Subdomain`.
pub(super) fn is_dns_subdomain(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-')
            }
            _ => false,
        }
    })
}
