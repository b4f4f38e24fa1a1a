//! LDAP (search-then-bind) against a real slapd: users and groups, hostile credentials, a
//! stopped server (fail closed, cached users keep working), a server that never answers.

mod common;

use std::time::{Duration, Instant};

use common::Gateway;
use common::ldap::Slapd;
use serde_json::{Value, json};

fn gateway_for(url: &str, extra: &[&str]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("ldap-password");
    std::fs::write(&pw, "reader-secret\n").unwrap();
    let pw = pw.to_string_lossy().into_owned();
    let data = dir.path().join("data");
    let mut args = vec![
        "--ldap-url",
        url,
        "--ldap-bind-dn",
        "cn=reader,dc=example,dc=org",
        "--ldap-bind-password-file",
        &pw,
        "--ldap-user-base-dn",
        "ou=people,dc=example,dc=org",
        "--ldap-group-base-dn",
        "ou=groups,dc=example,dc=org",
        "--ldap-group-filter",
        "(|(member={dn})(memberUid={username}))",
        "--ldap-uid-attribute",
        "uidNumber",
        "--ldap-timeout",
        "1s",
    ];
    args.extend_from_slice(extra);
    Gateway::start_in(dir, data, &args)
}

async fn whoami(gw: &Gateway, user: &str, password: &str) -> (u16, Value) {
    let r = gw
        .client_with_identity(None)
        .post(format!(
            "{}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            gw.url
        ))
        .basic_auth(user, Some(password))
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_users_get_their_groups_and_hostile_credentials_get_nothing() {
    let mut slapd = Slapd::start();
    let gw = gateway_for(&slapd.url, &[]);

    let (code, me) = whoami(&gw, "alice", "alice-secret").await;
    assert_eq!(code, 201, "{me}");
    assert_eq!(
        me["status"]["userInfo"],
        json!({"username": "alice", "uid": "1001", "groups": ["devs", "ops", "unix", "system:authenticated"]})
    );
    let (code, me) = whoami(&gw, "bob", "bob-secret").await;
    assert_eq!(code, 201, "{me}");
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!(["devs", "system:authenticated"])
    );

    for (user, password) in [
        ("alice", "wrong"),
        ("alice", ""),
        ("nobody", "x"),
        ("*", "alice-secret"),
        ("alice)(uid=*", "alice-secret"),
        ("*)(|(uid=*", "x"),
        ("alice\0", "alice-secret"),
        ("", "x"),
    ] {
        let (code, _) = whoami(&gw, user, password).await;
        assert_eq!(code, 401, "{user:?}/{password:?}");
    }

    // The server goes away: a cached user keeps working until the TTL, others fail closed.
    slapd.stop();
    let (code, _) = whoami(&gw, "alice", "alice-secret").await;
    assert_eq!(code, 201);
    let started = Instant::now();
    let (code, _) = whoami(&gw, "alice", "other-password").await;
    assert_eq!(code, 401);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ldap_server_that_never_answers_times_out_into_a_401() {
    // Accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://{}", listener.local_addr().unwrap());
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(8) {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let gw = gateway_for(&url, &[]);
    let started = Instant::now();
    let (code, _) = whoami(&gw, "alice", "alice-secret").await;
    assert_eq!(code, 401);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    drop(hold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_in_through_the_exec_plugin_and_login_tokens_pass_token_review() {
    let slapd = Slapd::start();
    let gw = gateway_for(&slapd.url, &[]);

    // POST /login with Basic credentials gives a token; TokenReview accepts it.
    let r = gw
        .client_with_identity(None)
        .post(format!("{}/login", gw.url))
        .basic_auth("alice", Some("alice-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cred: Value = r.json().await.unwrap();
    assert_eq!(cred["kind"], "ExecCredential");
    let token = cred["status"]["token"].as_str().unwrap().to_owned();
    let review: Value = gw
        .admin_client()
        .post(format!("{}/apis/authentication.k8s.io/v1/tokenreviews", gw.url))
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(review["status"]["user"]["username"], "alice");
    assert_eq!(
        review["status"]["user"]["groups"],
        json!(["devs", "ops", "unix", "system:authenticated"])
    );
    // A login token cannot log in again, and /login refuses other credentials.
    let r = gw
        .admin_client()
        .post(format!("{}/login", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // kubectl with an exec user entry: the plugin calls /login and kubectl uses the token.
    let admin = std::fs::read_to_string(gw.kubeconfig()).unwrap();
    let config: Value = serde_saphyr::from_str(&admin).unwrap();
    let cluster = &config["clusters"][0]["cluster"];
    let kubeconfig = gw.dir.path().join("ldap.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: p\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: alice\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      args: [credential]\n      provideClusterInfo: true\n      interactiveMode: Never\ncontexts:\n- name: c\n  context: {{cluster: p, user: alice}}\ncurrent-context: c\n",
            cluster["server"].as_str().unwrap(),
            cluster["certificate-authority-data"].as_str().unwrap(),
            env!("CARGO_BIN_EXE_portcullis"),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::kubectl_binary())
        .args(["--kubeconfig"])
        .arg(&kubeconfig)
        .args(["auth", "whoami"])
        .env("HOME", gw.dir.path())
        .env("PORTCULLIS_USERNAME", "alice")
        .env("PORTCULLIS_PASSWORD", "alice-secret")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("Username") && l.ends_with("alice")),
        "{stdout}"
    );
    assert!(
        stdout.contains("devs") && stdout.contains("unix"),
        "{stdout}"
    );
    // The token was cached: a second run needs no password.
    let out = std::process::Command::new(common::kubectl_binary())
        .args(["--kubeconfig"])
        .arg(&kubeconfig)
        .args(["auth", "whoami"])
        .env("HOME", gw.dir.path())
        .env("PORTCULLIS_USERNAME", "alice")
        .env_remove("PORTCULLIS_PASSWORD")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldaps_and_start_tls_verify_the_server_against_the_ca_file() {
    let slapd = Slapd::start_tls();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ldap-ca.pem");
    std::fs::write(&ca, slapd.ca_pem.as_ref().unwrap()).unwrap();
    let ca = ca.to_string_lossy().into_owned();
    let ldaps = slapd.ldaps_url.clone().unwrap();

    let gw = gateway_for(&ldaps, &["--ldap-ca-file", &ca]);
    let (code, me) = whoami(&gw, "alice", "alice-secret").await;
    assert_eq!(code, 201, "{me}");
    let gw = gateway_for(&slapd.url, &["--ldap-ca-file", &ca, "--ldap-start-tls"]);
    let (code, me) = whoami(&gw, "bob", "bob-secret").await;
    assert_eq!(code, 201, "{me}");

    // A server the CA file does not vouch for: fail closed.
    let other = Slapd::start_tls();
    let gw = gateway_for(&other.ldaps_url.clone().unwrap(), &["--ldap-ca-file", &ca]);
    let (code, _) = whoami(&gw, "alice", "alice-secret").await;
    assert_eq!(code, 401);
    drop(dir);
}
