//! Bearer tokens: `kubectl create token`, service-account token checks against the store, the
//! token file, TokenReview, issuer discovery, and hostile tokens.

mod common;

use base64::Engine;
use common::Gateway;
use serde_json::{Value, json};

async fn whoami(gw: &Gateway, token: &str) -> (u16, Value) {
    let r = gw
        .client_with_identity(None)
        .post(format!(
            "{}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            gw.url
        ))
        .bearer_auth(token)
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

async fn token_review(gw: &Gateway, token: &str) -> Value {
    let r = gw
        .admin_client()
        .post(format!("{}/apis/authentication.k8s.io/v1/tokenreviews", gw.url))
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_token_authenticates_until_the_service_account_is_recreated() {
    let gw = Gateway::start();
    gw.kubectl_ok(&["create", "namespace", "team-a"]);
    gw.kubectl_ok(&["create", "serviceaccount", "builder", "-n", "team-a"]);
    let token = gw
        .kubectl_ok(&["create", "token", "builder", "-n", "team-a"])
        .trim()
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");

    let (code, me) = whoami(&gw, &token).await;
    assert_eq!(code, 201, "{me}");
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:team-a:builder"
    );
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:team-a",
            "system:authenticated"
        ])
    );
    let review = token_review(&gw, &token).await;
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"],
        "system:serviceaccount:team-a:builder"
    );

    // Issuer discovery is readable by service accounts.
    let sa = gw.client_with_identity(None);
    let r = sa
        .get(format!("{}/openid/v1/jwks", gw.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let jwks: Value = r.json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    let r = sa
        .get(format!("{}/.well-known/openid-configuration", gw.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let conf: Value = r.json().await.unwrap();
    assert_eq!(
        conf["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );

    // A token bound to a pod stops working when the pod is deleted.
    let admin = gw.admin_client();
    let r = admin
        .post(format!("{}/api/v1/namespaces/team-a/pods", gw.url))
        .json(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "runner"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = admin
        .post(format!("{}/api/v1/namespaces/team-a/serviceaccounts/builder/token", gw.url))
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "runner"}, "expirationSeconds": 600}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let bound: Value = r.json().await.unwrap();
    let bound = bound["status"]["token"].as_str().unwrap().to_owned();
    let (code, me) = whoami(&gw, &bound).await;
    assert_eq!(code, 201);
    assert_eq!(
        me["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["runner"])
    );
    gw.kubectl_ok(&["delete", "pod", "runner", "-n", "team-a"]);
    let (code, _) = whoami(&gw, &bound).await;
    assert_eq!(code, 401);
    assert_eq!(
        token_review(&gw, &bound).await["status"]["error"],
        "service account token has been invalidated"
    );
    // Too short a lifetime is refused as upstream.
    let r = admin
        .post(format!("{}/api/v1/namespaces/team-a/serviceaccounts/builder/token", gw.url))
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 60}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // Deleted and recreated: same name, new uid, the old token no longer works.
    gw.kubectl_ok(&["delete", "serviceaccount", "builder", "-n", "team-a"]);
    let (code, _) = whoami(&gw, &token).await;
    assert_eq!(code, 401);
    gw.kubectl_ok(&["create", "serviceaccount", "builder", "-n", "team-a"]);
    let (code, _) = whoami(&gw, &token).await;
    assert_eq!(code, 401);
    let review = token_review(&gw, &token).await;
    assert_eq!(review["status"]["authenticated"], false);
    assert!(
        review["status"]["error"]
            .as_str()
            .unwrap()
            .starts_with("service account UID ("),
        "{review}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_users_and_hostile_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.csv");
    std::fs::write(&file, "s3cret-token,jane,42,\"dev,ops\"\n").unwrap();
    let data = dir.path().join("data");
    let flag = file.to_string_lossy().into_owned();
    let gw = Gateway::start_in(dir, data, &["--token-auth-file", &flag]);
    let (code, me) = whoami(&gw, "s3cret-token").await;
    assert_eq!(code, 201, "{me}");
    assert_eq!(
        me["status"]["userInfo"],
        json!({"username": "jane", "uid": "42", "groups": ["dev", "ops", "system:authenticated"]})
    );

    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let claims = json!({"iss": "https://kubernetes.default.svc.cluster.local", "sub": "system:serviceaccount:kube-system:admin",
        "aud": ["https://kubernetes.default.svc.cluster.local"], "exp": 4_000_000_000u64,
        "kubernetes.io": {"namespace": "kube-system", "serviceaccount": {"name": "admin", "uid": "x"}}});
    let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims));
    let hs = format!("{}.{}.c2ln", b64(&json!({"alg": "HS256"})), b64(&claims));
    let wrong_iss = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "ES256"})),
        b64(&json!({"iss": "https://evil"}))
    );
    for token in [
        none.as_str(),
        hs.as_str(),
        wrong_iss.as_str(),
        "S3CRET-TOKEN",
        "s3cret-toke",
        "a.b.c",
        "%%%",
        &"x".repeat(64 * 1024),
    ] {
        let (code, _) = whoami(&gw, token).await;
        assert_eq!(code, 401, "{:.40}", token);
    }
    // Malformed Authorization headers are not credentials: 401.
    let anon = gw.client_with_identity(None);
    for header in [
        "Bearer",
        "Bearer  s3cret-token",
        "Basic",
        "s3cret-token",
        "Bearer\ts3cret-token",
    ] {
        let r = anon
            .get(format!("{}/api/v1/namespaces/default/pods", gw.url))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{header}");
    }
    let review = token_review(&gw, &none).await;
    assert_eq!(review["status"]["authenticated"], false, "{review}");

    // As kube-apiserver's token webhook: the identity `webhook-config authn` issues, a v1beta1
    // review, answered 200 in v1beta1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["webhook-config", "authn", "--server", &gw.url, "--data-dir"])
        .arg(&gw.data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_saphyr::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server,
        format!("{}/apis/authentication.k8s.io/v1/tokenreviews", gw.url)
    );
    let decode = |k: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(config["users"][0]["user"][k].as_str().unwrap())
            .unwrap()
    };
    let (cert, key) = (
        gw.dir.path().join("authn.crt"),
        gw.dir.path().join("authn.key"),
    );
    std::fs::write(&cert, decode("client-certificate-data")).unwrap();
    std::fs::write(&key, decode("client-key-data")).unwrap();
    let r = gw
        .client_with_identity(Some((&cert, &key)))
        .post(&server)
        .json(&json!({"apiVersion": "authentication.k8s.io/v1beta1", "kind": "TokenReview", "spec": {"token": "s3cret-token"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["apiVersion"], "authentication.k8s.io/v1beta1");
    assert_eq!(body["status"]["user"]["username"], "jane", "{body}");
}
