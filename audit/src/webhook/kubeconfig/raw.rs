//! The kubeconfig document as written, and the choice of cluster and user in it.

use serde::Deserialize;
use serde_json::Value;

use super::KubeconfigError;

#[derive(Deserialize)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub(super) users: Vec<NamedUser>,
    #[serde(default)]
    pub(super) contexts: Vec<NamedContext>,
    #[serde(default, rename = "current-context")]
    pub(super) current_context: String,
}

#[derive(Deserialize)]
pub(super) struct NamedCluster {
    #[serde(default)]
    pub(super) name: String,
    pub(super) cluster: RawCluster,
}

#[derive(Deserialize)]
pub(super) struct NamedUser {
    #[serde(default)]
    pub(super) name: String,
    pub(super) user: RawUser,
}

#[derive(Deserialize)]
pub(super) struct NamedContext {
    #[serde(default)]
    pub(super) name: String,
    pub(super) context: RawContext,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawCluster {
    #[serde(default)]
    pub(super) server: String,
    pub(super) certificate_authority: Option<String>,
    pub(super) certificate_authority_data: Option<String>,
    #[serde(default)]
    pub(super) insecure_skip_tls_verify: bool,
    pub(super) tls_server_name: Option<Value>,
    pub(super) proxy_url: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawUser {
    pub(super) client_certificate: Option<String>,
    pub(super) client_certificate_data: Option<String>,
    pub(super) client_key: Option<String>,
    pub(super) client_key_data: Option<String>,
    pub(super) token: Option<String>,
    #[serde(rename = "tokenFile")]
    pub(super) token_file: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    #[serde(rename = "as")]
    pub(super) impersonate: Option<Value>,
    #[serde(rename = "as-groups")]
    pub(super) impersonate_groups: Option<Value>,
    pub(super) auth_provider: Option<Value>,
    pub(super) exec: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct RawContext {
    #[serde(default)]
    pub(super) cluster: String,
    #[serde(default)]
    pub(super) user: String,
}

/// The cluster and user chosen, with their positions for field paths.
pub(super) struct Selected<'a> {
    pub(super) cluster: (usize, &'a RawCluster),
    pub(super) user: Option<(usize, &'a RawUser)>,
}

pub(super) fn select(raw: &RawConfig) -> Result<Selected<'_>, KubeconfigError> {
    let context_err = |m: String| KubeconfigError::Context(m);
    let context =
        if !raw.current_context.is_empty() {
            let name = &raw.current_context;
            let found = raw.contexts.iter().find(|c| &c.name == name);
            Some(found.ok_or_else(|| {
                context_err(format!("current-context `{name}` is not in contexts"))
            })?)
        } else {
            match raw.contexts.as_slice() {
                [only] => Some(only),
                [] => None,
                _ => {
                    return Err(context_err(format!(
                        "{} contexts and no current-context; set current-context",
                        raw.contexts.len()
                    )));
                }
            }
        };
    let Some(context) = context else {
        // No contexts: a file with one cluster (and at most one user) is unambiguous.
        let cluster = match raw.clusters.as_slice() {
            [only] => (0, &only.cluster),
            [] => return Err(context_err("no clusters".to_owned())),
            _ => {
                return Err(context_err(format!(
                    "{} clusters and no contexts; add a context and set current-context",
                    raw.clusters.len()
                )));
            }
        };
        let user = match raw.users.as_slice() {
            [only] => Some((0, &only.user)),
            [] => None,
            _ => {
                return Err(context_err(format!(
                    "{} users and no contexts; add a context and set current-context",
                    raw.users.len()
                )));
            }
        };
        return Ok(Selected { cluster, user });
    };
    let name = &context.name;
    let cluster = raw
        .clusters
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == context.context.cluster)
        .map(|(i, c)| (i, &c.cluster))
        .ok_or_else(|| {
            context_err(format!(
                "context `{name}` refers to cluster `{}`, which is not in clusters",
                context.context.cluster
            ))
        })?;
    let user = if context.context.user.is_empty() {
        None
    } else {
        Some(
            raw.users
                .iter()
                .enumerate()
                .find(|(_, u)| u.name == context.context.user)
                .map(|(i, u)| (i, &u.user))
                .ok_or_else(|| {
                    context_err(format!(
                        "context `{name}` refers to user `{}`, which is not in users",
                        context.context.user
                    ))
                })?,
        )
    };
    Ok(Selected { cluster, user })
}
