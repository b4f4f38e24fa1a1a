//! RBAC risk checks on Roles, ClusterRoles and their bindings. Each rule has a stable ID; one
//! finding per rule and object, naming the first rule (or subject) that triggers it.

use serde_json::Value;

use super::finding::Severity;

/// An RBAC risk.
pub struct Risk {
    /// Stable ID.
    pub id: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// One line.
    pub description: &'static str,
    /// How to fix it.
    pub fix: &'static str,
}

/// Every RBAC risk check.
pub const RISKS: &[Risk] = &[
    Risk {
        id: "RBAC-001",
        severity: Severity::Warning,
        description: "a role grants every verb (`*`)",
        fix: "list the verbs the subjects need (get, list, watch, ...)",
    },
    Risk {
        id: "RBAC-002",
        severity: Severity::Warning,
        description: "a role grants access to every resource or API group (`*`)",
        fix: "list the resources and API groups the subjects need",
    },
    Risk {
        id: "RBAC-003",
        severity: Severity::Warning,
        description: "a role can read secrets",
        fix: "grant get on named secrets with resourceNames, or drop secrets from the rule",
    },
    Risk {
        id: "RBAC-004",
        severity: Severity::Error,
        description: "a role grants `escalate` or `bind`, which bypass RBAC escalation prevention",
        fix: "drop the escalate and bind verbs; grant the roles themselves instead",
    },
    Risk {
        id: "RBAC-005",
        severity: Severity::Error,
        description: "a role grants `impersonate`",
        fix: "drop impersonate, or restrict it with resourceNames to the users and groups needed",
    },
    Risk {
        id: "RBAC-006",
        severity: Severity::Error,
        description: "a role grants `nodes/proxy`, which reaches every kubelet API",
        fix: "drop nodes/proxy; use the metrics or logs APIs instead",
    },
    Risk {
        id: "RBAC-007",
        severity: Severity::Warning,
        description: "a role grants `pods/exec` or `pods/attach`",
        fix: "drop pods/exec and pods/attach outside break-glass roles",
    },
    Risk {
        id: "RBAC-008",
        severity: Severity::Error,
        description: "a binding grants a role to anonymous or unauthenticated users",
        fix: "remove the system:anonymous and system:unauthenticated subjects",
    },
    Risk {
        id: "RBAC-009",
        severity: Severity::Warning,
        description: "a binding grants a role to every authenticated user",
        fix: "bind the role to the groups or users that need it instead of system:authenticated",
    },
    Risk {
        id: "RBAC-010",
        severity: Severity::Error,
        description: "cluster-admin is bound to a service account",
        fix: "bind a narrower role to the service account",
    },
];

/// The risk with this ID.
pub fn risk(id: &str) -> Option<&'static Risk> {
    RISKS.iter().find(|r| r.id == id)
}

/// The risks of one object: (rule ID, message).
pub fn check(kind: &str, object: &Value) -> Vec<(&'static str, String)> {
    match kind {
        "Role" | "ClusterRole" => check_role(object),
        "RoleBinding" | "ClusterRoleBinding" => check_binding(object),
        _ => Vec::new(),
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn check_role(role: &Value) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut add = |id: &'static str, message: String| {
        if !out.iter().any(|(i, _)| *i == id) {
            out.push((id, message));
        }
    };
    for (i, rule) in role["rules"].as_array().into_iter().flatten().enumerate() {
        let verbs = strings(&rule["verbs"]);
        let resources = strings(&rule["resources"]);
        let groups = strings(&rule["apiGroups"]);
        let has_verb = |v: &str| verbs.iter().any(|x| *x == v || *x == "*");
        if verbs.contains(&"*") {
            add("RBAC-001", format!("rules[{i}] grants every verb (`*`)"));
        }
        if resources.contains(&"*") || (groups.contains(&"*") && !resources.is_empty()) {
            add(
                "RBAC-002",
                format!("rules[{i}] grants access to every resource or API group (`*`)"),
            );
        }
        let core = groups.is_empty() || groups.iter().any(|g| g.is_empty() || *g == "*");
        if core
            && resources.contains(&"secrets")
            && ["get", "list", "watch"].iter().any(|v| has_verb(v))
        {
            add(
                "RBAC-003",
                format!("rules[{i}] can read secrets (verbs {})", verbs.join(", ")),
            );
        }
        for v in ["escalate", "bind"] {
            if verbs.contains(&v) {
                add("RBAC-004", format!("rules[{i}] grants `{v}`"));
            }
        }
        if verbs.contains(&"impersonate") {
            add("RBAC-005", format!("rules[{i}] grants `impersonate`"));
        }
        if resources
            .iter()
            .any(|r| matches!(*r, "nodes/proxy" | "nodes/*"))
            && !verbs.is_empty()
        {
            add("RBAC-006", format!("rules[{i}] grants `nodes/proxy`"));
        }
        for sub in ["pods/exec", "pods/attach"] {
            if (resources.contains(&sub) || resources.contains(&"pods/*"))
                && (has_verb("create") || has_verb("get"))
            {
                add("RBAC-007", format!("rules[{i}] grants `{sub}`"));
            }
        }
    }
    out
}

fn check_binding(binding: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let role = binding["roleRef"]["name"].as_str().unwrap_or("");
    let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or("");
    let subjects = binding["subjects"].as_array().cloned().unwrap_or_default();
    let subject = |s: &Value| {
        (
            s["kind"].as_str().unwrap_or("").to_owned(),
            s["name"].as_str().unwrap_or("").to_owned(),
        )
    };
    if let Some((kind, name)) = subjects.iter().map(subject).find(|(k, n)| {
        (k == "Group" && matches!(n.as_str(), "system:anonymous" | "system:unauthenticated"))
            || (k == "User" && n == "system:anonymous")
    }) {
        out.push((
            "RBAC-008",
            format!("{role_kind} `{role}` is granted to {kind} `{name}`"),
        ));
    }
    if subjects
        .iter()
        .map(subject)
        .any(|(k, n)| k == "Group" && n == "system:authenticated")
    {
        out.push((
            "RBAC-009",
            format!("{role_kind} `{role}` is granted to Group `system:authenticated`"),
        ));
    }
    if role_kind == "ClusterRole"
        && role == "cluster-admin"
        && let Some((kind, name)) = subjects.iter().map(subject).find(|(k, n)| {
            k == "ServiceAccount" || (k == "Group" && n.starts_with("system:serviceaccounts"))
        })
    {
        out.push((
            "RBAC-010",
            format!("ClusterRole `cluster-admin` is granted to {kind} `{name}`"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ids(kind: &str, v: Value) -> Vec<&'static str> {
        check(kind, &v).into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn roles() {
        assert_eq!(
            ids(
                "ClusterRole",
                json!({"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})
            ),
            ["RBAC-001", "RBAC-002"]
        );
        assert_eq!(
            ids(
                "Role",
                json!({"rules": [
                    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
                    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind", "escalate"]},
                    {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]},
                    {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]},
                    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
                ]})
            ),
            ["RBAC-003", "RBAC-004", "RBAC-005", "RBAC-006", "RBAC-007"]
        );
        assert!(
            ids(
                "Role",
                json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
            )
            .is_empty()
        );
    }

    #[test]
    fn bindings() {
        let b = |role: &str, kind: &str, name: &str| json!({"roleRef": {"kind": "ClusterRole", "name": role}, "subjects": [{"kind": kind, "name": name}]});
        assert_eq!(
            ids(
                "ClusterRoleBinding",
                b("view", "Group", "system:unauthenticated")
            ),
            ["RBAC-008"]
        );
        assert_eq!(
            ids("RoleBinding", b("view", "Group", "system:authenticated")),
            ["RBAC-009"]
        );
        assert_eq!(
            ids(
                "ClusterRoleBinding",
                b("cluster-admin", "ServiceAccount", "ci")
            ),
            ["RBAC-010"]
        );
        assert!(ids("RoleBinding", b("view", "User", "alice")).is_empty());
    }
}
