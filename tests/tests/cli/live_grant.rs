//! A grant made while both nodes run reaches the grantee at once, without the grantee running
//! `sync`: the issuer's node offers it, the grantee's node dials back. A revocation made while
//! the issuer's node was down reaches the grantee when the issuer's node comes back (at new
//! addresses), although the grantee's reconnection backoff is long by then.

use std::time::{Duration, Instant};

use vault_tests::{TestVault, eventually, json, json_or_no, serve};

fn add_book(v: &TestVault) {
    v.ok(&["purchase", "add", "--item", "Dune", "--seller", "Books", "--price", "12", "--currency", "EUR"]);
}

fn share_status(bob: &TestVault) -> Option<String> {
    json_or_no(bob, &["shared"])["shares"]
        .as_array()
        .and_then(|s| s.first())
        .map(|s| s["status"].as_str().unwrap().to_owned())
}

#[test]
fn a_new_grant_and_a_revocation_reach_a_running_grantee() {
    let (alice, bob) = (TestVault::new(), TestVault::new());
    add_book(&alice);
    let (_bob_node, bob_ticket) = serve(&bob);
    let (alice_node, _) = serve(&alice);
    alice.ok(&["contact", "add", "bob", &bob_ticket]);
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let grant = json(&alice, &["grant", "bob", "--fields", "purchases", "--purpose", "book club"]);
    eventually("alice's purchases in bob's shared view, without bob running sync", || {
        json_or_no(&bob, &["shared"])["shares"]
            .as_array()
            .and_then(|s| s.first())
            .and_then(|s| s["values"]["purchases"].as_object())
            .is_some_and(|p| p.len() == 1)
    });
    eprintln!("the grant reached the running grantee in {:?}", started.elapsed());

    // Alice's node goes down; she revokes from the command line; Bob's node keeps failing to
    // reach her and backs off.
    drop(alice_node);
    let id = grant["id"].as_str().unwrap();
    alice.ok(&["revoke", id]);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(share_status(&bob).as_deref(), Some("live"), "nothing told bob yet");
    // Alice's node comes back on another port: it tells Bob, whose node dials back at once.
    let started = Instant::now();
    let (_alice_node, _) = serve(&alice);
    eventually("the revocation at bob", || share_status(&bob).as_deref() == Some("revoked"));
    eprintln!("the revocation reached the grantee in {:?}", started.elapsed());
    eventually("the erasure receipt at alice", || {
        json(&alice, &["grants", "--all"])["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == id && !g["erasure_confirmed_at"].is_null())
    });
}
