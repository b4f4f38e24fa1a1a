//! Rule matching (`RuleAllows`): exact, case-sensitive string comparisons, `*` wildcards,
//! `resource/subresource` and `*/subresource`, resource names, and non-resource URL prefixes.

use portcullis_api::RequestInfo;

use super::PolicyRule;

/// Whether any of `rules` allows the request.
pub fn rules_allow(rules: &[PolicyRule], request: &RequestInfo) -> bool {
    rules.iter().any(|r| rule_allows(r, request))
}

/// Whether one rule allows the request, as upstream's `RuleAllows`.
pub fn rule_allows(rule: &PolicyRule, request: &RequestInfo) -> bool {
    match request {
        RequestInfo::Resource(r) => {
            verb_matches(rule, &r.verb)
                && rule.api_groups.iter().any(|g| g == "*" || *g == r.group)
                && resource_matches(rule, &r.resource, &r.subresource)
                && (rule.resource_names.is_empty() || rule.resource_names.contains(&r.name))
        }
        RequestInfo::NonResource { verb, path } => {
            verb_matches(rule, verb) && rule.non_resource_urls.iter().any(|u| url_matches(u, path))
        }
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|entry| {
        if entry == "*" {
            return true;
        }
        if subresource.is_empty() {
            return entry == resource;
        }
        // `resource/subresource` without building the string, or `*/subresource`.
        let combined = entry
            .strip_prefix(resource)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|sub| sub == subresource);
        combined
            || entry
                .strip_prefix("*/")
                .is_some_and(|sub| sub == subresource)
    })
}

fn url_matches(entry: &str, path: &str) -> bool {
    if entry == "*" || entry == path {
        return true;
    }
    entry.ends_with('*') && path.starts_with(entry.trim_end_matches('*'))
}
