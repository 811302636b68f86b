//! Derived fields through the `vault` binary: a customer grants a value computed from a field
//! instead of the field (`profile.birthday:over(18)`), the seller receives only that value and
//! sees it follow the source; a seller asks for a derived field; a customer approves a derived
//! field where a raw one was asked, never the reverse. With the bad inputs of each.

use serde_json::{Value, json};
use vault_core::{GrantId, IdentityId, Passphrase, Vault};
use vault_tests::{Bought, TestVault, buy, eventually, json_or_no, requests, serve};

/// The customer's source values: none of them may ever reach the seller.
const BIRTHDAY: &str = "1990-05-17";
const STREET: &str = "12 rue des Tanneurs";
const CITY: &str = "Villeurbanne";
const POSTCODE: &str = "69100";
const NEW_POSTCODE: &str = "75011";

/// What the consent screen says `profile.birthday:over(18)` shares.
const OVER_18: &str = "whether you are 18 or older, counted by whole months (not your birthday; it turns true at the start of the month after your 18th birthday, and the recipient sees the month)";

fn customer() -> TestVault {
    let c = TestVault::new();
    c.ok(&["profile", "set", "email", "ada@example.org"]);
    c.ok(&["profile", "set", "birthday", BIRTHDAY]);
    c.ok(&["profile", "set", "address.street", STREET]);
    c.ok(&["profile", "set", "address.city", CITY]);
    c.ok(&["profile", "set", "address.postcode", POSTCODE]);
    c.ok(&["profile", "set", "address.country", "FR"]);
    c
}

fn shared_values(shop: &TestVault) -> Value {
    let shared = shop.json(&["shared"], "shared");
    shared["shares"][0]["values"].clone()
}

/// The seller's stored copy of the share: the Automerge document with its whole history.
fn stored_copy(shop: &TestVault, issuer: &str, grant: &str) -> Vec<u8> {
    let mut vault = Vault::at(&shop.dir).unlock(&Passphrase::new(&shop.passphrase)).unwrap();
    let issuer: IdentityId = issuer.parse().unwrap();
    let grant: GrantId = grant.parse().unwrap();
    vault.held_mut().copy(&issuer, &grant).unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_derived_grant_ships_only_the_derived_values_and_follows_the_source() {
    let (ada, shop) = (customer(), TestVault::new());
    let price = buy(
        &ada,
        &Bought {
            item: "Tea",
            seller: "Acme",
            price: "37.45",
            tag: "food",
            date: "2026-11-01",
            rating: "5",
            review: "good",
        },
    );
    let (_node, ada_ticket) = serve(&ada);
    let shop_ticket = shop.json(&["id"], "id")["ticket"].as_str().unwrap().to_owned();
    ada.ok(&["contact", "add", "shop", &shop_ticket]);
    shop.ok(&["contact", "add", "ada", &ada_ticket]);

    // Bad inputs: named, with the known derivations or the types, and nothing is granted.
    let grant =
        |fields: &str| ["grant", "shop", "--fields", fields, "--purpose", "age check"].map(String::from);
    let fails = |fields: &str| ada.fails(&grant(fields).each_ref().map(String::as_str), 2);
    let err = fails("profile.birthday:age");
    assert!(
        err.contains(
            "unknown derivation \"age\" in \"profile.birthday:age\": known derivations are over(N), year, \
             country, prefix(N) and band(B1,B2,...)"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: over(N) and year read a date (profile.birthday), country an address"),
        "{err}"
    );
    let err = fails("profile.email:over(18)");
    assert!(
        err.contains(
            "cannot apply \"over(18)\" to \"profile.email\": it needs a date, and \"profile.email\" is text"
        ),
        "{err}"
    );
    let err = fails("purchases.*.item:band(10,50)");
    assert!(err.contains("it needs a price, and \"purchases.*.item\" is text"), "{err}");
    let err = fails("profile.address.postcode:prefix(9)");
    assert!(err.contains("prefix(N) takes one whole number of characters from 1 to 4"), "{err}");
    let err = fails("profile.birthday:over(200)");
    assert!(err.contains("from 1 to 150"), "{err}");
    let err = fails("profile.birthday:over(18),profile.birthday:over(21),profile.birthday:over(30)");
    assert!(err.contains("more than 2 answers about one date"), "{err}");
    let err = ada.fails(&["grants", "--field", "profile.birthday:age"], 2);
    assert!(err.contains("unknown derivation \"age\""), "{err}");
    for secret in [BIRTHDAY, POSTCODE, STREET] {
        assert!(!err.contains(secret), "an error never holds a value");
    }
    ada.fails(&["grants"], 1);

    // The grant: four derived values, typed by the schema.
    let fields = "profile.birthday:over(18),profile.address:country,profile.address.postcode:prefix(2),\
                  purchases.*.price:band(10,50,100)";
    let granted = ada.json(&grant(fields).each_ref().map(String::as_str), "grant");
    let id = granted["id"].as_str().unwrap().to_owned();
    assert_eq!(
        granted["fields"],
        json!([
            "profile.address:country",
            "profile.address.postcode:prefix(2)",
            "profile.birthday:over(18)",
            "purchases.*.price:band(10,50,100)"
        ])
    );
    let text = ada.ok(&["grants"]);
    for words in [
        OVER_18,
        "your country (not your address)",
        "the first 2 characters of your postcode (not all of it)",
        "the price band of each purchase, in its currency: under 10, 10 to 50, 50 to 100, 100 or more (not the exact price)",
    ] {
        assert!(text.contains(words), "{words}: {text}");
    }
    // Who gets something of my birthday? The derived grant is listed.
    let covering = ada.json(&["grants", "--field", "profile.birthday"], "grants");
    assert_eq!(covering["grants"][0]["id"], id.as_str());

    // The seller holds the derived values only.
    shop.ok(&["sync", "ada", "--no-relay"]);
    let values = shared_values(&shop);
    assert_eq!(
        values,
        json!({
            "profile": {"birthday:over(18)": true, "address:country": "FR",
                        "address": {"postcode:prefix(2)": "69"}},
            "purchases": {price.as_str(): {"price:band(10,50,100)": "10 to 50 EUR"}},
        })
    );

    // The source changes; the derived value follows.
    ada.ok(&["profile", "set", "address.postcode", NEW_POSTCODE]);
    shop.ok(&["sync", "ada", "--no-relay"]);
    assert_eq!(shared_values(&shop)["profile"]["address"]["postcode:prefix(2)"], "75");
    // The source goes: the value goes, it does not turn false.
    ada.ok(&["profile", "unset", "birthday"]);
    shop.ok(&["sync", "ada", "--no-relay"]);
    let values = shared_values(&shop);
    assert_eq!(values["profile"].get("birthday:over(18)"), None, "{values}");
    assert_eq!(values["profile"]["address:country"], "FR");

    // Nothing of the sources anywhere: the seller's output, its stored copy with its history,
    // its whole vault file's plaintext being sealed anyway.
    let everything = shop.ok(&["--json", "shared"]);
    let issuer = ada.json(&["id"], "id")["identity"].as_str().unwrap().to_owned();
    drop(_node);
    let copy = stored_copy(&shop, &issuer, &id);
    for source in [BIRTHDAY, STREET, CITY, POSTCODE, NEW_POSTCODE, "37.45", "3745"] {
        assert!(!everything.contains(source), "{source} in the seller's shared output");
        if source != "3745" {
            assert!(!contains(&copy, source), "{source} in the seller's copy of the share");
        }
    }
    let doc = automerge::AutoCommit::load(&copy).unwrap();
    let mut amounts = Vec::new();
    for change in doc.clone().get_changes(&[]) {
        for op in change.decode().operations {
            if let automerge::legacy::OpType::Put(automerge::ScalarValue::Int(i)) = op.action {
                amounts.push(i);
            }
        }
    }
    assert!(!amounts.contains(&3745), "the exact price in the copy's history: {amounts:?}");
}

fn ask(shop: &TestVault, fields: &str) -> String {
    let sent =
        shop.json(&["request", "ada", "--fields", fields, "--purpose", "age check", "--no-relay"], "request");
    assert_eq!(sent["status"], "pending", "{sent}");
    sent["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_seller_asks_for_a_derived_field_and_the_customer_narrows_never_widens() {
    let (ada, shop) = (customer(), TestVault::new());
    let (_node, ada_ticket) = serve(&ada);
    shop.ok(&["contact", "add", "ada", &ada_ticket]);

    // The seller's bad inputs are refused before anything is signed or sent.
    let request =
        |fields: &str| shop.fails(&["request", "ada", "--fields", fields, "--purpose", "x", "--no-relay"], 2);
    assert!(request("profile.birthday:age").contains("unknown derivation \"age\""));
    assert!(request("profile.phone:year").contains("it needs a date, and \"profile.phone\" is text"));
    assert!(
        request("profile.address:prefix(2)").contains("it needs text, and \"profile.address\" is an address")
    );
    let err = request("profile.birthday:over(18),profile.birthday:over(19),profile.birthday:over(20)");
    assert!(err.contains("more than 2 answers about one date"), "{err}");
    assert!(requests(&shop, &["--sent", "--all"]).is_empty(), "nothing was queued");

    // Asked for the raw birthday, the customer approves only whether she is over 18.
    let raw = ask(&shop, "profile.birthday,profile.address");
    let grant = ada.json(
        &["approve", &raw, "--fields", "profile.birthday:over(18),profile.address.postcode:prefix(2)"],
        "grant",
    );
    assert_eq!(grant["fields"], json!(["profile.address.postcode:prefix(2)", "profile.birthday:over(18)"]));
    shop.ok(&["sync", "ada", "--no-relay"]);
    assert_eq!(
        shared_values(&shop),
        json!({"profile": {"birthday:over(18)": true, "address": {"postcode:prefix(2)": "69"}}})
    );

    // Asked for derived values: the consent screen says them in plain words.
    let derived = ask(&shop, "profile.birthday:over(18),profile.birthday:year,profile.address:country");
    let inbox = requests(&ada, &[]);
    let holds =
        inbox.iter().find(|r| r["id"] == derived.as_str()).unwrap()["holds"].as_array().unwrap().clone();
    let over = holds.iter().find(|h| h["field"] == "profile.birthday:over(18)").unwrap();
    assert_eq!(over["shares_only"], OVER_18);
    assert_eq!(over["held"], true);
    let screen = ada.ok(&["requests"]);
    for words in [
        &format!("shares only {OVER_18}"),
        "shares only your birth year (not the full date)",
        "shares only your country (not your address)",
        "note: together, profile.birthday:over(18) and profile.birthday:year tell more of profile.birthday than each alone",
    ] {
        assert!(screen.contains(words), "{words}: {screen}");
    }
    for secret in [BIRTHDAY, STREET, POSTCODE] {
        assert!(!screen.contains(secret), "the consent screen does not print the values");
    }

    // Bad derivations in an approval are named too.
    let err = ada.fails(&["approve", &derived, "--fields", "profile.birthday:age"], 2);
    assert!(err.contains("unknown derivation \"age\""), "{err}");
    let err = ada.fails(&["approve", &derived, "--fields", "profile.email:year"], 2);
    assert!(err.contains("it needs a date, and \"profile.email\" is text"), "{err}");
    // Never wider: the raw field, another age, another derivation. Nothing is granted.
    for wider in [
        "profile.birthday",
        "profile.birthday:over(21)",
        "profile.address",
        "profile.address.postcode:prefix(2)",
    ] {
        let err = ada.fails(&["approve", &derived, "--fields", wider], 2);
        assert!(err.contains(&format!("\"{wider}\" was not asked for")), "{wider}: {err}");
    }
    assert_eq!(ada.json(&["grants"], "grants")["grants"].as_array().unwrap().len(), 1);
    // Narrower than asked: fewer derived values.
    let grant = ada.json(&["approve", &derived, "--fields", "profile.birthday:over(18)"], "grant");
    assert_eq!(grant["fields"], json!(["profile.birthday:over(18)"]));
}

#[test]
fn a_derived_value_follows_its_source_live() {
    let (ada, shop) = (customer(), TestVault::new());
    let (_shop_node, shop_ticket) = serve(&shop);
    let (_ada_node, _) = serve(&ada);
    ada.ok(&["contact", "add", "shop", &shop_ticket]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    ada.ok(&[
        "grant",
        "shop",
        "--fields",
        "profile.address.postcode:prefix(2)",
        "--purpose",
        "delivery zone",
    ]);
    let prefix = || {
        json_or_no(&shop, &["shared"])["shares"][0]["values"]["profile"]["address"]["postcode:prefix(2)"]
            .clone()
    };
    eventually("the derived value at the running seller", || prefix() == "69");
    // An edit from the command line while both nodes run: the seller's copy follows.
    ada.ok(&["profile", "set", "address.postcode", NEW_POSTCODE]);
    eventually("the new derived value at the running seller", || prefix() == "75");
    let everything = shop.ok(&["--json", "shared"]);
    assert!(!everything.contains(POSTCODE) && !everything.contains(NEW_POSTCODE), "{everything}");
}

#[test]
fn derivations_that_would_say_too_much_are_refused() {
    let (ada, shop) = (customer(), TestVault::new());
    ada.ok(&["contact", "add", "shop", &vault_tests::ticket(&shop)]);
    let grant = |fields: &str, extra: &[&str]| {
        let mut args = vec!["grant", "shop", "--fields", fields, "--purpose", "checks"];
        args.extend_from_slice(extra);
        ada.run(&args)
    };
    let refused = |fields: &str, extra: &[&str], why: &str| {
        let out = grant(fields, extra);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{fields}: {err}");
        assert!(err.contains(why), "{fields}: {err}");
        for secret in [BIRTHDAY, POSTCODE, STREET, CITY] {
            assert!(!err.contains(secret), "an error never holds a value");
        }
    };
    // A prefix of a name, an email or a city would be most of it.
    refused(
        "profile.email:prefix(3)",
        &[],
        "prefix(N) applies to profile.address.postcode and profile.phone only",
    );
    refused("profile.address.city:prefix(2)", &[], "profile.address.postcode and profile.phone only");
    // Narrow bands would give the price away; a band without prices is a contradiction.
    refused("purchases.*.price:band(10,12)", &[], "at least 1.5 times the one before");
    refused("purchases.*.price:band(10,50)", &["--no-prices"], "a price band is a price");
    // One way to write a derivation in a signed statement.
    refused("profile.birthday:over(018)", &[], "without spaces or leading zeros");

    // Two answers about the birthday to one recipient, ever: revoking does not make room.
    let first = ada.json(&["grant", "shop", "--fields", "profile.birthday:year", "--purpose", "x"], "grant");
    ada.ok(&["grant", "shop", "--fields", "profile.birthday:over(18)", "--purpose", "x"]);
    ada.ok(&["revoke", first["id"].as_str().unwrap()]);
    refused("profile.birthday:over(21)", &[], "counting every grant it was ever given");
    ada.ok(&["grant", "shop", "--fields", "profile.birthday:over(18)", "--purpose", "the same again"]);
    // One band per price.
    ada.ok(&["grant", "shop", "--fields", "purchases.*.price:band(10,50,100)", "--purpose", "x"]);
    refused("purchases.*.price:band(20,40)", &[], "more than one price band of one price");
}
