//! The authenticated caller.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The group kube-apiserver treats as superuser: members are allowed everything.
pub const SYSTEM_MASTERS: &str = "system:masters";
/// The group every authenticated user is given.
pub const SYSTEM_AUTHENTICATED: &str = "system:authenticated";
/// The group of the anonymous user.
pub const SYSTEM_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user name of unauthenticated requests.
pub const SYSTEM_ANONYMOUS: &str = "system:anonymous";

/// Who is calling, in the shape of `authentication.k8s.io/v1` `UserInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user name, e.g. `alice` or `system:serviceaccount:ns:sa`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// A unique value that identifies the user across time, if the authenticator knows one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The groups the user belongs to, in the order the authenticator produced them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Additional information the authenticator attached, e.g. the credential id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Adds `system:authenticated` unless the user already has it (or is anonymous), as
    /// kube-apiserver does after every successful authentication.
    pub fn with_authenticated_group(mut self) -> Self {
        if !self.in_group(SYSTEM_AUTHENTICATED) && !self.in_group(SYSTEM_UNAUTHENTICATED) {
            self.groups.push(SYSTEM_AUTHENTICATED.to_owned());
        }
        self
    }
}
