//! `portcullis store export` and `portcullis store import`: a backup restores into a fresh data
//! directory with the same objects and uids; hostile files are refused naming their line and
//! write nothing.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::Gateway;
use serde_json::Value;

/// Runs `portcullis` with `args`, feeding `stdin` when given.
fn portcullis(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("running portcullis");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        // A writer thread: the child may stop reading early (and refuse the input).
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `portcullis`, asserting success; returns stdout.
fn portcullis_ok(args: &[&str]) -> String {
    let out = portcullis(args, None);
    assert!(
        out.status.success(),
        "portcullis {args:?} failed\n--- stdout\n{}\n--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The object lines of an export (without the header, whose time differs, and the end line).
fn object_lines(export: &str) -> Vec<String> {
    let lines: Vec<&str> = export.lines().collect();
    assert!(lines.len() >= 2, "an export has a header and an end line");
    lines[1..lines.len() - 1]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

/// Exports the embedded store of `data` to standard output.
fn export(data: &Path) -> String {
    portcullis_ok(&["store", "export", "--data-dir", data.to_str().unwrap()])
}

/// Exports the embedded store of `data` to `file`, asserting success; returns stderr (the
/// summary).
fn export_to(data: &Path, file: &Path) -> String {
    let out = portcullis(
        &[
            "store",
            "export",
            "--data-dir",
            data.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stderr)
}

/// The uid and data of the test objects, as kubectl sees them.
fn snapshot(gw: &Gateway) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    for (kind, name) in [
        ("namespace", "team"),
        ("configmap", "app"),
        ("configmap", "settings"),
        ("secret", "token"),
        ("rolebinding", "readers"),
    ] {
        let mut args = vec!["get", kind, name, "-o", "json"];
        if kind != "namespace" {
            args.extend(["-n", "team"]);
        }
        let object: Value = serde_json::from_str(&gw.kubectl_ok(&args)).unwrap();
        let uid = object["metadata"]["uid"].as_str().unwrap().to_owned();
        assert!(!uid.is_empty());
        let body = match kind {
            "configmap" | "secret" => object["data"].clone(),
            "rolebinding" => serde_json::json!([object["roleRef"], object["subjects"]]),
            _ => object["metadata"]["labels"].clone(),
        };
        seen.push((uid, body));
    }
    seen
}

/// A gateway holding a namespace, two configmaps, a secret and a rolebinding.
fn populated_gateway() -> Gateway {
    let gw = Gateway::start();
    gw.kubectl_ok(&["create", "namespace", "team"]);
    gw.kubectl_ok(&["label", "namespace", "team", "tier=gold"]);
    gw.kubectl_ok(&[
        "create",
        "configmap",
        "app",
        "-n",
        "team",
        "--from-literal=mode=blue",
        "--from-literal=multi=line one\nline two",
    ]);
    gw.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "team",
        "--from-literal=greeting=grüße, 世界",
    ]);
    gw.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "token",
        "-n",
        "team",
        "--from-literal=password=s3cr3t",
    ]);
    gw.kubectl_ok(&[
        "create",
        "rolebinding",
        "readers",
        "-n",
        "team",
        "--clusterrole=view",
        "--user=alice",
        "--group=auditors",
    ]);
    gw
}

#[test]
fn a_backup_restores_into_a_fresh_data_directory_with_the_same_uids_and_data() {
    let mut gw = populated_gateway();
    let before = snapshot(&gw);
    let data = gw.data.clone();
    let data_dir = data.to_str().unwrap();

    // A running gateway holds the embedded store: export says so instead of failing obscurely.
    let out = portcullis(&["store", "export", "--data-dir", data_dir], None);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("in use, most likely by a running gateway: stop it first"),
        "{stderr}"
    );

    // Import too, after checking the file.
    let (ok, stderr) = import(&data, joined(&valid_export(1)).as_bytes(), &["--overwrite"]);
    assert!(!ok);
    assert!(
        stderr.contains("in use, most likely by a running gateway"),
        "{stderr}"
    );

    assert!(gw.terminate().success());
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("backup.jsonl");
    let summary = export_to(&data, &file);
    assert!(summary.contains("configmaps 2"), "{summary}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "the export holds Secrets: owner-only, not {mode:o}"
        );
    }
    let exported = std::fs::read_to_string(&file).unwrap();
    let header: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(header["kind"], "PortcullisStoreExport");
    assert_eq!(header["version"], 1);
    assert!(header["revision"].as_u64().unwrap() > 0);
    let lines = object_lines(&exported);
    let keys: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert!(v["object"]["metadata"].get("resourceVersion").is_none());
            v["key"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "objects are exported in key order");
    assert!(keys.contains(&"/registry/secrets/team/token".to_owned()));
    // Deterministic: the same store exports the same objects.
    assert_eq!(object_lines(&export(&data)), lines);

    // Restore into a fresh data directory, and serve it.
    let dir = tempfile::tempdir().unwrap();
    let restored = dir.path().join("data");
    let summary = portcullis_ok(&[
        "store",
        "import",
        "--data-dir",
        restored.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(
        summary.starts_with(&format!("imported {} objects", lines.len())),
        "{summary}"
    );
    assert!(summary.contains("rolebindings.rbac.authorization.k8s.io"));
    // Importing what was exported gives back the same objects.
    assert_eq!(object_lines(&export(&restored)), lines);

    let gw2 = Gateway::start_in(dir, restored, &[]);
    assert_eq!(snapshot(&gw2), before);
    // The restored rolebinding is in force: alice may read configmaps in `team`.
    let can = gw2.kubectl(&[
        "auth",
        "can-i",
        "list",
        "configmaps",
        "-n",
        "team",
        "--as",
        "alice",
    ]);
    assert_eq!(text(&can.stdout).trim(), "yes");
}

#[test]
fn a_gzip_export_restores_from_standard_input() {
    let mut gw = populated_gateway();
    assert!(gw.terminate().success());
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("backup.jsonl.gz");
    export_to(&gw.data, &file);
    let gz = std::fs::read(&file).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "a `.gz` output is gzip");
    let target = work.path().join("restored");
    let out = portcullis(
        &[
            "store",
            "import",
            "--data-dir",
            target.to_str().unwrap(),
            "-",
        ],
        Some(&gz),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        object_lines(&export(&target)),
        object_lines(&export(&gw.data))
    );
    // The spooled copy of standard input is gone.
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("portcullis-import-")
        })
        .count();
    assert_eq!(leftovers, 0);
}

// === hostile input ===

fn header() -> String {
    r#"{"kind":"PortcullisStoreExport","version":1,"revision":12,"exported":"2026-11-22T05:00:00Z"}"#
        .to_owned()
}

fn configmap_line(name: &str) -> String {
    format!(
        r#"{{"key":"/registry/configmaps/default/{name}","object":{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"default","uid":"uid-{name}"}},"data":{{"n":"{name}"}}}}}}"#
    )
}

fn end(objects: usize) -> String {
    format!(r#"{{"kind":"PortcullisStoreExportEnd","objects":{objects}}}"#)
}

/// A valid export of `n` configmaps.
fn valid_export(n: usize) -> Vec<String> {
    let mut lines = vec![header()];
    lines.extend((0..n).map(|i| configmap_line(&format!("cm-{i}"))));
    lines.push(end(n));
    lines
}

fn joined(lines: &[String]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

/// Imports `content` into `data` from a file; returns (success, stderr).
fn import(data: &Path, content: &[u8], extra: &[&str]) -> (bool, String) {
    let file = data.with_extension("jsonl");
    std::fs::write(&file, content).unwrap();
    let mut args = vec![
        "store",
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = portcullis(&args, None);
    (out.status.success(), text(&out.stderr))
}

/// The objects in the embedded store of `data` (none when it was never created).
fn stored(data: &Path) -> Vec<String> {
    if !data.join("store.redb").exists() {
        return Vec::new();
    }
    object_lines(&export(data))
}

#[test]
fn hostile_files_are_refused_naming_the_line_and_write_nothing() {
    let work = tempfile::tempdir().unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();

    // 250 good objects (more than one transaction) before the bad line: nothing may be written.
    let mut bad_json = valid_export(250);
    bad_json.insert(
        251,
        "{\"key\": \"/registry/configmaps/default/x\", \"object\": {".into(),
    );
    cases.push((
        "bad-json",
        joined(&bad_json).into_bytes(),
        "line 252: not valid JSON",
    ));

    let full = joined(&valid_export(3));
    let cut = full.len() - end(3).len() - 20;
    cases.push((
        "truncated-line",
        full.as_bytes()[..cut].to_vec(),
        "line 4: incomplete (no newline at the end of the file): the file looks truncated",
    ));
    let without_end = valid_export(3)[..4].to_vec();
    cases.push((
        "no-end-line",
        joined(&without_end).into_bytes(),
        "the file ends after line 4 without the `PortcullisStoreExportEnd` line: it looks truncated",
    ));

    let mut duplicate = valid_export(3);
    duplicate.insert(4, configmap_line("cm-0"));
    cases.push((
        "duplicate",
        joined(&duplicate).into_bytes(),
        "line 5: duplicate key `/registry/configmaps/default/cm-0` (first on line 2)",
    ));

    let mut outside = valid_export(2);
    outside[2] = r#"{"key":"/etc/cron.d/evil","object":{"metadata":{"name":"evil"}}}"#.into();
    cases.push((
        "outside-registry",
        joined(&outside).into_bytes(),
        "line 3: key `/etc/cron.d/evil` is not under `/registry/`",
    ));

    let mut elsewhere = valid_export(2);
    elsewhere[1] =
        elsewhere[1].replace("\"namespace\":\"default\"", "\"namespace\":\"kube-system\"");
    cases.push((
        "namespace-mismatch",
        joined(&elsewhere).into_bytes(),
        "line 2: key `/registry/configmaps/default/cm-0` is in namespace `default` but the object's metadata.namespace is `kube-system`",
    ));

    let mut oversized = valid_export(2);
    oversized[2] = format!(
        r#"{{"key":"/registry/configmaps/default/big","object":{{"metadata":{{"name":"big","namespace":"default"}},"data":{{"x":"{}"}}}}}}"#,
        "x".repeat(17 * 1024 * 1024)
    );
    cases.push((
        "oversized-line",
        joined(&oversized).into_bytes(),
        "line 3: longer than 16777216 bytes",
    ));

    cases.push((
        "not-an-export",
        b"apiVersion: v1\nkind: ConfigMap\n".to_vec(),
        "line 1: not a portcullis store export",
    ));
    cases.push(("empty", Vec::new(), "the file is empty"));

    for (name, content, expected) in cases {
        let data = work.path().join(name);
        let (ok, stderr) = import(&data, &content, &[]);
        assert!(!ok, "{name}: the import succeeded");
        let file = data.with_extension("jsonl");
        let want = format!("error: `{}`: {expected}", file.display());
        assert!(
            stderr.starts_with(&want),
            "{name}\nexpected: {want}\nactual:   {stderr}"
        );
        assert_eq!(
            stored(&data),
            Vec::<String>::new(),
            "{name}: objects were written"
        );
    }

    let data = work.path().join("too-many");
    let (ok, stderr) = import(
        &data,
        joined(&valid_export(3)).as_bytes(),
        &["--max-objects", "2"],
    );
    assert!(!ok);
    assert!(stderr.contains("line 4: more than 2 objects"), "{stderr}");
    assert!(stored(&data).is_empty());
}

#[test]
fn a_store_with_objects_is_refused_unless_overwrite() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let (ok, stderr) = import(&data, joined(&valid_export(2)).as_bytes(), &[]);
    assert!(ok, "{stderr}");
    let before = stored(&data);
    assert_eq!(before.len(), 2);

    // Another export: cm-1 changed, cm-2 new.
    let mut other = valid_export(3);
    other[2] = other[2].replace("\"n\":\"cm-1\"", "\"n\":\"changed\"");
    let other = joined(&other);
    let (ok, stderr) = import(&data, other.as_bytes(), &[]);
    assert!(!ok);
    assert!(
        stderr.contains("is not empty: it holds 2 objects (configmaps 2); 2 of them have keys")
            && stderr.contains("Pass --overwrite"),
        "{stderr}"
    );
    assert_eq!(
        stored(&data),
        before,
        "the refused import changed the store"
    );

    let (ok, stderr) = import(&data, other.as_bytes(), &["--dry-run", "--overwrite"]);
    assert!(ok, "{stderr}");
    assert_eq!(stored(&data), before, "a dry run changed the store");

    let file = data.with_extension("jsonl");
    let summary = portcullis_ok(&[
        "store",
        "import",
        "--overwrite",
        "--data-dir",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(summary.contains("imported 3 objects"), "{summary}");
    assert!(summary.contains("2 replaced existing keys"), "{summary}");
    let after = stored(&data);
    assert_eq!(after.len(), 3);
    assert!(after[1].contains("\"n\":\"changed\""), "{}", after[1]);
}

#[test]
fn export_of_a_missing_store_says_so() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("nothing-here");
    let out = portcullis(
        &["store", "export", "--data-dir", data.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("there is no embedded store at"),
        "{}",
        text(&out.stderr)
    );
    assert!(!data.exists(), "export created a data directory");
}

/// SIGINT or SIGTERM in the middle of an export removes the partial file and leaves nothing
/// under the final name. The signal is sent once the partial file exists; an export that
/// finished first (a race lost) is run again, a few times at most.
#[test]
fn an_interrupted_export_leaves_no_file() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let (ok, stderr) = import(&data, joined(&valid_export(20_000)).as_bytes(), &[]);
    assert!(ok, "{stderr}");
    for signal in ["INT", "TERM"] {
        let mut interrupted = false;
        for _ in 0..5 {
            let out_dir = tempfile::tempdir().unwrap();
            let target = out_dir.path().join("backup.jsonl.gz");
            let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
                .args([
                    "store",
                    "export",
                    "--data-dir",
                    data.to_str().unwrap(),
                    "-o",
                ])
                .arg(&target)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let partial = || {
                std::fs::read_dir(out_dir.path())
                    .unwrap()
                    .filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().contains(".partial-"))
            };
            let started = std::time::Instant::now();
            while !partial() && child.try_wait().unwrap().is_none() {
                assert!(started.elapsed().as_secs() < 60, "the export never started");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let status = Command::new("kill")
                .args([format!("-{signal}"), child.id().to_string()])
                .status()
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let stderr = text(&out.stderr);
            if out.status.success() {
                // It finished before the signal: the export must be whole; try again.
                assert!(target.exists());
                continue;
            }
            assert!(
                status.success(),
                "the export ended by itself before SIG{signal}, with {}: {stderr}",
                out.status
            );
            // An export that died of the signal (no handler yet) says nothing and leaves its
            // partial file: the handlers are installed before the file is created.
            assert!(
                stderr.contains(&format!("interrupted by SIG{signal}"))
                    && stderr.contains("nothing was written to"),
                "exit {}: {stderr}",
                out.status
            );
            let left: Vec<String> = std::fs::read_dir(out_dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(left.is_empty(), "left behind: {left:?}");
            interrupted = true;
            break;
        }
        assert!(
            interrupted,
            "five exports finished before SIG{signal} reached them"
        );
    }
}

// === etcd ===

/// Embedded -> etcd -> embedded: the objects and their uids survive both moves; etcd is exported
/// while a gateway serves from it; a large store is exported over several pages at one revision.
#[cfg(feature = "etcd")]
#[test]
fn objects_move_from_the_embedded_store_to_etcd_and_back() {
    use common::etcd::Etcd;

    let mut gw = populated_gateway();
    let before = snapshot(&gw);
    assert!(gw.terminate().success());
    let work = tempfile::tempdir().unwrap();
    let from_embedded = work.path().join("embedded.jsonl");
    export_to(&gw.data, &from_embedded);
    let exported = std::fs::read_to_string(&from_embedded).unwrap();

    let etcd = Etcd::start(1);
    let servers = etcd.servers_flag();
    let on_etcd = [
        "--storage-backend",
        "etcd3",
        "--etcd-servers",
        servers.as_str(),
    ];
    let mut args = vec!["store", "import"];
    args.extend(on_etcd);
    args.push(from_embedded.to_str().unwrap());
    let summary = portcullis_ok(&args);
    assert!(summary.contains("into etcd"), "{summary}");

    // A gateway on etcd serves the same objects; export while it runs.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gw_etcd = Gateway::start_in(dir, data, &on_etcd);
    assert_eq!(snapshot(&gw_etcd), before);
    let from_etcd = work.path().join("etcd.jsonl.gz");
    let mut args = vec!["store", "export", "-o", from_etcd.to_str().unwrap()];
    args.extend(on_etcd);
    portcullis_ok(&args);
    drop(gw_etcd);

    // ... and back into a fresh embedded store.
    let dir = tempfile::tempdir().unwrap();
    let restored = dir.path().join("data");
    portcullis_ok(&[
        "store",
        "import",
        "--data-dir",
        restored.to_str().unwrap(),
        from_etcd.to_str().unwrap(),
    ]);
    assert_eq!(object_lines(&export(&restored)), object_lines(&exported));
    let gw_back = Gateway::start_in(dir, restored, &[]);
    assert_eq!(snapshot(&gw_back), before);

    // More objects than one list page and one transaction, under another etcd prefix.
    let many = valid_export(1_234);
    let file = work.path().join("many.jsonl");
    std::fs::write(&file, joined(&many)).unwrap();
    let other = [
        "--storage-backend",
        "etcd3",
        "--etcd-servers",
        servers.as_str(),
        "--etcd-prefix",
        "/other",
    ];
    let mut args = vec!["store", "import"];
    args.extend(other);
    args.push(file.to_str().unwrap());
    assert!(portcullis_ok(&args).starts_with("imported 1234 objects"));
    let mut args = vec!["store", "export"];
    args.extend(other);
    let lines = object_lines(&portcullis_ok(&args));
    let mut expected = many[1..many.len() - 1].to_vec();
    expected.sort_by_key(|l| serde_json::from_str::<Value>(l).unwrap()["key"].to_string());
    assert_eq!(lines.len(), 1_234);
    let keys = |ls: &[String]| -> Vec<String> {
        ls.iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["key"].to_string())
            .collect()
    };
    assert_eq!(keys(&lines), keys(&expected));
}

/// Over TLS with client certificates: objects too large to share one etcd request (its limit is
/// 1.5 MiB) go in transactions of their own; a key under the prefix that is not an object key
/// (`compact_rev_key`, where gateways before the compactor moved it to etcd's root kept it) is
/// not exported.
#[cfg(feature = "etcd")]
#[test]
fn large_objects_move_to_etcd_over_tls_and_bookkeeping_keys_stay_out() {
    use common::etcd::Etcd;

    let etcd = Etcd::start_tls();
    let (ca, cert, key) = etcd.tls_files().unwrap();
    let servers = etcd.servers_flag();
    let flags = [
        "--storage-backend",
        "etcd3",
        "--etcd-servers",
        servers.as_str(),
        "--etcd-cafile",
        ca.to_str().unwrap(),
        "--etcd-certfile",
        cert.to_str().unwrap(),
        "--etcd-keyfile",
        key.to_str().unwrap(),
    ];
    let mut lines = vec![header()];
    for i in 0..3 {
        lines.push(format!(
            r#"{{"key":"/registry/configmaps/default/big-{i}","object":{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big-{i}","namespace":"default"}},"data":{{"x":"{}"}}}}}}"#,
            "x".repeat(1_200_000)
        ));
    }
    lines.push(end(3));
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("big.jsonl");
    std::fs::write(&file, joined(&lines)).unwrap();
    let mut args = vec!["store", "import"];
    args.extend(flags);
    args.push(file.to_str().unwrap());
    assert!(portcullis_ok(&args).starts_with("imported 3 objects"));

    // What the compactor of an earlier gateway wrote next to the objects.
    etcd_json(
        &etcd,
        "/v3/kv/put",
        serde_json::json!({"key": b64(b"/registry/compact_rev_key"), "value": b64(b"3")}),
    );

    let mut args = vec!["store", "export"];
    args.extend(flags);
    let exported = portcullis_ok(&args);
    assert!(!exported.contains("compact_rev_key"));
    let parse = |ls: &[String]| -> Vec<Value> {
        ls.iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // (Not assert_eq!: a failure would print megabytes.)
    assert!(
        parse(&object_lines(&exported)) == parse(&lines[1..4]),
        "the exported objects differ from the imported ones"
    );
}

/// Calls etcd's JSON gateway (`/v3/kv/put`, `/v3/kv/range`) on the first member, presenting
/// the client certificate when the cluster has TLS; returns the response body.
#[cfg(feature = "etcd")]
fn etcd_json(etcd: &common::etcd::Etcd, path: &str, body: Value) -> Value {
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    if let Some((ca, cert, client_key)) = etcd.tls_files() {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(client_key).unwrap());
        builder = builder
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap(),
            )
            .identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    let client = builder.build().unwrap();
    let url = format!("{}{path}", etcd.endpoints()[0]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = client.post(url).json(&body).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "etcd {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    })
}

#[cfg(feature = "etcd")]
fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(feature = "etcd")]
fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// An export of etcd reads every page at the first page's revision: while imports keep
/// rewriting all objects, each export equals what etcd held at the revision its header names
/// (read back through etcd's own range API at that revision).
#[cfg(feature = "etcd")]
#[test]
fn an_etcd_export_reads_every_page_at_one_revision_while_writes_go_on() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use common::etcd::Etcd;

    const OBJECTS: usize = 1_200;
    let etcd = Etcd::start(1);
    let servers = etcd.servers_flag();
    let flags: Vec<String> = ["--storage-backend", "etcd3", "--etcd-servers", &servers]
        .map(String::from)
        .to_vec();
    let work = tempfile::tempdir().unwrap();
    let generation = move |dir: &Path, g: usize| -> std::path::PathBuf {
        let mut lines = vec![header()];
        lines.extend((0..OBJECTS).map(|i| {
            format!(
                r#"{{"key":"/registry/configmaps/default/cm-{i:04}","object":{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i:04}","namespace":"default"}},"data":{{"generation":"{g}"}}}}}}"#
            )
        }));
        lines.push(end(OBJECTS));
        let file = dir.join(format!("generation-{g}.jsonl"));
        std::fs::write(&file, joined(&lines)).unwrap();
        file
    };
    let import_generation = |flags: &[String], file: &Path, overwrite: bool| {
        let mut args: Vec<&str> = vec!["store", "import"];
        args.extend(flags.iter().map(String::as_str));
        if overwrite {
            args.push("--overwrite");
        }
        args.push(file.to_str().unwrap());
        portcullis_ok(&args);
    };
    import_generation(&flags, &generation(work.path(), 0), false);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, flags, dir) = (stop.clone(), flags.clone(), work.path().to_owned());
        std::thread::spawn(move || {
            let mut g = 1;
            while !stop.load(Ordering::Relaxed) {
                import_generation(&flags, &generation(&dir, g), true);
                g += 1;
            }
            g - 1
        })
    };
    for round in 0..16 {
        let mut args: Vec<&str> = vec!["store", "export"];
        args.extend(flags.iter().map(String::as_str));
        let out = portcullis_ok(&args);
        let header: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        let lines = object_lines(&out);
        assert_eq!(lines.len(), OBJECTS);
        let revision = header["revision"].as_u64().unwrap();
        let exported: Vec<(String, Value)> = lines
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["key"].as_str().unwrap().to_owned(), v["object"].clone())
            })
            .collect();
        let prefix = b"/registry/configmaps/";
        let mut end = prefix.to_vec();
        *end.last_mut().unwrap() += 1;
        let range = etcd_json(
            &etcd,
            "/v3/kv/range",
            serde_json::json!({"key": b64(prefix), "range_end": b64(&end), "revision": revision}),
        );
        let at_revision: Vec<(String, Value)> = range["kvs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| {
                let key = String::from_utf8(unb64(kv["key"].as_str().unwrap())).unwrap();
                let value = serde_json::from_slice(&unb64(kv["value"].as_str().unwrap())).unwrap();
                (key, value)
            })
            .collect();
        let differing = exported
            .iter()
            .zip(&at_revision)
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            exported.len() == at_revision.len() && differing == 0,
            "export {round} is not etcd's state at its revision {revision}: {differing} objects differ"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written >= 1, "no import ran alongside the exports");
}
