//! The two consent journeys through the `vault` binary, as users type them: a seller asks and
//! the customer decides; a friend follows a purchase feed. With the bad inputs of each.

use serde_json::Value;
use vault_tests::{Bought, TestVault, buy, check_cli_schema, eventually, json, json_or_no, requests, serve};

fn add_purchase(v: &TestVault, item: &str, seller: &str, price: &str, tag: &str, date: &str) -> String {
    buy(v, &Bought { item, seller, price, tag, date, rating: "4", review: "fine" })
}

fn customer_with_profile() -> TestVault {
    let customer = TestVault::new();
    customer.ok(&["profile", "set", "email", "ada@example.org"]);
    customer.ok(&["profile", "set", "phone", "+33 6 00 00 00 00"]);
    customer.ok(&["profile", "set", "address.city", "Lyon"]);
    customer
}

#[test]
fn seller_asks_customer_decides() {
    let (customer, shop) = (customer_with_profile(), TestVault::new());
    let (_node, customer_ticket) = serve(&customer);
    shop.ok(&["contact", "add", "ada", &customer_ticket]);

    // Bad requests are refused before anything is signed or sent.
    let err = shop
        .fails(&["request", "ada", "--fields", "profile.emial", "--purpose", "delivery", "--no-relay"], 2);
    assert!(err.contains("unknown field path \"profile.emial\""), "{err}");
    let err = shop.fails(&["request", "ada", "--fields", "profile.email", "--purpose", " ", "--no-relay"], 2);
    assert!(err.contains("purpose"), "{err}");
    shop.fails(&["request", "ada", "--fields", "profile.email", "--no-relay"], 2);
    assert!(requests(&shop, &["--sent", "--all"]).is_empty(), "nothing was queued");
    assert!(requests(&customer, &["--all"]).is_empty(), "nothing was delivered");

    // The request: signed by the shop, delivered to the customer's node now.
    let sent = shop.json(
        &[
            "request",
            "ada",
            "--fields",
            "profile.email,profile.address,profile.name",
            "--purpose",
            "delivery",
            "--duration",
            "90d",
            "--no-relay",
        ],
        "request",
    );
    assert_eq!(sent["status"], "pending", "delivered and waiting: {sent}");
    let id = sent["id"].as_str().unwrap().to_owned();

    // The customer sees who asks, what, why, for how long, and what her vault holds of it.
    let inbox = requests(&customer, &[]);
    assert_eq!(inbox.len(), 1);
    let r = &inbox[0];
    assert_eq!((r["id"].as_str(), r["purpose"].as_str()), (Some(id.as_str()), Some("delivery")));
    assert_eq!(r["duration_seconds"], 90 * 86_400);
    let holds: Vec<(String, bool)> = r["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["field"].as_str().unwrap().to_owned(), h["held"].as_bool().unwrap()))
        .collect();
    assert!(holds.contains(&("profile.email".into(), true)));
    assert!(holds.contains(&("profile.name".into(), false)), "{holds:?}");
    let text = customer.ok(&["requests"]);
    assert!(text.contains("delivery") && text.contains("not set"), "{text}");

    // Never wider than asked: another field, a longer time. Nothing is granted.
    let err = customer.fails(&["approve", &id, "--fields", "profile.email,profile.phone"], 2);
    assert!(err.contains("\"profile.phone\" was not asked for"), "{err}");
    let err = customer.fails(&["approve", &id, "--expires", "120d"], 2);
    assert!(err.contains("90 days"), "{err}");
    customer.fails(&["grants"], 1);

    // Approve, narrower than asked; a second approval is refused.
    let grant = customer.json(&["approve", &id, "--fields", "profile.email,profile.address"], "grant");
    let err = customer.fails(&["approve", &id], 2);
    assert!(err.contains("already approved"), "{err}");
    customer.fails(&["deny", &id], 2);

    // The shop learns the outcome and holds exactly the consented fields.
    shop.ok(&["sync", "ada", "--no-relay"]);
    let mine = requests(&shop, &["--sent"]);
    assert_eq!(mine[0]["status"], "approved");
    assert_eq!(mine[0]["grant"], grant["id"]);
    let shared = shop.json(&["shared", "--purpose", "DELIVERY"], "shared");
    let values = &shared["shares"][0]["values"];
    assert_eq!(values["profile"]["email"], "ada@example.org");
    assert!(values["profile"].get("phone").is_none() && values["profile"].get("name").is_none());

    // The consent list for the shop's own systems, with the receipt beside each row.
    let export: Value =
        serde_json::from_str(&shop.ok(&["shared", "--purpose", "delivery", "--export", "json"])).unwrap();
    check_cli_schema("shared-export", &export);
    let row = &export["consents"][0];
    assert_eq!(row["status"], "live");
    vault_tests::check_schema("schemas/receipt/consent-receipt.schema.json", &row["consent_receipt"]);
    assert_eq!(row["consent_receipt"]["piiPrincipalId"], row["customer"]);
    assert_eq!(row["consent_receipt"]["iso27560"]["state"], "given");
    let csv = shop.ok(&["shared", "--purpose", "delivery", "--export", "csv"]);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("customer,customer_name,grant,purpose,fields"));
    assert!(lines.next().unwrap().contains(grant["id"].as_str().unwrap()));
    shop.fails(&["shared", "--purpose", "marketing", "--export", "csv"], 1);

    // A denial reaches the requester with its reason.
    let second = shop.json(
        &["request", "ada", "--fields", "profile.phone", "--purpose", "marketing calls", "--no-relay"],
        "request",
    );
    let second_id = second["id"].as_str().unwrap();
    customer.ok(&["deny", second_id, "--reason", "no calls please"]);
    customer.fails(&["approve", second_id], 2);
    shop.ok(&["sync", "ada", "--no-relay"]);
    let mine = requests(&shop, &["--sent", "--all"]);
    let denied = mine.iter().find(|r| r["id"] == second_id).unwrap();
    assert_eq!(
        (denied["status"].as_str(), denied["reason"].as_str()),
        (Some("denied"), Some("no calls please"))
    );

    // Revocation: the shop's copy disappears and its list shows the withdrawal.
    customer.ok(&["revoke", grant["id"].as_str().unwrap()]);
    shop.ok(&["sync", "ada", "--no-relay"]);
    let export: Value = serde_json::from_str(&shop.ok(&["shared", "--export", "json"])).unwrap();
    let row = &export["consents"][0];
    assert_eq!(row["status"], "revoked");
    assert!(row["values"].is_null(), "the copy is erased");
    assert_eq!(row["consent_receipt"]["iso27560"]["state"], "withdrawn");
    eventually("the erasure receipt at the customer", || {
        json(&customer, &["grants", "--all"])["grants"][0]["erasure_confirmed_at"].is_string()
    });
    let audit = json(&customer, &["audit"]);
    let kinds: Vec<&str> =
        audit["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["request-received", "request-approved", "request-denied", "grant-revoked", "erasure-receipt"]
    {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

#[test]
fn requests_wait_in_a_queue_until_the_customer_is_online() {
    let (customer, shop) = (customer_with_profile(), TestVault::new());
    let (node, customer_ticket) = serve(&customer);
    drop(node);
    shop.ok(&["contact", "add", "ada", &customer_ticket]);
    let sent = shop.json(
        &["request", "ada", "--fields", "profile.email", "--purpose", "delivery", "--no-relay"],
        "request",
    );
    assert_eq!(sent["status"], "queued");
    // The customer comes back on the same address; the shop's node delivers the request.
    let port = customer_ticket_port(&customer_ticket);
    let mut child = customer
        .cmd(&["serve", "--no-relay", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (_shop_node, _) = serve(&shop);
    eventually("the queued request delivered", || requests(&customer, &[]).len() == 1);
    let id = requests(&customer, &[])[0]["id"].as_str().unwrap().to_owned();
    customer.ok(&["approve", &id]);
    eventually("the shop's live copy", || {
        json_or_no(&shop, &["shared"])["shares"][0]["values"]["profile"]["email"] == "ada@example.org"
    });
    let _ = child.kill();
    let _ = child.wait();
}

fn customer_ticket_port(ticket: &str) -> u16 {
    let t: vault_core::Ticket = ticket.parse().unwrap();
    t.addrs().iter().find(|a| a.ip().is_loopback()).map(|a| a.port()).unwrap()
}

#[test]
fn request_floods_are_limited_per_peer() {
    let (customer, shop, friend) = (customer_with_profile(), TestVault::new(), TestVault::new());
    let (_node, customer_ticket) = serve(&customer);
    shop.ok(&["contact", "add", "ada", &customer_ticket]);
    friend.ok(&["contact", "add", "ada", &customer_ticket]);
    let limit = vault_core::MAX_PENDING_PER_PEER;
    for i in 0..limit {
        let purpose = format!("offer {i}");
        shop.ok(&["request", "ada", "--fields", "profile.email", "--purpose", &purpose, "--no-relay"]);
    }
    let err = shop
        .fails(&["request", "ada", "--fields", "profile.email", "--purpose", "one more", "--no-relay"], 1);
    assert!(err.contains("did not accept"), "{err}");
    assert_eq!(requests(&customer, &[]).len(), limit, "the flood stops at the limit");
    // Someone else is still served.
    let sent = friend.json(&["follow", "ada", "--no-relay"], "request");
    assert_eq!(sent["status"], "pending");
    assert_eq!(requests(&customer, &[]).len(), limit + 1);
    let audit = json(&customer, &["audit"]);
    let refused =
        audit["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "request-refused").count();
    assert_eq!(refused, 1, "a flood leaves one line in the log, not one per request");
}

#[test]
fn a_blocked_peer_cannot_follow() {
    let (customer, friend) = (customer_with_profile(), TestVault::new());
    customer.ok(&["contact", "add", "mallory", &vault_tests::ticket(&friend)]);
    customer.ok(&["contact", "block", "mallory"]);
    let (_node, customer_ticket) = serve(&customer);
    friend.ok(&["contact", "add", "ada", &customer_ticket]);
    let sent = friend.json(&["follow", "ada", "--no-relay"], "request");
    assert_eq!(sent["status"], "queued", "the connection was refused, so nothing was delivered");
    assert!(requests(&customer, &["--all"]).is_empty());
    let audit = json(&customer, &["audit"]);
    assert!(
        audit["events"].as_array().unwrap().iter().any(|e| e["kind"] == "peer-refused"),
        "the refusal is logged"
    );
}

#[test]
fn friends_follow_a_live_purchase_feed() {
    let (ada, carol, bob) = (TestVault::new(), TestVault::new(), TestVault::new());
    add_purchase(&ada, "Dune", "Books", "12.00", "books", "2026-10-01");
    let tea = add_purchase(&ada, "Green tea", "Acme", "4.50", "food", "2026-10-05");
    add_purchase(&carol, "Green tea", "Teashop", "3.90", "food", "2026-09-15");
    let (_ada_node, ada_ticket) = serve(&ada);
    let (_carol_node, carol_ticket) = serve(&carol);
    bob.ok(&["contact", "add", "ada", &ada_ticket]);
    bob.ok(&["contact", "add", "carol", &carol_ticket]);
    bob.json(&["follow", "ada", "--no-relay"], "request");
    bob.json(&["follow", "carol", "--no-relay"], "request");
    let ada_req = requests(&ada, &[])[0]["id"].as_str().unwrap().to_owned();
    ada.ok(&["approve", &ada_req]);
    // Carol grants a feed directly instead of answering (and denies the request).
    let carol_req = requests(&carol, &[])[0]["id"].as_str().unwrap().to_owned();
    carol.ok(&["deny", &carol_req]);
    carol.ok(&["contact", "add", "bob", &vault_tests::ticket(&bob)]);
    carol.ok(&["grant", "bob", "--fields", "purchases", "--filter", "tag=food", "--purpose", "tea friends"]);

    let (_bob_node, _) = serve(&bob);
    eventually("both feeds at bob", || {
        json_or_no(&bob, &["feed"])["purchases"].as_array().unwrap().len() == 3
    });
    let feed = bob.json(&["feed"], "feed");
    let items: Vec<&str> =
        feed["purchases"].as_array().unwrap().iter().map(|p| p["item"].as_str().unwrap()).collect();
    assert_eq!(items, ["Green tea", "Dune", "Green tea"], "newest first");
    assert_eq!(feed["purchases"][0]["from_name"], "ada");
    assert_eq!(feed["purchases"][0]["rating"], 4);

    // What friends paid for the same item, lowest first.
    let compare = bob.json(&["feed", "compare", "green TEA"], "feed");
    let prices: Vec<i64> = compare["purchases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["price"]["amount_minor"].as_i64().unwrap())
        .collect();
    assert_eq!(prices, [390, 450]);
    assert_eq!(
        bob.json(&["feed", "--item", "tea", "--from", "carol"], "feed")["purchases"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(bob.json(&["feed", "--tag", "books"], "feed")["purchases"].as_array().unwrap().len(), 1);
    assert_eq!(bob.json(&["feed", "--seller", "acme"], "feed")["purchases"].as_array().unwrap().len(), 1);

    // Live, while every node runs: a new purchase appears, a deleted one disappears, and a
    // purchase outside Carol's filter never arrives.
    add_purchase(&ada, "Tent", "Acme", "199.00", "sport", "2026-11-01");
    add_purchase(&carol, "Tent", "Outdoors", "150.00", "sport", "2026-11-02");
    eventually("ada's new purchase at bob", || json(&bob, &["feed"])["purchases"][0]["item"] == "Tent");
    ada.ok(&["purchase", "rm", &tea]);
    eventually("the deleted purchase gone", || {
        json_or_no(&bob, &["feed", "--from", "ada"])["purchases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["item"] != "Green tea")
    });
    let carol_items: Vec<Value> =
        json(&bob, &["feed", "--from", "carol"])["purchases"].as_array().unwrap().clone();
    assert!(carol_items.iter().all(|p| p["item"] != "Tent"), "outside the filter: {carol_items:?}");
    // Denied follow request: bob was told.
    let sent = requests(&bob, &["--sent", "--all"]);
    assert!(sent.iter().any(|r| r["holder"].is_string() && r["status"] == "denied"));
}

#[test]
fn a_feed_revoked_while_the_friend_was_offline_is_gone_at_the_next_sync() {
    let (ada, bob) = (TestVault::new(), TestVault::new());
    add_purchase(&ada, "Dune", "Books", "12.00", "books", "2026-10-01");
    ada.ok(&["contact", "add", "bob", &vault_tests::ticket(&bob)]);
    let grant = json(&ada, &["grant", "bob", "--fields", "purchases", "--purpose", "book club"]);
    let (_ada_node, ada_ticket) = serve(&ada);
    bob.ok(&["contact", "add", "ada", &ada_ticket]);
    bob.ok(&["sync", "ada", "--no-relay"]);
    assert_eq!(bob.json(&["feed"], "feed")["purchases"].as_array().unwrap().len(), 1);
    // Bob is offline (no node); Ada revokes.
    ada.ok(&["revoke", grant["id"].as_str().unwrap()]);
    bob.ok(&["sync", "ada", "--no-relay"]);
    let err = bob.fails(&["feed"], 1);
    assert!(err.contains("nothing in your feed"), "{err}");
    assert_eq!(json(&bob, &["shared"])["shares"][0]["status"], "revoked");
}

#[test]
fn the_demo_tells_the_whole_story_and_checks_it() {
    let out = std::process::Command::new(vault_tests::vault_bin())
        .arg("demo")
        .env_remove("VAULT_DIR")
        .env_remove("VAULT_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("checks passed"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    for step in ["consent request", "approves", "follows", "revokes", "access log"] {
        assert!(stdout.contains(step), "the demo tells of {step}: {stdout}");
    }
}

/// A seller that takes only grants answering its own requests (`vault accept requests`): a
/// customer's unsolicited grant is not taken in, the grant approving the seller's request is.
#[test]
fn a_seller_can_take_only_answers_to_its_requests() {
    let (customer, shop) = (customer_with_profile(), TestVault::new());
    assert_eq!(shop.json(&["accept"], "accept")["accepts"], "anyone", "the default");
    assert_eq!(shop.json(&["accept", "requests"], "accept")["accepts"], "requests");
    let (_shop_node, shop_ticket) = serve(&shop);
    let (_node, customer_ticket) = serve(&customer);
    customer.ok(&["contact", "add", "shop", &shop_ticket]);
    shop.ok(&["contact", "add", "ada", &customer_ticket]);

    json(&customer, &["grant", "shop", "--fields", "profile.phone", "--purpose", "nobody asked"]);
    shop.ok(&["sync", "ada", "--no-relay"]);
    assert!(json_or_no(&shop, &["shared"])["shares"].as_array().unwrap().is_empty(), "not taken in");

    let sent = shop.json(
        &["request", "ada", "--fields", "profile.email", "--purpose", "receipts", "--no-relay"],
        "request",
    );
    let id = sent["id"].as_str().unwrap().to_owned();
    eventually("the request at the customer", || requests(&customer, &[]).len() == 1);
    customer.json(&["approve", &id], "grant");
    shop.ok(&["sync", "ada", "--no-relay"]);
    let shared = json_or_no(&shop, &["shared"]);
    let shares = shared["shares"].as_array().unwrap();
    assert_eq!(shares.len(), 1, "{shared}");
    assert_eq!(shares[0]["fields"], serde_json::json!(["profile.email"]));
}
