//! The seller's database stopped for real (a cluster of the test's own, its server stopped and
//! started again) during a fill, a live edit and an erasure: nothing is lost, no erasure receipt
//! is signed while the values are still there, `vault mirror show` says what waits, and the node
//! catches up by itself once the database is back.

use vault_tests::pg::OwnCluster;
use vault_tests::{TestVault, eventually, json, json_or_no, serve};

use super::mirror::{erasure_confirmed, mirror_set, serve_seller};

#[test]
fn a_database_stopped_and_started_loses_nothing() {
    let cluster = OwnCluster::start();
    let db = cluster.db();
    let (alice, bob, shop) = (TestVault::new(), TestVault::new(), TestVault::new());
    alice.ok(&["profile", "set", "email", "alice@example.org"]);
    bob.ok(&["profile", "set", "email", "bob@example.org"]);
    assert!(mirror_set(&shop, &db.url()).status.success());
    let (_shop_node, shop_ticket, _) = serve_seller(&shop, None);
    let (_alice_node, _) = serve(&alice);
    let (_bob_node, _) = serve(&bob);
    let count = |sql: &str| db.try_count(sql);

    // Stopped during the fill: the shares arrive at the seller's vault, the mirror waits.
    cluster.halt();
    alice.ok(&["contact", "add", "shop", &shop_ticket]);
    bob.ok(&["contact", "add", "shop", &shop_ticket]);
    let grant = json(&alice, &["grant", "shop", "--fields", "profile.email", "--purpose", "orders"]);
    let alice_grant = grant["id"].as_str().unwrap().to_owned();
    json(&bob, &["grant", "shop", "--fields", "profile.email", "--purpose", "orders"]);
    eventually("both shares at the seller", || {
        json_or_no(&shop, &["shared"])["shares"].as_array().is_some_and(|s| s.len() == 2)
    });
    eventually("the mirror says it fails", || shop.ok(&["mirror", "show"]).contains("FAILING"));
    cluster.resume();
    eventually("both emails in PostgreSQL once it is back", || {
        count("SELECT count(*) FROM vault.profiles WHERE email LIKE '%@example.org'") == Some(2)
    });

    // Stopped during a live edit and an erasure.
    cluster.halt();
    bob.ok(&["profile", "set", "email", "bob@new.example"]);
    alice.ok(&["revoke", &alice_grant]);
    eventually("the seller erased its own copy", || {
        json_or_no(&shop, &["shared"])["shares"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["grant"] == alice_grant.as_str() && s["status"] == "revoked")
    });
    eventually("the seller says the erasure waits", || {
        let shown = shop.ok(&["mirror", "show"]);
        shown.contains("FAILING") && shown.contains("erasures pending: 1")
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        !erasure_confirmed(&alice, &alice_grant),
        "no receipt while the values may still be in PostgreSQL"
    );
    assert!(alice.ok(&["grants", "--all"]).contains("revoked, erasure pending"));

    cluster.resume();
    eventually("alice's values erased in PostgreSQL", || {
        count("SELECT count(*) FROM vault.consent_values WHERE value_text = 'alice@example.org'") == Some(0)
    });
    eventually("bob's edit in PostgreSQL", || {
        count("SELECT count(*) FROM vault.profiles WHERE email = 'bob@new.example'") == Some(1)
    });
    eventually("alice's erasure receipt", || erasure_confirmed(&alice, &alice_grant));
    let shown = shop.ok(&["mirror", "show"]);
    assert!(!shown.contains("FAILING") && shown.contains("erasures pending: 0"), "{shown}");
    assert_eq!(count("SELECT count(*) FROM vault.consents"), Some(2), "nothing lost, nothing twice");
}

/// The seller's database unreachable (down, or tampered with in a breach) when the seller must
/// tell its customers of a breach: the notices still go to the customers whose shares the node
/// holds, and the seller is told the database could not be read.
#[test]
fn a_breach_notice_goes_out_while_the_database_cannot_be_read() {
    let db = vault_tests::pg::TestDb::new();
    let gate = vault_tests::pg::Gate::start(db.addr);
    let (alice, shop) = (TestVault::new(), TestVault::new());
    alice.ok(&["profile", "set", "email", "alice@example.org"]);
    assert!(mirror_set(&shop, &db.url_via(gate.addr)).status.success());
    let (_shop_node, shop_ticket, _) = serve_seller(&shop, None);
    let (_alice_node, _) = serve(&alice);
    alice.ok(&["contact", "add", "shop", &shop_ticket]);
    json(&alice, &["grant", "shop", "--fields", "profile.email", "--purpose", "orders"]);
    eventually("alice's email in PostgreSQL", || {
        db.try_count("SELECT count(*) FROM vault.consent_values") == Some(1)
    });

    gate.cut();
    let out = shop.run(&[
        "--json",
        "breach",
        "notify",
        "--since",
        "1d",
        "--no-relay",
        "--text",
        "Our CRM was copied on 2026-12-01",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot read the consents the seller's database records"), "{stderr}");
    assert!(!stderr.contains(&db.password), "no password in the warning: {stderr}");
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sent["notices"].as_array().map(Vec::len), Some(1), "{sent:#}");
    eventually("alice holds the notice", || {
        json_or_no(&alice, &["notices"])["notices"].as_array().is_some_and(|n| n.len() == 1)
    });
}
