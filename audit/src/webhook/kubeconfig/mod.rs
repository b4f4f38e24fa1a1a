//! The audit webhook's target, read from a kubeconfig-format file as kube-apiserver reads
//! `--audit-webhook-config-file`: the server URL, how to trust it, and how to authenticate to it.
//!
//! The context is `current-context`, or the only context when none is named (or, with no
//! contexts at all, the only cluster and the only user). Relative file paths are relative to
//! the kubeconfig file, as in client-go. Everything is read and checked once, at load: a bad
//! certificate, an unreadable key or an empty token file stops startup with an error naming the
//! field. Only the token file is read again later (at most once a minute, off the request path),
//! so a rotated projected token keeps working.
//!
//! What weakens security is refused or loud: `insecure-skip-tls-verify` is refused unless
//! [`KubeconfigOptions::dangerous_allow_insecure_skip_tls_verify`] is set; plain `http` is
//! allowed (Falco's receiver usually speaks it) with a warning, but never with a token or a
//! password unless the server is on the loopback interface. Entries this client cannot honour
//! (`exec`, `auth-provider`, impersonation, `proxy-url`, `tls-server-name`) are errors rather than
//! silently ignored. Redirects are never followed and proxy environment variables are ignored:
//! audit events go where the file says and nowhere else.

mod raw;

use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::{RequestBuilder, Url};
use serde_json::Value;

/// Where audit batches are POSTed, with the TLS client and credentials to do it. Built once
/// from a kubeconfig file; `Debug` shows no secret.
pub struct Endpoint {
    url: Url,
    client: reqwest::Client,
    credentials: Credentials,
}

/// Choices about a kubeconfig that only the operator can make.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KubeconfigOptions {
    /// Accept `insecure-skip-tls-verify: true`: the server's certificate is then not checked
    /// at all, and anyone on the path can read and drop the audit trail. Off by default.
    pub dangerous_allow_insecure_skip_tls_verify: bool,
}

/// Why an audit webhook kubeconfig was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeconfigError {
    /// The kubeconfig file, or a file it names, could not be read.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig file, or a file it names, is larger than [`MAX_FILE_BYTES`].
    #[error("`{}` is larger than the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// The document is not YAML or JSON.
    #[error("audit webhook kubeconfig is not valid YAML or JSON")]
    Syntax(#[source] serde_saphyr::Error),
    /// A field has the wrong type.
    #[error("audit webhook kubeconfig field `{field}`: {message}")]
    Decode {
        /// The field path, e.g. `clusters[0].cluster.insecure-skip-tls-verify`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No context could be chosen.
    #[error("audit webhook kubeconfig: {0}")]
    Context(String),
    /// A field has a value this client refuses.
    #[error("audit webhook kubeconfig field `{field}`: {message}")]
    Invalid {
        /// The field path, e.g. `users[0].user.client-key-data`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The TLS client could not be built from the certificates and key given (e.g. the key
    /// does not match the certificate).
    #[error("audit webhook kubeconfig: cannot build the TLS client")]
    Tls(#[source] reqwest::Error),
}

/// The largest kubeconfig, certificate, key or token file read.
pub const MAX_FILE_BYTES: usize = 1 << 20;

impl Endpoint {
    /// Reads a kubeconfig file (`--audit-webhook-config-file`).
    pub fn from_kubeconfig_file(
        path: &Path,
        options: KubeconfigOptions,
    ) -> Result<Endpoint, KubeconfigError> {
        let bytes = read_bounded(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Endpoint::from_kubeconfig_slice(&bytes, base, options)
    }

    /// Decodes a kubeconfig document; relative paths in it are taken from `base_dir`.
    pub fn from_kubeconfig_slice(
        bytes: &[u8],
        base_dir: &Path,
        options: KubeconfigOptions,
    ) -> Result<Endpoint, KubeconfigError> {
        if bytes.len() > MAX_FILE_BYTES {
            return Err(KubeconfigError::TooLarge {
                path: PathBuf::from("<kubeconfig>"),
                limit: MAX_FILE_BYTES,
            });
        }
        let doc: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_saphyr::from_slice(bytes).map_err(KubeconfigError::Syntax)?
        };
        if !doc.is_object() {
            return Err(KubeconfigError::Decode {
                field: ".".to_owned(),
                message: "a kubeconfig must be a mapping with clusters, users and contexts"
                    .to_owned(),
            });
        }
        let raw: raw::RawConfig =
            serde_path_to_error::deserialize(&doc).map_err(|e| KubeconfigError::Decode {
                field: e.path().to_string(),
                message: e.into_inner().to_string(),
            })?;
        let selected = raw::select(&raw)?;
        build(selected, base_dir, options)
    }

    /// The server URL, for log lines.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// A POST of `body` (an `EventList`) with the credentials applied.
    pub(super) fn post(&mut self, body: bytes::Bytes, timeout: Duration) -> RequestBuilder {
        let request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body);
        self.credentials.apply(request)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_str())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

// === credentials ===

/// How each request authenticates (besides a client certificate, which lives in the client).
enum Credentials {
    None,
    Token(Secret),
    TokenFile {
        path: PathBuf,
        token: Secret,
        read_at: Instant,
    },
    Basic {
        username: String,
        password: Secret,
    },
}

impl Credentials {
    fn apply(&mut self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Credentials::None => request,
            Credentials::Token(token) => request.bearer_auth(&token.0),
            Credentials::TokenFile {
                path,
                token,
                read_at,
            } => {
                if read_at.elapsed() >= TOKEN_FILE_REFRESH {
                    // Keep the last good token when the file is briefly missing or empty
                    // (a projected token being replaced), as client-go does.
                    match read_token_file(path) {
                        Ok(fresh) => *token = fresh,
                        Err(e) => tracing::warn!(
                            path = %path.display(),
                            error = %e,
                            "cannot re-read the audit webhook token file; using the previous token"
                        ),
                    }
                    *read_at = Instant::now();
                }
                request.bearer_auth(&token.0)
            }
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(&password.0))
            }
        }
    }

    fn sends_secret(&self) -> bool {
        !matches!(self, Credentials::None)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
            Credentials::TokenFile { path, .. } => f.debug_tuple("TokenFile").field(path).finish(),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// A token or password: never printed.
struct Secret(String);

fn read_token_file(path: &Path) -> Result<Secret, KubeconfigError> {
    let bytes = read_bounded(path)?;
    let text = String::from_utf8(bytes).map_err(|_| KubeconfigError::Invalid {
        field: "tokenFile".to_owned(),
        message: format!("`{}` is not UTF-8", path.display()),
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(KubeconfigError::Invalid {
            field: "tokenFile".to_owned(),
            message: format!("`{}` is empty", path.display()),
        });
    }
    Ok(Secret(token.to_owned()))
}

fn build(
    selected: raw::Selected<'_>,
    base_dir: &Path,
    options: KubeconfigOptions,
) -> Result<Endpoint, KubeconfigError> {
    let (ci, cluster) = selected.cluster;
    let cfield = |name: &str| format!("clusters[{ci}].cluster.{name}");
    let invalid = |field: String, message: &str| KubeconfigError::Invalid {
        field,
        message: message.to_owned(),
    };

    for (present, name) in [
        (cluster.tls_server_name.is_some(), "tls-server-name"),
        (cluster.proxy_url.is_some(), "proxy-url"),
    ] {
        if present {
            return Err(invalid(cfield(name), "not supported by the audit webhook"));
        }
    }
    if cluster.server.is_empty() {
        return Err(invalid(cfield("server"), "required"));
    }
    let url = Url::parse(&cluster.server).map_err(|e| KubeconfigError::Invalid {
        field: cfield("server"),
        message: format!("`{}` is not a URL: {e}", cluster.server),
    })?;
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => {
            return Err(KubeconfigError::Invalid {
                field: cfield("server"),
                message: format!("scheme `{other}` is not supported (want https or http)"),
            });
        }
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(cfield("server"), "the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            cfield("server"),
            "credentials in the URL are not allowed; use the user's username and password",
        ));
    }

    let ca = pem_source(
        base_dir,
        cluster.certificate_authority.as_deref(),
        cluster.certificate_authority_data.as_deref(),
        &cfield("certificate-authority"),
    )?;
    if cluster.insecure_skip_tls_verify {
        if ca.is_some() {
            return Err(invalid(
                cfield("insecure-skip-tls-verify"),
                "cannot be combined with a certificate authority",
            ));
        }
        if !options.dangerous_allow_insecure_skip_tls_verify {
            return Err(invalid(
                cfield("insecure-skip-tls-verify"),
                "refused: the server's certificate would not be checked (allow it explicitly \
                 to accept that)",
            ));
        }
    }

    let (identity, credentials) = match selected.user {
        None => (None, Credentials::None),
        Some((ui, user)) => user_credentials(ui, user, base_dir)?,
    };
    let ufield = |name: &str| match selected.user {
        Some((ui, _)) => format!("users[{ui}].user.{name}"),
        None => name.to_owned(),
    };

    if !https {
        if identity.is_some() {
            return Err(invalid(
                ufield("client-certificate"),
                "a client certificate needs an https server",
            ));
        }
        if credentials.sends_secret() && !is_loopback(&url) {
            return Err(KubeconfigError::Invalid {
                field: cfield("server"),
                message: format!(
                    "`{}` is plain http: a token or password would be sent in clear text \
                     (use https, or a server on localhost)",
                    url
                ),
            });
        }
        if ca.is_some() || cluster.insecure_skip_tls_verify {
            tracing::warn!(server = %url, "audit webhook server is plain http: its TLS settings are ignored");
        }
        tracing::warn!(
            server = %url,
            "audit webhook server is plain http: audit events travel unencrypted and unauthenticated"
        );
    }

    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .user_agent(concat!("portcullis-audit/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca {
        let certs =
            reqwest::Certificate::from_pem_bundle(&ca).map_err(|e| KubeconfigError::Invalid {
                field: cfield("certificate-authority"),
                message: format!("not a PEM certificate bundle: {e}"),
            })?;
        if certs.is_empty() {
            return Err(invalid(
                cfield("certificate-authority"),
                "contains no PEM certificate",
            ));
        }
        // Only the CA named trusts the server, as in client-go.
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if cluster.insecure_skip_tls_verify {
        tracing::warn!(
            server = %url,
            "insecure-skip-tls-verify: the audit webhook server's certificate is not checked"
        );
        builder = builder.danger_accept_invalid_certs(true);
    }
    if let Some(pem) = identity {
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| KubeconfigError::Invalid {
            field: ufield("client-key"),
            message: format!("not a PEM certificate and key: {e}"),
        })?;
        builder = builder.identity(identity);
    }
    let client = builder.build().map_err(KubeconfigError::Tls)?;
    Ok(Endpoint {
        url,
        client,
        credentials,
    })
}

/// The client certificate and key (concatenated PEM) and the header credentials.
fn user_credentials(
    ui: usize,
    user: &raw::RawUser,
    base_dir: &Path,
) -> Result<(Option<Vec<u8>>, Credentials), KubeconfigError> {
    let field = |name: &str| format!("users[{ui}].user.{name}");
    for (present, name) in [
        (user.exec.is_some(), "exec"),
        (user.auth_provider.is_some(), "auth-provider"),
        (user.impersonate.is_some(), "as"),
        (user.impersonate_groups.is_some(), "as-groups"),
    ] {
        if present {
            return Err(KubeconfigError::Invalid {
                field: field(name),
                message: "not supported by the audit webhook".to_owned(),
            });
        }
    }
    let cert = pem_source(
        base_dir,
        user.client_certificate.as_deref(),
        user.client_certificate_data.as_deref(),
        &field("client-certificate"),
    )?;
    let key = pem_source(
        base_dir,
        user.client_key.as_deref(),
        user.client_key_data.as_deref(),
        &field("client-key"),
    )?;
    let identity = match (cert, key) {
        (Some(mut cert), Some(key)) => {
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            Some(cert)
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(KubeconfigError::Invalid {
                field: field("client-key"),
                message: "required with client-certificate".to_owned(),
            });
        }
        (None, Some(_)) => {
            return Err(KubeconfigError::Invalid {
                field: field("client-certificate"),
                message: "required with client-key".to_owned(),
            });
        }
    };

    let token = nonempty(&user.token);
    let token_file = nonempty(&user.token_file);
    let username = nonempty(&user.username);
    let password = nonempty(&user.password);
    if (token.is_some() || token_file.is_some()) && (username.is_some() || password.is_some()) {
        return Err(KubeconfigError::Invalid {
            field: field("token"),
            message: "more than one authentication method (token and username/password); only one is allowed".to_owned(),
        });
    }
    let credentials = match (token, token_file) {
        (Some(_), Some(_)) => {
            return Err(KubeconfigError::Invalid {
                field: field("tokenFile"),
                message: "cannot be combined with token".to_owned(),
            });
        }
        (Some(token), None) => Credentials::Token(Secret(token.to_owned())),
        (None, Some(file)) => {
            let path = base_dir.join(file);
            let token = read_token_file(&path).map_err(|e| match e {
                KubeconfigError::Invalid { message, .. } => KubeconfigError::Invalid {
                    field: field("tokenFile"),
                    message,
                },
                other => other,
            })?;
            Credentials::TokenFile {
                path,
                token,
                read_at: Instant::now(),
            }
        }
        (None, None) => match (username, password) {
            (Some(username), password) => Credentials::Basic {
                username: username.to_owned(),
                password: Secret(password.unwrap_or_default().to_owned()),
            },
            (None, Some(_)) => {
                return Err(KubeconfigError::Invalid {
                    field: field("username"),
                    message: "required with password".to_owned(),
                });
            }
            (None, None) => Credentials::None,
        },
    };
    Ok((identity, credentials))
}

/// The PEM bytes of a `<name>` file or `<name>-data` base64 value (not both).
fn pem_source(
    base_dir: &Path,
    file: Option<&str>,
    data: Option<&str>,
    field: &str,
) -> Result<Option<Vec<u8>>, KubeconfigError> {
    let file = file.filter(|s| !s.is_empty());
    let data = data.filter(|s| !s.is_empty());
    match (file, data) {
        (Some(_), Some(_)) => Err(KubeconfigError::Invalid {
            field: format!("{field}-data"),
            message: format!("cannot be combined with `{field}`"),
        }),
        (Some(file), None) => read_bounded(&base_dir.join(file)).map(Some),
        (None, Some(data)) => {
            let compact: String = data.split_ascii_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| KubeconfigError::Invalid {
                    field: format!("{field}-data"),
                    message: format!("not base64: {e}"),
                })?;
            Ok(Some(bytes))
        }
        (None, None) => Ok(None),
    }
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, KubeconfigError> {
    let read_err = |source| KubeconfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(KubeconfigError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// How often a `tokenFile` is read again.
const TOKEN_FILE_REFRESH: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests;
