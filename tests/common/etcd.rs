//! A real etcd (v3.4, Debian's etcd-server) for tests: a cluster of one or more members on
//! 127.0.0.1 with free ports, data and logs in a temporary directory, every member stopped by
//! PID. A missing etcd fails the test.
//!
//! Each member listens on three ports: clients, peers, and a plain-http metrics port whose
//! `/health` answers `{"health":"true"}` only once the member has a leader and serves reads;
//! that is what "started" means here, also for the TLS cluster whose client port demands a
//! client certificate.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::ldap::free_port;

/// How long a member may take to become healthy before the test fails.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Attempts at starting a new cluster when a port picked as free was taken meanwhile.
const START_ATTEMPTS: usize = 5;

/// A running etcd cluster.
pub struct Etcd {
    members: Vec<Member>,
    tls: Option<TlsFiles>,
    dir: tempfile::TempDir,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    metrics_port: u16,
    data: PathBuf,
    log: PathBuf,
    /// The flags shared by every start of this member.
    args: Vec<String>,
    child: Option<Child>,
}

struct TlsFiles {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Etcd {
    /// Starts a plain-http cluster of `members` members and waits until every one is healthy.
    pub fn start(members: usize) -> Etcd {
        assert!(members > 0, "an etcd cluster needs at least one member");
        Self::start_with(members, false)
    }

    /// Starts one member serving clients over https with a server certificate for 127.0.0.1
    /// from a CA made here, and demanding a client certificate from that CA
    /// (`--client-cert-auth`); see [`Etcd::tls_files`].
    pub fn start_tls() -> Etcd {
        Self::start_with(1, true)
    }

    /// The client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.members
            .iter()
            .map(|m| format!("{scheme}://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// The client URLs comma-joined, as `--etcd-servers` takes them.
    pub fn servers_flag(&self) -> String {
        self.endpoints().join(",")
    }

    /// `(CA, client certificate, client key)` for `--etcd-cafile`, `--etcd-certfile` and
    /// `--etcd-keyfile`, when started with [`Etcd::start_tls`].
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf, PathBuf)> {
        self.tls
            .as_ref()
            .map(|t| (t.ca.clone(), t.client_cert.clone(), t.client_key.clone()))
    }

    /// Kills member `i` with SIGKILL and waits for it to exit.
    pub fn kill_member(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut child) = m.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops member `i` with SIGTERM, as a rolling restart does, and waits for it to exit.
    pub fn terminate_member(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut child) = m.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data directory and ports and waits until it is healthy.
    pub fn restart_member(&mut self, i: usize) {
        assert!(
            self.members[i].child.is_none(),
            "etcd member {i} is running; kill it first"
        );
        self.members[i].spawn("existing");
        if let Err(e) = self.members[i].wait_healthy(Instant::now() + START_DEADLINE) {
            panic!("{e}");
        }
    }

    /// Kills every member.
    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
    }

    /// Starts every stopped member and waits until all are healthy (together, since a
    /// cluster without a quorum has no leader and so no healthy member).
    pub fn start_all(&mut self) {
        for m in &mut self.members {
            if m.child.is_none() {
                m.spawn("existing");
            }
        }
        let deadline = Instant::now() + START_DEADLINE;
        for m in &mut self.members {
            if let Err(e) = m.wait_healthy(deadline) {
                panic!("{e}");
            }
        }
    }

    /// Waits until every running member is healthy (after a kill, until the others elected a
    /// leader if the killed one led).
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        for m in &mut self.members {
            if m.child.is_some()
                && let Err(e) = m.wait_healthy(deadline)
            {
                panic!("{e}");
            }
        }
    }

    /// The temporary directory holding every member's data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn start_with(members: usize, tls: bool) -> Etcd {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(members, tls) {
                Ok(etcd) => return etcd,
                // Another test took a port between our probe and etcd's bind: new ports.
                Err(e) if e.contains("address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("etcd could not bind free ports in {START_ATTEMPTS} attempts; last: {last}");
    }

    fn try_start(count: usize, tls: bool) -> Result<Etcd, String> {
        let bin = binary();
        let dir = tempfile::tempdir().unwrap();
        let tls = tls.then(|| make_certs(dir.path()));
        let token = unique_token();
        let mut members: Vec<Member> = (0..count)
            .map(|i| {
                let name = format!("m{i}");
                Member {
                    data: dir.path().join(format!("{name}.etcd")),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    client_port: free_port(),
                    peer_port: free_port(),
                    metrics_port: free_port(),
                    args: Vec::new(),
                    child: None,
                }
            })
            .collect();
        let cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let scheme = if tls.is_some() { "https" } else { "http" };
        for m in &mut members {
            let client = format!("{scheme}://127.0.0.1:{}", m.client_port);
            let peer = format!("http://127.0.0.1:{}", m.peer_port);
            let mut args = vec![
                bin.display().to_string(),
                format!("--name={}", m.name),
                format!("--data-dir={}", m.data.display()),
                format!("--listen-client-urls={client}"),
                format!("--advertise-client-urls={client}"),
                format!("--listen-peer-urls={peer}"),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--listen-metrics-urls=http://127.0.0.1:{}", m.metrics_port),
                format!("--initial-cluster={cluster}"),
                format!("--initial-cluster-token={token}"),
                "--logger=zap".to_owned(),
                "--log-outputs=stderr".to_owned(),
            ];
            if let Some(t) = &tls {
                args.extend([
                    format!("--cert-file={}", t.server_cert.display()),
                    format!("--key-file={}", t.server_key.display()),
                    format!("--trusted-ca-file={}", t.ca.display()),
                    "--client-cert-auth".to_owned(),
                ]);
            }
            m.args = args;
            m.spawn("new");
        }
        let mut etcd = Etcd { members, tls, dir };
        let deadline = Instant::now() + START_DEADLINE;
        for m in &mut etcd.members {
            m.wait_healthy(deadline)?;
        }
        Ok(etcd)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop_all();
    }
}

// === impl Member ===

impl Member {
    /// Spawns etcd with `--initial-cluster-state state`, appending its output to the log.
    fn spawn(&mut self, state: &str) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.args[0])
            .args(&self.args[1..])
            .arg(format!("--initial-cluster-state={state}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.args[0]));
        self.child = Some(child);
    }

    /// Waits until the member answers `/health` with true; on failure, the error carries its log.
    fn wait_healthy(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(self.failure(&format!("exited with {status}")));
            }
            if health(self.metrics_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                if let Some(mut child) = self.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(self.failure("was not healthy in time"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn failure(&self, what: &str) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!(
            "etcd member {} (client port {}) {what}\n--- {}\n{log}",
            self.name,
            self.client_port,
            self.log.display()
        )
    }
}

/// Whether the plain-http `/health` on `port` reports a healthy member.
fn health(port: u16) -> bool {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    if conn
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    (body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"))
        && body.contains(r#""health":"true""#)
}

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("ETCD") {
        return PathBuf::from(p);
    }
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(dir).join("etcd");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "etcd is required for this test and was not found; ./scripts/test installs it (Debian package etcd-server)"
    );
}

/// An `--initial-cluster-token` no other cluster of this or a parallel test run shares.
fn unique_token() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "portcullis-test-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
fn make_certs(dir: &Path) -> TlsFiles {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "etcd test ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    server.distinguished_name.push(DnType::CommonName, "etcd");
    // etcd's own gateway dials the member with this certificate too.
    server.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "portcullis");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();

    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    };
    std::fs::write(&files.ca, ca_cert.pem()).unwrap();
    std::fs::write(&files.server_cert, server_cert.pem()).unwrap();
    std::fs::write(&files.server_key, server_key.serialize_pem()).unwrap();
    std::fs::write(&files.client_cert, client_cert.pem()).unwrap();
    std::fs::write(&files.client_key, client_key.serialize_pem()).unwrap();
    files
}
