//! A real OpenLDAP `slapd` for tests, on 127.0.0.1 with a free port in a temporary directory,
//! loaded with `slapadd` and stopped by PID. A missing slapd fails the test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running slapd.
pub struct Slapd {
    pub url: String,
    /// `ldaps://` URL when started with TLS.
    pub ldaps_url: Option<String>,
    /// The CA (PEM) that signed the server certificate, when started with TLS.
    pub ca_pem: Option<String>,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// The directory every LDAP test uses: users in a nested OU, two groupOfNames, one posixGroup.
pub const DIRECTORY: &str = r#"dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=eng,ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: eng

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: cn=reader,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: reader-secret

dn: uid=alice,ou=eng,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: posixAccount
uid: alice
cn: Alice
sn: Liddell
uidNumber: 1001
gidNumber: 1001
homeDirectory: /home/alice
userPassword: alice-secret

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: Builder
userPassword: bob-secret

dn: cn=devs,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: devs
member: uid=alice,ou=eng,ou=people,dc=example,dc=org
member: uid=bob,ou=people,dc=example,dc=org

dn: cn=ops,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: ops
member: uid=alice,ou=eng,ou=people,dc=example,dc=org

dn: cn=unix,ou=groups,dc=example,dc=org
objectClass: posixGroup
cn: unix
gidNumber: 2000
memberUid: alice
"#;

fn binary(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} is required for this test and was not found; ./scripts/test installs it (Debian package slapd)"
    );
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Slapd {
    /// Starts slapd with [`DIRECTORY`] loaded.
    pub fn start() -> Slapd {
        Self::start_with(false)
    }

    /// Starts slapd with TLS: `ldap://` (StartTLS available) and `ldaps://`, with a server
    /// certificate for 127.0.0.1 from a CA made here.
    pub fn start_tls() -> Slapd {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let mut tls_conf = String::new();
        let mut ca_pem = None;
        if tls {
            use rcgen::{
                BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType,
            };
            let ca_key = KeyPair::generate().unwrap();
            let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca.distinguished_name
                .push(DnType::CommonName, "ldap test ca");
            let ca_cert = ca.self_signed(&ca_key).unwrap();
            let issuer = Issuer::new(ca, ca_key);
            let key = KeyPair::generate().unwrap();
            let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
            server
                .subject_alt_names
                .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
            server
                .distinguished_name
                .push(DnType::CommonName, "127.0.0.1");
            let cert = server.signed_by(&key, &issuer).unwrap();
            let (ca_file, cert_file, key_file) = (
                dir.path().join("ca.pem"),
                dir.path().join("server.pem"),
                dir.path().join("server.key"),
            );
            std::fs::write(&ca_file, ca_cert.pem()).unwrap();
            std::fs::write(&cert_file, cert.pem()).unwrap();
            std::fs::write(&key_file, key.serialize_pem()).unwrap();
            tls_conf = format!(
                "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                ca_file.display(),
                cert_file.display(),
                key_file.display()
            );
            ca_pem = Some(ca_cert.pem());
        }
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        let conf = dir.path().join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\ninclude /etc/ldap/schema/nis.schema\ninclude /etc/ldap/schema/inetorgperson.schema\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n{}pidfile {}/slapd.pid\ndatabase mdb\nmaxsize 104857600\ndirectory {}\nsuffix \"dc=example,dc=org\"\nrootdn \"cn=admin,dc=example,dc=org\"\nrootpw admin-secret\n",
                tls_conf,
                dir.path().display(),
                db.display()
            ),
        )
        .unwrap();
        let ldif = dir.path().join("directory.ldif");
        std::fs::write(&ldif, DIRECTORY).unwrap();
        let out = Command::new(binary("slapadd"))
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&ldif)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let url = format!("ldap://127.0.0.1:{port}");
        let tls_port = free_port();
        let ldaps_url = tls.then(|| format!("ldaps://127.0.0.1:{tls_port}"));
        let listeners = match &ldaps_url {
            Some(l) => format!("{url}/ {l}/"),
            None => format!("{url}/"),
        };
        let child = Command::new(binary("slapd"))
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(listeners)
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting slapd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "slapd did not listen on {url} within 20s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if tls {
            while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "slapd did not listen on ldaps within 20s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Slapd {
            url,
            ldaps_url,
            ca_pem,
            child: Some(child),
            _dir: dir,
        }
    }

    /// Stops slapd (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
