//! The HTTP surface clients rely on: health, version, discovery, OpenAPI, metrics, lists,
//! watches and patches, over real TLS.

mod common;

use common::Gateway;
use serde_json::{Value, json};

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_version_discovery_and_openapi() {
    let gw = Gateway::start();
    let c = gw.admin_client();
    let r = c
        .get(format!("{}/readyz?verbose", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("[+]ping ok")
            && text.contains("[+]storage ok")
            && text.ends_with("readyz check passed\n"),
        "{text}"
    );
    assert_eq!(
        c.get(format!("{}/livez", gw.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );

    let (_, version) = get_json(&c, &format!("{}/version", gw.url)).await;
    assert_eq!(version["major"], "1");
    assert!(version["gitVersion"].as_str().unwrap().starts_with("v1."));

    let (_, api) = get_json(&c, &format!("{}/api", gw.url)).await;
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));
    let (_, groups) = get_json(&c, &format!("{}/apis", gw.url)).await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "apps",
            "authentication.k8s.io",
            "authorization.k8s.io",
            "batch",
            "rbac.authorization.k8s.io"
        ]
    );
    let (_, apps) = get_json(&c, &format!("{}/apis/apps/v1", gw.url)).await;
    let deploy = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments")
        .unwrap();
    assert_eq!(deploy["shortNames"], json!(["deploy"]));
    assert_eq!(deploy["kind"], "Deployment");
    assert!(
        apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/scale"
                && r["kind"] == "Scale"
                && r["group"] == "autoscaling")
    );
    let (code, _) = get_json(&c, &format!("{}/apis/nope/v1", gw.url)).await;
    assert_eq!(code, 404);

    let (_, index) = get_json(&c, &format!("{}/openapi/v3", gw.url)).await;
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    let r = c.get(format!("{}{url}", gw.url)).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "public, immutable");
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
            .is_object()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_with_apiserver_labels() {
    let gw = Gateway::start();
    let c = gw.admin_client();
    for _ in 0..3 {
        c.get(format!("{}/api/v1/namespaces/default/configmaps", gw.url))
            .send()
            .await
            .unwrap();
    }
    let text = c
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("apiserver_request_total{")
                && l.contains("verb=\"LIST\"")
                && l.contains("resource=\"configmaps\"")
                && l.contains("code=\"200\"")
        })
        .unwrap_or_else(|| panic!("no LIST configmaps counter in\n{text}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(
        text.contains("apiserver_request_duration_seconds_bucket{"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_continue_and_filter_by_labels() {
    let gw = Gateway::start();
    let c = gw.admin_client();
    let base = format!("{}/api/v1/namespaces/default/configmaps", gw.url);
    for i in 0..5 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        let r = c
            .post(&base)
            .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm{i}"), "labels": {"tier": tier}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let (_, page1) = get_json(&c, &format!("{base}?limit=2")).await;
    assert_eq!(page1["kind"], "ConfigMapList");
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    assert!(
        page1["items"][0].get("kind").is_none(),
        "list items carry no kind"
    );
    let token = page1["metadata"]["continue"].as_str().unwrap().to_owned();
    let (_, page2) = get_json(&c, &format!("{base}?limit=10&continue={token}")).await;
    let names: Vec<&str> = page2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cm2", "cm3", "cm4"]);
    assert!(page2["metadata"].get("continue").is_none());
    let (_, odd) = get_json(&c, &format!("{base}?labelSelector=tier%3Dodd")).await;
    assert_eq!(odd["items"].as_array().unwrap().len(), 2);
    let (_, named) = get_json(&c, &format!("{base}?fieldSelector=metadata.name%3Dcm4")).await;
    assert_eq!(named["items"].as_array().unwrap().len(), 1);
    let mut generated = Vec::new();
    for _ in 0..2 {
        let r = c
            .post(&base)
            .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        generated.push(v["metadata"]["name"].as_str().unwrap().to_owned());
    }
    assert!(
        generated
            .iter()
            .all(|n| n.starts_with("gen-") && n.len() == 9),
        "{generated:?}"
    );
    assert_ne!(generated[0], generated[1]);
    let (code, bad) = get_json(&c, &format!("{base}?fieldSelector=spec.x%3D1")).await;
    assert_eq!(
        (code, bad["message"].as_str().unwrap()),
        (400, "field label not supported: spec.x")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_from_a_resource_version_and_reports_gone_history() {
    let gw = Gateway::start();
    let c = gw.admin_client();
    let base = format!("{}/api/v1/namespaces/default/configmaps", gw.url);
    let created: Value = c
        .post(&base)
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}, "data": {"a": "1"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .patch(format!("{base}/w"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"data":{"a":"2"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    c.delete(format!("{base}/w")).send().await.unwrap();
    // Resume after the create: the update and the delete, in order, then the watch times out.
    let text = c
        .get(format!(
            "{base}?watch=true&resourceVersion={rv}&timeoutSeconds=1"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["MODIFIED", "DELETED"], "{text}");
    assert_eq!(events[0]["object"]["data"]["a"], "2");
    // History from before this process started is gone: an ERROR event with a 410.
    let text = c
        .get(format!(
            "{base}?watch=true&resourceVersion=1&timeoutSeconds=1"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap_or("{}")).unwrap();
    if first["type"] == "ERROR" {
        assert_eq!(first["object"]["code"], 410);
        assert_eq!(first["object"]["reason"], "Expired");
    } else {
        // Revision 1 is still in this process's history: the watch replays from it.
        assert_eq!(first["type"], "ADDED", "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_apply_and_warn_about_unknown_fields() {
    let gw = Gateway::start();
    let c = gw.admin_client();
    let base = format!("{}/apis/apps/v1/namespaces/default/deployments", gw.url);
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "x", "image": "x:1"}, {"name": "y", "image": "y:1"}]}}}});
    let r = c
        .post(format!("{base}?fieldValidation=Warn"))
        .json(&d)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let smp =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "y", "image": "y:2"}]}}}});
    let r = c
        .patch(format!("{base}/d"))
        .header("content-type", "application/strategic-merge-patch+json")
        .json(&smp)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["image"],
        "x:1"
    );
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][1]["image"],
        "y:2"
    );
    assert_eq!(got["metadata"]["generation"], 2);
    let jp = json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]);
    let r = c
        .patch(format!("{base}/d"))
        .header("content-type", "application/json-patch+json")
        .json(&jp)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, scale) = get_json(&c, &format!("{base}/d/scale")).await;
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(4))
    );

    // Warn mode: the unknown field is dropped and named in a Warning header.
    let r = c
        .patch(format!("{base}/d?fieldValidation=Warn"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"replicaz":3}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let warning = r
        .headers()
        .get("warning")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(warning, r#"299 - "unknown field \"spec.replicaz\"""#);
    // Strict mode: 400 and nothing changes.
    let r = c
        .patch(format!("{base}/d?fieldValidation=Strict"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"replicas":9,"replicaz":3}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (_, now) = get_json(&c, &format!("{base}/d")).await;
    assert_eq!(now["spec"]["replicas"], 4);
    // Server-side apply is not offered: 415 naming the patch types that are.
    let r = c
        .patch(format!("{base}/d"))
        .header("content-type", "application/apply-patch+yaml")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}
