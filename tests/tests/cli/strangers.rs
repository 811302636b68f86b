//! Names on strangers: a request carries the name its sender gives itself, shown as unverified
//! beside its key until the holder names the sender, and the holder adds the sender as a
//! contact from the request, with no ticket sent some other way.

use vault_tests::{TestVault, check_cli_schema, json, requests, serve};

#[test]
fn a_stranger_s_request_shows_its_own_name_and_its_sender_becomes_a_contact() {
    let (customer, shop) = (TestVault::new(), TestVault::new());
    customer.ok(&["profile", "set", "email", "ada@example.org"]);
    let (_customer_node, customer_ticket) = serve(&customer);
    let (_shop_node, _) = serve(&shop);

    // The name a vault gives itself: one line, not blank, not long.
    let err = shop.fails(&["id", "--name", "Acme\u{1b}[2J"], 2);
    assert!(err.contains("control character"), "{err}");
    assert!(shop.fails(&["id", "--name", "   "], 2).contains("empty"));
    assert!(shop.fails(&["id", "--name", &"x".repeat(65)], 2).contains("longer than 64"));
    assert!(
        shop.fails(&["id", "--name", "ada (x)"], 2).contains("U+0028"),
        "no brackets: it would pose as a contact"
    );
    let id = json(&shop, &["id", "--name", "  Acme Shop "]);
    check_cli_schema("id", &id);
    assert_eq!(id["name"], "Acme Shop", "kept, trimmed");

    shop.ok(&["contact", "add", "ada", &customer_ticket]);
    shop.ok(&[
        "request",
        "ada",
        "--fields",
        "profile.email",
        "--purpose",
        "delivery",
        "--duration",
        "30d",
        "--no-relay",
    ]);

    // The customer sees the shop's own word for itself, said to be only that.
    let listed = customer.ok(&["requests"]);
    let shop_id = json(&shop, &["id"])["identity"].as_str().unwrap().to_owned();
    assert!(
        listed.contains(&format!("{shop_id} (not a contact; calls itself \"Acme Shop\", unverified)")),
        "{listed}"
    );
    let inbox = requests(&customer, &[]);
    assert_eq!(inbox[0]["requester_says"], "Acme Shop");
    let request_id = inbox[0]["id"].as_str().unwrap().to_owned();

    // Bad ids are named; nothing is added.
    assert!(
        customer.fails(&["contact", "add", "acme", "--from-request", "nope"], 2).contains("not a request id")
    );
    let err = customer.fails(&["contact", "add", "acme", "--from-request", "aaaaaaaaaaaaaaaa"], 2);
    assert!(err.contains("no request aaaaaaaaaaaaaaaa was received here"), "{err}");
    assert!(customer.fails(&["contact", "add", "acme"], 2).contains("--from-request"));

    // Added from the request: named by the customer from now on, and reachable.
    let added = json(&customer, &["contact", "add", "acme", "--from-request", &request_id]);
    check_cli_schema("contact-add", &added);
    let listed = customer.ok(&["requests"]);
    assert!(listed.contains("acme ("), "{listed}");
    assert!(!listed.contains("unverified"), "{listed}");
    let synced = customer.run(&["sync", "acme", "--no-relay"]);
    assert!(synced.status.success(), "the shop is reached: {}", String::from_utf8_lossy(&synced.stderr));
}
