use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;

const ISS: &str = "https://kubernetes.default.svc.cluster.local";
const NOW: u64 = 1_800_000_000;

struct Fixture {
    verifier: Verifier,
    signer: Signer,
    public_pem: String,
    private_pem: String,
}

fn fixture() -> Fixture {
    let key = rcgen::KeyPair::generate().unwrap();
    use rustls_pki_types::pem::PemObject;
    let spki =
        rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(key.public_key_pem().as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
    Fixture {
        verifier: Verifier::new(
            KeySet::from_spki_ders(std::slice::from_ref(&spki)).unwrap(),
            vec![ISS.into()],
            vec![ISS.into()],
        ),
        signer: Signer::from_pkcs8_pem(key.serialize_pem().as_bytes(), &spki).unwrap(),
        public_pem: key.public_key_pem(),
        private_pem: key.serialize_pem(),
    }
}

fn request() -> TokenRequest {
    TokenRequest {
        issuer: ISS.into(),
        audiences: vec![ISS.into()],
        namespace: "team-a".into(),
        name: "builder".into(),
        uid: "sa-uid".into(),
        bound: Some(("pod".into(), "p".into(), "pod-uid".into())),
        now: NOW,
        expiration_seconds: 3600,
        jti: "jti-1".into(),
    }
}

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn claims(exp: i64) -> serde_json::Value {
    json!({"iss": ISS, "sub": "system:serviceaccount:team-a:builder", "aud": [ISS], "exp": exp, "iat": NOW, "nbf": NOW,
           "kubernetes.io": {"namespace": "team-a", "serviceaccount": {"name": "builder", "uid": "sa-uid"}}})
}

#[test]
fn a_signed_token_verifies_as_its_service_account() {
    let f = fixture();
    let token = f.signer.sign(&request()).unwrap();
    let v = f.verifier.verify(&token, NOW + 10, &[]).unwrap().unwrap();
    let user = v.user();
    assert_eq!(user.username, "system:serviceaccount:team-a:builder");
    assert_eq!(user.uid, "sa-uid");
    assert_eq!(
        user.groups,
        ["system:serviceaccounts", "system:serviceaccounts:team-a"]
    );
    assert_eq!(user.extra["authentication.kubernetes.io/pod-name"], ["p"]);
    assert_eq!(
        user.extra["authentication.kubernetes.io/credential-id"],
        ["JTI=jti-1"]
    );
    assert_eq!(v.pod, Some(("p".into(), "pod-uid".into())));
    assert_eq!(v.audiences, [ISS]);
    let jwks = f.verifier.keys().jwks();
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
}

#[test]
fn time_checks_use_a_sixty_second_leeway() {
    let f = fixture();
    let token = f.signer.sign(&request()).unwrap();
    assert!(
        f.verifier
            .verify(&token, NOW + 3600 + 59, &[])
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        f.verifier.verify(&token, NOW + 3600 + 61, &[]),
        Err(TokenError::Expired)
    ));
    assert!(matches!(
        f.verifier.verify(&token, NOW - 120, &[]),
        Err(TokenError::NotYetValid)
    ));
    assert_eq!(
        f.verifier
            .verify(&token, NOW + 3700, &[])
            .unwrap_err()
            .to_string(),
        "service account token has expired"
    );
}

#[test]
fn issued_in_the_future_is_refused() {
    let f = fixture();
    let mut c = claims(NOW as i64 + 7200);
    c["iat"] = json!(NOW + 3600);
    c.as_object_mut().unwrap().remove("nbf");
    let key = EncodingKey::from_ec_pem(f.private_pem.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &c, &key).unwrap();
    assert!(matches!(
        f.verifier.verify(&token, NOW, &[]),
        Err(TokenError::IssuedInFuture)
    ));
    // Without a kid every key is tried; the same token within the leeway is fine.
    assert!(
        f.verifier
            .verify(&token, NOW + 3590, &[])
            .unwrap()
            .is_some()
    );
}

#[test]
fn audiences_must_intersect() {
    let f = fixture();
    let token = f.signer.sign(&request()).unwrap();
    let err = f
        .verifier
        .verify(&token, NOW, &["https://other".into()])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("token audiences \"{ISS}\" is invalid for the target audiences \"https://other\"")
    );
    assert!(
        f.verifier
            .verify(&token, NOW, &["https://other".into(), ISS.into()])
            .unwrap()
            .is_some()
    );
}

#[test]
fn another_issuer_is_not_ours_and_garbage_is_not_a_panic() {
    let f = fixture();
    let mut req = request();
    req.issuer = "https://elsewhere".into();
    let token = f.signer.sign(&req).unwrap();
    assert!(f.verifier.verify(&token, NOW, &[]).unwrap().is_none());
    for junk in [
        "",
        "a.b",
        "a.b.c.d",
        "{\"alg\":\"none\"}",
        "!!!.???.***",
        &"x".repeat(64 * 1024),
        "é.é.é",
    ] {
        assert!(
            f.verifier.verify(junk, NOW, &[]).unwrap_or(None).is_none(),
            "{junk:.20}"
        );
    }
}

#[test]
fn alg_none_and_hmac_with_the_public_key_are_refused() {
    let f = fixture();
    let payload = b64(&claims(NOW as i64 + 3600));
    for header in [json!({"alg": "none"}), json!({"alg": "none", "typ": "JWT"})] {
        for token in [
            format!("{}.{payload}.", b64(&header)),
            format!("{}.{payload}", b64(&header)),
        ] {
            let r = f.verifier.verify(&token, NOW, &[]);
            assert!(!matches!(r, Ok(Some(_))), "{token}: {r:?}");
        }
    }
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(NOW as i64 + 3600),
        &EncodingKey::from_secret(f.public_pem.as_bytes()),
    )
    .unwrap();
    assert!(matches!(
        f.verifier.verify(&hs, NOW, &[]),
        Err(TokenError::Algorithm(_))
    ));
}

#[test]
fn wrong_kid_and_tampered_payload_are_refused() {
    let f = fixture();
    let token = f.signer.sign(&request()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap(),
    )
    .unwrap();
    header["kid"] = json!("../../../../dev/null");
    let wrong_kid = format!("{}.{}.{}", b64(&header), parts[1], parts[2]);
    assert!(matches!(
        f.verifier.verify(&wrong_kid, NOW, &[]),
        Err(TokenError::NoKeys)
    ));
    let mut c = claims(NOW as i64 + 3600);
    c["kubernetes.io"]["serviceaccount"]["name"] = json!("admin");
    c["sub"] = json!("system:serviceaccount:team-a:admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
    assert!(matches!(
        f.verifier.verify(&tampered, NOW, &[]),
        Err(TokenError::Signature)
    ));
}

#[test]
fn login_tokens_verify_with_their_user_and_expire() {
    let f = fixture();
    let claims = |exp: u64, aud: &str| {
        json!({"iss": LOGIN_ISSUER, "sub": "alice", "aud": [aud], "iat": NOW, "nbf": NOW, "exp": exp,
               "portcullis.dev/user": {"username": "alice", "groups": ["devs"]}})
    };
    let token = f.signer.sign_claims(&claims(NOW + 3600, ISS)).unwrap();
    let (user, auds) = f
        .verifier
        .keys()
        .verify_login(&token, NOW, &[ISS.into()])
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            user.username.as_str(),
            user.groups.as_slice(),
            auds.as_slice()
        ),
        ("alice", &["devs".to_owned()][..], &[ISS.to_owned()][..])
    );
    assert!(matches!(
        f.verifier
            .keys()
            .verify_login(&token, NOW + 3700, &[ISS.into()]),
        Err(TokenError::Expired)
    ));
    assert!(matches!(
        f.verifier
            .keys()
            .verify_login(&token, NOW, &["other".into()]),
        Err(TokenError::Audience { .. })
    ));
    // A service-account token is not a login token, and the reverse.
    let sa = f.signer.sign(&request()).unwrap();
    assert!(
        f.verifier
            .keys()
            .verify_login(&sa, NOW, &[ISS.into()])
            .unwrap()
            .is_none()
    );
    assert!(f.verifier.verify(&token, NOW, &[]).unwrap().is_none());
    // sub must name the embedded user.
    let mut forged = claims(NOW + 3600, ISS);
    forged["sub"] = json!("root");
    let forged = f.signer.sign_claims(&forged).unwrap();
    assert!(
        f.verifier
            .keys()
            .verify_login(&forged, NOW, &[ISS.into()])
            .is_err()
    );
}

#[test]
fn legacy_secret_tokens_verify_without_exp_and_need_consistent_claims() {
    let f = fixture();
    let legacy = |sub: &str| {
        json!({"iss": LEGACY_ISSUER, "sub": sub,
               "kubernetes.io/serviceaccount/namespace": "team-a",
               "kubernetes.io/serviceaccount/secret.name": "builder-token-x",
               "kubernetes.io/serviceaccount/service-account.name": "builder",
               "kubernetes.io/serviceaccount/service-account.uid": "sa-uid"})
    };
    let token = f
        .signer
        .sign_claims(&legacy("system:serviceaccount:team-a:builder"))
        .unwrap();
    let v = f.verifier.verify(&token, NOW, &[]).unwrap().unwrap();
    assert!(v.legacy);
    assert_eq!(v.secret, Some(("builder-token-x".into(), String::new())));
    assert_eq!(
        v.audiences,
        [ISS],
        "a token without aud is for the API audiences"
    );
    let mismatched = f
        .signer
        .sign_claims(&legacy("system:serviceaccount:team-a:admin"))
        .unwrap();
    assert!(matches!(
        f.verifier.verify(&mismatched, NOW, &[]),
        Err(TokenError::Claims(_))
    ));
}
