//! Service-account tokens: verifying bound and legacy JWTs as kube-apiserver does, signing
//! bound tokens for TokenRequest, and the issuer's public keys as a JWK set.
//!
//! This module checks signature, issuer, audiences and times; whether the ServiceAccount (and
//! the bound pod or secret) still exists with the claimed uid needs the store, so the caller
//! does that with the [`Verified`] claims, at the edge. Keys are chosen only from the configured
//! set (`kid` is an opaque map key, `jku`/`x5u` are never followed); `none`, HMAC and algorithms
//! that do not fit the key type are refused.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::UserInfo;
use crate::token_file::MAX_TOKEN_BYTES;

/// The issuer of legacy (secret-based) service-account tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// go-jose's default leeway, which kube-apiserver uses for every time check.
pub const LEEWAY_SECONDS: u64 = 60;

/// Why a service-account token was refused. Messages are kube-apiserver's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No key of the set can verify it.
    #[error("invalid signature, no keys found")]
    NoKeys,
    /// The signature, header or encoding is wrong.
    #[error("square/go-jose: error in cryptographic primitive")]
    Signature,
    /// The algorithm is not acceptable for any key.
    #[error("token signed with algorithm {0:?}, which no configured key accepts")]
    Algorithm(String),
    /// Expired beyond the leeway.
    #[error("service account token has expired")]
    Expired,
    /// `nbf` in the future beyond the leeway.
    #[error("service account token is not valid yet")]
    NotYetValid,
    /// `iat` in the future beyond the leeway.
    #[error("service account token is issued in the future")]
    IssuedInFuture,
    /// The audiences do not intersect.
    #[error("token audiences {token:?} is invalid for the target audiences {target:?}")]
    Audience {
        /// The token's audiences.
        token: String,
        /// The accepted audiences.
        target: String,
    },
    /// Required claims are missing or malformed.
    #[error("service account token claims could not be validated: {0}")]
    Claims(String),
    /// A key file could not be used.
    #[error("service account key: {0}")]
    Key(String),
}

/// The identity and bindings a verified token claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// Name of the ServiceAccount.
    pub name: String,
    /// Claimed uid of the ServiceAccount.
    pub uid: String,
    /// Bound pod (name, uid).
    pub pod: Option<(String, String)>,
    /// Bound secret (name, uid); for legacy tokens, the token's secret (uid empty).
    pub secret: Option<(String, String)>,
    /// Bound node (name, uid).
    pub node: Option<(String, String)>,
    /// Token id.
    pub jti: Option<String>,
    /// Whether this is a legacy secret-based token.
    pub legacy: bool,
    /// The audiences the token was accepted for.
    pub audiences: Vec<String>,
}

impl Verified {
    /// The user the token authenticates as (before `system:authenticated` is added).
    pub fn user(&self) -> UserInfo {
        let mut user = UserInfo {
            username: format!("system:serviceaccount:{}:{}", self.namespace, self.name),
            uid: self.uid.clone(),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{}", self.namespace),
            ],
            ..UserInfo::default()
        };
        if let Some((name, uid)) = &self.pod {
            user.extra.insert(
                "authentication.kubernetes.io/pod-name".into(),
                vec![name.clone()],
            );
            user.extra.insert(
                "authentication.kubernetes.io/pod-uid".into(),
                vec![uid.clone()],
            );
        }
        if let Some((name, uid)) = &self.node {
            user.extra.insert(
                "authentication.kubernetes.io/node-name".into(),
                vec![name.clone()],
            );
            user.extra.insert(
                "authentication.kubernetes.io/node-uid".into(),
                vec![uid.clone()],
            );
        }
        if let Some(jti) = &self.jti {
            user.extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                vec![format!("JTI={jti}")],
            );
        }
        user
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Rsa,
    P256,
    P384,
}

impl Family {
    fn accepts(self, alg: Algorithm) -> bool {
        match self {
            Family::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            Family::P256 => alg == Algorithm::ES256,
            Family::P384 => alg == Algorithm::ES384,
        }
    }
}

struct Key {
    kid: String,
    family: Family,
    decoding: DecodingKey,
    jwk: Value,
}

/// The public keys service-account tokens are verified with.
pub struct KeySet {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.kid))
            .finish()
    }
}

impl KeySet {
    /// Builds a key set from DER-encoded SubjectPublicKeyInfo structures (RSA, ECDSA P-256 or
    /// P-384).
    pub fn from_spki_ders(ders: &[Vec<u8>]) -> Result<KeySet, TokenError> {
        let keys = ders
            .iter()
            .map(|d| key_from_spki(d))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(TokenError::Key("no public key given".into()));
        }
        Ok(KeySet { keys })
    }

    /// The JWK set served at `/openid/v1/jwks`.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }

    /// The algorithms the keys sign with, sorted, for the discovery document.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<&'static str> = self
            .keys
            .iter()
            .map(|k| match k.family {
                Family::Rsa => "RS256",
                Family::P256 => "ES256",
                Family::P384 => "ES384",
            })
            .collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    }
}

/// The kid kube-apiserver gives a key: unpadded base64url SHA-256 of its PKIX DER.
pub fn key_id(spki_der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(spki_der))
}

fn key_from_spki(der: &[u8]) -> Result<Key, TokenError> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(der)
        .map_err(|e| TokenError::Key(format!("not a public key: {e}")))?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    let kid = key_id(der);
    let parsed = spki
        .parsed()
        .map_err(|e| TokenError::Key(format!("unsupported public key: {e}")))?;
    let (family, decoding, jwk) = match parsed {
        PublicKey::RSA(rsa) => (
            Family::Rsa,
            DecodingKey::from_rsa_pem(pem.as_bytes())
                .map_err(|e| TokenError::Key(e.to_string()))?,
            json!({"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256",
                   "n": b64(strip_zero(rsa.modulus)), "e": b64(strip_zero(rsa.exponent))}),
        ),
        PublicKey::EC(point) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            let (family, crv, alg, size) = match curve.as_str() {
                "1.2.840.10045.3.1.7" => (Family::P256, "P-256", "ES256", 32),
                "1.3.132.0.34" => (Family::P384, "P-384", "ES384", 48),
                other => return Err(TokenError::Key(format!("unsupported EC curve {other}"))),
            };
            let data = point.data();
            let (x, y) = match data.split_first() {
                Some((4, rest)) if rest.len() == 2 * size => rest.split_at(size),
                _ => {
                    return Err(TokenError::Key(
                        "EC public key is not an uncompressed point".into(),
                    ));
                }
            };
            (
                family,
                DecodingKey::from_ec_pem(pem.as_bytes())
                    .map_err(|e| TokenError::Key(e.to_string()))?,
                json!({"use": "sig", "kty": "EC", "kid": kid, "crv": crv, "alg": alg, "x": b64(x), "y": b64(y)}),
            )
        }
        _ => {
            return Err(TokenError::Key(
                "only RSA and ECDSA keys are supported".into(),
            ));
        }
    };
    Ok(Key {
        kid,
        family,
        decoding,
        jwk,
    })
}

fn strip_zero(b: &[u8]) -> &[u8] {
    match b.split_first() {
        Some((0, rest)) if !rest.is_empty() => rest,
        _ => b,
    }
}

/// The `iss` of a token, read without verifying anything, only to route it to the authenticator
/// that owns it (never to choose trust). `None` for anything that is not a bounded three-part
/// JWS with a JSON payload.
fn peek_issuer(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_BYTES || token.starts_with('{') {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Peek>(&bytes).ok().map(|p| p.iss)
}

/// Verifies service-account tokens for a set of issuers and API audiences.
#[derive(Debug)]
pub struct Verifier {
    keys: KeySet,
    issuers: Vec<String>,
    api_audiences: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Peek {
    #[serde(default)]
    iss: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(
        rename = "kubernetes.io",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    kubernetes: Option<Value>,
    #[serde(
        rename = "kubernetes.io/serviceaccount/namespace",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    legacy_namespace: Option<String>,
    #[serde(
        rename = "kubernetes.io/serviceaccount/secret.name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    legacy_secret: Option<String>,
    #[serde(
        rename = "kubernetes.io/serviceaccount/service-account.name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    legacy_name: Option<String>,
    #[serde(
        rename = "kubernetes.io/serviceaccount/service-account.uid",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    legacy_uid: Option<String>,
}

impl Verifier {
    /// A verifier accepting tokens of `issuers` (plus legacy tokens) for `api_audiences`.
    pub fn new(keys: KeySet, issuers: Vec<String>, api_audiences: Vec<String>) -> Self {
        Verifier {
            keys,
            issuers,
            api_audiences,
        }
    }

    /// The keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Verifies `token` at `now` (seconds since the epoch) for `audiences` (the API audiences
    /// when empty). `Ok(None)` means "not a token of this issuer": the next authenticator may try.
    pub fn verify(
        &self,
        token: &str,
        now: u64,
        audiences: &[String],
    ) -> Result<Option<Verified>, TokenError> {
        let Some(iss) = peek_issuer(token) else {
            return Ok(None);
        };
        let legacy = iss == LEGACY_ISSUER;
        if !legacy && !self.issuers.contains(&iss) {
            return Ok(None);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Signature)?;
        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) => self.keys.keys.iter().filter(|k| &k.kid == kid).collect(),
            None => self.keys.keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(TokenError::NoKeys);
        }
        let usable: Vec<&Key> = candidates
            .into_iter()
            .filter(|k| k.family.accepts(header.alg))
            .collect();
        if usable.is_empty() {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[iss.as_str()]);
        let mut claims = None;
        for key in usable {
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    continue;
                }
                Err(e) => return Err(TokenError::Claims(e.to_string())),
            }
        }
        let claims = claims.ok_or(TokenError::Signature)?;
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let leeway = LEEWAY_SECONDS as i64;
        if !legacy {
            match claims.exp {
                Some(exp) if now > exp.saturating_add(leeway) => return Err(TokenError::Expired),
                Some(_) => {}
                None => return Err(TokenError::Claims("exp is required".into())),
            }
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(TokenError::NotYetValid);
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(leeway))
        {
            return Err(TokenError::IssuedInFuture);
        }
        let token_aud: Vec<String> = match &claims.aud {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(_) => {
                return Err(TokenError::Claims(
                    "aud must be a string or a list of strings".into(),
                ));
            }
        };
        let target: &[String] = if audiences.is_empty() {
            &self.api_audiences
        } else {
            audiences
        };
        let accepted: Vec<String> = if token_aud.is_empty() {
            target.to_vec()
        } else {
            let both: Vec<String> = token_aud
                .iter()
                .filter(|a| target.contains(a))
                .cloned()
                .collect();
            if both.is_empty() {
                return Err(TokenError::Audience {
                    token: token_aud.join(","),
                    target: target.join(","),
                });
            }
            both
        };
        let mut verified = if legacy {
            let (Some(namespace), Some(secret), Some(name), Some(uid)) = (
                claims.legacy_namespace.clone(),
                claims.legacy_secret.clone(),
                claims.legacy_name.clone(),
                claims.legacy_uid.clone(),
            ) else {
                return Err(TokenError::Claims(
                    "legacy token is missing service account claims".into(),
                ));
            };
            if claims.sub != format!("system:serviceaccount:{namespace}:{name}") {
                return Err(TokenError::Claims(
                    "sub does not match the service account claims".into(),
                ));
            }
            Verified {
                namespace,
                name,
                uid,
                pod: None,
                secret: Some((secret, String::new())),
                node: None,
                jti: None,
                legacy: true,
                audiences: Vec::new(),
            }
        } else {
            let k = claims.kubernetes.clone().unwrap_or(Value::Null);
            let s = |p: &str| k.pointer(p).and_then(Value::as_str).map(str::to_owned);
            let pair =
                |kind: &str| Some((s(&format!("/{kind}/name"))?, s(&format!("/{kind}/uid"))?));
            let (Some(namespace), Some(name), Some(uid)) = (
                s("/namespace"),
                s("/serviceaccount/name"),
                s("/serviceaccount/uid"),
            ) else {
                return Err(TokenError::Claims(
                    "kubernetes.io claims are missing".into(),
                ));
            };
            if claims.sub != format!("system:serviceaccount:{namespace}:{name}") {
                return Err(TokenError::Claims(
                    "sub does not match the service account claims".into(),
                ));
            }
            Verified {
                namespace,
                name,
                uid,
                pod: pair("pod"),
                secret: pair("secret"),
                node: pair("node"),
                jti: claims.jti.clone(),
                legacy: false,
                audiences: Vec::new(),
            }
        };
        verified.audiences = accepted;
        Ok(Some(verified))
    }
}

/// The issuer of the gateway's own login tokens (`POST /login`).
pub const LOGIN_ISSUER: &str = "portcullis/login";

impl KeySet {
    /// Verifies a login token the gateway issued (`POST /login`): signature by one of the keys,
    /// issuer [`LOGIN_ISSUER`], not expired (60 s leeway), audiences intersecting `audiences`.
    /// `Ok(None)`: not a login token.
    pub fn verify_login(
        &self,
        token: &str,
        now: u64,
        audiences: &[String],
    ) -> Result<Option<(UserInfo, Vec<String>)>, TokenError> {
        if peek_issuer(token).as_deref() != Some(LOGIN_ISSUER) {
            return Ok(None);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Signature)?;
        let key = match &header.kid {
            Some(kid) => self.keys.iter().find(|k| &k.kid == kid),
            None => None,
        }
        .ok_or(TokenError::NoKeys)?;
        if !key.family.accepts(header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_aud = false;
        // Times are checked below against the `now` the caller passes, not the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.set_issuer(&[LOGIN_ISSUER]);
        let data = jsonwebtoken::decode::<Value>(token, &key.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::Signature,
                _ => TokenError::Claims(e.to_string()),
            },
        )?;
        let claims = data.claims;
        let null = Value::Null;
        let field = |k: &str| claims.get(k).unwrap_or(&null);
        let late = |t: &Value| {
            t.as_u64()
                .is_some_and(|t| t > now.saturating_add(LEEWAY_SECONDS))
        };
        if field("exp")
            .as_u64()
            .is_none_or(|exp| now > exp.saturating_add(LEEWAY_SECONDS))
        {
            return Err(TokenError::Expired);
        }
        if late(field("nbf")) {
            return Err(TokenError::NotYetValid);
        }
        if late(field("iat")) {
            return Err(TokenError::IssuedInFuture);
        }
        let token_aud: Vec<String> = field("aud")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let accepted: Vec<String> = token_aud
            .iter()
            .filter(|a| audiences.contains(a))
            .cloned()
            .collect();
        if accepted.is_empty() {
            return Err(TokenError::Audience {
                token: token_aud.join(","),
                target: audiences.join(","),
            });
        }
        let user: UserInfo = serde_json::from_value(field("portcullis.dev/user").clone())
            .map_err(|e| TokenError::Claims(format!("login token user: {e}")))?;
        if user.username.is_empty() || Some(user.username.as_str()) != field("sub").as_str() {
            return Err(TokenError::Claims(
                "login token user does not match sub".into(),
            ));
        }
        Ok(Some((user, accepted)))
    }
}

/// Signs bound service-account tokens (TokenRequest).
pub struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What a bound token says, for [`Signer::sign`].
#[derive(Clone, Debug, Default)]
pub struct TokenRequest {
    /// Issuer.
    pub issuer: String,
    /// Audiences.
    pub audiences: Vec<String>,
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// Name of the ServiceAccount.
    pub name: String,
    /// Uid of the ServiceAccount.
    pub uid: String,
    /// Bound object: `pod`, `secret` or `node`, with name and uid.
    pub bound: Option<(String, String, String)>,
    /// Issued at (seconds since the epoch).
    pub now: u64,
    /// Lifetime in seconds.
    pub expiration_seconds: u64,
    /// Token id.
    pub jti: String,
}

impl Signer {
    /// A signer from a PKCS#8 PEM private key (ECDSA P-256 or RSA) whose public key has
    /// `spki_der`.
    pub fn from_pkcs8_pem(pem: &[u8], spki_der: &[u8]) -> Result<Signer, TokenError> {
        let (_, spki) =
            SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| TokenError::Key(e.to_string()))?;
        let (alg, key) = match spki.parsed().map_err(|e| TokenError::Key(e.to_string()))? {
            PublicKey::RSA(_) => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(pem).map_err(|e| TokenError::Key(e.to_string()))?,
            ),
            PublicKey::EC(_) => (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(pem).map_err(|e| TokenError::Key(e.to_string()))?,
            ),
            _ => {
                return Err(TokenError::Key(
                    "only RSA and ECDSA signing keys are supported".into(),
                ));
            }
        };
        Ok(Signer {
            kid: key_id(spki_der),
            alg,
            key,
        })
    }

    /// Signs arbitrary claims with this key (the gateway's own login tokens).
    pub fn sign_claims(&self, claims: &Value) -> Result<String, TokenError> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| TokenError::Key(e.to_string()))
    }

    /// Signs a bound token.
    pub fn sign(&self, req: &TokenRequest) -> Result<String, TokenError> {
        let now = i64::try_from(req.now).unwrap_or(i64::MAX);
        let exp = now.saturating_add(i64::try_from(req.expiration_seconds).unwrap_or(i64::MAX));
        let mut k = json!({
            "namespace": req.namespace,
            "serviceaccount": {"name": req.name, "uid": req.uid},
        });
        if let (Some((kind, name, uid)), Some(map)) = (&req.bound, k.as_object_mut()) {
            map.insert(kind.clone(), json!({"name": name, "uid": uid}));
        }
        let claims = Claims {
            iss: req.issuer.clone(),
            sub: format!("system:serviceaccount:{}:{}", req.namespace, req.name),
            aud: Some(json!(req.audiences)),
            exp: Some(exp),
            nbf: Some(now),
            iat: Some(now),
            jti: Some(req.jti.clone()),
            kubernetes: Some(k),
            legacy_namespace: None,
            legacy_secret: None,
            legacy_name: None,
            legacy_uid: None,
        };
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| TokenError::Key(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
