//! One sharing state across a customer's devices, through the real binary: a grant made on the
//! laptop is served by the box while the laptop is off; a revocation made on the box (which
//! does not hold the identity key) is erased at the grantee, and the erasure receipt shows on
//! both devices; a consent request delivered to the box is answered from the laptop; the
//! access log on the laptop says which device served what.

use serde_json::Value;
use vault_tests::pairing::{free_addr, pair};
use vault_tests::{TestVault, check_cli_schema, eventually, json, json_or_no, serve_on};

/// The grants `v` lists (all of them, ended ones included).
fn grants(v: &TestVault) -> Vec<Value> {
    let value = json_or_no(v, &["grants", "--all"]);
    if !value.is_null() {
        check_cli_schema("grants", &value);
    }
    value["grants"].as_array().cloned().unwrap_or_default()
}

fn grant_status(v: &TestVault, id: &str) -> Option<(String, bool)> {
    grants(v)
        .into_iter()
        .find(|g| g["id"] == id)
        .map(|g| (g["status"].as_str().unwrap().to_owned(), !g["erasure_confirmed_at"].is_null()))
}

fn inbox(v: &TestVault) -> Vec<Value> {
    let value = json_or_no(v, &["requests", "--all"]);
    value["requests"].as_array().cloned().unwrap_or_default()
}

#[test]
fn grants_revocations_requests_and_the_access_log_are_one_state_across_devices() {
    let laptop = TestVault::new();
    laptop.ok(&["profile", "set", "email", "ada@example.org"]);
    laptop.ok(&["profile", "set", "phone", "+33 6 00 00 00 00"]);
    let (laptop_addr, box_addr) = (free_addr(), free_addr());
    let laptop_serving = serve_on(&laptop, &laptop_addr).0;
    let home = TestVault::uninitialised();
    pair(&laptop, &home, "box");
    let _box_serving = serve_on(&home, &box_addr).0;

    let shop = TestVault::new();
    let _shop_serving = serve_on(&shop, &free_addr()).0;
    let laptop_ticket = json(&laptop, &["id"])["ticket"].as_str().unwrap().to_owned();
    shop.ok(&["contact", "add", "ada", &laptop_ticket]);
    let shop_ticket = json(&shop, &["id"])["ticket"].as_str().unwrap().to_owned();
    laptop.ok(&["contact", "add", "shop", &shop_ticket]);

    // A grant made on the laptop reaches the box, with the contact it names.
    let grant = json(&laptop, &["grant", "shop", "--fields", "profile.email", "--purpose", "delivery"]);
    let id = grant["id"].as_str().unwrap().to_owned();
    eventually("the box lists the laptop's grant", || {
        grant_status(&home, &id) == Some(("active".into(), false))
    });
    eventually("the box knows the contact", || home.ok(&["contact", "list"]).contains("shop"));

    // With the laptop stopped, the box serves the grant: the shop dials the ticket's device,
    // finds it off, and reaches the box through the roster.
    shop.ok(&["sync", "ada", "--no-relay"]);
    drop(laptop_serving);
    home.ok(&["profile", "set", "email", "ada@new.example.org"]);
    shop.ok(&["sync", "ada", "--no-relay"]);
    let shared = shop.json(&["shared"], "shared");
    assert_eq!(shared["shares"].as_array().unwrap().len(), 1, "one copy per grant: {shared}");
    assert_eq!(shared["shares"][0]["values"]["profile"]["email"], "ada@new.example.org", "served by the box");

    // A request delivered while the laptop is off lands on the box.
    let sent = shop.json(
        &["request", "ada", "--fields", "profile.phone", "--purpose", "support", "--no-relay"],
        "request",
    );
    assert_eq!(sent["status"], "pending", "{sent}");
    let request = sent["id"].as_str().unwrap().to_owned();
    assert_eq!(inbox(&home).len(), 1, "the box took the request");

    // The box (no identity key) revokes; its device-signed revocation is honoured by the shop.
    home.ok(&["revoke", &id]);
    shop.ok(&["sync", "ada", "--no-relay"]);
    eventually("the box records the shop's erasure receipt", || {
        grant_status(&home, &id) == Some(("revoked".into(), true))
    });
    let shared = shop.json(&["shared"], "shared");
    let share = &shared["shares"][0];
    assert!(share["status"] == "revoked" && share["values"].is_null(), "erased at the shop: {shared}");

    // The laptop comes back: it learns the revocation and the receipt, and the request.
    let _laptop_serving = serve_on(&laptop, &laptop_addr).0;
    eventually("the laptop learns the revocation and the receipt", || {
        grant_status(&laptop, &id) == Some(("revoked".into(), true))
    });
    eventually("the laptop sees the request made to the box", || {
        inbox(&laptop).iter().any(|r| r["id"] == request.as_str() && r["status"] == "pending")
    });

    // Approved on the laptop; the shop learns it (from whichever device answers) and syncs.
    let approved = laptop.json(&["approve", &request], "grant");
    eventually("the box learns the approval", || {
        inbox(&home).iter().any(|r| r["id"] == request.as_str() && r["status"] == "approved")
    });
    shop.ok(&["sync", "ada", "--no-relay"]);
    let mine = json(&shop, &["requests", "--sent"]);
    assert_eq!(mine["requests"][0]["status"], "approved", "{mine}");
    assert_eq!(mine["requests"][0]["grant"], approved["id"]);
    let shared = shop.json(&["shared"], "shared");
    assert_eq!(shared["shares"][0]["values"]["profile"]["phone"], "+33 6 00 00 00 00");

    // Approving twice, on the other device, is refused there too.
    eventually("the box lists the new grant", || {
        grant_status(&home, approved["id"].as_str().unwrap()).is_some()
    });
    let err = home.fails(&["approve", &request], 2);
    assert!(err.contains("already approved"), "{err}");

    // The laptop's access log says what the box served and revoked.
    eventually("the laptop's access log names the box", || {
        let log = json(&laptop, &["audit"]);
        check_cli_schema("audit", &log);
        let events = log["events"].as_array().unwrap().clone();
        let on_box = |kind: &str| events.iter().any(|e| e["kind"] == kind && e["device_name"] == "box");
        on_box("sync-served") && on_box("grant-revoked") && on_box("request-received")
    });
    let text = laptop.ok(&["audit"]);
    assert!(text.lines().any(|l| l.contains("served") && l.ends_with("on box")), "{text}");
}
