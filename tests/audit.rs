//! The audit trail of the gateway, end to end: a policy, requests driven with kubectl, and the
//! events checked field by field; faults (a full device, kill -9) and the hash chain.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Gateway;
use serde_json::Value;

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
- level: RequestResponse
  resources: [{group: "", resources: ["configmaps"]}]
- level: Request
  resources: [{group: "", resources: ["pods"]}]
- level: Metadata
"#;

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an event: {e}: {l}")))
        .collect()
}

/// The events of one request, by stage.
fn by_id<'a>(events: &'a [Value], id: &str) -> BTreeMap<String, &'a Value> {
    events
        .iter()
        .filter(|e| e["auditID"] == id)
        .map(|e| (e["stage"].as_str().unwrap().to_owned(), e))
        .collect()
}

/// The events whose verb, resource and namespace match, in order.
fn matching<'a>(events: &'a [Value], verb: &str, resource: &str, stage: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["verb"] == verb && e["objectRef"]["resource"] == resource && e["stage"] == stage
        })
        .collect()
}

fn portcullis(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .output()
        .unwrap()
}

/// The files of an audit trail directory, sorted.
fn trail(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// `portcullis audit verify FILES...`: whether it passed, and its report.
fn verify_files(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify"])
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn is_micro_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    // 2026-11-22T03:20:02.035934Z
    s.len() == 27
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && s[20..26].bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_the_policy_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let log = dir.path().join("audit").join("audit.log");
    let data = dir.path().join("data");
    let (p, l) = (policy.display().to_string(), log.display().to_string());
    let gw = Gateway::start_in(
        dir,
        data,
        &["--audit-policy-file", &p, "--audit-log-path", &l],
    );

    gw.kubectl_ok(&["create", "namespace", "team"]);
    gw.kubectl_ok(&[
        "create",
        "configmap",
        "cm1",
        "-n",
        "team",
        "--from-literal=a=b",
    ]);
    let denied = gw.kubectl(&["--as", "bob", "get", "configmaps", "-n", "team"]);
    assert!(!denied.status.success());
    // The same at Metadata level, whose lines are written from the users as authentication
    // left them (not copied into the event).
    let denied = gw.kubectl(&["--as", "bob", "get", "secrets", "-n", "team"]);
    assert!(!denied.status.success());
    gw.kubectl_ok(&["create", "namespace", "locked"]);
    gw.kubectl_ok(&[
        "label",
        "namespace",
        "locked",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: root, namespace: locked}\nspec:\n  containers:\n  - {name: c, image: busybox, securityContext: {privileged: true}}\n";
    let refused = gw.kubectl_with_stdin(&["create", "-f", "-"], Some(pod));
    assert!(!refused.status.success());
    // A watch that ends by itself.
    let _ = gw.kubectl(&[
        "get",
        "configmaps",
        "-n",
        "team",
        "--watch",
        "--request-timeout=2s",
    ]);

    // Audit-ID: the server's is returned; a client's well-formed one is kept, a hostile one replaced.
    let client = gw.admin_client();
    let r = client
        .get(format!("{}/api/v1/namespaces/team/configmaps/cm1", gw.url))
        .send()
        .await
        .unwrap();
    let server_id = r.headers()["audit-id"].to_str().unwrap().to_owned();
    let r = client
        .get(format!("{}/api/v1/namespaces/team/configmaps/cm1", gw.url))
        .header("Audit-ID", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["audit-id"], "trace-42");
    let r = client
        .get(format!("{}/api/v1/namespaces/team/configmaps/cm1", gw.url))
        .header("Audit-ID", "x".repeat(500))
        .send()
        .await
        .unwrap();
    let replaced = r.headers()["audit-id"].to_str().unwrap().to_owned();
    assert_eq!(
        replaced.len(),
        36,
        "a 500-byte Audit-ID is replaced by a UUID"
    );
    // No credentials: 401, audited without a user. Health probes: level None.
    let anon = gw.client_with_identity(None);
    let r = anon
        .get(format!("{}/api/v1/namespaces", gw.url))
        .header("Audit-ID", "anon-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    anon.get(format!("{}/healthz", gw.url))
        .send()
        .await
        .unwrap();
    // A response too large to keep for responseObject reaches the client whole.
    let big = "x".repeat(1 << 20);
    for i in 0..9 {
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("big-{i}")}, "data": {"d": big}});
        let r = client
            .post(format!("{}/api/v1/namespaces/team/configmaps", gw.url))
            .json(&cm)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = client
        .get(format!("{}/api/v1/namespaces/team/configmaps", gw.url))
        .header("Audit-ID", "big-list")
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 10);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let all = events(&log);
    for e in &all {
        assert_eq!(e["kind"], "Event");
        assert_eq!(e["apiVersion"], "audit.k8s.io/v1");
        assert!(
            is_micro_time(&e["requestReceivedTimestamp"]) && is_micro_time(&e["stageTimestamp"]),
            "{e}"
        );
        assert!(e["annotations"]["portcullis.dev/audit-chain"].is_string());
        assert_ne!(
            e["requestURI"], "/healthz",
            "health probes are at level None"
        );
    }

    // The allowed create: RequestResponse, both stages, both bodies.
    let created: Vec<&Value> = matching(&all, "create", "configmaps", "ResponseComplete")
        .into_iter()
        .filter(|e| e["responseObject"]["metadata"]["name"] == "cm1")
        .collect();
    assert_eq!(created.len(), 1);
    let done = created[0];
    let stages = by_id(&all, done["auditID"].as_str().unwrap());
    assert_eq!(
        stages.keys().collect::<Vec<_>>(),
        ["RequestReceived", "ResponseComplete"]
    );
    let received = stages["RequestReceived"];
    assert_eq!(received["level"], "RequestResponse");
    assert_eq!(
        received["requestReceivedTimestamp"],
        received["stageTimestamp"]
    );
    assert_eq!(
        received["requestURI"],
        "/api/v1/namespaces/team/configmaps?fieldManager=kubectl-create&fieldValidation=Strict"
    );
    assert!(received.get("responseStatus").is_none());
    assert_eq!(received["requestObject"]["metadata"]["name"], "cm1");
    assert!(received.get("responseObject").is_none());
    assert_eq!(
        done["requestReceivedTimestamp"],
        received["requestReceivedTimestamp"]
    );
    assert_eq!(done["user"]["username"], "portcullis-admin");
    assert!(
        done["user"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "system:masters")
    );
    assert!(done.get("impersonatedUser").is_none());
    assert_eq!(done["sourceIPs"][0], "127.0.0.1");
    assert!(done["userAgent"].as_str().unwrap().starts_with("kubectl/"));
    assert_eq!(done["objectRef"]["resource"], "configmaps");
    assert_eq!(done["objectRef"]["namespace"], "team");
    assert_eq!(done["objectRef"]["apiVersion"], "v1");
    assert!(
        done["objectRef"].get("apiGroup").is_none(),
        "the core group is omitted"
    );
    assert_eq!(
        done["objectRef"]["uid"],
        done["responseObject"]["metadata"]["uid"]
    );
    assert_eq!(
        done["objectRef"]["resourceVersion"],
        done["responseObject"]["metadata"]["resourceVersion"]
    );
    assert_eq!(done["responseStatus"]["code"], 201);
    assert_eq!(done["responseObject"]["data"]["a"], "b");
    common::assert_allowed_for_x509(done);

    // The impersonated, denied list.
    let listed = matching(&all, "list", "configmaps", "ResponseComplete");
    let forbidden = listed
        .iter()
        .find(|e| e["responseStatus"]["code"] == 403)
        .expect("the denied list");
    assert_eq!(
        forbidden["user"]["username"], "portcullis-admin",
        "user is who authenticated"
    );
    assert_eq!(forbidden["impersonatedUser"]["username"], "bob");
    assert_eq!(
        forbidden["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(forbidden["responseStatus"]["reason"], "Forbidden");
    assert!(
        forbidden["responseStatus"]["message"]
            .as_str()
            .unwrap()
            .contains(r#"User "bob" cannot list resource "configmaps""#)
    );

    // Metadata level: both stages name who authenticated and whom they impersonated; a
    // request without impersonation has no impersonatedUser.
    let secrets = matching(&all, "list", "secrets", "ResponseComplete");
    assert_eq!(secrets.len(), 1);
    let stages = by_id(&all, secrets[0]["auditID"].as_str().unwrap());
    assert_eq!(stages.len(), 2);
    for e in stages.values() {
        assert_eq!(e["level"], "Metadata");
        assert_eq!(e["user"]["username"], "portcullis-admin", "{e}");
        assert_eq!(e["user"]["groups"][0], "system:masters", "{e}");
        assert_eq!(e["impersonatedUser"]["username"], "bob", "{e}");
    }
    let team = matching(&all, "create", "namespaces", "ResponseComplete")
        .into_iter()
        .find(|e| {
            e["requestURI"]
                .as_str()
                .unwrap()
                .starts_with("/api/v1/namespaces?")
        })
        .expect("the namespace create");
    for e in by_id(&all, team["auditID"].as_str().unwrap()).values() {
        assert_eq!(e["level"], "Metadata");
        assert_eq!(e["user"]["username"], "portcullis-admin", "{e}");
        assert!(e.get("impersonatedUser").is_none(), "{e}");
    }

    // The pod refused by Pod Security: Request level (request body, no response body).
    let pods = matching(&all, "create", "pods", "ResponseComplete");
    assert_eq!(pods.len(), 1);
    let pod_event = pods[0];
    assert_eq!(pod_event["level"], "Request");
    assert_eq!(pod_event["responseStatus"]["code"], 403);
    assert!(
        pod_event["responseStatus"]["message"]
            .as_str()
            .unwrap()
            .contains(r#"violates PodSecurity "restricted:latest""#)
    );
    assert_eq!(
        pod_event["annotations"]["pod-security.kubernetes.io/enforce-policy"],
        "restricted:latest"
    );
    assert_eq!(
        pod_event["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert_eq!(pod_event["requestObject"]["metadata"]["name"], "root");
    assert!(pod_event.get("responseObject").is_none());

    // The namespace label change: Metadata level, no bodies.
    let ns = matching(&all, "patch", "namespaces", "ResponseComplete");
    assert_eq!(ns.len(), 1);
    assert_eq!(ns[0]["level"], "Metadata");
    assert!(ns[0].get("requestObject").is_none() && ns[0].get("responseObject").is_none());

    // The watch: ResponseStarted, then ResponseComplete when it ended.
    let watch: Vec<&Value> = all.iter().filter(|e| e["verb"] == "watch").collect();
    let stages: Vec<&str> = watch.iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        ["RequestReceived", "ResponseStarted", "ResponseComplete"],
        "{watch:?}"
    );
    assert_eq!(watch[1]["responseStatus"]["code"], 200);

    // Audit-IDs in the log.
    assert_eq!(by_id(&all, &server_id).len(), 2);
    assert_eq!(by_id(&all, "trace-42").len(), 2);
    assert_eq!(by_id(&all, &replaced).len(), 2);
    // The 401: one closing event, no user.
    let anon_events = by_id(&all, "anon-1");
    assert_eq!(anon_events.keys().collect::<Vec<_>>(), ["ResponseComplete"]);
    let e = anon_events["ResponseComplete"];
    assert_eq!(e["responseStatus"]["code"], 401);
    assert_eq!(e["user"], serde_json::json!({}));
    assert!(
        e["annotations"]
            .get("authorization.k8s.io/decision")
            .is_none()
    );

    let big_list = by_id(&all, "big-list");
    assert_eq!(
        big_list["ResponseComplete"]["annotations"]["audit.k8s.io/truncated"],
        "true"
    );
    assert!(big_list["ResponseComplete"].get("responseObject").is_none());

    // The chain over all of it is intact.
    let out = portcullis(&["audit", "verify", &l]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And query finds the denial.
    let out = portcullis(&["audit", "query", &l, "--decision", "forbid", "-o", "json"]);
    let found: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !found.is_empty()
            && found
                .iter()
                .all(|e| e["annotations"]["authorization.k8s.io/decision"] == "forbid")
    );
    assert!(
        found
            .iter()
            .any(|e| e["impersonatedUser"]["username"] == "bob")
    );
}

/// Mounts a tiny tmpfs (needs root, as CI has); unmounted on drop.
struct TinyFs(PathBuf);

impl TinyFs {
    fn mount(at: PathBuf, size: &str) -> TinyFs {
        std::fs::create_dir_all(&at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs failed: this test needs root (CI runs as root)"
        );
        TinyFs(at)
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` until a write fails.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    // Down to the last byte: even a short event line must not fit.
    for size in [65536, 4096, 512, 64, 8, 1] {
        let chunk = vec![0u8; size];
        while f.write_all(&chunk).and_then(|()| f.sync_all()).is_ok() {}
    }
    filler
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_strict_refuses_requests_on_a_full_device_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let fs = TinyFs::mount(dir.path().join("tiny"), "512k");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let log = fs.0.join("audit.log");
    let data = dir.path().join("data");
    let (p, l) = (policy.display().to_string(), log.display().to_string());
    let gw = Gateway::start_in(
        dir,
        data,
        &[
            "--audit-policy-file",
            &p,
            "--audit-log-path",
            &l,
            "--audit-log-mode",
            "blocking-strict",
            "--audit-log-maxsize",
            "0",
        ],
    );
    let client = gw.admin_client();
    let cm = |name: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
    let url = format!("{}/api/v1/namespaces/default/configmaps", gw.url);
    let r = client.post(&url).json(&cm("before")).send().await.unwrap();
    assert_eq!(r.status(), 201);

    let filler = fill(&fs.0);
    // The log's last page may still hold a few events; reads use it up.
    let mut refused = false;
    for _ in 0..50 {
        let r = client.get(format!("{url}/before")).send().await.unwrap();
        if r.status() == 500 {
            refused = true;
            break;
        }
    }
    assert!(refused, "reads were never refused on a full device");
    for name in ["during-1", "during-2"] {
        let r = client.post(&url).json(&cm(name)).send().await.unwrap();
        assert_eq!(
            r.status(),
            500,
            "a create while the audit log cannot be written"
        );
        let status: Value = r.json().await.unwrap();
        assert_eq!(status["kind"], "Status");
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("failed to store audit event"),
            "{status}"
        );
    }
    let r = client.get(format!("{url}/before")).send().await.unwrap();
    assert_eq!(r.status(), 500, "strict mode refuses reads too");
    let r = client
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200, "readyz reports the audit failure");
    assert!(r.text().await.unwrap().contains("[-]audit failed"));

    // Space returns: requests go through again, and nothing refused was stored.
    std::fs::remove_file(&filler).unwrap();
    let r = client.post(&url).json(&cm("after")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = client
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["after", "before"]);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // No torn or partial line, and the chain is intact across the failure.
    for e in events(&log) {
        assert_ne!(e["objectRef"]["name"], "during-1");
    }
    let out = portcullis(&["audit", "verify", &l]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_leaves_complete_events_for_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit").join("audit.log");
    let data = dir.path().join("data");
    let l = log.display().to_string();
    // Request level: each event carries the 2 KB body, so the 1 MB files rotate often.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Request\n",
    )
    .unwrap();
    let p = policy.display().to_string();
    let mut gw = Gateway::start_in(
        dir,
        data,
        &[
            "--audit-policy-file",
            &p,
            "--audit-log-path",
            &l,
            "--audit-log-maxsize",
            "1",
        ],
    );
    let client = gw.admin_client();
    let url = format!("{}/api/v1/namespaces/default/configmaps", gw.url);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("w{w}-{i}")}, "data": {"pad": "x".repeat(2000)}});
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status() == 201 => {
                        acknowledged.push(r.headers()["audit-id"].to_str().unwrap().to_owned());
                    }
                    _ => {}
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    gw.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for w in workers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(
        acknowledged.len() > 20,
        "only {} creates were acknowledged",
        acknowledged.len()
    );

    // Every newline-terminated line of every file is a complete event; the chain verifies up to
    // the last complete line (a torn final line, if the kill landed mid-write, is reported).
    let audit_dir = log.parent().unwrap();
    let files = trail(audit_dir);
    assert!(
        files.len() > 1,
        "the 1 MB maxsize rotated the log: {files:?}"
    );
    let mut ids = std::collections::HashSet::new();
    for f in &files {
        let text = std::fs::read(f).unwrap();
        let complete = match text.iter().rposition(|b| *b == b'\n') {
            Some(end) => &text[..=end],
            None => &text[..0],
        };
        for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let e: Value =
                serde_json::from_slice(line).unwrap_or_else(|err| panic!("{}: {err}", f.display()));
            if e["stage"] == "ResponseComplete" {
                ids.insert(e["auditID"].as_str().unwrap().to_owned());
            }
        }
    }
    let (ok, report) = verify_files(&files);
    assert!(ok, "{report}");
    // Durable before acknowledged: every 201 has its closing event in the trail.
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !ids.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged creates have no ResponseComplete event",
        missing.len(),
        acknowledged.len()
    );

    // A restart repairs a torn tail and continues the chain.
    gw.restart();
    gw.kubectl_ok(&["create", "configmap", "after-restart"]);
    gw.kill9();
    let files = trail(audit_dir);
    let (ok, report) = verify_files(&files);
    assert!(ok && !report.contains("incomplete"), "{report}");

    // A rotated file removed from the middle of the trail is detected.
    assert!(
        files.len() >= 3,
        "too few rotated files to remove one: {files:?}"
    );
    let kept: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, f)| f.clone())
        .collect();
    let (ok, report) = verify_files(&kept);
    assert!(!ok && report.contains("NOT intact"), "{report}");
}

#[test]
fn verify_detects_tampering_of_a_real_trail() {
    // A trail written by the gateway, then edited four ways.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit").join("audit.log");
    let data = dir.path().join("data");
    let l = log.display().to_string();
    let mut gw = Gateway::start_in(dir, data, &["--audit-log-path", &l]);
    for i in 0..5 {
        gw.kubectl_ok(&["create", "configmap", &format!("c{i}")]);
    }
    gw.terminate();
    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() > 10);
    let check = |text: String, expect: &str| {
        let path = log.with_file_name("tampered.log");
        std::fs::write(&path, text).unwrap();
        let out = portcullis(&["audit", "verify", path.to_str().unwrap()]);
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "{expect}: {report}");
        assert!(
            report.contains("NOT intact") && report.contains(":6"),
            "{expect}: {report}"
        );
        report
    };
    let join = |v: Vec<&str>| v.join("\n") + "\n";
    // A changed byte (in line 6).
    let mut changed: Vec<String> = lines.iter().map(|s| (*s).to_owned()).collect();
    changed[5] = changed[5].replacen("\"verb\":\"", "\"verb\":\"x", 1);
    check(changed.join("\n") + "\n", "changed byte");
    // A deleted line (line 6).
    let mut deleted = lines.clone();
    deleted.remove(5);
    check(join(deleted), "deleted line");
    // A swapped pair (lines 6 and 7).
    let mut swapped = lines.clone();
    swapped.swap(5, 6);
    check(join(swapped), "swapped lines");
    // The untouched trail passes.
    let out = portcullis(&["audit", "verify", &l]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
