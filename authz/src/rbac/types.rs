//! The RBAC objects, as the decision engine reads them: the `rbac.authorization.k8s.io/v1`
//! fields that matter for decisions, decoded from their JSON.

use serde::{Deserialize, Deserializer};

/// A rule of a Role or ClusterRole.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Verbs, `*` for all.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub verbs: Vec<String>,
    /// API groups, `""` for core, `*` for all.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub api_groups: Vec<String>,
    /// Resources, `resource/subresource`, `*/subresource`, or `*`.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<String>,
    /// Object names the rule is limited to; empty for all.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resource_names: Vec<String>,
    /// Non-resource paths, with a trailing `*` for a prefix.
    #[serde(
        default,
        rename = "nonResourceURLs",
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

/// The metadata fields the engine needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Meta {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Namespace; empty for cluster-scoped objects.
    #[serde(default)]
    pub namespace: String,
}

/// A Role or a ClusterRole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Role {
    /// Name (and namespace, for a Role).
    #[serde(default)]
    pub metadata: Meta,
    /// Rules; `None` and empty are the same.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub rules: Vec<PolicyRule>,
}

impl Role {
    /// The role's rules.
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }
}

/// What a binding grants: a Role or ClusterRole by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    /// Always `rbac.authorization.k8s.io` in valid objects.
    #[serde(default)]
    pub api_group: String,
    /// `Role` or `ClusterRole`.
    #[serde(default)]
    pub kind: String,
    /// The role's name.
    #[serde(default)]
    pub name: String,
}

/// Who a binding grants to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    #[serde(default)]
    pub kind: String,
    /// `rbac.authorization.k8s.io` for users and groups, empty for service accounts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// User, group or service-account name.
    #[serde(default)]
    pub name: String,
    /// Service-account namespace; defaults to the binding's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// A RoleBinding or a ClusterRoleBinding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleBinding {
    /// Name (and namespace, for a RoleBinding).
    #[serde(default)]
    pub metadata: Meta,
    /// Subjects, in order; the first that applies names the grant in the reason.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub subjects: Vec<Subject>,
    /// The granted role.
    #[serde(default)]
    pub role_ref: RoleRef,
}

impl RoleBinding {
    /// The binding's subjects.
    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }
}

/// Every RBAC object of a cluster: the input of [`super::Snapshot::build`].
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// ClusterRoles.
    pub cluster_roles: Vec<Role>,
    /// Roles of every namespace.
    pub roles: Vec<Role>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<RoleBinding>,
    /// RoleBindings of every namespace.
    pub role_bindings: Vec<RoleBinding>,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}
