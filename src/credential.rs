//! `portcullis credential`: a kubectl exec credential plugin (`client.authentication.k8s.io/v1`)
//! for LDAP users.
//!
//! kubectl runs it with `KUBERNETES_EXEC_INFO` (the kubeconfig's exec entry needs
//! `provideClusterInfo: true`, so the server URL and CA arrive with it). It takes the user name
//! and password from `PORTCULLIS_USERNAME` / `PORTCULLIS_PASSWORD`, or asks on the terminal, calls
//! the gateway's `POST /login`, caches the token (0600, under the user's cache directory) until a
//! minute before it expires, and prints the ExecCredential.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Runs the plugin; prints the ExecCredential on stdout.
pub fn run() -> Result<i32> {
    let info = std::env::var("KUBERNETES_EXEC_INFO")
        .context("KUBERNETES_EXEC_INFO is not set: run me from kubectl (users[].user.exec)")?;
    let info: Value = serde_json::from_str(&info).context("KUBERNETES_EXEC_INFO is not JSON")?;
    let cluster = info
        .pointer("/spec/cluster")
        .context("set `provideClusterInfo: true` in the kubeconfig's exec entry")?;
    let server = cluster["server"]
        .as_str()
        .context("the cluster info has no server")?
        .trim_end_matches('/')
        .to_owned();
    let ca = match cluster["certificate-authority-data"].as_str() {
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .context("certificate-authority-data is not base64")?,
        ),
        None => None,
    };
    let username = match std::env::var("PORTCULLIS_USERNAME") {
        Ok(u) if !u.is_empty() => u,
        _ => prompt("LDAP user name: ")?,
    };
    let cache = cache_path(&server, &username);
    if let Some(cached) = read_cache(&cache) {
        println!("{cached}");
        return Ok(0);
    }
    let password = match std::env::var("PORTCULLIS_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => rpassword::prompt_password(format!("LDAP password for {username}: "))
            .context("reading the password")?,
    };
    if password.is_empty() {
        bail!("an empty password is not accepted");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = runtime.block_on(async {
        let mut client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(std::time::Duration::from_secs(30));
        if let Some(ca) = &ca {
            for cert in reqwest::Certificate::from_pem_bundle(ca)
                .context("certificate-authority-data is not PEM")?
            {
                client = client.add_root_certificate(cert);
            }
        }
        let response = client
            .build()?
            .post(format!("{server}/login"))
            .basic_auth(&username, Some(&password))
            .send()
            .await
            .with_context(|| format!("calling {server}/login"))?;
        let code = response.status();
        let text = response.text().await?;
        if !code.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or(text);
            bail!("login refused ({code}): {message}");
        }
        Ok::<_, anyhow::Error>(text)
    })?;
    let credential: Value = serde_json::from_str(&body).context("the login answer is not JSON")?;
    if credential
        .pointer("/status/token")
        .and_then(Value::as_str)
        .is_none()
    {
        bail!("the login answer holds no token");
    }
    let out = credential.to_string();
    write_cache(&cache, &out);
    println!("{out}");
    Ok(0)
}

fn prompt(text: &str) -> Result<String> {
    use std::io::Write;
    eprint!("{text}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the user name")?;
    Ok(line.trim().to_owned())
}

fn cache_path(server: &str, username: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let key = Sha256::digest(format!("{server}\n{username}").as_bytes());
    let name: String = key.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Some(base.join("portcullis").join(format!("login-{name}.json")))
}

/// A cached credential that is still good for more than a minute.
fn read_cache(path: &Option<PathBuf>) -> Option<String> {
    let text = std::fs::read_to_string(path.as_ref()?).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let expires = v.pointer("/status/expirationTimestamp")?.as_str()?;
    let expires: jiff::Timestamp = expires.parse().ok()?;
    (expires > jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60)).then_some(text)
}

fn write_cache(path: &Option<PathBuf>, text: &str) {
    let Some(path) = path else { return };
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    if let Ok(mut f) = opts.open(path) {
        use std::io::Write;
        let _ = f.write_all(text.as_bytes());
    }
}
