//! A contact's addresses set by hand (`vault contact add --addr`, `vault contact addr`), through
//! the real binary: shown, changed, cleared, refused when bad, and used for dialing; and a
//! consent request sent while the customer is partitioned away (behind the impairment proxy),
//! delivered after heal exactly once.

use std::time::{Duration, Instant};

use serde_json::Value;
use vault_tests::impair::Proxy;
use vault_tests::{HANG, TestVault, json, json_or_no, serve, serve_on, ticket};

fn port_of(ticket: &str) -> std::net::SocketAddr {
    let t: vault_core::Ticket = ticket.parse().unwrap();
    t.addrs()[0]
}

fn contacts(v: &TestVault) -> Vec<Value> {
    v.json(&["contact", "list"], "contact-list")["contacts"].as_array().unwrap().clone()
}

#[test]
fn addresses_set_by_hand_are_shown_changed_refused_and_dialed() {
    let (alice, bob) = (TestVault::new(), TestVault::new());
    alice.ok(&[
        "purchase",
        "add",
        "--item",
        "Dune",
        "--seller",
        "Books",
        "--price",
        "12",
        "--currency",
        "EUR",
    ]);
    alice.ok(&["grant", &ticket(&bob), "--fields", "purchases", "--purpose", "book club"]);
    // Alice's first ticket names a port her node no longer listens on.
    let (first, old_ticket) = serve(&alice);
    drop(first);
    let (_alice_node, new_ticket) = serve(&alice);
    let (old, new) = (port_of(&old_ticket), port_of(&new_ticket));
    assert_ne!(old, new);

    let added =
        bob.json(&["contact", "add", "alice", &old_ticket, "--addr", "192.0.2.7:4433"], "contact-add");
    assert_eq!(added["addrs"], serde_json::json!(["192.0.2.7:4433"]));
    let text = bob.ok(&["contact", "list"]);
    assert!(text.contains("dialed at 192.0.2.7:4433"), "{text}");

    // At the ticket's (dead) address, the sync fails; at the address set by hand, it works.
    bob.ok(&["contact", "addr", "alice", "--clear"]);
    assert_eq!(contacts(&bob)[0]["addrs"], serde_json::json!([]));
    assert!(!bob.ok(&["contact", "list"]).contains("dialed at"));
    bob.fails(&["sync", "alice", "--no-relay"], 2);
    let set = bob.json(&["contact", "addr", "alice", "192.0.2.9:1", &new.to_string()], "contact-addr");
    assert_eq!(set["addrs"], serde_json::json!(["192.0.2.9:1", new.to_string()]));
    bob.ok(&["sync", "alice", "--no-relay"]);
    let shared = json(&bob, &["shared"]);
    assert_eq!(shared["shares"][0]["values"]["purchases"].as_object().map(|p| p.len()), Some(1));
    assert_eq!(contacts(&bob)[0]["addrs"], serde_json::json!(["192.0.2.9:1", new.to_string()]));

    // Bad input: a clear error naming it, and nothing changed.
    let err = bob.fails(&["contact", "addr", "alice", "alice.example:4433"], 2);
    assert!(err.contains("alice.example:4433") && err.contains("expected IP:PORT"), "{err}");
    let err = bob.fails(&["contact", "add", "carol", &old_ticket, "--addr", "4433"], 2);
    assert!(err.contains("'4433'") && err.contains("expected IP:PORT"), "{err}");
    let err = bob.fails(&["contact", "addr", "alice", "0.0.0.0:4433"], 2);
    assert!(err.contains("cannot dial address \"0.0.0.0:4433\""), "{err}");
    let err = bob.fails(&["contact", "addr", "nobody", "127.0.0.1:4433"], 2);
    assert!(err.contains("no contact named \"nobody\"") && err.contains("hint:"), "{err}");
    bob.fails(&["contact", "addr", "alice"], 2);
    bob.fails(&["contact", "addr", "alice", "127.0.0.1:4433", "--clear"], 2);
    let list = contacts(&bob);
    assert_eq!(list.len(), 1, "carol was not added");
    assert_eq!(list[0]["addrs"], serde_json::json!(["192.0.2.9:1", new.to_string()]));
}

fn incoming(customer: &TestVault) -> Vec<Value> {
    json_or_no(customer, &["requests", "--all"])["requests"].as_array().cloned().unwrap_or_default()
}

fn audit_count(v: &TestVault, kind: &str) -> usize {
    json(v, &["audit"])["events"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).count()
}

#[test]
fn a_consent_request_sent_during_a_partition_arrives_after_heal_exactly_once() {
    let (customer, shop) = (TestVault::new(), TestVault::new());
    customer.ok(&["profile", "set", "email", "ada@example.org"]);
    // The shop on IPv4, the customer on IPv6: only the proxy joins them.
    let (_shop_node, shop_ticket) = serve_on(&shop, "127.0.0.1:0");
    let (_customer_node, customer_ticket) = serve_on(&customer, "[::1]:0");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime.block_on(Proxy::start(port_of(&shop_ticket), port_of(&customer_ticket), 6)).unwrap();
    shop.ok(&["contact", "add", "ada", &customer_ticket, "--addr", &proxy.addr_of_b().to_string()]);
    customer.ok(&["contact", "add", "shop", &shop_ticket, "--addr", &proxy.addr_of_a().to_string()]);

    proxy.partition();
    let started = Instant::now();
    let sent = shop.json(
        &["request", "ada", "--fields", "profile.email", "--purpose", "delivery", "--no-relay"],
        "request",
    );
    assert_eq!(sent["status"], "queued", "the customer is cut off");
    let id = sent["id"].as_str().unwrap().to_owned();
    // The shop's node keeps trying meanwhile.
    while started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(incoming(&customer).is_empty(), "nothing crossed the partition");
    assert!(proxy.total().partitioned > 0);
    assert_eq!(proxy.total().forwarded, 0);

    proxy.heal();
    let healed = Instant::now();
    while incoming(&customer).is_empty() {
        assert!(healed.elapsed() < HANG, "the request did not arrive after the heal");
        std::thread::sleep(Duration::from_millis(100));
    }
    let delivered = healed.elapsed();
    // Exactly once, and the shop knows it was delivered.
    std::thread::sleep(Duration::from_secs(3));
    let requests = incoming(&customer);
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["id"], id.as_str());
    assert_eq!(audit_count(&customer, "request-received"), 1);
    let deadline = Instant::now() + HANG;
    while json_or_no(&shop, &["requests", "--sent", "--all"])["requests"][0]["status"] == "queued" {
        assert!(Instant::now() < deadline, "the shop never learnt the request was delivered");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The answer goes back through the proxy too.
    customer.ok(&["approve", &id]);
    let deadline = Instant::now() + HANG;
    while json_or_no(&shop, &["shared"])["shares"][0]["values"]["profile"]["email"] != "ada@example.org" {
        assert!(Instant::now() < deadline, "the approved share did not reach the shop");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "[reliability] consent request sent during a partition ({:.1?}): delivered {delivered:.2?} after heal, \
         once; approved share at the shop {:.2?} after heal",
        healed.duration_since(started),
        healed.elapsed()
    );
}
