//! Separate hosts: the customer, a seller and a friend each in a network namespace of their own,
//! joined by veth pairs to a bridge in a fourth namespace (all made by the test and removed
//! after). Each runs `vault serve` on its own address; the seller's and the friend's journeys
//! run across them, then the customer's node moves to another address and the others find it
//! again. Traffic never leaves the namespaces the test made.
//!
//! Needs root and iproute2 (`ip netns`): where namespaces cannot be made, the test says why and
//! passes without running (CI runs as root and has them).

use std::time::{Duration, Instant};

use vault_tests::TestVault;
use vault_tests::lab::Lab;

/// Polls `check` until it holds, for at most [`vault_tests::HANG`].
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < vault_tests::HANG {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

fn email_at(lab: &Lab, seller: &TestVault) -> Option<String> {
    let shared = lab.json_or_no("seller", seller, &["shared"]);
    shared["shares"].as_array()?.iter().find(|s| s["status"] == "live")?["values"]["profile"]["email"]
        .as_str()
        .map(str::to_owned)
}

fn feed_items(lab: &Lab, friend: &TestVault) -> Vec<String> {
    let feed = lab.json_or_no("friend", friend, &["feed"]);
    feed["purchases"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["item"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[test]
fn three_hosts_share_across_namespaces_and_find_a_moved_peer() {
    let lab = match Lab::new("10.77.0", &["customer", "seller", "friend"]) {
        Ok(lab) => lab,
        Err(why) => {
            eprintln!("skipped: network namespaces cannot be made here ({why}); run as root with iproute2");
            return;
        }
    };
    let (customer, seller, friend) = (TestVault::new(), TestVault::new(), TestVault::new());
    customer.ok(&["profile", "set", "email", "ada@example.org"]);
    customer.ok(&[
        "purchase",
        "add",
        "--item",
        "Dune",
        "--seller",
        "Books",
        "--price",
        "12.00",
        "--currency",
        "EUR",
    ]);

    let (customer_node, customer_ticket) = lab.serve("customer", &customer, &lab.addr(0, 0));
    let (_seller_node, seller_ticket) = lab.serve("seller", &seller, &lab.addr(1, 0));
    let (_friend_node, friend_ticket) = lab.serve("friend", &friend, &lab.addr(2, 0));
    assert!(customer_ticket != seller_ticket && seller_ticket != friend_ticket);
    for (host, v) in [("seller", &seller), ("friend", &friend)] {
        lab.json(host, v, &["contact", "add", "ada", &customer_ticket]);
    }
    lab.json("customer", &customer, &["contact", "add", "shop", &seller_ticket]);
    lab.json("customer", &customer, &["contact", "add", "bob", &friend_ticket]);

    // The seller's journey: ask, the customer approves, the seller holds a live copy.
    let sent = lab.json(
        "seller",
        &seller,
        &["request", "ada", "--fields", "profile.email", "--purpose", "delivery", "--no-relay"],
    );
    assert_eq!(sent["status"], "pending", "delivered across the bridge: {sent}");
    lab.json("customer", &customer, &["approve", sent["id"].as_str().unwrap()]);
    eventually("the seller holds the email", || {
        email_at(&lab, &seller).as_deref() == Some("ada@example.org")
    });

    // The friend's journey: follow, approved, the feed arrives.
    let sent = lab.json("friend", &friend, &["follow", "ada", "--no-relay"]);
    assert_eq!(sent["status"], "pending", "{sent}");
    lab.json("customer", &customer, &["approve", sent["id"].as_str().unwrap()]);
    eventually("the friend sees the purchase", || feed_items(&lab, &friend) == ["Dune"]);

    // Live edits cross the hosts.
    lab.json("customer", &customer, &["profile", "set", "email", "ada@new.example"]);
    eventually("the edit reaches the seller", || {
        email_at(&lab, &seller).as_deref() == Some("ada@new.example")
    });

    // The customer's node moves to another address; its peers find it again, and what changed
    // meanwhile reaches them.
    drop(customer_node);
    let moved = lab.add_addr("customer", 1);
    lab.json("customer", &customer, &["profile", "set", "email", "ada@moved.example"]);
    lab.json(
        "customer",
        &customer,
        &["purchase", "add", "--item", "Tea", "--seller", "Acme", "--price", "4.50", "--currency", "EUR"],
    );
    let (_customer_node, moved_ticket) = lab.serve("customer", &customer, &moved);
    assert_ne!(moved_ticket, customer_ticket, "the ticket names the new address");
    eventually("the seller finds the moved customer", || {
        email_at(&lab, &seller).as_deref() == Some("ada@moved.example")
    });
    eventually("the friend finds the moved customer", || feed_items(&lab, &friend).len() == 2);

    // A revocation reaches the moved-to peer relationship too: the seller erases.
    let grants = lab.json("customer", &customer, &["grants"]);
    let to_shop = grants["grants"].as_array().unwrap().iter().find(|g| g["audience_name"] == "shop").unwrap();
    lab.json("customer", &customer, &["revoke", to_shop["id"].as_str().unwrap()]);
    eventually("the seller erases", || email_at(&lab, &seller).is_none());
    eventually("the customer holds the erasure receipt", || {
        let grants = lab.json_or_no("customer", &customer, &["grants", "--all"]);
        grants["grants"].as_array().is_some_and(|gs| {
            gs.iter().any(|g| g["id"] == to_shop["id"] && !g["erasure_confirmed_at"].is_null())
        })
    });
}
