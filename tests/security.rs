//! Identity at the front door, and hostile requests that must leave the store unchanged.

mod common;

use common::Gateway;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use serde_json::{Value, json};

/// Writes a client certificate (CN `user`, O `groups`) signed by `issuer` and returns the
/// paths of its PEM certificate and key.
fn client_cert(
    dir: &std::path::Path,
    name: &str,
    user: &str,
    groups: &[&str],
    issuer: &Issuer<'_, KeyPair>,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, user);
    if let Some(g) = groups.first() {
        params.distinguished_name.push(DnType::OrganizationName, *g);
    }
    let cert = params.signed_by(&key, issuer).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

fn own_ca(gw: &Gateway) -> Issuer<'static, KeyPair> {
    let cert = std::fs::read_to_string(gw.data.join("ca.crt")).unwrap();
    let key = KeyPair::from_pem(&std::fs::read_to_string(gw.data.join("ca.key")).unwrap()).unwrap();
    Issuer::from_ca_cert_pem(&cert, key).unwrap()
}

fn foreign_ca() -> Issuer<'static, KeyPair> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "portcullis-ca");
    Issuer::new(params, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_decides_401_or_403() {
    let gw = Gateway::start();
    let pods = format!("{}/api/v1/namespaces/default/pods", gw.url);

    // No credentials at all.
    let anon = gw.client_with_identity(None);
    let r = anon.get(&pods).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    // Health probes need none.
    assert_eq!(
        anon.get(format!("{}/readyz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A certificate from another CA, even one claiming system:masters: 401, not a TLS failure.
    let (c, k) = client_cert(
        gw.dir.path(),
        "mallory",
        "mallory",
        &["system:masters"],
        &foreign_ca(),
    );
    let r = gw
        .client_with_identity(Some((&c, &k)))
        .get(&pods)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A valid certificate without system:masters: 403 with kube-apiserver's message.
    let (c, k) = client_cert(gw.dir.path(), "bob", "bob", &["dev"], &own_ca(&gw));
    let bob = gw.client_with_identity(Some((&c, &k)));
    let r = bob.get(&pods).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        r#"pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(body["details"], json!({"kind": "pods"}));
    let r = bob.get(format!("{}/metrics", gw.url)).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // The admin certificate works.
    assert_eq!(
        gw.admin_client().get(&pods).send().await.unwrap().status(),
        200
    );
}

async fn configmap_names(gw: &Gateway) -> Vec<String> {
    let list: Value = gw
        .admin_client()
        .get(format!("{}/api/v1/configmaps", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_the_right_status_and_change_nothing() {
    let gw = Gateway::start();
    let client = gw.admin_client();
    let base = format!("{}/api/v1/namespaces/default/configmaps", gw.url);
    let r = client
        .post(&base)
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seed"}, "data": {"a": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let seed: Value = r.json().await.unwrap();
    let before = configmap_names(&gw).await;

    let expect = |status: u16, reason: &'static str| {
        move |code: u16, body: &Value| {
            assert_eq!(code, status, "{body}");
            assert_eq!(body["kind"], "Status", "{body}");
            assert_eq!(body["reason"], reason, "{body}");
        }
    };

    // Oversized body.
    let big = "x".repeat(4 * 1024 * 1024);
    let r = client
        .post(&base)
        .header("content-type", "application/json")
        .body(format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"a":"{big}"}}}}"#))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    expect(413, "RequestEntityTooLarge")(code, &r.json().await.unwrap());

    // Deeply nested JSON.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = client
        .post(&base)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    expect(400, "BadRequest")(code, &r.json().await.unwrap());

    // Malformed YAML, and a YAML alias bomb.
    let r = client
        .post(&base)
        .header("content-type", "application/yaml")
        .body("kind: [unclosed\n  - : :")
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    expect(400, "BadRequest")(code, &r.json().await.unwrap());
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
    let r = client
        .post(&base)
        .header("content-type", "application/yaml")
        .body(bomb)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    expect(400, "BadRequest")(code, &r.json().await.unwrap());

    // Wrong content type.
    let r = client
        .post(&base)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    expect(415, "UnsupportedMediaType")(code, &r.json().await.unwrap());

    // Unknown resource.
    let r = client
        .get(format!("{}/api/v1/namespaces/default/widgets", gw.url))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    expect(404, "NotFound")(code, &r.json().await.unwrap());

    // Bad name.
    let r = client
        .post(&base)
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}}))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    expect(422, "Invalid")(code, &body);
    assert!(body["message"].as_str().unwrap().starts_with(r#"ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain"#), "{body}");

    // Stale resourceVersion.
    let mut stale = seed.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["data"]["a"] = json!("2");
    let r = client
        .put(format!("{base}/seed"))
        .json(&stale)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    expect(409, "Conflict")(code, &body);
    assert_eq!(
        body["message"],
        r#"Operation cannot be fulfilled on configmaps "seed": the object has been modified; please apply your changes to the latest version and try again"#
    );

    // Path traversal in a name, encoded and plain.
    // (A literal `..` segment is resolved by the client's URL parser before it is sent.)
    for path in ["..%2F..%2Fsecrets%2Fx", "a%2Fb", "%2e%2e%2fx"] {
        let r = client.get(format!("{base}/{path}")).send().await.unwrap();
        let code = r.status().as_u16();
        expect(400, "BadRequest")(code, &r.json().await.unwrap());
    }
    let r = client
        .post(&base)
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "../../etc"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // Namespace mismatch and a missing namespace.
    let r = client
        .post(&base)
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "kube-system"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .post(format!("{}/api/v1/namespaces/nowhere/configmaps", gw.url))
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}}))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    expect(404, "NotFound")(code, &body);
    assert_eq!(body["message"], r#"namespaces "nowhere" not found"#);

    // dryRun stores nothing.
    let r = client
        .post(format!("{base}?dryRun=All"))
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    assert_eq!(
        configmap_names(&gw).await,
        before,
        "hostile requests changed the store"
    );
    let still: Value = client
        .get(format!("{base}/seed"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(still["data"]["a"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_ca_bundle_is_reloaded_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("client-ca.pem");
    let make_ca = || {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "reload-ca");
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    };
    let (pem_one, issuer_one) = make_ca();
    let (pem_two, _issuer_two) = make_ca();
    std::fs::write(&bundle, &pem_one).unwrap();
    let data = dir.path().join("data");
    let flag = bundle.to_string_lossy().into_owned();
    let gw = Gateway::start_in(dir, data, &["--client-ca-file", &flag]);
    let (c, k) = client_cert(
        gw.dir.path(),
        "root",
        "root",
        &["system:masters"],
        &issuer_one,
    );
    let status = || async {
        // A new client each time: a new connection, so no reused verdict.
        gw.client_with_identity(Some((&c, &k)))
            .get(format!("{}/api/v1/namespaces", gw.url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status().await, 200);
    std::fs::write(&bundle, &pem_two).unwrap();
    let mut refused = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if status().await == 401 {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "a certificate of the removed CA still authenticates"
    );
    // A broken bundle keeps the one in force.
    std::fs::write(&bundle, "not a certificate").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(status().await, 401);
    std::fs::write(&bundle, &pem_one).unwrap();
    let mut back = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if status().await == 200 {
            back = true;
            break;
        }
    }
    assert!(back, "the restored CA was not picked up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_auth_lets_rbac_decide_for_requests_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gw = Gateway::start_in(dir, data, &["--anonymous-auth"]);
    let anon = gw.client_with_identity(None);
    // RBAC grants anonymous the public info paths only.
    assert_eq!(
        anon.get(format!("{}/version", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = anon
        .get(format!("{}/api/v1/namespaces/default/pods", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        r#"pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    // A credential that fails is still a 401, never anonymous.
    let r = anon
        .get(format!("{}/version", gw.url))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
