//! Zero-config PKI: the data directory `portcullis serve` creates on first start.
//!
//! With no TLS flags, the gateway makes (once) a CA, a serving certificate for the loopback
//! names, the host name and every `--tls-san`, an admin client certificate (CN
//! `portcullis-admin`, O `system:masters`) and an `admin.kubeconfig` that points kubectl at the
//! server. Later starts reuse them; the serving certificate is re-issued only when a requested
//! name is missing from it. Private keys and the kubeconfig are written 0600, atomically.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The user name of the generated admin certificate.
pub const ADMIN_USER: &str = "portcullis-admin";

/// Paths of the PKI material the server uses.
#[derive(Clone, Debug)]
pub struct Pki {
    /// Serving certificate chain (PEM).
    pub serving_cert: PathBuf,
    /// Serving private key (PEM).
    pub serving_key: PathBuf,
    /// CA bundle that client certificates are verified against (PEM).
    pub client_ca: PathBuf,
    /// The admin kubeconfig, when the data directory made one.
    pub admin_kubeconfig: Option<PathBuf>,
}

/// Makes sure the data directory holds a CA, a serving certificate covering `sans`, an admin
/// client certificate and a kubeconfig for `server_url`; creates what is missing.
pub fn bootstrap(data_dir: &Path, sans: &[String], server_url: &str) -> Result<Pki> {
    fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory `{}`", data_dir.display()))?;
    restrict_dir(data_dir)?;
    let ca_cert = data_dir.join("ca.crt");
    let ca_key = data_dir.join("ca.key");
    if !ca_cert.exists() || !ca_key.exists() {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn("portcullis-ca", None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let cert = params.self_signed(&key)?;
        write_secret(&ca_key, key.serialize_pem().as_bytes())?;
        write_file(&ca_cert, cert.pem().as_bytes(), 0o644)?;
    }
    let ca_key_pem =
        fs::read_to_string(&ca_key).with_context(|| format!("reading `{}`", ca_key.display()))?;
    let ca_cert_pem =
        fs::read_to_string(&ca_cert).with_context(|| format!("reading `{}`", ca_cert.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, KeyPair::from_pem(&ca_key_pem)?)
        .with_context(|| format!("loading CA `{}`", ca_cert.display()))?;

    let serving_cert = data_dir.join("serving.crt");
    let serving_key = data_dir.join("serving.key");
    if !serving_key.exists() || !covers(&serving_cert, sans)? {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn("portcullis", None);
        params.subject_alt_names = sans.iter().map(|s| san(s)).collect::<Result<_>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let cert = params.signed_by(&key, &issuer)?;
        write_secret(&serving_key, key.serialize_pem().as_bytes())?;
        write_file(&serving_cert, cert.pem().as_bytes(), 0o644)?;
    }

    let admin_cert = data_dir.join("admin.crt");
    let admin_key = data_dir.join("admin.key");
    if !admin_cert.exists() || !admin_key.exists() {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn(ADMIN_USER, Some("system:masters"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let cert = params.signed_by(&key, &issuer)?;
        write_secret(&admin_key, key.serialize_pem().as_bytes())?;
        write_file(&admin_cert, cert.pem().as_bytes(), 0o644)?;
    }

    let kubeconfig = data_dir.join("admin.kubeconfig");
    let b64 = |p: &Path| -> Result<String> {
        Ok(base64::engine::general_purpose::STANDARD
            .encode(fs::read(p).with_context(|| format!("reading `{}`", p.display()))?))
    };
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: portcullis\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\nusers:\n- name: {ADMIN_USER}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: portcullis\n  context:\n    cluster: portcullis\n    user: {ADMIN_USER}\n    namespace: default\ncurrent-context: portcullis\n",
        ca = b64(&ca_cert)?,
        cert = b64(&admin_cert)?,
        key = b64(&admin_key)?,
    );
    write_secret(&kubeconfig, config.as_bytes())?;

    Ok(Pki {
        serving_cert,
        serving_key,
        client_ca: ca_cert,
        admin_kubeconfig: Some(kubeconfig),
    })
}

/// Issues a client certificate (CN `user`, O `group`) signed by the data directory's CA, for
/// callers such as a kube-apiserver using portcullis as a webhook. Returns (certificate PEM, key
/// PEM, CA PEM).
pub fn issue_client_certificate(
    data_dir: &Path,
    user: &str,
    group: Option<&str>,
) -> Result<(String, String, String)> {
    let ca_cert = data_dir.join("ca.crt");
    let ca_key = data_dir.join("ca.key");
    let ca_cert_pem = fs::read_to_string(&ca_cert).with_context(|| {
        format!(
            "reading `{}` (run `portcullis serve` once to create it)",
            ca_cert.display()
        )
    })?;
    let ca_key_pem =
        fs::read_to_string(&ca_key).with_context(|| format!("reading `{}`", ca_key.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, KeyPair::from_pem(&ca_key_pem)?)
        .with_context(|| format!("loading CA `{}`", ca_cert.display()))?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn(user, group);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem(), ca_cert_pem))
}

/// The service-account keys of [`service_account_keys`].
#[derive(Debug)]
pub struct ServiceAccountKeys {
    /// The signing key, PKCS#8 PEM.
    pub signing_pem: Vec<u8>,
    /// The signing key's public key, SubjectPublicKeyInfo DER.
    pub signing_spki: Vec<u8>,
    /// Every verification key (the signing key's first), SubjectPublicKeyInfo DER.
    pub verification_spkis: Vec<Vec<u8>>,
}

/// Service-account token keys: the signing key (`--service-account-signing-key-file`, else
/// `sa.key` in the data directory, created on first start) and the public keys tokens are
/// verified with (the signing key's plus every key of `--service-account-key-file`; PEM public
/// keys or private keys, several per file).
pub fn service_account_keys(
    data_dir: &Path,
    signing_key_file: Option<&Path>,
    key_files: &[PathBuf],
) -> Result<ServiceAccountKeys> {
    let signing_path = match signing_key_file {
        Some(p) => p.to_path_buf(),
        None => {
            let p = data_dir.join("sa.key");
            if !p.exists() {
                write_secret(&p, KeyPair::generate()?.serialize_pem().as_bytes())?;
            }
            p
        }
    };
    let signing_pem =
        fs::read(&signing_path).with_context(|| format!("reading `{}`", signing_path.display()))?;
    let signing = KeyPair::from_pem(
        std::str::from_utf8(&signing_pem).context("the signing key is not PEM text")?,
    )
    .with_context(|| format!("`{}` is not a PKCS#8 private key", signing_path.display()))?;
    let signing_spki = spki_der(&signing.public_key_pem())?;
    let mut all = vec![signing_spki.clone()];
    for file in key_files {
        let text =
            fs::read_to_string(file).with_context(|| format!("reading `{}`", file.display()))?;
        let mut found = 0;
        for block in pem_blocks(&text) {
            let der = if block.contains("PUBLIC KEY-----") {
                spki_der(&block)?
            } else if block.contains("PRIVATE KEY-----") {
                spki_der(
                    &KeyPair::from_pem(&block)
                        .with_context(|| format!("`{}`: unsupported private key", file.display()))?
                        .public_key_pem(),
                )?
            } else {
                continue;
            };
            found += 1;
            if !all.contains(&der) {
                all.push(der);
            }
        }
        if found == 0 {
            bail!(
                "--service-account-key-file `{}` holds no PEM key",
                file.display()
            );
        }
    }
    Ok(ServiceAccountKeys {
        signing_pem,
        signing_spki,
        verification_spkis: all,
    })
}

fn spki_der(pem: &str) -> Result<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    Ok(
        rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
            .context("not a PEM public key")?
            .as_ref()
            .to_vec(),
    )
}

fn pem_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(c) = current.as_mut() {
            c.push_str(line);
            c.push('\n');
        }
        if line.starts_with("-----END ")
            && let Some(c) = current.take()
        {
            out.push(c);
        }
    }
    out
}

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

fn san(s: &str) -> Result<SanType> {
    Ok(match s.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(
            s.try_into()
                .with_context(|| format!("invalid --tls-san `{s}`"))?,
        ),
    })
}

/// Whether the certificate at `path` exists and names every one of `sans`.
fn covers(path: &Path, sans: &[String]) -> Result<bool> {
    let Ok(pem) = fs::read(path) else {
        return Ok(false);
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
        bail!("`{}` is not a PEM certificate", path.display());
    };
    let cert = pem
        .parse_x509()
        .with_context(|| format!("`{}` is not a valid certificate", path.display()))?;
    let mut names = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(sans.iter().all(|s| {
        let canonical = s
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .unwrap_or_else(|_| s.clone());
        names.contains(&canonical)
    }))
}

fn restrict_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting `{}`", dir.display()))?;
    }
    Ok(())
}

/// Writes a file readable by the owner only.
fn write_secret(path: &Path, data: &[u8]) -> Result<()> {
    write_file(path, data, 0o600)
}

/// Writes `data` to a temporary file with `mode` and renames it into place, so a crash never
/// leaves a half-written key behind.
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("writing `{}`", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing `{}`", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_bootstrap_reuses_keys_and_adds_a_missing_san() {
        let dir = tempfile::tempdir().unwrap();
        let sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        bootstrap(dir.path(), &sans, "https://127.0.0.1:1").unwrap();
        let ca = fs::read(dir.path().join("ca.crt")).unwrap();
        let admin = fs::read(dir.path().join("admin.crt")).unwrap();
        let serving = fs::read(dir.path().join("serving.crt")).unwrap();
        bootstrap(dir.path(), &sans, "https://127.0.0.1:2").unwrap();
        assert_eq!(ca, fs::read(dir.path().join("ca.crt")).unwrap());
        assert_eq!(admin, fs::read(dir.path().join("admin.crt")).unwrap());
        assert_eq!(serving, fs::read(dir.path().join("serving.crt")).unwrap());
        let kubeconfig = fs::read_to_string(dir.path().join("admin.kubeconfig")).unwrap();
        assert!(kubeconfig.contains("server: https://127.0.0.1:2"));

        let more = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "gw.example".to_owned(),
        ];
        bootstrap(dir.path(), &more, "https://127.0.0.1:2").unwrap();
        assert_ne!(serving, fs::read(dir.path().join("serving.crt")).unwrap());
        assert!(covers(&dir.path().join("serving.crt"), &more).unwrap());
        assert_eq!(ca, fs::read(dir.path().join("ca.crt")).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn keys_and_kubeconfig_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        bootstrap(dir.path(), &["localhost".to_owned()], "https://localhost:1").unwrap();
        for f in ["ca.key", "serving.key", "admin.key", "admin.kubeconfig"] {
            let mode = fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
}
