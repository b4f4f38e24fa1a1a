//! Escalation prevention: whether the rules a user holds cover the rules they try to grant
//! (`Covers` in upstream's policy comparator), and the 403 message naming what is missing.
//!
//! Coverage is stricter than matching: each servant rule is broken into atoms (one group, one
//! resource, one verb, one name; or one URL and one verb), and each atom must be covered by a
//! single owner rule. A servant `*` is covered only by an owner `*`.

use super::PolicyRule;

/// The servant rules' atoms that no owner rule covers, compacted back into rules; empty when
/// `owner` covers all of `servant`.
pub fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut missing = Vec::new();
    for rule in servant {
        for atom in atoms(rule) {
            if !owner.iter().any(|o| covers_atom(o, &atom)) && !missing.contains(&atom) {
                missing.push(atom);
            }
        }
    }
    missing
}

/// Whether `owner` grants full authority: `*` verbs on `*` groups and resources, and `*` on the
/// non-resource URL `*` (needed to set an `aggregationRule`).
pub fn has_full_authority(owner: &[PolicyRule]) -> bool {
    let full = [
        PolicyRule {
            verbs: vec!["*".into()],
            api_groups: vec!["*".into()],
            resources: vec!["*".into()],
            ..PolicyRule::default()
        },
        PolicyRule {
            verbs: vec!["*".into()],
            non_resource_urls: vec!["*".into()],
            ..PolicyRule::default()
        },
    ];
    uncovered(owner, &full).is_empty()
}

/// Breaks a rule into single-verb, single-group, single-resource (single-name) rules.
fn atoms(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                if rule.resource_names.is_empty() {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        ..PolicyRule::default()
                    });
                }
                for name in &rule.resource_names {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        resource_names: vec![name.clone()],
                        ..PolicyRule::default()
                    });
                }
            }
        }
        for url in &rule.non_resource_urls {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn covers_atom(owner: &PolicyRule, atom: &PolicyRule) -> bool {
    let verb = atom.verbs.first().map(String::as_str).unwrap_or_default();
    let verb_ok = owner.verbs.iter().any(|v| v == "*" || v == verb);
    if !verb_ok {
        return false;
    }
    if let Some(url) = atom.non_resource_urls.first() {
        return owner
            .non_resource_urls
            .iter()
            .any(|o| o == url || (o.ends_with('*') && url.starts_with(o.trim_end_matches('*'))));
    }
    let group = atom
        .api_groups
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let resource = atom
        .resources
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let group_ok = owner.api_groups.iter().any(|g| g == "*" || g == group);
    let resource_ok = owner.resources.iter().any(|o| {
        o == "*"
            || o == resource
            || (o
                .strip_prefix("*/")
                .is_some_and(|sub| resource.split_once('/').is_some_and(|(_, s)| s == sub)))
    });
    let name_ok = match atom.resource_names.first() {
        None => owner.resource_names.is_empty(),
        Some(n) => owner.resource_names.is_empty() || owner.resource_names.contains(n),
    };
    group_ok && resource_ok && name_ok
}

/// The 403 message upstream sends when a user tries to grant what they do not hold.
pub fn escalation_message(
    user: &str,
    groups: &[String],
    missing: &[PolicyRule],
    errors: &[String],
) -> String {
    let quoted = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = format!(
        "user {user:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:",
        quoted(groups)
    );
    for r in &compact(missing) {
        out.push('\n');
        if r.non_resource_urls.is_empty() {
            out.push_str(&format!(
                "{{APIGroups:[{}], Resources:[{}]",
                quoted(&r.api_groups),
                quoted(&r.resources)
            ));
            if !r.resource_names.is_empty() {
                out.push_str(&format!(", ResourceNames:[{}]", quoted(&r.resource_names)));
            }
            out.push_str(&format!(", Verbs:[{}]}}", quoted(&r.verbs)));
        } else {
            out.push_str(&format!(
                "{{NonResourceURLs:[{}], Verbs:[{}]}}",
                quoted(&r.non_resource_urls),
                quoted(&r.verbs)
            ));
        }
    }
    if !errors.is_empty() {
        out.push_str(&format!("; resolution errors: [{}]", errors.join(", ")));
    }
    out
}

/// Merges rules that differ only in their verbs, as upstream compacts the missing rules.
fn compact(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    for r in rules {
        match out.iter_mut().find(|o| {
            o.api_groups == r.api_groups
                && o.resources == r.resources
                && o.resource_names == r.resource_names
                && o.non_resource_urls == r.non_resource_urls
        }) {
            Some(o) => {
                for v in &r.verbs {
                    if !o.verbs.contains(v) {
                        o.verbs.push(v.clone());
                    }
                }
            }
            None => out.push(r.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect();
        PolicyRule {
            verbs: s(verbs),
            api_groups: s(groups),
            resources: s(resources),
            resource_names: s(names),
            ..PolicyRule::default()
        }
    }

    fn url(verbs: &[&str], urls: &[&str]) -> PolicyRule {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect();
        PolicyRule {
            verbs: s(verbs),
            non_resource_urls: s(urls),
            ..PolicyRule::default()
        }
    }

    #[test]
    fn star_servant_needs_star_owner() {
        let owner = [r(
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
            &[""],
            &["pods"],
            &[],
        )];
        assert!(!uncovered(&owner, &[r(&["*"], &[""], &["pods"], &[])]).is_empty());
        assert!(uncovered(&owner, &[r(&["get", "list"], &[""], &["pods"], &[])]).is_empty());
        assert!(
            !uncovered(
                &[r(&["get"], &[""], &["pods", "secrets"], &[])],
                &[r(&["get"], &[""], &["*"], &[])]
            )
            .is_empty()
        );
    }

    #[test]
    fn each_atom_needs_one_owner_rule_and_names_narrow() {
        let owner = [
            r(&["get"], &[""], &["pods"], &[]),
            r(&["list"], &[""], &["pods"], &["a"]),
        ];
        assert!(
            uncovered(&owner, &[r(&["get"], &[""], &["pods"], &["x"])]).is_empty(),
            "no names covers any name"
        );
        assert!(uncovered(&owner, &[r(&["list"], &[""], &["pods"], &["a"])]).is_empty());
        assert_eq!(
            uncovered(&owner, &[r(&["list"], &[""], &["pods"], &[])]),
            vec![r(&["list"], &[""], &["pods"], &[])]
        );
    }

    #[test]
    fn star_slash_subresource_and_url_prefixes_cover() {
        let owner = [
            r(&["get"], &["apps"], &["*/scale"], &[]),
            url(&["get"], &["/api*"]),
        ];
        assert!(
            uncovered(
                &owner,
                &[r(&["get"], &["apps"], &["deployments/scale"], &[])]
            )
            .is_empty()
        );
        assert!(!uncovered(&owner, &[r(&["get"], &["apps"], &["deployments"], &[])]).is_empty());
        assert!(uncovered(&owner, &[url(&["get"], &["/apis/apps"])]).is_empty());
        assert!(!uncovered(&owner, &[url(&["get"], &["/healthz"])]).is_empty());
        assert!(!has_full_authority(&owner));
        assert!(has_full_authority(&[
            r(&["*"], &["*"], &["*"], &[]),
            url(&["*"], &["*"])
        ]));
    }

    #[test]
    fn message_lists_missing_rules_like_upstream() {
        let m = escalation_message(
            "bob",
            &["dev".into()],
            &[
                r(&["get"], &[""], &["secrets"], &[]),
                url(&["get"], &["/metrics"]),
            ],
            &[],
        );
        assert_eq!(
            m,
            "user \"bob\" (groups=[\"dev\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}\n{NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"
        );
    }
}
