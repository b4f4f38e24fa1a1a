//! LDAP authentication by search-then-bind, the authenticator behind HTTP Basic credentials.
//!
//! Bind as a service account, find the user with an escaped filter (RFC 4515), require exactly one
//! entry, bind as that entry with the password, then look up groups. The traps measured on the
//! crates we use (see the shared reference) are handled here: an empty password is refused before
//! any bind (an empty simple bind is an anonymous bind that OpenLDAP accepts), and every operation,
//! not only the connect, has its own timeout, so a server that accepts the connection and never
//! answers cannot hang a request. Verdicts are cached under a keyed hash of the credentials, with
//! a short TTL for failures.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use sha2::{Digest, Sha256};

use crate::UserInfo;

/// Longest user name accepted.
const MAX_USERNAME: usize = 256;
/// Longest password accepted.
const MAX_PASSWORD: usize = 1024;

/// LDAP settings, as the `--ldap-*` flags give them.
#[derive(Clone)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// DN of the service account that searches.
    pub bind_dn: String,
    /// Its password (from a file).
    pub bind_password: String,
    /// Where users are searched (subtree).
    pub user_base_dn: String,
    /// User filter with a `{username}` placeholder, e.g. `(uid={username})`.
    pub user_filter: String,
    /// Where groups are searched (subtree); empty to use only `memberOf`.
    pub group_base_dn: String,
    /// Group filter with `{dn}` and `{username}` placeholders, e.g. `(member={dn})`.
    pub group_filter: String,
    /// Attribute holding the user name Kubernetes sees.
    pub username_attribute: String,
    /// Attribute holding the user's uid (empty for none).
    pub uid_attribute: String,
    /// Attribute holding a group's name.
    pub group_name_attribute: String,
    /// Use StartTLS on an `ldap://` URL.
    pub start_tls: bool,
    /// TLS client configuration (CA) for `ldaps://` or StartTLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Timeout of the connect and of every operation.
    pub timeout: Duration,
    /// How long a successful login is remembered.
    pub success_ttl: Duration,
    /// How long a failed login is remembered.
    pub failure_ttl: Duration,
}

impl std::fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Why an LDAP login failed. Texts never contain the password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LdapError {
    /// The password is empty (an anonymous bind would succeed).
    #[error("empty password")]
    EmptyPassword,
    /// User name or password longer than allowed.
    #[error("credentials too long")]
    TooLong,
    /// No entry, or more than one, matches the user.
    #[error("user {0:?} not found or not unique")]
    UnknownUser(String),
    /// The user's bind failed.
    #[error("invalid credentials for user {0:?}")]
    InvalidCredentials(String),
    /// The server could not be reached, timed out, or refused the service account.
    #[error("LDAP server error: {0}")]
    Server(String),
}

/// The LDAP authenticator with its verdict cache.
pub struct LdapAuthenticator {
    config: LdapConfig,
    salt: [u8; 32],
    ok: moka::future::Cache<[u8; 32], UserInfo>,
    failed: moka::future::Cache<[u8; 32], LdapError>,
    searcher: tokio::sync::Mutex<Option<ldap3::Ldap>>,
}

impl std::fmt::Debug for LdapAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapAuthenticator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LdapAuthenticator {
    /// An authenticator; `salt` (random, per process) keys the cache.
    pub fn new(config: LdapConfig, salt: [u8; 32]) -> Self {
        let ok = moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(config.success_ttl)
            .build();
        let failed = moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(config.failure_ttl)
            .build();
        LdapAuthenticator {
            config,
            salt,
            ok,
            failed,
            searcher: tokio::sync::Mutex::new(None),
        }
    }

    /// Authenticates HTTP Basic credentials. The returned user has no `system:authenticated`
    /// yet; the chain adds it.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<UserInfo, LdapError> {
        self.authenticate_detailed(username, password).await.0
    }

    /// As [`LdapAuthenticator::authenticate`], also telling whether the verdict came from the
    /// cache (`true`) or from the directory.
    pub async fn authenticate_detailed(
        &self,
        username: &str,
        password: &str,
    ) -> (Result<UserInfo, LdapError>, bool) {
        self.authenticate_inner(username, password).await
    }

    async fn authenticate_inner(
        &self,
        username: &str,
        password: &str,
    ) -> (Result<UserInfo, LdapError>, bool) {
        if password.is_empty() {
            return (Err(LdapError::EmptyPassword), false);
        }
        if username.is_empty() || username.len() > MAX_USERNAME || password.len() > MAX_PASSWORD {
            return (Err(LdapError::TooLong), false);
        }
        let key = self.cache_key(username, password);
        if let Some(user) = self.ok.get(&key).await {
            return (Ok(user), true);
        }
        if let Some(e) = self.failed.get(&key).await {
            return (Err(e), true);
        }
        let result = match self.login(username, password).await {
            Ok(user) => {
                self.ok.insert(key, user.clone()).await;
                Ok(user)
            }
            // A server failure is not remembered: the next attempt may succeed.
            Err(e @ LdapError::Server(_)) => Err(e),
            Err(e) => {
                self.failed.insert(key, e.clone()).await;
                Err(e)
            }
        };
        (result, false)
    }

    fn cache_key(&self, username: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update((username.len() as u64).to_be_bytes());
        h.update(username.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    async fn connect(&self) -> Result<ldap3::Ldap, LdapError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.config.timeout)
            .set_starttls(self.config.start_tls);
        if let Some(tls) = &self.config.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = tokio::time::timeout(
            self.config.timeout,
            LdapConnAsync::with_settings(settings, &self.config.url),
        )
        .await
        .map_err(|_| LdapError::Server("connect timed out".into()))?
        .map_err(|e| LdapError::Server(e.to_string()))?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// The service-account connection searches run on: bound once, multiplexed by every login
    /// (ldap3 handles are clones of one connection), re-established when it breaks.
    async fn searcher(&self) -> Result<ldap3::Ldap, LdapError> {
        let mut slot = self.searcher.lock().await;
        if let Some(ldap) = slot.as_mut()
            && !ldap.is_closed()
        {
            return Ok(ldap.clone());
        }
        let mut ldap = self.connect().await?;
        ldap.with_timeout(self.config.timeout)
            .simple_bind(&self.config.bind_dn, &self.config.bind_password)
            .await
            .map_err(|e| LdapError::Server(e.to_string()))?
            .success()
            .map_err(|e| LdapError::Server(format!("service account bind failed: {e}")))?;
        *slot = Some(ldap.clone());
        Ok(ldap)
    }

    async fn login(&self, username: &str, password: &str) -> Result<UserInfo, LdapError> {
        let result = self.login_with(username, password).await;
        if matches!(result, Err(LdapError::Server(_))) {
            // Whatever broke, the next login starts from a fresh connection.
            *self.searcher.lock().await = None;
        }
        result
    }

    async fn login_with(&self, username: &str, password: &str) -> Result<UserInfo, LdapError> {
        let t = self.config.timeout;
        let server = |e: ldap3::LdapError| LdapError::Server(e.to_string());
        let mut ldap = self.searcher().await?;
        let filter = self
            .config
            .user_filter
            .replace("{username}", &escape(username));
        let mut attrs = vec![self.config.username_attribute.as_str(), "memberOf"];
        if !self.config.uid_attribute.is_empty() {
            attrs.push(self.config.uid_attribute.as_str());
        }
        let (entries, _) = ldap
            .with_timeout(t)
            .search(&self.config.user_base_dn, Scope::Subtree, &filter, attrs)
            .await
            .map_err(server)?
            .success()
            .map_err(server)?;
        let mut entries = entries.into_iter();
        let (Some(entry), None) = (entries.next(), entries.next()) else {
            return Err(LdapError::UnknownUser(username.to_owned()));
        };
        let entry = SearchEntry::construct(entry);
        let first = |attr: &str| entry.attrs.get(attr).and_then(|v| v.first()).cloned();

        // Bind as the user on a connection of its own.
        let mut user_conn = self.connect().await?;
        let bound = user_conn
            .with_timeout(t)
            .simple_bind(&entry.dn, password)
            .await
            .map_err(server)?;
        let _ = user_conn.unbind().await;
        if bound.rc != 0 {
            return Err(LdapError::InvalidCredentials(username.to_owned()));
        }

        let mut groups: Vec<String> = entry
            .attrs
            .get("memberOf")
            .into_iter()
            .flatten()
            .filter_map(|dn| first_rdn_value(dn))
            .collect();
        if !self.config.group_base_dn.is_empty() {
            let filter = self
                .config
                .group_filter
                .replace("{dn}", &escape(&entry.dn))
                .replace("{username}", &escape(username));
            let (found, _) = ldap
                .with_timeout(t)
                .search(
                    &self.config.group_base_dn,
                    Scope::Subtree,
                    &filter,
                    vec![self.config.group_name_attribute.as_str()],
                )
                .await
                .map_err(server)?
                .success()
                .map_err(server)?;
            for g in found {
                let g = SearchEntry::construct(g);
                for name in g
                    .attrs
                    .get(&self.config.group_name_attribute)
                    .into_iter()
                    .flatten()
                {
                    if !groups.contains(name) {
                        groups.push(name.clone());
                    }
                }
            }
        }
        // Directory order is not stable across servers; a sorted list is.
        groups.sort();
        Ok(UserInfo {
            username: first(&self.config.username_attribute).unwrap_or_else(|| username.to_owned()),
            uid: if self.config.uid_attribute.is_empty() {
                String::new()
            } else {
                first(&self.config.uid_attribute).unwrap_or_default()
            },
            groups,
            ..UserInfo::default()
        })
    }
}

/// Escapes a value for an LDAP filter (RFC 4515): `*`, `(`, `)`, `\` and NUL.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// `cn=devs,ou=groups,dc=example,dc=org` → `devs`.
fn first_rdn_value(dn: &str) -> Option<String> {
    let rdn = dn.split(',').next()?;
    let (_, value) = rdn.split_once('=')?;
    Some(value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(escape("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(escape("a\\b\0"), "a\\5cb\\00");
        assert_eq!(escape("jane.doe"), "jane.doe");
    }

    #[test]
    fn member_of_names_are_the_first_rdn() {
        assert_eq!(
            first_rdn_value("cn=devs,ou=groups,dc=x").as_deref(),
            Some("devs")
        );
        assert_eq!(first_rdn_value("garbage"), None);
    }
}
