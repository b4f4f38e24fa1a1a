//! The TLS front: rustls, TLS 1.2 and 1.3 only, HTTP/2 and HTTP/1.1 by ALPN.
//!
//! Like kube-apiserver, the server *requests* a client certificate but does not decide trust
//! during the handshake: the handshake checks only that the client holds the key of the
//! certificate it sent. Whether that certificate names a user is the x509 authenticator's call,
//! so a certificate from an unknown CA earns a 401 `Status`, not a broken connection.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Builds the server's TLS configuration from a certificate chain, its key, and the client CA
/// bundle whose subjects are sent as acceptable issuers.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca: &[CertificateDer<'static>],
) -> Result<rustls::ServerConfig> {
    let chain = read_certs(cert_file)?;
    let key = read_key(key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let hints = client_ca
        .iter()
        .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
        .map(|a| DistinguishedName::in_sequence(a.subject.as_ref()))
        .collect();
    let verifier = Arc::new(RequestClientCert {
        hints,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("selecting TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "serving certificate `{}` does not match its key",
                cert_file.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Reads every certificate of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading `{}`", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("`{}` is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("`{}` holds no certificate", path.display());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).with_context(|| format!("reading `{}`", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("`{}` is not a PEM private key file", path.display()))?
        .with_context(|| format!("`{}` holds no private key", path.display()))
}

/// Asks for a client certificate, checks proof of possession of its key, and leaves trust to
/// the authenticator.
#[derive(Debug)]
struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Trust is decided per request by the x509 authenticator (401 on failure).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The default crypto provider, installed once for the process.
pub fn install_provider() {
    let _ = CryptoProvider::install_default(rustls::crypto::ring::default_provider());
}
