//! Test harness: starts the built `portcullis` binary on 127.0.0.1 with a free port in a
//! temporary directory, talks to it with the real kubectl and with an HTTPS client, and stops it
//! by PID.

#![allow(dead_code, unreachable_pub)]

pub mod etcd;
pub mod ldap;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running gateway.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub url: String,
    child: Option<Child>,
    extra: Vec<String>,
}

impl Gateway {
    /// Starts a gateway with a fresh data directory.
    pub fn start() -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Self::start_in(dir, data, &[])
    }

    /// Starts a gateway on an existing data directory, with extra flags.
    pub fn start_in(dir: tempfile::TempDir, data: PathBuf, extra: &[&str]) -> Gateway {
        let (child, url) = spawn(&data, extra);
        Gateway {
            dir,
            data,
            url,
            child: Some(child),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data.join("admin.kubeconfig")
    }

    /// Runs kubectl against the gateway with the admin kubeconfig and a private cache.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_stdin(args, None)
    }

    /// Runs kubectl, asserting success, and returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_binary());
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .env("HOME", self.dir.path())
            .env("KUBECACHEDIR", self.dir.path().join("kube-cache"))
            .env_remove("KUBECONFIG");
        cmd
    }

    pub fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.kubectl_command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("running kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// An HTTPS client presenting the admin certificate.
    pub fn admin_client(&self) -> reqwest::Client {
        self.client_with_identity(Some((
            &self.data.join("admin.crt"),
            &self.data.join("admin.key"),
        )))
    }

    /// An HTTPS client trusting the gateway's CA, presenting `identity` (cert, key) if any.
    pub fn client_with_identity(&self, identity: Option<(&Path, &Path)>) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.data.join("ca.crt")).unwrap())
            .unwrap();
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(30));
        if let Some((cert, key)) = identity {
            let mut pem = std::fs::read(cert).unwrap();
            pem.extend(std::fs::read(key).unwrap());
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    }

    /// Kills the server with SIGKILL and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server with SIGTERM and waits for it; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("gateway running");
        let pid = c.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        c.wait().unwrap()
    }

    /// Restarts on the same data directory, with the same extra flags.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the gateway first");
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let (child, url) = spawn(&self.data, &extra);
        self.child = Some(child);
        self.url = url;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn(data: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--secure-port", "0", "--log-level", "warn"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting portcullis");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("portcullis did not print its serving line within 60s");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .expect("serving line names the URL")
        .trim_end_matches(';')
        .to_owned();
    (child, url)
}

/// The kubectl binary: `$KUBECTL` or `kubectl` on the PATH. A missing kubectl fails the test.
pub fn kubectl_binary() -> String {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let found = Command::new(&bin).arg("version").arg("--client").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "kubectl is required for this test and was not found as `{bin}`; ./scripts/test installs it"
    );
    bin
}

/// Asserts that an audit event (as JSON) carries the annotations of a request the admin's
/// client certificate authenticated and authorization allowed.
pub fn assert_allowed_for_x509(event: &serde_json::Value) {
    let annotations = &event["annotations"];
    assert_eq!(
        annotations["authorization.k8s.io/decision"], "allow",
        "{event}"
    );
    assert_eq!(
        annotations["authentication.portcullis.dev/method"], "x509",
        "{event}"
    );
}
