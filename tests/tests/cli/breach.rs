//! Breach notices through the real binaries: a seller notifies the customers whose data it held
//! under a matching grant in the window; each customer sees only their own notice, with the
//! grants concerned and the command that revokes them; a customer offline at the time gets it
//! when back, from the seller's node.

use vault_tests::{TestVault, eventually, json, json_or_no, serve};

fn notices(v: &TestVault) -> Vec<serde_json::Value> {
    json_or_no(v, &["notices"])["notices"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_breach_notice_reaches_exactly_the_customers_concerned() {
    let (alice, carol, dan, shop) = (TestVault::new(), TestVault::new(), TestVault::new(), TestVault::new());
    for (v, email) in
        [(&alice, "alice@example.org"), (&carol, "carol@example.org"), (&dan, "dan@example.org")]
    {
        v.ok(&["profile", "set", "email", email]);
        v.ok(&["profile", "set", "name", "Someone"]);
    }
    let (_shop_node, shop_ticket) = serve(&shop);
    let alice_node = serve(&alice);
    let carol_node = serve(&carol);
    let dan_node = serve(&dan);
    for (v, fields, purpose) in [
        (&alice, "profile.email,profile.name", "order confirmations"),
        (&carol, "profile.email", "order confirmations"),
        (&dan, "profile.name", "newsletter"),
    ] {
        v.ok(&["contact", "add", "shop", &shop_ticket]);
        json(v, &["grant", "shop", "--fields", fields, "--purpose", purpose]);
    }
    shop.ok(&["contact", "add", "alice", &alice_node.1]);
    eventually("the seller holds three shares", || {
        json_or_no(&shop, &["shared"])["shares"].as_array().is_some_and(|s| {
            s.len() == 3 && s.iter().all(|x| x["values"].as_object().is_some_and(|v| !v.is_empty()))
        })
    });

    // Carol is offline when the seller learns of the breach.
    drop(carol_node);
    let out = json(
        &shop,
        &[
            "breach",
            "notify",
            "--since",
            "1d",
            "--purpose",
            "ORDER",
            "--no-relay",
            "--text",
            "Our order database was copied by an intruder on 2026-11-20",
        ],
    );
    vault_tests::check_cli_schema("notices", &out);
    let sent = out["notices"].as_array().unwrap();
    assert_eq!(sent.len(), 2, "alice and carol held under 'order confirmations', not dan: {out:#}");
    let to_alice = sent.iter().find(|n| n["peer_name"] == "alice").expect("alice notified");
    assert_eq!(to_alice["delivered"], true);
    assert_eq!(to_alice["fields"], serde_json::json!(["profile.email", "profile.name"]));
    assert!(sent.iter().any(|n| n["delivered"] == false), "carol's is queued");

    // Alice sees her own notice, the grant concerned, and how to revoke it.
    vault_tests::check_cli_schema("notices", &json(&alice, &["notices"]));
    let got = notices(&alice);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["text"], "Our order database was copied by an intruder on 2026-11-20");
    assert_eq!(got[0]["grants"][0]["status"], "active");
    let grant = got[0]["grants"][0]["id"].as_str().unwrap().to_owned();
    let text = alice.ok(&["notices"]);
    assert!(
        text.contains("BREACH NOTICE from shop") && text.contains(&format!("vault revoke {grant}")),
        "{text}"
    );
    assert!(text.contains("your grants gave them: profile.email, profile.name"), "{text}");
    assert!(!text.contains("not what your grants gave"), "the claim matches the grants: {text}");
    assert_eq!(got[0]["granted_fields"], serde_json::json!(["profile.email", "profile.name"]));
    assert_eq!(got[0]["claim_differs"], false);
    assert!(alice.ok(&["audit"]).contains("BREACH NOTICE from shop"));
    assert!(notices(&dan).is_empty(), "dan's data was not held under a matching grant");
    alice.ok(&["revoke", &grant]);
    assert!(alice.ok(&["notices"]).contains(&format!("grant {grant}: revoked")));

    // Carol comes back: the seller's node delivers the queued notice.
    let _carol_node = serve(&carol);
    eventually("carol's notice delivered", || notices(&carol).len() == 1);
    let got = &notices(&carol)[0];
    assert_eq!(got["fields"], serde_json::json!(["profile.email"]), "only what it held of carol's");
    eventually("the seller sees both delivered", || {
        json_or_no(&shop, &["notices", "--sent"])["notices"]
            .as_array()
            .is_some_and(|n| n.iter().all(|x| x["delivered"] == true))
    });
    drop((alice_node, dan_node));

    // Nothing matching: said so, nothing sent.
    let err = shop.fails(&["breach", "notify", "--since", "1d", "--purpose", "insurance", "--text", "x"], 2);
    assert!(err.contains("nobody to notify"), "{err}");
    let err = shop.fails(&["breach", "notify", "--since", "1d", "--text", " "], 2);
    assert!(err.contains("notice text is required"), "{err}");
}
