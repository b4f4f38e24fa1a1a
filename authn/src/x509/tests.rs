use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::*;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        issuer: Issuer::new(params, key),
        der: cert.der().clone(),
    }
}

fn leaf(
    ca: &Ca,
    cn: &str,
    orgs: &[&str],
    eku: Option<ExtendedKeyUsagePurpose>,
) -> CertificateDer<'static> {
    leaf_with(ca, cn, orgs, eku, |_| {})
}

fn leaf_with(
    ca: &Ca,
    cn: &str,
    orgs: &[&str],
    eku: Option<ExtendedKeyUsagePurpose>,
    tweak: impl FnOnce(&mut CertificateParams),
) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    if !cn.is_empty() {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    // rcgen keeps one value per attribute type; the second O goes in under its raw OID.
    for (i, o) in orgs.iter().enumerate() {
        let ty = if i == 0 {
            DnType::OrganizationName
        } else {
            DnType::CustomDnType(vec![2, 5, 4, 10])
        };
        params.distinguished_name.push(ty, *o);
    }
    if let Some(eku) = eku {
        params.extended_key_usages = vec![eku];
    }
    tweak(&mut params);
    params.signed_by(&key, &ca.issuer).unwrap().der().clone()
}

fn now() -> UnixTime {
    UnixTime::now()
}

#[test]
fn maps_common_name_to_user_and_organizations_to_groups() {
    let ca = ca("ca");
    let auth = X509Authenticator::new(std::slice::from_ref(&ca.der)).unwrap();
    let cert = leaf(
        &ca,
        "alice",
        &["dev", "ops"],
        Some(ExtendedKeyUsagePurpose::ClientAuth),
    );
    let Authenticated::User(user) = auth.authenticate(&[cert], now()).unwrap() else {
        panic!("expected a user");
    };
    assert_eq!(user.username, "alice");
    assert_eq!(user.groups, vec!["dev", "ops"]);
    let id = &user.extra[CREDENTIAL_ID_KEY][0];
    assert!(id.starts_with("X509SHA256=") && id.len() == 11 + 64, "{id}");
}

#[test]
fn accepts_a_leaf_without_extended_key_usage() {
    let ca = ca("ca");
    let auth = X509Authenticator::new(std::slice::from_ref(&ca.der)).unwrap();
    let cert = leaf(&ca, "bob", &[], None);
    assert!(
        matches!(auth.authenticate(&[cert], now()).unwrap(), Authenticated::User(u) if u.username == "bob")
    );
}

#[test]
fn rejects_a_leaf_whose_key_usage_lacks_client_auth() {
    let ca = ca("ca");
    let auth = X509Authenticator::new(std::slice::from_ref(&ca.der)).unwrap();
    let cert = leaf(&ca, "srv", &[], Some(ExtendedKeyUsagePurpose::ServerAuth));
    assert!(matches!(
        auth.authenticate(&[cert], now()),
        Err(X509Error::Verify { .. })
    ));
}

#[test]
fn rejects_a_certificate_from_another_ca() {
    let trusted = ca("trusted");
    let other = ca("other");
    let auth = X509Authenticator::new(std::slice::from_ref(&trusted.der)).unwrap();
    let cert = leaf(&other, "mallory", &["system:masters"], None);
    let err = auth.authenticate(&[cert], now()).unwrap_err();
    assert!(
        err.to_string().starts_with("verifying certificate SN="),
        "{err}"
    );
}

#[test]
fn rejects_an_expired_certificate() {
    let ca = ca("ca");
    let auth = X509Authenticator::new(std::slice::from_ref(&ca.der)).unwrap();
    let cert = leaf_with(&ca, "alice", &[], None, |p| {
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    });
    assert!(matches!(
        auth.authenticate(&[cert], now()),
        Err(X509Error::Verify { .. })
    ));
}

#[test]
fn empty_common_name_is_not_authenticated() {
    let ca = ca("ca");
    let auth = X509Authenticator::new(std::slice::from_ref(&ca.der)).unwrap();
    let cert = leaf(&ca, "", &["system:masters"], None);
    assert_eq!(
        auth.authenticate(&[cert], now()).unwrap(),
        Authenticated::NotAttempted
    );
}

#[test]
fn no_certificate_is_not_attempted() {
    let ca = ca("ca");
    let auth = X509Authenticator::new(&[ca.der]).unwrap();
    assert_eq!(
        auth.authenticate(&[], now()).unwrap(),
        Authenticated::NotAttempted
    );
}

#[test]
fn a_common_name_that_looks_like_a_subject_stays_a_name() {
    let ca = ca("ca");
    let auth = X509Authenticator::new(std::slice::from_ref(&ca.der)).unwrap();
    let cert = leaf(&ca, "eve, O=system:masters", &[], None);
    let Authenticated::User(user) = auth.authenticate(&[cert], now()).unwrap() else {
        panic!("expected a user");
    };
    assert_eq!(user.username, "eve, O=system:masters");
    assert!(user.groups.is_empty());
}

#[test]
fn garbage_bytes_are_an_error_not_a_panic() {
    let ca = ca("ca");
    let auth = X509Authenticator::new(&[ca.der]).unwrap();
    let junk = CertificateDer::from(vec![0x30, 0x82, 0xff, 0xff, 1, 2, 3]);
    assert!(auth.authenticate(&[junk], now()).is_err());
    assert!(X509Authenticator::new(&[]).is_err());
}
