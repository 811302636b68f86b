//! TLS to the seller's database: a real server with `ssl=on`, its certificate signed by a CA
//! made in the test. The mirror encrypts, checks whom it speaks to as the connection string
//! says (`sslmode`, `sslrootcert`), and says plainly why when it will not connect.

use vault_tests::pg::{OwnCluster, TestCa, TestDb};
use vault_tests::{TestVault, eventually, json, serve};

use super::mirror::{mirror_set, serve_seller};

fn attach(url: &str) -> (bool, String) {
    let vault = TestVault::new();
    let out = mirror_set(&vault, url);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn the_mirror_encrypts_and_checks_the_servers_certificate() {
    let cluster = OwnCluster::start();
    let ca = TestCa::new("vault test CA");
    let (cert, key) = ca.server(&["127.0.0.1"]);
    cluster.serve_tls(&cert, &key);
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let other_file = files.path().join("other-ca.pem");
    std::fs::write(&other_file, TestCa::new("someone else's CA").pem).unwrap();
    let url = |db: &TestDb, query: String| format!("{}?{query}", db.url());

    // A CA that did not sign the server's certificate: refused, and said so.
    let db = cluster.db();
    let (ok, text) = attach(&url(&db, format!("sslmode=verify-full&sslrootcert={}", other_file.display())));
    assert!(!ok && text.contains("failed TLS") && text.contains("UnknownIssuer"), "{text}");
    assert!(!text.contains(&db.password), "{text}");

    // The right CA: attached, and the values travel encrypted.
    let (alice, shop) = (TestVault::new(), TestVault::new());
    alice.ok(&["profile", "set", "email", "alice@example.org"]);
    let out = mirror_set(&shop, &url(&db, format!("sslmode=verify-full&sslrootcert={}", ca_file.display())));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_shop_node, shop_ticket, _) = serve_seller(&shop, None);
    let (_alice_node, _) = serve(&alice);
    alice.ok(&["contact", "add", "shop", &shop_ticket]);
    json(&alice, &["grant", "shop", "--fields", "profile.email", "--purpose", "orders"]);
    eventually("alice's email in PostgreSQL", || {
        db.try_count("SELECT count(*) FROM vault.profiles WHERE email = 'alice@example.org'") == Some(1)
    });
    // The node's connections (the one that writes, the one that says the node is up).
    let count = |ssl: &str| {
        db.count(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
             WHERE a.application_name = 'vault-mirror' AND ({ssl})"
        ))
    };
    let (all, encrypted) = (count("true"), count("s.ssl"));
    assert!(all >= 1 && encrypted == all, "every connection of the node is encrypted: {encrypted} of {all}");
    let shown = shop.ok(&["mirror", "show"]);
    assert!(shown.contains("certificate checked (sslmode=verify-full)"), "{shown}");

    // A certificate for another name: verify-full refuses it, verify-ca (chain only) and
    // require (no check) take it.
    let (cert, key) = ca.server(&["db.internal"]);
    cluster.serve_tls(&cert, &key);
    let (ok, text) =
        attach(&url(&cluster.db(), format!("sslmode=verify-full&sslrootcert={}", ca_file.display())));
    assert!(!ok && text.contains("failed TLS") && text.contains("not valid for name"), "{text}");
    let (ok, text) =
        attach(&url(&cluster.db(), format!("sslmode=verify-ca&sslrootcert={}", ca_file.display())));
    assert!(ok, "{text}");
    let (ok, text) = attach(&url(&cluster.db(), "sslmode=require".into()));
    assert!(ok && text.contains("sslmode=require"), "{text}");
    // The name the certificate holds, dialled at an address (hostaddr): verify-full takes it.
    // And a host off this machine whose certificate nobody checks (require, no CA file): the
    // password exchange is bound to the TLS channel, which the real server does.
    let by_name = |db: &TestDb, query: &str| {
        format!(
            "host=db.internal hostaddr=127.0.0.1 port={} user={} password={} dbname={} {query}",
            db.addr.port(),
            db.name,
            db.password,
            db.name
        )
    };
    let (ok, text) =
        attach(&by_name(&cluster.db(), &format!("sslmode=verify-full sslrootcert={}", ca_file.display())));
    assert!(ok, "{text}");
    let (ok, text) = attach(&by_name(&cluster.db(), "sslmode=require"));
    assert!(ok, "{text}");
    // require with a CA file checks the chain (libpq's rule).
    let (ok, text) =
        attach(&url(&cluster.db(), format!("sslmode=require&sslrootcert={}", other_file.display())));
    assert!(!ok && text.contains("UnknownIssuer"), "{text}");
}

#[test]
fn require_refuses_a_server_without_tls() {
    // The shared test cluster runs without TLS.
    let db = TestDb::new();
    let (ok, text) = attach(&format!("{}?sslmode=require", db.url()));
    assert!(!ok && text.contains("failed TLS"), "{text}");
    let (ok, text) = attach(&format!("{}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", db.url()));
    assert!(!ok && text.contains("/nonexistent/ca.pem"), "{text}");
}
