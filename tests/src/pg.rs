//! The tests' side of the seller's PostgreSQL: a database of its own per test in the throwaway
//! cluster `scripts/pg-throwaway.sh` starts (named by `VAULT_TEST_PG`), and a TCP gate between
//! a vault and the server that a test can cut, to make the database unreachable for real.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, NoTls};

/// The cluster's admin URL. The mirror's tests never skip: without a server they fail and say
/// how to start one.
pub fn admin_url() -> String {
    std::env::var("VAULT_TEST_PG").unwrap_or_else(|_| {
        panic!(
            "VAULT_TEST_PG is not set: the mirror's tests need a PostgreSQL server. Start a throwaway one with \
             `eval \"$(scripts/pg-throwaway.sh start)\"` (README: running the tests)"
        )
    })
}

/// A database of the test's own, with a role of its own (`user`, `password`), dropped when
/// this is.
#[derive(Debug)]
pub struct TestDb {
    /// The database's name (also its owner role's).
    pub name: String,
    /// The role's password.
    pub password: String,
    /// 127.0.0.1:port of the server.
    pub addr: SocketAddr,
    /// The cluster's admin URL.
    admin: String,
}

impl TestDb {
    /// Creates the role and the database in the shared test cluster.
    pub fn new() -> Self {
        Self::on(admin_url())
    }

    /// Creates the role and the database in the cluster of `admin`.
    pub fn on(admin: String) -> Self {
        let mut client = Client::connect(&admin, NoTls).expect("the test cluster answers");
        let name = format!("t{:016x}", rand_u64());
        let password = format!("pw-{:016x}", rand_u64());
        client.batch_execute(&format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'")).unwrap();
        client.batch_execute(&format!("CREATE DATABASE {name} OWNER {name}")).unwrap();
        let config: postgres::Config = admin.parse().unwrap();
        let host = match &config.get_hosts()[0] {
            postgres::config::Host::Tcp(h) => h.clone(),
            #[allow(unreachable_patterns)]
            _ => panic!("VAULT_TEST_PG must name a TCP host"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let addr = format!("{host}:{port}").parse().expect("an IP host in VAULT_TEST_PG");
        Self { name, password, addr, admin }
    }

    /// The URL a vault is given, pointing at `addr` (the server, or a gate before it).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        format!("postgres://{}:{}@{addr}/{}", self.name, self.password, self.name)
    }

    /// The URL straight to the server.
    pub fn url(&self) -> String {
        self.url_via(self.addr)
    }

    /// A client of the test's own, as the seller's SQL user.
    pub fn client(&self) -> Client {
        Client::connect(&self.url(), NoTls).expect("the test database answers")
    }

    /// One integer from a query.
    pub fn count(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).expect(sql).get(0)
    }

    /// One integer from a query, or `None` while it fails (before the mirror made its tables):
    /// for waits on a condition.
    pub fn try_count(&self, sql: &str) -> Option<i64> {
        self.client().query_one(sql, &[]).ok().map(|row| row.get(0))
    }

    /// One text from a query, or `None` while it fails or finds no row (or NULL).
    pub fn try_text(&self, sql: &str) -> Option<String> {
        self.client().query_opt(sql, &[]).ok().flatten().and_then(|row| row.get(0))
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.admin, NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {0} WITH (FORCE); DROP ROLE IF EXISTS {0}",
                self.name
            ));
        }
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).expect("random bytes");
    u64::from_le_bytes(b)
}

/// A TCP relay to `target` that a test can cut (every connection dropped, new ones closed at
/// once) and mend.
#[derive(Debug)]
pub struct Gate {
    /// Where clients connect.
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Gate {
    /// Starts relaying, on loopback.
    pub fn start(target: SocketAddr) -> Self {
        Self::start_on("127.0.0.1:0", target)
    }

    /// Starts relaying, listening on `bind` (an address a lab's hosts reach, say).
    pub fn start_on(bind: &str, target: SocketAddr) -> Self {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (o, l) = (open.clone(), live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !o.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else { continue };
                let mut held = l.lock().unwrap();
                held.push(client.try_clone().unwrap());
                held.push(server.try_clone().unwrap());
                drop(held);
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Self { addr, open, live }
    }

    /// Makes the server unreachable through the gate.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Lets connections through again.
    pub fn mend(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let _ = from.set_read_timeout(Some(Duration::from_secs(600)));
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// A PostgreSQL cluster of the test's own (`scripts/pg-throwaway.sh`), whose server the test
/// stops and starts again: the database down for real, not only unreachable. Removed when this
/// is dropped.
#[derive(Debug)]
pub struct OwnCluster {
    admin: String,
    dir: String,
}

impl OwnCluster {
    /// Starts one (a few seconds: `initdb`).
    pub fn start() -> Self {
        let out = std::process::Command::new("bash")
            .arg(crate::workspace_root().join("scripts/pg-throwaway.sh"))
            .arg("start")
            .output()
            .expect("the throwaway script runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |name: &str| -> String {
            let line = text.lines().find(|l| l.starts_with(&format!("export {name}="))).expect(name);
            line.split_once('=').unwrap().1.trim_matches('\'').to_owned()
        };
        Self { admin: value("VAULT_TEST_PG"), dir: value("VAULT_TEST_PG_DIR") }
    }

    /// A database of the test's own in this cluster.
    pub fn db(&self) -> TestDb {
        TestDb::on(self.admin.clone())
    }

    fn script(&self, what: &str) {
        let status = std::process::Command::new("bash")
            .arg(crate::workspace_root().join("scripts/pg-throwaway.sh"))
            .args([what, &self.dir])
            .status()
            .expect("the throwaway script runs");
        assert!(status.success(), "pg-throwaway.sh {what}");
    }

    /// Makes the server speak TLS with `cert` (its chain, PEM) and `key`, from the next
    /// connection on (a reload, no restart). Each call writes new files, so that the wait below
    /// sees when the server took these ones and not the previous.
    pub fn serve_tls(&self, cert: &str, key: &str) {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let owner = std::fs::metadata(format!("{}/data", self.dir)).expect("the cluster's data");
        let stem = format!("{}/server-{:016x}", self.dir, rand_u64());
        let (cert_path, key_path) = (format!("{stem}.crt"), format!("{stem}.key"));
        for (path, text) in [(&cert_path, cert), (&key_path, key)] {
            std::fs::write(path, text).unwrap();
            // The server reads its key only when its own user alone can.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(path, Some(owner.uid()), Some(owner.gid())).unwrap();
        }
        let mut admin = Client::connect(&self.admin, NoTls).expect("the cluster answers");
        // One statement at a time: ALTER SYSTEM refuses to run in a batch's transaction.
        for sql in [
            format!("ALTER SYSTEM SET ssl_cert_file = '{cert_path}'"),
            format!("ALTER SYSTEM SET ssl_key_file = '{key_path}'"),
            "ALTER SYSTEM SET ssl = on".to_owned(),
            "SELECT pg_reload_conf()".to_owned(),
        ] {
            admin.batch_execute(&sql).unwrap();
        }
        // The reload is signalled, not waited for: a new session shows the settings the next
        // sessions get.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let mut fresh = Client::connect(&self.admin, NoTls).expect("the cluster answers");
            let file: String = fresh.query_one("SHOW ssl_cert_file", &[]).unwrap().get(0);
            let on: String = fresh.query_one("SHOW ssl", &[]).unwrap().get(0);
            if on == "on" && file == cert_path {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server took no certificate (see {}/server.log)",
                self.dir
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (fast shutdown: sessions are cut).
    pub fn halt(&self) {
        self.script("halt");
    }

    /// Starts it again, on the same port.
    pub fn resume(&self) {
        self.script("resume");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(crate::workspace_root().join("scripts/pg-throwaway.sh"))
            .arg("stop")
            .env("VAULT_TEST_PG_DIR", &self.dir)
            .status();
    }
}

/// A certificate authority made in the test, and the server certificates it signs.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestCa")
    }
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.key_usages =
            vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let pem = params.self_signed(&key).unwrap().pem();
        Self { issuer: rcgen::Issuer::new(params, key), pem }
    }

    /// A server certificate for `names` (host names or IP addresses): (certificate, key), PEM.
    pub fn server(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "vault test database");
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}
