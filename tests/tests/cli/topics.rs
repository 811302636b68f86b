//! Public topics through the binary, with real nodes gossiping on loopback: an intention
//! reaches a seller the customer does not know through a topic, and its offer comes back on
//! the topic; customers publish purchase signals under per-topic pseudonyms and a subscriber
//! sees the aggregate, a shill counted once, and only vouched pseudonyms when asked.

use serde_json::Value;
use vault_tests::{Bought, TestVault, buy, eventually, json, json_or_no, serve};

fn buy_coffee(v: &TestVault, item: &str, seller: &str, price: &str, rating: &str) {
    let review = format!("{item} review");
    buy(v, &Bought { item, seller, price, tag: "coffee", date: "2026-11-20", rating, review: &review });
}

#[test]
fn an_intention_reaches_a_seller_through_a_topic_and_its_offer_comes_back_there() {
    let (ada, acme, cafe, bazaar) = (TestVault::new(), TestVault::new(), TestVault::new(), TestVault::new());
    // Two sellers on the topic: Cafe first (joining while its node runs), Bazaar entering by
    // Cafe. Ada knows Acme and Cafe's ticket (to enter the topic by), never Bazaar.
    let (_cafe_node, cafe_ticket) = serve(&cafe);
    cafe.ok(&["topic", "join", "coffee/FR", "--intentions"]);
    bazaar.ok(&["topic", "join", "coffee/FR", "--intentions", "--via", &cafe_ticket]);
    let (_bazaar_node, _) = serve(&bazaar);
    let (_acme_node, acme_ticket) = serve(&acme);
    let (_ada_node, ada_ticket) = serve(&ada);
    ada.ok(&["contact", "add", "acme", &acme_ticket]);

    // Gossip needs its neighbours up: send until Bazaar holds it (each try is a new intention).
    let mut pseudonym = String::new();
    eventually("bazaar hears the intention through the topic", || {
        // A try may be kept by nobody on a busy machine (the topic not entered in time, Acme's
        // ten a minute from one address spent): the next try is another intention.
        let sent = json_or_no(
            &ada,
            &[
                "intent",
                "add",
                "espresso machine",
                "--tag",
                "coffee",
                "--budget",
                "150",
                "--currency",
                "EUR",
                "--until",
                "7d",
                "--to",
                "acme",
                "--topic",
                "coffee/FR",
                "--via",
                &cafe_ticket,
                "--no-relay",
            ],
        );
        pseudonym = sent["intention"]["pseudonym"].as_str().unwrap_or_default().to_owned();
        let acme_kept = sent["sent"]
            .as_array()
            .is_some_and(|s| s.iter().any(|p| p["peer"] == "acme" && p["kept"] == true));
        let inbox = json_or_no(&bazaar, &["intent", "inbox"]);
        acme_kept
            && inbox["intentions"].as_array().is_some_and(|all| {
                all.iter().any(|i| i["pseudonym"] == pseudonym.as_str() && i["via"] == "topic coffee/FR")
            })
    });
    let short = &pseudonym[..12];
    for (seller, price, name) in [(&acme, "149", "Acme"), (&bazaar, "139", "Bazaar")] {
        seller.ok(&["intent", "offer", short, "--price", price, "--currency", "EUR", "--name", name]);
    }
    // Bazaar's offer comes back on the topic (a poll), Acme's by a call.
    let mut offers: Vec<Value> = Vec::new();
    eventually("both offers fetched", || {
        let fetched = json_or_no(&ada, &["intent", "offers", short, "--no-relay"]);
        offers = fetched["intentions"][0]["offers"].as_array().cloned().unwrap_or_default();
        offers.len() == 2
    });
    let from_bazaar = offers.iter().find(|o| o["seller_says"] == "Bazaar").expect("bazaar's offer");
    assert!(from_bazaar["seller_contact"].is_null(), "Bazaar is no contact of Ada's");
    let acme_offer =
        offers.iter().find(|o| o["seller_contact"] == "acme").unwrap()["id"].as_str().unwrap().to_owned();
    ada.ok(&["intent", "accept", short, &acme_offer, "--no-relay"]);

    // Bazaar, reached through the topic, holds nothing that names Ada.
    let ada_id = json(&ada, &["id"]);
    let held = crate::intentions::everything_held(&bazaar);
    assert!(held.contains(&pseudonym));
    for secret in [ada_id["identity"].as_str().unwrap(), ada_id["device"].as_str().unwrap(), &ada_ticket] {
        assert!(!held.contains(secret), "bazaar holds {secret}");
    }
}

/// The same shill posting one item many times: counted once.
fn shill(topic: &str, via: &str, times: usize) {
    let key = vault_core::PseudonymKey::generate();
    let via: vault_core::Ticket = via.parse().unwrap();
    let frames: Vec<vault_core::MarketFrame> = (0..times)
        .map(|i| {
            let signal = vault_core::Signal {
                pseudonym: key.public(),
                topic: topic.parse().unwrap(),
                item: "Miracle grinder".into(),
                seller: format!("Shop {i}"),
                rating: Some(5),
                price: None,
                place: None,
                when: None,
            };
            vault_core::MarketFrame::Signal(Box::new(signal.sign(&key).unwrap()))
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(vault_sync::topic_call(
        &key,
        &topic.parse().unwrap(),
        &[via],
        &frames,
        std::time::Duration::from_secs(2),
        false,
    ))
    .unwrap();
}

fn buyers(view: &Value, item: &str) -> u64 {
    let item = item.to_lowercase();
    let same = |i: &&Value| i["item"].as_str().is_some_and(|s| s.to_lowercase() == item);
    view["general"].as_array().unwrap().iter().find(same).map_or(0, |i| i["buyers"].as_u64().unwrap())
}

#[test]
fn tuning_in_counts_each_pseudonym_once_and_can_keep_only_vouched_ones() {
    let (hub, listener) = (TestVault::new(), TestVault::new());
    hub.ok(&["topic", "join", "coffee/FR", "--intentions"]);
    let (_hub_node, hub_ticket) = serve(&hub);
    listener.ok(&["topic", "join", "coffee/FR", "--via", &hub_ticket]);
    let (_listener_node, _) = serve(&listener);

    let publishers: Vec<TestVault> = (0..3).map(|_| TestVault::new()).collect();
    buy_coffee(&publishers[0], "Espresso machine", "Acme", "149.00", "5");
    buy_coffee(&publishers[0], "Grinder", "Acme", "60.00", "4");
    buy_coffee(&publishers[1], "Espresso machine", "Bazaar", "139.00", "4");
    buy_coffee(&publishers[1], "Grinder", "Bazaar", "55.00", "3");
    buy_coffee(&publishers[2], "espresso MACHINE", "Acme", "150.00", "3");
    // A purchase of another category is not published.
    buy(
        &publishers[2],
        &Bought {
            item: "Tent",
            seller: "Outdoors",
            price: "199.00",
            tag: "sport",
            date: "2026-11-01",
            rating: "4",
            review: "ok",
        },
    );
    let mut nodes = Vec::new();
    for p in &publishers {
        p.ok(&["topic", "join", "coffee/FR", "--publish", "--via", &hub_ticket]);
        nodes.push(serve(p).0);
    }
    let mut view = Value::Null;
    eventually("the listener hears the three publishers", || {
        view = json_or_no(&listener, &["topic", "top", "coffee/FR"]);
        view["general"].is_array() && buyers(&view, "Espresso machine") == 3 && buyers(&view, "Grinder") == 2
    });
    let machine =
        view["general"].as_array().unwrap().iter().find(|i| i["item"] == "Espresso machine").unwrap().clone();
    assert_eq!(machine["buyers"], 3, "the spelling most used names the item: {view}");
    assert_eq!(machine["price"], "100 to 200 EUR", "bands only: {machine}");
    assert!(!view.to_string().contains("Tent") && !view.to_string().contains("149.00"), "{view}");
    let also = json(&listener, &["topic", "also", "coffee/FR", "espresso machine"]);
    assert_eq!(also["also"][0], serde_json::json!({ "item": "Grinder", "buyers": 2 }), "{also}");

    // A shill posting one item twenty times counts once.
    shill("coffee/FR", &hub_ticket, 20);
    eventually("the shill is heard", || {
        buyers(&json_or_no(&listener, &["topic", "top", "coffee/FR"]), "Miracle grinder") > 0
    });
    let view = listener.json(&["topic", "top", "coffee/FR"], "topic-top");
    assert_eq!(buyers(&view, "Miracle grinder"), 1, "{view}");

    // Vouched only: the pseudonym of publisher 0 alone.
    let theirs =
        json(&publishers[0], &["topic", "list"])["topics"][0]["pseudonym"].as_str().unwrap().to_owned();
    listener.ok(&["topic", "vouch", "coffee/FR", &theirs]);
    let vouched = json(&listener, &["topic", "top", "coffee/FR", "--vouched"]);
    assert_eq!(buyers(&vouched, "Espresso machine"), 1, "{vouched}");
    assert_eq!(buyers(&vouched, "Miracle grinder"), 0, "{vouched}");
    drop(nodes);
}
