//! Client-certificate authentication, as kube-apiserver's x509 authenticator does it.
//!
//! The peer's chain is verified against the client CA bundle with the `clientAuth` extended key
//! usage (a leaf without the EKU extension is accepted, one whose EKU list lacks `clientAuth` is
//! not), every certificate must be inside its validity window, and the identity is read from the
//! subject's attributes themselves: the common name is the user, each organization a group. The
//! printed form of a subject is never parsed, so a CN containing `, O=system:masters` stays a name.

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Authenticated, UserInfo};

/// The `extra` key carrying the credential id of a client certificate.
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";

/// Why a client certificate was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum X509Error {
    /// The CA bundle held no usable certificate.
    #[error("client CA bundle holds no certificate")]
    EmptyBundle,
    /// A certificate of the CA bundle could not be used as a trust anchor.
    #[error("client CA certificate {index} cannot be used as a trust anchor")]
    BadAnchor {
        /// Position of the certificate in the bundle.
        index: usize,
        /// What webpki said.
        #[source]
        source: webpki::Error,
    },
    /// The chain did not verify.
    #[error("verifying certificate {id} failed")]
    Verify {
        /// `SN=<serial>, SKID=<hex>, AKID=<hex>` of the leaf, as upstream names it.
        id: String,
        /// Why.
        #[source]
        source: webpki::Error,
    },
    /// The verified leaf could not be parsed to read its subject.
    #[error("client certificate subject cannot be read")]
    Subject,
}

/// Verifies client certificates against a CA bundle and maps them to users.
#[derive(Debug)]
pub struct X509Authenticator {
    anchors: Vec<TrustAnchor<'static>>,
}

impl X509Authenticator {
    /// Builds an authenticator trusting the given CA certificates (DER).
    pub fn new(ca_certs: &[CertificateDer<'_>]) -> Result<Self, X509Error> {
        if ca_certs.is_empty() {
            return Err(X509Error::EmptyBundle);
        }
        let anchors = ca_certs
            .iter()
            .enumerate()
            .map(|(index, der)| {
                webpki::anchor_from_trusted_cert(der)
                    .map(|a| a.to_owned())
                    .map_err(|source| X509Error::BadAnchor { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(X509Authenticator { anchors })
    }

    /// Authenticates the certificate chain a TLS client presented (leaf first) at time `now`.
    ///
    /// No chain means "not attempted"; a chain that fails verification is an error (the request
    /// gets 401); a verified certificate with an empty common name is "not attempted" too, as
    /// upstream.
    pub fn authenticate(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Authenticated, X509Error> {
        let Some((leaf_der, intermediates)) = chain.split_first() else {
            return Ok(Authenticated::NotAttempted);
        };
        let leaf =
            webpki::EndEntityCert::try_from(leaf_der).map_err(|source| X509Error::Verify {
                id: certificate_id(leaf_der),
                source,
            })?;
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|source| X509Error::Verify {
            id: certificate_id(leaf_der),
            source,
        })?;

        let (_, parsed) = X509Certificate::from_der(leaf_der).map_err(|_| X509Error::Subject)?;
        let subject = parsed.subject();
        let mut username = String::new();
        for cn in subject.iter_common_name() {
            username = cn.as_str().map_err(|_| X509Error::Subject)?.to_owned();
        }
        if username.is_empty() {
            return Ok(Authenticated::NotAttempted);
        }
        let groups = subject
            .iter_organization()
            .map(|o| {
                o.as_str()
                    .map(str::to_owned)
                    .map_err(|_| X509Error::Subject)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let digest = Sha256::digest(leaf_der.as_ref());
        let mut user = UserInfo {
            username,
            groups,
            ..UserInfo::default()
        };
        user.extra.insert(
            CREDENTIAL_ID_KEY.to_owned(),
            vec![format!("X509SHA256={}", hex(&digest))],
        );
        Ok(Authenticated::User(user))
    }
}

/// Names a certificate as upstream's error text does: serial, subject and authority key ids.
fn certificate_id(der: &CertificateDer<'_>) -> String {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return "SN=<unparseable>".to_owned();
    };
    let mut skid = String::new();
    let mut akid = String::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => skid = hex(k.0),
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                if let Some(k) = &a.key_identifier {
                    akid = hex(k.0);
                }
            }
            _ => {}
        }
    }
    format!("SN={}, SKID={skid}, AKID={akid}", cert.serial)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests;
