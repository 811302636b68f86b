//! Intentions through the binary: a customer tells two sellers what it wants under a
//! pseudonym, both answer with offers, the customer accepts one; the other never learns who the
//! customer is. Withdrawal, and bad inputs.

use serde_json::Value;
use vault_tests::{TestVault, json, serve};

fn add_intention(customer: &TestVault, what: &str, to: &[&str]) -> Value {
    let mut args = vec![
        "intent",
        "add",
        what,
        "--tag",
        "coffee",
        "--budget",
        "150",
        "--currency",
        "EUR",
        "--place",
        "FR",
        "--until",
        "7d",
        "--no-relay",
    ];
    for peer in to {
        args.extend(["--to", peer]);
    }
    customer.json(&args, "intent-add")
}

/// Everything a seller's vault shows of itself, as text: its access log, its intentions, its
/// contacts, its requests, its status and its whole export.
pub(crate) fn everything_held(seller: &TestVault) -> String {
    [
        &["audit"][..],
        &["intent", "inbox"],
        &["contact", "list"],
        &["requests"],
        &["status"],
        &["export", "--format", "json"],
    ]
    .iter()
    .map(|args| {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = seller.run(&full);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
    .collect()
}

#[test]
fn an_intention_reaches_two_sellers_the_customer_accepts_one_and_the_other_never_learns_who() {
    let (ada, acme, bazaar) = (TestVault::new(), TestVault::new(), TestVault::new());
    let (_acme_node, acme_ticket) = serve(&acme);
    let (_bazaar_node, bazaar_ticket) = serve(&bazaar);
    let (_ada_node, ada_ticket) = serve(&ada);
    ada.ok(&["contact", "add", "acme", &acme_ticket]);
    ada.ok(&["contact", "add", "bazaar", &bazaar_ticket]);

    let sent = add_intention(&ada, "espresso machine", &["acme", "bazaar"]);
    let pseudonym = sent["intention"]["pseudonym"].as_str().unwrap().to_owned();
    assert!(sent["sent"].as_array().unwrap().iter().all(|s| s["kept"] == true), "{sent}");
    // What was sent: a band, not the figure; a day; a coarse place.
    let told = &sent["intention"]["intention"];
    assert_eq!(told["budget"], serde_json::json!({ "low": 100, "high": 200, "currency": "EUR" }));
    assert_eq!(told["place"], "FR");

    // Each seller sees the intention under the pseudonym, and answers.
    for (seller, price, name) in [(&acme, "149", "Acme"), (&bazaar, "139", "Bazaar")] {
        let inbox = seller.json(&["intent", "inbox"], "intent-inbox");
        let held = &inbox["intentions"][0];
        assert_eq!(held["pseudonym"], pseudonym.as_str(), "{inbox}");
        assert_eq!(held["intention"]["what"], "espresso machine");
        seller.ok(&[
            "intent",
            "offer",
            &pseudonym[..12],
            "--price",
            price,
            "--currency",
            "EUR",
            "--terms",
            "delivered in 3 days",
            "--name",
            name,
        ]);
    }

    // The customer fetches both offers and accepts Acme's.
    let fetched = ada.json(&["intent", "offers", "--no-relay"], "intent-list");
    let offers = fetched["intentions"][0]["offers"].as_array().unwrap().clone();
    assert_eq!(offers.len(), 2, "{fetched}");
    let acme_offer = offers.iter().find(|o| o["seller_contact"] == "acme").expect("acme's offer");
    assert_eq!(acme_offer["price"], "149.00 EUR");
    let text = ada.ok(&["intent", "offers", "--no-fetch"]);
    assert!(text.contains("from bazaar (contact)") && text.contains("terms: delivered in 3 days"), "{text}");
    let accepted =
        ada.ok(&["intent", "accept", &pseudonym[..12], acme_offer["id"].as_str().unwrap(), "--no-relay"]);
    assert!(accepted.contains("now knows who you are"), "{accepted}");

    // Acme learned who the customer is, and logged it.
    let ada_id = json(&ada, &["id"]);
    let (identity, device) = (ada_id["identity"].as_str().unwrap(), ada_id["device"].as_str().unwrap());
    let acme_inbox = json(&acme, &["intent", "inbox"]);
    assert_eq!(acme_inbox["intentions"][0]["accepted_by"], identity, "{acme_inbox}");
    let log = acme.ok(&["audit"]);
    assert!(log.contains("offer accepted") && log.contains(identity), "{log}");
    // Accepted is final: no second acceptance, and no withdrawal that would make Acme forget.
    let bazaar_offer =
        offers.iter().find(|o| o["seller_contact"] == "bazaar").unwrap()["id"].as_str().unwrap();
    let again = ada.fails(&["intent", "accept", &pseudonym[..12], bazaar_offer, "--no-relay"], 2);
    assert!(again.contains("accepted"), "{again}");
    let err = ada.fails(&["intent", "withdraw", &pseudonym[..12], "--no-relay"], 2);
    assert!(err.contains("accepted"), "{err}");

    // Bazaar never did: not the identity, not the device, not the node's address.
    let port = ada_ticket_port(&ada_ticket);
    let held = everything_held(&bazaar);
    assert!(held.contains(&pseudonym), "the check reads what bazaar holds: {held}");
    for secret in [identity, device, &ada_ticket, &format!(":{port}")] {
        assert!(!held.contains(secret), "bazaar holds {secret}: {held}");
    }
    // The customer's own log says what was told to whom.
    let log = ada.ok(&["audit"]);
    assert!(log.contains("offer accepted") && log.contains("acme"), "{log}");
    assert!(log.contains("stated an intention"), "{log}");
}

fn ada_ticket_port(ticket: &str) -> u16 {
    let parsed: vault_core::Ticket = ticket.parse().unwrap();
    parsed.addrs()[0].port()
}

#[test]
fn a_withdrawn_intention_is_dropped_by_every_seller_it_reached() {
    let (ada, acme) = (TestVault::new(), TestVault::new());
    let (_acme_node, acme_ticket) = serve(&acme);
    ada.ok(&["contact", "add", "acme", &acme_ticket]);
    let sent = add_intention(&ada, "tent", &["acme"]);
    let pseudonym = sent["intention"]["pseudonym"].as_str().unwrap().to_owned();
    assert_eq!(json(&acme, &["intent", "inbox"])["intentions"].as_array().unwrap().len(), 1);
    let out = ada.ok(&["intent", "withdraw", &pseudonym[..12], "--no-relay"]);
    assert!(out.contains("acme: dropped it"), "{out}");
    assert!(json_or_empty(&acme)["intentions"].as_array().unwrap().is_empty());
    let listed = ada.json(&["intent", "list"], "intent-list");
    assert_eq!(listed["intentions"][0]["status"], "withdrawn");
    // Nothing more can be done with it.
    let err = ada.fails(&["intent", "accept", &pseudonym[..12], "aaaaaaaaaaaaaaaa"], 2);
    assert!(err.contains("withdrawn"), "{err}");
}

fn json_or_empty(v: &TestVault) -> Value {
    vault_tests::json_or_no(v, &["intent", "inbox"])
}

#[test]
fn bad_intentions_are_refused_before_anything_is_made() {
    let (ada, acme) = (TestVault::new(), TestVault::new());
    ada.ok(&["contact", "add", "acme", &vault_tests::ticket(&acme)]);
    let cases: &[(&[&str], &str)] = &[
        (&["intent", "add", "x", "--until", "7d", "--to", "nobody"], "nobody"),
        (&["intent", "add", "x", "--until", "7d", "--to", "acme", "--place", "France"], "two-letter"),
        (&["intent", "add", "x", "--until", "7d", "--to", "acme", "--tag", "Bad Tag"], "tags use"),
        (&["intent", "add", "", "--until", "7d", "--to", "acme"], "what you want"),
        (&["intent", "add", "x", "--until", "2020-01-01", "--to", "acme"], "past"),
        (&["intent", "add", "x", "--until", "365d", "--to", "acme"], "at most 90 days"),
        (&["intent", "offers", "zzzz"], "no intention of yours"),
    ];
    for (args, says) in cases {
        let err = ada.fails(args, 2);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let listed = vault_tests::json_or_no(&ada, &["intent", "list"]);
    assert!(listed["intentions"].as_array().unwrap().is_empty(), "nothing was made: {listed}");
}
