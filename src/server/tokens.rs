//! Bearer-token authentication at the edge: the token file (reloaded when it changes), and
//! service-account tokens, whose ServiceAccount, pod or secret must still exist in the store with
//! the claimed uid. Also TokenRequest (`kubectl create token`) and issuer discovery.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use base64::Engine;
use portcullis_api::UserInfo;
use portcullis_api::registry;
use portcullis_authn::serviceaccount::{Signer, TokenRequest, Verified, Verifier};
use portcullis_authn::token_file::TokenFile;
use serde_json::{Value, json};

use crate::storage::Store;

/// Everything bearer-token authentication needs.
pub struct Tokens {
    file: ArcSwapOption<TokenFile>,
    file_path: Option<PathBuf>,
    salt: [u8; 32],
    /// Service-account token verification.
    pub verifier: Verifier,
    /// Service-account token signing (TokenRequest).
    pub signer: Signer,
    /// The issuer tokens are signed as (the first `--service-account-issuer`).
    pub issuer: String,
    /// The API audiences.
    pub audiences: Vec<String>,
    /// Successful JWT verdicts, by salted digest of (token, audiences), for the cache TTL
    /// (`--token-cache-ttl`, default [`CACHE_TTL`]; 0 turns it off): as
    /// kube-apiserver's token cache, so a client reusing a token pays the signature check and
    /// the store lookups once per TTL. Failures are not cached.
    cache: moka::future::Cache<[u8; 32], (UserInfo, Vec<String>)>,
}

/// How long a verified JWT is trusted by default without checking it again (kube-apiserver
/// uses 10 s).
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The outcome of the bearer-token authenticators on one token.
#[derive(Debug)]
pub enum TokenOutcome {
    /// A user.
    User(UserInfo, Vec<String>),
    /// The token is not valid; the text is the authenticator's error.
    Invalid(String),
}

impl Tokens {
    /// Builds the token authenticators. `file` is the parsed `--token-auth-file`, if any.
    pub fn new(
        file: Option<(PathBuf, TokenFile)>,
        salt: [u8; 32],
        verifier: Verifier,
        signer: Signer,
        issuer: String,
        audiences: Vec<String>,
        cache_ttl: std::time::Duration,
    ) -> Tokens {
        let (file_path, file) = match file {
            Some((p, f)) => (Some(p), Some(Arc::new(f))),
            None => (None, None),
        };
        Tokens {
            file: ArcSwapOption::new(file),
            file_path,
            salt,
            verifier,
            signer,
            issuer,
            audiences,
            cache: moka::future::Cache::builder()
                .max_capacity(if cache_ttl.is_zero() { 0 } else { 100_000 })
                .time_to_live(cache_ttl.max(std::time::Duration::from_millis(1)))
                .build(),
        }
    }

    /// Polls the token file once a second and swaps in a new table when it changes; a file
    /// that no longer parses keeps the old table and logs why.
    pub fn watch_file(self: &Arc<Self>) {
        let Some(path) = self.file_path.clone() else {
            return;
        };
        let tokens = self.clone();
        let file = path.clone();
        crate::reload::watch(path, "token file", move || {
            let bytes = std::fs::read(&file)?;
            let parsed = TokenFile::parse(&bytes, &file.display().to_string(), tokens.salt)?;
            tokens.file.store(Some(Arc::new(parsed)));
            Ok(())
        });
    }

    /// Runs the bearer-token authenticators in kube-apiserver's order (token file, then
    /// service-account tokens). `audiences` empty means the API audiences. `Ok(None)`: no
    /// authenticator recognised the token.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        token: &str,
        audiences: &[String],
    ) -> TokenOutcome {
        self.authenticate_detailed(store, token, audiences).await.0
    }

    /// As [`Tokens::authenticate`], also telling which authenticator answered
    /// (`token-file`, `jwt`) and whether a cached verdict was used.
    pub async fn authenticate_detailed(
        &self,
        store: &dyn Store,
        token: &str,
        audiences: &[String],
    ) -> (TokenOutcome, &'static str, bool) {
        if let Some(file) = self.file.load().as_ref()
            && let Some(user) = file.authenticate(token)
        {
            return (
                TokenOutcome::User(user, audiences_or(audiences, &self.audiences)),
                "token-file",
                false,
            );
        }
        let key = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(self.salt);
            h.update(token.as_bytes());
            for a in audiences {
                h.update([0]);
                h.update(a.as_bytes());
            }
            <[u8; 32]>::from(h.finalize())
        };
        if let Some((user, auds)) = self.cache.get(&key).await {
            return (TokenOutcome::User(user, auds), "jwt", true);
        }
        let outcome = self.verify_jwt(store, token, audiences).await;
        if let TokenOutcome::User(user, auds) = &outcome {
            self.cache.insert(key, (user.clone(), auds.clone())).await;
        }
        (outcome, "jwt", false)
    }

    async fn verify_jwt(
        &self,
        store: &dyn Store,
        token: &str,
        audiences: &[String],
    ) -> TokenOutcome {
        let now = now_seconds();
        match self.verifier.verify(token, now, audiences) {
            Ok(Some(v)) => {
                return match check_bindings(store, &v, token).await {
                    Ok(()) => TokenOutcome::User(v.user(), v.audiences.clone()),
                    Err(e) => TokenOutcome::Invalid(e),
                };
            }
            Ok(None) => {}
            Err(e) => return TokenOutcome::Invalid(e.to_string()),
        }
        let audiences = audiences_or(audiences, &self.audiences);
        match self.verifier.keys().verify_login(token, now, &audiences) {
            Ok(Some((user, auds))) => TokenOutcome::User(user, auds),
            Ok(None) => TokenOutcome::Invalid("invalid bearer token".to_owned()),
            Err(e) => TokenOutcome::Invalid(e.to_string()),
        }
    }

    /// Issues a login token (`POST /login`) for a user authenticated by LDAP: signed with the
    /// service-account signing key, issuer `portcullis/login`, valid for `ttl` seconds.
    pub fn issue_login(&self, user: &UserInfo, ttl: u64) -> Result<(String, u64), String> {
        let now = now_seconds();
        let mut user = user.clone();
        user.groups
            .retain(|g| g != portcullis_api::user::SYSTEM_AUTHENTICATED);
        let claims = json!({
            "iss": portcullis_authn::serviceaccount::LOGIN_ISSUER,
            "sub": user.username,
            "aud": self.audiences,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid::Uuid::new_v4().to_string(),
            "portcullis.dev/user": user,
        });
        let token = self
            .signer
            .sign_claims(&claims)
            .map_err(|e| e.to_string())?;
        Ok((token, now + ttl))
    }

    /// Forgets every cached JWT verdict: called after a ServiceAccount, Secret, Pod or Namespace
    /// changed, so a deleted binding invalidates its tokens at once rather than after the TTL.
    pub fn invalidate(&self) {
        self.cache.invalidate_all();
    }

    /// The OpenID discovery document of the issuer.
    pub fn openid_configuration(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/openid/v1/jwks", self.issuer.trim_end_matches('/')),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": self.verifier.keys().algorithms(),
        })
    }

    /// Signs a token for a TokenRequest.
    pub fn sign(&self, request: &TokenRequest) -> Result<String, String> {
        self.signer.sign(request).map_err(|e| e.to_string())
    }
}

fn audiences_or(asked: &[String], api: &[String]) -> Vec<String> {
    if asked.is_empty() {
        api.to_vec()
    } else {
        asked.to_vec()
    }
}

/// Seconds since the epoch.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn stored(
    store: &dyn Store,
    plural: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, String> {
    let resource =
        registry::lookup("", "v1", plural).ok_or_else(|| format!("{plural} are not registered"))?;
    let kv = store
        .get(&resource.key(Some(namespace), name))
        .await
        .map_err(|e| format!("looking up {plural} {namespace}/{name}: {e}"))?;
    kv.map(|kv| serde_json::from_slice(&kv.value).map_err(|e| e.to_string()))
        .transpose()
}

fn uid_of(v: &Value) -> &str {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The store checks kube-apiserver makes after a service-account token's signature and claims
/// are valid: the ServiceAccount, and the pod or secret the token is bound to, must exist with
/// the claimed uids; a legacy token must still be held by its secret.
async fn check_bindings(store: &dyn Store, v: &Verified, token: &str) -> Result<(), String> {
    let sa = stored(store, "serviceaccounts", &v.namespace, &v.name)
        .await?
        .ok_or_else(|| {
            format!(
                "service account {}/{} has been deleted",
                v.namespace, v.name
            )
        })?;
    if uid_of(&sa) != v.uid {
        return Err(format!(
            "service account UID ({}) does not match claim ({})",
            uid_of(&sa),
            v.uid
        ));
    }
    if let Some((name, uid)) = &v.pod {
        let pod = stored(store, "pods", &v.namespace, name)
            .await?
            .ok_or_else(|| "service account token has been invalidated".to_owned())?;
        if uid_of(&pod) != uid {
            return Err(format!(
                "pod UID ({}) does not match service account pod ref claim ({uid})",
                uid_of(&pod)
            ));
        }
    }
    if let Some((name, uid)) = &v.secret {
        let secret = stored(store, "secrets", &v.namespace, name)
            .await?
            .ok_or_else(|| "service account token has been invalidated".to_owned())?;
        if v.legacy {
            let held = secret
                .pointer("/data/token")
                .and_then(Value::as_str)
                .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok());
            if held.as_deref() != Some(token.as_bytes()) {
                return Err("service account token has been invalidated".to_owned());
            }
        } else if uid_of(&secret) != uid {
            return Err(format!(
                "secret UID ({}) does not match service account secret ref claim ({uid})",
                uid_of(&secret)
            ));
        }
    }
    Ok(())
}
