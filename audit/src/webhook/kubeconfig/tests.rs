use std::fs;

use base64::Engine as _;

use super::*;
use crate::webhook::test_support::Pki;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn load(yaml: &str) -> Result<Endpoint, KubeconfigError> {
    Endpoint::from_kubeconfig_slice(
        yaml.as_bytes(),
        Path::new("/nonexistent"),
        KubeconfigOptions::default(),
    )
}

/// A kubeconfig with one cluster, one user and one current context.
fn kubeconfig(cluster: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: falco\n  cluster:\n{cluster}\
         users:\n- name: apiserver\n  user:\n{user}\
         contexts:\n- name: default\n  context:\n    cluster: falco\n    user: apiserver\n\
         current-context: default\n"
    )
}

fn invalid_field(err: KubeconfigError) -> String {
    match err {
        KubeconfigError::Invalid { field, .. } | KubeconfigError::Decode { field, .. } => field,
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn loads_certificates_and_key_from_data_fields() {
    let pki = Pki::new();
    let yaml = kubeconfig(
        &format!(
            "    server: https://127.0.0.1:9443/k8s-audit\n    certificate-authority-data: {}\n",
            b64(&pki.ca_pem)
        ),
        &format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&pki.client_cert_pem),
            b64(&pki.client_key_pem)
        ),
    );
    let endpoint = load(&yaml).unwrap();
    assert_eq!(endpoint.url(), "https://127.0.0.1:9443/k8s-audit");
    assert!(matches!(endpoint.credentials, Credentials::None));
}

#[test]
fn reads_files_relative_to_the_kubeconfig() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    fs::create_dir(&certs).unwrap();
    fs::write(certs.join("ca.crt"), &pki.ca_pem).unwrap();
    fs::write(certs.join("client.crt"), &pki.client_cert_pem).unwrap();
    fs::write(certs.join("client.key"), &pki.client_key_pem).unwrap();
    fs::write(certs.join("token"), "  s3cret-token\n").unwrap();
    let yaml = kubeconfig(
        "    server: https://audit.example.com/\n    certificate-authority: certs/ca.crt\n",
        "    client-certificate: certs/client.crt\n    client-key: certs/client.key\n    tokenFile: certs/token\n",
    );
    let path = dir.path().join("webhook.kubeconfig");
    fs::write(&path, yaml).unwrap();
    let endpoint = Endpoint::from_kubeconfig_file(&path, KubeconfigOptions::default()).unwrap();
    match &endpoint.credentials {
        Credentials::TokenFile { path, token, .. } => {
            assert_eq!(path, &certs.join("token"));
            assert_eq!(token.0, "s3cret-token");
        }
        other => panic!("expected a token file, got {other:?}"),
    }
    let debug = format!("{endpoint:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
}

#[test]
fn a_token_and_basic_credentials_are_kept_secret_in_debug() {
    let e = load(&kubeconfig(
        "    server: https://audit.example.com/\n",
        "    token: abc.def\n",
    ))
    .unwrap();
    assert!(matches!(&e.credentials, Credentials::Token(t) if t.0 == "abc.def"));
    assert!(!format!("{e:?}").contains("abc.def"));

    let e = load(&kubeconfig(
        "    server: https://audit.example.com/\n",
        "    username: falco\n    password: hunter2\n",
    ))
    .unwrap();
    assert!(matches!(&e.credentials, Credentials::Basic { username, .. } if username == "falco"));
    assert!(!format!("{e:?}").contains("hunter2"));
}

#[test]
fn refuses_two_authentication_methods() {
    let err = load(&kubeconfig(
        "    server: https://audit.example.com/\n",
        "    token: abc\n    username: falco\n    password: x\n",
    ))
    .unwrap_err();
    assert_eq!(invalid_field(err), "users[0].user.token");

    let err = load(&kubeconfig(
        "    server: https://audit.example.com/\n",
        "    token: abc\n    tokenFile: /tmp/t\n",
    ))
    .unwrap_err();
    assert_eq!(invalid_field(err), "users[0].user.tokenFile");
}

#[test]
fn refuses_a_file_and_data_form_of_the_same_field() {
    let err = load(&kubeconfig(
        &format!(
            "    server: https://a.example/\n    certificate-authority: ca.crt\n    certificate-authority-data: {}\n",
            b64("x")
        ),
        "    {}\n",
    ))
    .unwrap_err();
    assert_eq!(
        invalid_field(err),
        "clusters[0].cluster.certificate-authority-data"
    );
}

#[test]
fn refuses_insecure_skip_tls_verify_unless_allowed() {
    let yaml = kubeconfig(
        "    server: https://audit.example.com/\n    insecure-skip-tls-verify: true\n",
        "    {}\n",
    );
    let err = load(&yaml).unwrap_err();
    let message = err.to_string();
    assert_eq!(
        invalid_field(err),
        "clusters[0].cluster.insecure-skip-tls-verify"
    );
    assert!(message.contains("refused"), "{message}");

    let allowed = KubeconfigOptions {
        dangerous_allow_insecure_skip_tls_verify: true,
    };
    Endpoint::from_kubeconfig_slice(yaml.as_bytes(), Path::new("."), allowed).unwrap();

    let pki = Pki::new();
    let with_ca = kubeconfig(
        &format!(
            "    server: https://audit.example.com/\n    insecure-skip-tls-verify: true\n    certificate-authority-data: {}\n",
            b64(&pki.ca_pem)
        ),
        "    {}\n",
    );
    let err =
        Endpoint::from_kubeconfig_slice(with_ca.as_bytes(), Path::new("."), allowed).unwrap_err();
    assert_eq!(
        invalid_field(err),
        "clusters[0].cluster.insecure-skip-tls-verify"
    );
}

#[test]
fn plain_http_is_allowed_but_not_with_a_secret_off_loopback() {
    load(&kubeconfig(
        "    server: http://falco.falco.svc:9765/k8s-audit\n",
        "    {}\n",
    ))
    .unwrap();
    load(&kubeconfig(
        "    server: http://localhost:9765/\n",
        "    token: abc\n",
    ))
    .unwrap();
    load(&kubeconfig(
        "    server: http://[::1]:9765/\n",
        "    token: abc\n",
    ))
    .unwrap();
    let err = load(&kubeconfig(
        "    server: http://falco.falco.svc:9765/\n",
        "    username: u\n    password: p\n",
    ))
    .unwrap_err();
    assert_eq!(invalid_field(err), "clusters[0].cluster.server");

    let pki = Pki::new();
    let err = load(&kubeconfig(
        "    server: http://localhost:9765/\n",
        &format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&pki.client_cert_pem),
            b64(&pki.client_key_pem)
        ),
    ))
    .unwrap_err();
    assert_eq!(invalid_field(err), "users[0].user.client-certificate");
}

#[test]
fn names_the_field_of_a_bad_server() {
    for (server, needle) in [
        ("", "required"),
        ("not a url", "not a URL"),
        ("ftp://audit.example.com/", "scheme `ftp`"),
        (
            "https://user:pw@audit.example.com/",
            "credentials in the URL",
        ),
    ] {
        let err = load(&kubeconfig(
            &format!("    server: '{server}'\n"),
            "    {}\n",
        ))
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains(needle), "{server}: {message}");
        assert_eq!(invalid_field(err), "clusters[0].cluster.server", "{server}");
    }
}

#[test]
fn names_the_field_of_bad_certificate_data() {
    let err = load(&kubeconfig(
        "    server: https://a.example/\n    certificate-authority-data: '%%%'\n",
        "    {}\n",
    ))
    .unwrap_err();
    assert_eq!(
        invalid_field(err),
        "clusters[0].cluster.certificate-authority-data"
    );

    let err = load(&kubeconfig(
        &format!(
            "    server: https://a.example/\n    certificate-authority-data: {}\n",
            b64("not pem at all")
        ),
        "    {}\n",
    ))
    .unwrap_err();
    assert_eq!(
        invalid_field(err),
        "clusters[0].cluster.certificate-authority"
    );

    let pki = Pki::new();
    let err = load(&kubeconfig(
        "    server: https://a.example/\n",
        &format!(
            "    client-certificate-data: {}\n",
            b64(&pki.client_cert_pem)
        ),
    ))
    .unwrap_err();
    assert_eq!(invalid_field(err), "users[0].user.client-key");

    // A key that does not belong to the certificate.
    let other = Pki::new();
    let err = load(&kubeconfig(
        "    server: https://a.example/\n",
        &format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&pki.client_cert_pem),
            b64(&other.client_key_pem)
        ),
    ));
    assert!(err.is_err(), "a mismatched key must be refused at load");
}

#[test]
fn names_a_missing_file_and_an_empty_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Endpoint::from_kubeconfig_slice(
        kubeconfig(
            "    server: https://a.example/\n    certificate-authority: ca.crt\n",
            "    {}\n",
        )
        .as_bytes(),
        dir.path(),
        KubeconfigOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, KubeconfigError::Read { path, .. } if path == &dir.path().join("ca.crt")),
        "{err:?}"
    );

    fs::write(dir.path().join("token"), "\n").unwrap();
    let err = Endpoint::from_kubeconfig_slice(
        kubeconfig("    server: https://a.example/\n", "    tokenFile: token\n").as_bytes(),
        dir.path(),
        KubeconfigOptions::default(),
    )
    .unwrap_err();
    assert_eq!(invalid_field(err), "users[0].user.tokenFile");
}

#[test]
fn names_the_path_of_a_field_with_the_wrong_type() {
    let err = load(&kubeconfig(
        "    server: https://a.example/\n    insecure-skip-tls-verify: 'yes'\n",
        "    {}\n",
    ))
    .unwrap_err();
    assert_eq!(
        invalid_field(err),
        "clusters[0].cluster.insecure-skip-tls-verify"
    );
}

#[test]
fn refuses_what_it_cannot_honour() {
    for (cluster, user, field) in [
        (
            "    server: https://a.example/\n    proxy-url: http://proxy:3128\n",
            "    {}\n",
            "clusters[0].cluster.proxy-url",
        ),
        (
            "    server: https://a.example/\n    tls-server-name: audit\n",
            "    {}\n",
            "clusters[0].cluster.tls-server-name",
        ),
        (
            "    server: https://a.example/\n",
            "    exec:\n      command: get-token\n",
            "users[0].user.exec",
        ),
        (
            "    server: https://a.example/\n",
            "    as: someone\n",
            "users[0].user.as",
        ),
    ] {
        let err = load(&kubeconfig(cluster, user)).unwrap_err();
        assert_eq!(invalid_field(err), field);
    }
}

#[test]
fn chooses_the_current_context_or_the_only_one() {
    let two = "clusters:\n- name: a\n  cluster:\n    server: https://a.example/\n\
               - name: b\n  cluster:\n    server: https://b.example/\n\
               contexts:\n- name: ca\n  context:\n    cluster: a\n- name: cb\n  context:\n    cluster: b\n";
    let e = load(&format!("{two}current-context: cb\n")).unwrap();
    assert_eq!(e.url(), "https://b.example/");
    assert!(matches!(load(two), Err(KubeconfigError::Context(_))));
    let err = load(&format!("{two}current-context: nope\n")).unwrap_err();
    assert!(err.to_string().contains("`nope`"), "{err}");

    // No contexts: the only cluster, with the only user.
    let e = load(
        "clusters:\n- name: a\n  cluster:\n    server: https://a.example/\n\
         users:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    assert!(matches!(e.credentials, Credentials::Token(_)));

    let err = load(
        "clusters:\n- name: a\n  cluster:\n    server: https://a.example/\n\
         contexts:\n- name: c\n  context:\n    cluster: a\n    user: ghost\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("`ghost`"), "{err}");
}

#[test]
fn refuses_documents_that_are_not_kubeconfigs() {
    assert!(matches!(load(""), Err(KubeconfigError::Decode { .. })));
    assert!(matches!(
        load("- a\n- b\n"),
        Err(KubeconfigError::Decode { .. })
    ));
    assert!(matches!(
        load("a: [unclosed"),
        Err(KubeconfigError::Syntax(_))
    ));
    assert!(matches!(
        load("clusters: []\n"),
        Err(KubeconfigError::Context(_))
    ));
}

#[test]
fn refuses_a_file_over_the_size_limit() {
    let big = format!("# {}\n", "x".repeat(MAX_FILE_BYTES));
    assert!(matches!(load(&big), Err(KubeconfigError::TooLarge { .. })));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.kubeconfig");
    fs::write(&path, &big).unwrap();
    let err = Endpoint::from_kubeconfig_file(&path, KubeconfigOptions::default()).unwrap_err();
    assert!(
        matches!(&err, KubeconfigError::TooLarge { path: p, .. } if p == &path),
        "{err:?}"
    );
}

#[test]
fn a_token_file_is_read_again_after_a_minute_and_kept_when_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    fs::write(&path, "old\n").unwrap();
    let mut credentials = Credentials::TokenFile {
        path: path.clone(),
        token: read_token_file(&path).unwrap(),
        read_at: Instant::now(),
    };
    let bearer = |c: &mut Credentials| {
        let request = c
            .apply(reqwest::Client::new().post("http://127.0.0.1/"))
            .build()
            .unwrap();
        request.headers()["authorization"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    fs::write(&path, "new\n").unwrap();
    assert_eq!(
        bearer(&mut credentials),
        "Bearer old",
        "read again too soon"
    );

    let a_minute_ago = |c: &mut Credentials| {
        if let Credentials::TokenFile { read_at, .. } = c {
            *read_at = Instant::now() - TOKEN_FILE_REFRESH;
        }
    };
    a_minute_ago(&mut credentials);
    assert_eq!(bearer(&mut credentials), "Bearer new");

    fs::remove_file(&path).unwrap();
    a_minute_ago(&mut credentials);
    assert_eq!(
        bearer(&mut credentials),
        "Bearer new",
        "the last good token stays"
    );
}
