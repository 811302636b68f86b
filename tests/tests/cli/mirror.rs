//! The seller's PostgreSQL mirror, through the real binaries and a real PostgreSQL server: a
//! customer's consented values are in the seller's database while consent lasts, follow her
//! edits, and are deleted there (in one committed transaction) before the seller's vault signs
//! the erasure receipt. With the database unreachable, no receipt is signed: both sides show the
//! erasure pending until the database is back.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
pub(super) use vault_tests::nodes::{erasure_confirmed, mirror_set};
use vault_tests::pg::{Gate, TestDb};
use vault_tests::{Serving, TestVault, eventually, json, json_or_no, serve};

/// `vault serve` for the seller, its standard error kept in a file of the vault's directory.
pub(super) fn serve_seller(shop: &TestVault, mirror: Option<&str>) -> (Serving, String, std::path::PathBuf) {
    serve_seller_with(shop, mirror, &["serve", "--no-relay", "--bind", "127.0.0.1:0"])
}

/// [`serve_seller`] with the command's own arguments.
pub(super) fn serve_seller_with(
    shop: &TestVault,
    mirror: Option<&str>,
    args: &[&str],
) -> (Serving, String, std::path::PathBuf) {
    let log = tempfile::NamedTempFile::new().unwrap().into_temp_path().keep().unwrap();
    let mut cmd = shop.cmd(args);
    if let Some(url) = mirror {
        cmd.env("VAULT_MIRROR_URL", url);
    }
    cmd.env("VAULT_LOG", "info");
    let mut child: Child = cmd
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("vault serve starts");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)
        .unwrap();
    assert!(line.starts_with("vault1"), "the ticket first: {line:?}");
    (Serving(child), line.trim().to_owned(), log)
}

pub(super) fn the_share(shop: &TestVault) -> Value {
    json_or_no(shop, &["shared"])["shares"].as_array().and_then(|s| s.first().cloned()).unwrap_or(Value::Null)
}

#[test]
fn values_live_in_postgres_and_are_erased_there_before_the_receipt_is_signed() {
    let db = TestDb::new();
    let gate = Gate::start(db.addr);
    let (alice, shop) = (TestVault::new(), TestVault::new());
    alice.ok(&["profile", "set", "name", "Alice Martin"]);
    alice.ok(&["profile", "set", "email", "alice@example.org"]);
    alice.ok(&["profile", "set", "address.city", "Lyon"]);

    // The seller attaches its database, the URL on standard input: the password is not echoed.
    let url = db.url_via(gate.addr);
    let out = mirror_set(&shop, &url);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("mirror attached") && stdout.contains(":***@"), "{stdout}");
    assert!(!stdout.contains(&db.password) && !stderr.contains(&db.password));

    let (_shop_node, shop_ticket, shop_log) = serve_seller(&shop, None);
    let (_alice_node, alice_ticket) = serve(&alice);
    alice.ok(&["contact", "add", "shop", &shop_ticket]);
    shop.ok(&["contact", "add", "alice", &alice_ticket]);
    let alice_id = json(&alice, &["id"])["identity"].as_str().unwrap().to_owned();
    let grant = json(
        &alice,
        &[
            "grant",
            "shop",
            "--fields",
            "profile.email,profile.name,profile.address.city",
            "--purpose",
            "order confirmations",
        ],
    );
    let id = grant["id"].as_str().unwrap().to_owned();

    // Consent, then live values, in plain SQL.
    let email = || -> Option<String> {
        db.client()
            .query_opt("SELECT email FROM vault.profiles WHERE customer = $1", &[&alice_id])
            .unwrap()
            .and_then(|r| r.get(0))
    };
    eventually("alice's email in the seller's PostgreSQL", || {
        email().as_deref() == Some("alice@example.org")
    });
    let row = db
        .client()
        .query_one(
            "SELECT c.customer_name, c.purpose, c.status, c.fields, c.receipt->>'consentReceiptID', p.city
             FROM vault.consents c JOIN vault.profiles p USING (customer, grant_id) WHERE grant_id = $1",
            &[&id],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("alice"));
    assert_eq!(row.get::<_, String>(1), "order confirmations");
    assert_eq!(row.get::<_, String>(2), "live");
    assert_eq!(row.get::<_, Vec<String>>(3).len(), 3);
    assert_eq!(row.get::<_, String>(4), id);
    assert_eq!(row.get::<_, Option<String>>(5).as_deref(), Some("Lyon"));

    // An edit reaches PostgreSQL.
    let started = Instant::now();
    alice.ok(&["profile", "set", "email", "alice@new.example"]);
    eventually("the new email in PostgreSQL", || email().as_deref() == Some("alice@new.example"));
    eprintln!("an edit reached the seller's PostgreSQL in {:?}", started.elapsed());

    // The database becomes unreachable; the customer revokes.
    gate.cut();
    alice.ok(&["revoke", &id]);
    eventually("the seller erased its own copy", || the_share(&shop)["status"] == "revoked");
    assert_eq!(the_share(&shop)["erasure_pending"], true, "the receipt waits for the mirror");
    eventually("the seller sees why", || {
        shop.ok(&["shared"]).contains("erasure pending: mirror unreachable")
    });
    let values = "SELECT count(*) FROM vault.consent_values";
    assert!(db.count(values) > 0, "the values are still in PostgreSQL: nothing may say they are erased");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!erasure_confirmed(&alice, &id), "no receipt while the seller's database still holds the values");
    assert!(alice.ok(&["grants", "--all"]).contains("revoked, erasure pending"));
    let shown = shop.ok(&["mirror", "show"]);
    assert!(shown.contains("FAILING") && shown.contains("erasures pending: 1"), "{shown}");

    // The database is back: the rows go, in one transaction, then the receipt is signed.
    gate.mend();
    eventually("the values gone from PostgreSQL", || db.count(values) == 0);
    let row = db.client().query_one("SELECT status, ended_at IS NOT NULL FROM vault.consents", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), "withdrawn", "the consent row stays, marked withdrawn");
    assert!(row.get::<_, bool>(1));
    assert_eq!(db.count("SELECT count(*) FROM vault.profiles"), 0);
    eventually("the erasure receipt at alice", || erasure_confirmed(&alice, &id));
    assert_eq!(the_share(&shop)["erasure_pending"], false);
    let audit = shop.ok(&["audit"]);
    assert!(audit.contains("erased from the mirror; erasure receipt signed"), "{audit}");

    let log = std::fs::read_to_string(&shop_log).unwrap();
    assert!(log.contains("mirror"), "the failure was logged: {log}");
    assert!(!log.contains(&db.password), "the password reached the log: {log}");
}

/// A restart resumes without loss or duplicates, and a consent that expired while the node was
/// down loses its values, whichever node wrote it (here a row written by hand, as a node that
/// is gone would have left it).
#[test]
fn a_restart_resumes_and_erases_what_expired_meanwhile() {
    let db = TestDb::new();
    let (alice, shop) = (TestVault::new(), TestVault::new());
    alice.ok(&["profile", "set", "email", "alice@example.org"]);
    let (shop_node, shop_ticket, _) = serve_seller(&shop, Some(&db.url()));
    let (_alice_node, _) = serve(&alice);
    alice.ok(&["contact", "add", "shop", &shop_ticket]);
    json(&alice, &["grant", "shop", "--fields", "profile.email", "--purpose", "newsletter"]);
    eventually("the email in PostgreSQL", || {
        db.try_count("SELECT count(*) FROM vault.consent_values") == Some(1)
    });

    // Killed outright; another node's consent, expired an hour ago, is left live.
    drop(shop_node);
    db.client()
        .batch_execute(
            "INSERT INTO vault.consents (customer, grant_id, purpose, fields, issued_at, expires_at, status, receipt,
                 vault_rev, node)
             VALUES ('nobody', 'nogrant', 'x', '{}', now() - interval '2 hours', now() - interval '1 hour', 'live',
                 '{}', 1, 'another node');
             INSERT INTO vault.consent_values VALUES ('nobody', 'nogrant', 'profile.email', '\"x@y.z\"', 'x@y.z');",
        )
        .unwrap();
    alice.ok(&["profile", "set", "email", "alice@later.example"]);
    let (_shop_node, _, _) = serve_seller(&shop, None);
    eventually("the expired values erased and the edit made while down arrived", || {
        db.count("SELECT count(*) FROM vault.consent_values WHERE customer = 'nobody'") == 0
            && db.count("SELECT count(*) FROM vault.consent_values WHERE value_text = 'alice@later.example'")
                == 1
    });
    assert_eq!(
        db.count("SELECT count(*) FROM vault.consents WHERE customer = 'nobody' AND status = 'expired'"),
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM vault.erased WHERE customer = 'nobody'"), 1, "erased for good");
    assert_eq!(
        db.count("SELECT count(*) FROM vault.consents WHERE customer <> 'nobody'"),
        1,
        "no duplicates"
    );
    assert_eq!(db.count("SELECT count(*) FROM vault.consent_values"), 1, "no duplicates");
}

/// Wrong credentials, an unreachable server, a missing database, tables changed by hand: each
/// named, no password shown, nothing attached, and a node whose mirror fails keeps serving.
#[test]
fn bad_databases_are_named_and_the_node_keeps_serving() {
    let db = TestDb::new();
    let shop = TestVault::new();
    let wrong = db.url().replace(&db.password, "not-the-password");
    let out = mirror_set(&shop, &wrong);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("refused the credentials of user {}", db.name)), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = mirror_set(&shop, &db.url_via(closed));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mirror unreachable: cannot reach PostgreSQL at") && err.contains(&closed.to_string()),
        "{err}"
    );
    assert!(!err.contains(&db.password), "{err}");

    let out = mirror_set(&shop, &format!("postgres://{}:{}@{}/nosuchdb", db.name, db.password, db.addr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = mirror_set(&shop, "mysql://root@localhost/x");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a PostgreSQL connection string"));
    assert_eq!(shop.run(&["mirror", "show"]).status.code(), Some(1), "nothing attached");

    // Attached, then a column dropped by hand.
    assert!(mirror_set(&shop, &db.url()).status.success());
    db.client().batch_execute("ALTER TABLE vault.consent_values DROP COLUMN value_text CASCADE").unwrap();
    let out = mirror_set(&shop, &db.url());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("changed by hand (column vault.consent_values.value_text is missing)"), "{err}");
    let (_node, ticket, _) = serve_seller(&shop, None);
    eventually("the failure recorded", || shop.ok(&["mirror", "show"]).contains("FAILING"));
    // The node still serves: a customer can sync with it.
    let alice = TestVault::new();
    alice.ok(&["contact", "add", "shop", &ticket]);
    alice.ok(&["sync", "shop", "--no-relay"]);
}

/// A stranger with the seller's ticket grants it a copy PostgreSQL could not hold as sent (text
/// holding U+0000, a dotted key that collides with a nested field, a number where the schema
/// says text). The seller's vault leaves those values out and names them; the rest of her copy
/// and every other customer's go on: an honest customer's withdrawal is erased in PostgreSQL
/// and her erasure receipt comes back.
#[test]
fn a_strangers_hostile_copy_stalls_nobody() {
    let db = TestDb::new();
    let (mallory, bob, shop) = (TestVault::new(), TestVault::new(), TestVault::new());
    {
        // What her own software writes, past every check a vault makes.
        let mut v = vault_core::Vault::at(&mallory.dir)
            .unlock(&vault_core::Passphrase::new(&mallory.passphrase))
            .unwrap();
        let mut records = v.records_mut();
        records.put_unchecked_for_tests("profile", "name", serde_json::json!("Mal\u{0}lory")).unwrap();
        records.put_unchecked_for_tests("profile", "address.city", serde_json::json!("Paris")).unwrap();
        records.put_unchecked_for_tests("profile", "address", serde_json::json!({"city": "Lyon"})).unwrap();
        records.put_unchecked_for_tests("profile", "email", serde_json::json!(42)).unwrap();
    }
    bob.ok(&["profile", "set", "email", "bob@example.org"]);
    assert!(mirror_set(&shop, &db.url()).status.success());
    let (_shop_node, shop_ticket, _) = serve_seller(&shop, None);
    let (_mallory_node, _) = serve(&mallory);
    let (_bob_node, _) = serve(&bob);
    let bob_id = json(&bob, &["id"])["identity"].as_str().unwrap().to_owned();
    let mallory_id = json(&mallory, &["id"])["identity"].as_str().unwrap().to_owned();

    mallory.ok(&["contact", "add", "shop", &shop_ticket]);
    json(&mallory, &["grant", "shop", "--fields", "profile", "--purpose", "loyalty"]);
    let value = |customer: &str, path: &str| -> Option<String> {
        db.client()
            .query_opt(
                "SELECT value_text FROM vault.consent_values WHERE customer = $1 AND path = $2",
                &[&customer, &path],
            )
            .ok()
            .flatten()
            .and_then(|r| r.get(0))
    };
    eventually("what can be kept of mallory's copy in PostgreSQL", || {
        value(&mallory_id, "profile.address.city").as_deref() == Some("Lyon")
    });
    let refused: Value = db
        .client()
        .query_one("SELECT refused FROM vault.consents WHERE customer = $1", &[&mallory_id])
        .unwrap()
        .get(0);
    let refused = refused.to_string();
    for named in
        ["profile.name", "profile.address\\\\u{2e}city", "profile.email", "U+0000", "must be a string"]
    {
        assert!(refused.contains(named), "{named} in {refused}");
    }
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM vault.consent_values WHERE customer = '{mallory_id}'")),
        1,
        "only the city is kept"
    );
    let shown = shop.ok(&["shared"]);
    assert!(shown.contains("left out of what") && shown.contains("holds U+0000"), "{shown}");
    let listed = json(&shop, &["shared"]);
    let theirs =
        listed["shares"].as_array().unwrap().iter().find(|s| s["from"] == mallory_id.as_str()).unwrap();
    assert_eq!(theirs["values"], serde_json::json!({"profile": {"address": {"city": "Lyon"}}}));
    assert_eq!(theirs["refused"].as_array().unwrap().len(), 3, "{theirs}");

    // An honest customer's share, then her withdrawal: both go through.
    bob.ok(&["contact", "add", "shop", &shop_ticket]);
    let grant = json(&bob, &["grant", "shop", "--fields", "profile.email", "--purpose", "receipts"]);
    let id = grant["id"].as_str().unwrap().to_owned();
    eventually("bob's email in PostgreSQL", || {
        value(&bob_id, "profile.email").as_deref() == Some("bob@example.org")
    });
    bob.ok(&["revoke", &id]);
    eventually("bob's values erased in PostgreSQL", || {
        db.count(&format!("SELECT count(*) FROM vault.consent_values WHERE customer = '{bob_id}'")) == 0
    });
    let status: String = db
        .client()
        .query_one("SELECT status FROM vault.consents WHERE grant_id = $1", &[&id])
        .unwrap()
        .get(0);
    assert_eq!(status, "withdrawn");
    eventually("bob's erasure receipt back at bob", || erasure_confirmed(&bob, &id));
    let shown = shop.ok(&["mirror", "show"]);
    assert!(!shown.contains("FAILING"), "{shown}");
}

/// `vault mirror set` takes effect in a running node, no restart; `serve --mirror URL` is
/// refused (the process list would show the password).
#[test]
fn a_mirror_set_while_the_node_runs_starts_at_once() {
    let db = TestDb::new();
    let (alice, shop) = (TestVault::new(), TestVault::new());
    alice.ok(&["profile", "set", "email", "alice@example.org"]);
    let refused = shop.fails(&["serve", "--mirror", &db.url()], 2);
    assert!(refused.contains("process list") && refused.contains("vault mirror set"), "{refused}");
    assert!(!refused.contains(&db.password), "{refused}");

    let (_shop_node, shop_ticket, _) = serve_seller(&shop, None);
    let (_alice_node, _) = serve(&alice);
    alice.ok(&["contact", "add", "shop", &shop_ticket]);
    json(&alice, &["grant", "shop", "--fields", "profile.email", "--purpose", "newsletter"]);
    eventually("the share at the seller", || the_share(&shop)["status"] == "live");
    assert!(mirror_set(&shop, &db.url()).status.success());
    eventually("the email in PostgreSQL, the node not restarted", || {
        db.try_count("SELECT count(*) FROM vault.consent_values WHERE value_text = 'alice@example.org'")
            == Some(1)
    });
}

/// A seller reads purchases one row each (the `vault.purchases` view), the fields the grant
/// shares as columns.
#[test]
fn purchases_are_one_row_each() {
    let db = TestDb::new();
    let (alice, shop) = (TestVault::new(), TestVault::new());
    for (item, price) in [("Green tea", "4.50"), ("Teapot", "32.00")] {
        vault_tests::buy(
            &alice,
            &vault_tests::Bought {
                item,
                seller: "Acme",
                price,
                tag: "tea",
                date: "2026-11-02",
                rating: "4",
                review: "good",
            },
        );
    }
    assert!(mirror_set(&shop, &db.url()).status.success());
    let (_shop_node, shop_ticket, _) = serve_seller(&shop, None);
    let (_alice_node, _) = serve(&alice);
    alice.ok(&["contact", "add", "shop", &shop_ticket]);
    let fields = "purchases.*.item,purchases.*.price,purchases.*.rating,purchases.*.price:band(10,50)";
    json(&alice, &["grant", "shop", "--fields", fields, "--purpose", "loyalty"]);
    eventually("two purchase rows", || db.try_count("SELECT count(*) FROM vault.purchases") == Some(2));
    let rows = db
        .client()
        .query("SELECT item, amount_minor, currency, rating, price_band, seller FROM vault.purchases ORDER BY item", &[])
        .unwrap();
    let row = |i: usize| {
        let r = &rows[i];
        (
            r.get::<_, String>(0),
            r.get::<_, i64>(1),
            r.get::<_, String>(2),
            r.get::<_, i32>(3),
            r.get::<_, String>(4),
            r.get::<_, Option<String>>(5),
        )
    };
    assert_eq!(row(0), ("Green tea".into(), 450, "EUR".into(), 4, "under 10 EUR".into(), None));
    assert_eq!(
        row(1),
        ("Teapot".into(), 3200, "EUR".into(), 4, "10 to 50 EUR".into(), None),
        "no seller: not granted"
    );
}
