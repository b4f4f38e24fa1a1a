//! Cost of one service-account JWT verification: [`Verifier::verify`] on a bound token that
//! [`Signer::sign`] made, with an ES256 key (ECDSA P-256, what the gateway generates for
//! `sa.key`) and an RS256 key (2048-bit RSA, what most clusters' `sa.key` is), and on an ES256
//! token whose signature was tampered with (refused).
//!
//! Run with `cargo bench -p portcullis-authn --bench jwt`. This is the work a TokenReview or a
//! bearer-token request pays when the JWT verdict cache misses (`--token-cache-ttl 0s`, a new
//! token, or a write that invalidated the cache), before the store lookups of the
//! ServiceAccount and the bound object, which are not part of this figure.
//!
//! Both keys are generated at start-up, offline: the ES256 one with `rcgen::KeyPair::generate`,
//! the RSA one with the `rsa` crate (the version jsonwebtoken's `rust_crypto` feature uses).
//! Every result is checked before it is measured: the valid tokens verify as their
//! ServiceAccount, the tampered one fails with [`TokenError::Signature`].

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_authn::serviceaccount::{KeySet, Signer, TokenError, TokenRequest, Verifier};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rustls_pki_types::pem::PemObject;

const ISS: &str = "https://kubernetes.default.svc.cluster.local";
/// The time tokens are issued at; they are verified 10 s later.
const NOW: u64 = 1_800_000_000;

/// A verifier for one key and a signer with the same key.
fn keyed(private_pem: &[u8], spki_der: &[u8]) -> (Verifier, Signer) {
    let verifier = Verifier::new(
        KeySet::from_spki_ders(&[spki_der.to_vec()]).expect("key set"),
        vec![ISS.into()],
        vec![ISS.into()],
    );
    let signer = Signer::from_pkcs8_pem(private_pem, spki_der).expect("signer");
    (verifier, signer)
}

fn es256() -> (Verifier, Signer) {
    let key = rcgen::KeyPair::generate().expect("ECDSA P-256 key");
    let spki =
        rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(key.public_key_pem().as_bytes())
            .expect("SPKI DER");
    keyed(key.serialize_pem().as_bytes(), spki.as_ref())
}

fn rs256() -> (Verifier, Signer) {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA 2048 key");
    let pem = key.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM");
    let spki = key.to_public_key().to_public_key_der().expect("SPKI DER");
    keyed(pem.as_bytes(), spki.as_bytes())
}

/// A bound token, as `kubectl create token builder -n team-a --bound-object-kind Pod` gets it.
fn bound_token(signer: &Signer) -> String {
    signer
        .sign(&TokenRequest {
            issuer: ISS.into(),
            audiences: vec![ISS.into()],
            namespace: "team-a".into(),
            name: "builder".into(),
            uid: "0d3f2c4e-8d7b-4b8e-9a53-7c1e2f1a9b10".into(),
            bound: Some((
                "pod".into(),
                "builder-7d9f8c6b5-x2x4q".into(),
                "5b2c1d7e-3f4a-4c6b-8e9d-0a1b2c3d4e5f".into(),
            )),
            now: NOW,
            expiration_seconds: 3600,
            jti: "2a6f1e0b-7c3d-4e5f-9a8b-1c2d3e4f5a6b".into(),
        })
        .expect("signing")
}

/// Checks that `token` verifies as team-a/builder, bound to its pod.
fn check_valid(verifier: &Verifier, token: &str, what: &str) {
    let v = verifier
        .verify(token, NOW + 10, &[])
        .unwrap_or_else(|e| panic!("{what}: refused: {e}"))
        .unwrap_or_else(|| panic!("{what}: not recognised as a token of {ISS}"));
    assert_eq!(
        (v.namespace.as_str(), v.name.as_str(), v.legacy),
        ("team-a", "builder", false),
        "{what}"
    );
    assert!(v.pod.is_some(), "{what}: the pod binding is missing");
}

/// `token` with one character of its signature changed: still well-formed base64url of the
/// right length, so the refusal comes from the signature check itself.
fn tamper(token: &str) -> String {
    let dot = token.rfind('.').expect("three parts");
    let mut bytes = token.as_bytes().to_vec();
    let i = dot + 11;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

fn verification(c: &mut Criterion) {
    let (es_verifier, es_signer) = es256();
    let (rs_verifier, rs_signer) = rs256();
    let es_token = bound_token(&es_signer);
    let rs_token = bound_token(&rs_signer);
    let es_bad = tamper(&es_token);
    check_valid(&es_verifier, &es_token, "ES256");
    check_valid(&rs_verifier, &rs_token, "RS256");
    match es_verifier.verify(&es_bad, NOW + 10, &[]) {
        Err(TokenError::Signature) => {}
        other => panic!("ES256 with a bad signature: expected a signature error, got {other:?}"),
    }
    eprintln!(
        "token sizes: ES256 {} bytes, RS256 {} bytes",
        es_token.len(),
        rs_token.len()
    );

    let mut g = c.benchmark_group("verify");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(50);
    g.bench_function("es256_valid", |b| {
        b.iter(|| es_verifier.verify(black_box(&es_token), NOW + 10, &[]))
    });
    g.bench_function("rs256_valid", |b| {
        b.iter(|| rs_verifier.verify(black_box(&rs_token), NOW + 10, &[]))
    });
    g.bench_function("es256_bad_signature", |b| {
        b.iter(|| es_verifier.verify(black_box(&es_bad), NOW + 10, &[]))
    });
    g.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
