//! The three-vault story through the `vault` binary, as a user types it: a customer serves,
//! a shop and a friend receive exactly what they were granted, an edit made by another command
//! while `serve` runs reaches them, revocation erases the shop's copy and the receipt comes back.

use std::time::Duration;

use vault_tests::{TestVault, eventually, json, serve, ticket};

#[test]
fn three_vaults_from_the_command_line() {
    let (customer, shop, friend) = (TestVault::new(), TestVault::new(), TestVault::new());
    customer.ok(&["profile", "set", "email", "ada@example.org"]);
    customer.ok(&["profile", "set", "phone", "+33 6 00 00 00 00"]);
    customer.ok(&["profile", "set", "address.city", "Lyon"]);
    customer.ok(&[
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
        "--tag",
        "books",
    ]);
    customer.ok(&[
        "purchase",
        "add",
        "--item",
        "Tea",
        "--seller",
        "Acme",
        "--price",
        "4",
        "--currency",
        "EUR",
        "--tag",
        "food",
    ]);
    customer.ok(&["contact", "add", "acme", &ticket(&shop)]);
    customer.ok(&["contact", "add", "bob", &ticket(&friend)]);
    let grant = json(
        &customer,
        &[
            "grant",
            "acme",
            "--fields",
            "profile.email,profile.address",
            "--purpose",
            "delivery",
            "--expires",
            "90d",
        ],
    );
    vault_tests::check_cli_schema("grant", &grant);
    json(
        &customer,
        &[
            "grant",
            "bob",
            "--fields",
            "purchases",
            "--filter",
            "purchases[tag=books]",
            "--no-prices",
            "--purpose",
            "book club",
        ],
    );
    // Who sees my city? Only the shop.
    let covering = json(&customer, &["grants", "--field", "profile.address.city"]);
    assert_eq!(covering["grants"].as_array().unwrap().len(), 1);
    customer.fails(&["grants", "--field", "profile.phone"], 1);

    let (_customer_node, customer_ticket) = serve(&customer);
    // `vault id` prints the same ticket while serve runs.
    assert_eq!(ticket(&customer), customer_ticket);
    shop.ok(&["contact", "add", "ada", &customer_ticket]);
    friend.ok(&["contact", "add", "ada", &customer_ticket]);
    shop.ok(&["sync", "ada", "--no-relay"]);
    friend.ok(&["sync", "ada", "--no-relay"]);

    let shared = json(&shop, &["shared", "--from", "ada"]);
    vault_tests::check_cli_schema("shared", &shared);
    let values = &shared["shares"][0]["values"];
    assert_eq!(values["profile"]["email"], "ada@example.org");
    assert!(values["profile"].get("phone").is_none(), "non-granted fields never arrive");
    assert_eq!(shared["shares"][0]["purpose"], "delivery");
    let feed = json(&friend, &["shared"]);
    let purchases = feed["shares"][0]["values"]["purchases"].as_object().unwrap();
    assert_eq!(purchases.len(), 1);
    assert!(purchases.values().all(|p| p["item"] == "Dune" && p.get("price").is_none()));

    // Live: the shop serves too, and an edit made by another command reaches it.
    let (shop_node, _) = serve(&shop);
    std::thread::sleep(Duration::from_millis(500));
    customer.ok(&["profile", "set", "address.city", "Paris"]);
    // Read the shop's vault through its file while its node runs (another process).
    eventually("the new city at the shop", || {
        json(&shop, &["shared"])["shares"][0]["values"]["profile"]["address"]["city"] == "Paris"
    });
    drop(shop_node);

    // Revocation: the shop's copy is erased at its next contact, the receipt comes back.
    let id = grant["id"].as_str().unwrap();
    customer.ok(&["revoke", id]);
    customer.fails(&["revoke", id], 2);
    shop.ok(&["sync", "ada", "--no-relay"]);
    let shared = json(&shop, &["shared", "--from", "ada"]);
    assert_eq!(shared["shares"][0]["status"], "revoked");
    assert!(shared["shares"][0]["values"].is_null(), "the copy is erased");
    eventually("the erasure receipt is recorded", || {
        json(&customer, &["grants", "--all"])["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == id && !g["erasure_confirmed_at"].is_null())
    });
    let audit = json(&customer, &["audit", "--peer", "acme"]);
    vault_tests::check_cli_schema("audit", &audit);
    let kinds: Vec<&str> =
        audit["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["grant-issued", "sync-served", "grant-revoked", "erasure-receipt"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}
