//! What the network says, through the binary: `vault feed sellers | top | also | mute |
//! unmute` over feeds two friends share with Bob, and their bad inputs.

use serde_json::Value;
use vault_tests::{Bought, TestVault, buy, serve};

fn bought(v: &TestVault, item: &str, seller: &str, price: &str, tag: &str, date: &str, rating: &str) {
    let review = format!("{item} review");
    buy(v, &Bought { item, seller, price, tag, date, rating, review: &review });
}

/// Ada and Carol each grant Bob their purchases; Bob syncs both once.
fn network() -> (TestVault, TestVault, TestVault, Vec<vault_tests::Serving>) {
    let (ada, carol, bob) = (TestVault::new(), TestVault::new(), TestVault::new());
    bought(&ada, "Green tea", "Acme", "4.50", "food", "2026-10-05", "5");
    bought(&ada, "Teapot", "Acme", "20.00", "kitchen", "2026-10-06", "4");
    bought(&ada, "Tent", "Outdoors", "199.00", "sport", "2026-09-01", "3");
    bought(&carol, "green TEA", "Teashop", "3.90", "food", "2026-10-07", "3");
    bought(&carol, "Biscuits", "Acme", "2.00", "food", "2026-10-08", "4");
    let mut nodes = Vec::new();
    for (name, friend) in [("ada", &ada), ("carol", &carol)] {
        friend.ok(&["contact", "add", "bob", &vault_tests::ticket(&bob)]);
        friend.ok(&["grant", "bob", "--fields", "purchases", "--purpose", "friends"]);
        let (node, ticket) = serve(friend);
        bob.ok(&["contact", "add", name, &ticket]);
        bob.ok(&["sync", name, "--no-relay"]);
        nodes.push(node);
    }
    (ada, carol, bob, nodes)
}

fn names(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key].as_array().unwrap().iter().map(|x| x[field].as_str().unwrap().to_owned()).collect()
}

#[test]
fn sellers_top_and_also_summarise_what_friends_share() {
    let (_ada, _carol, bob, _nodes) = network();
    assert_eq!(bob.json(&["feed"], "feed")["purchases"].as_array().unwrap().len(), 5);

    let sellers = bob.json(&["feed", "sellers"], "feed-sellers");
    assert_eq!(names(&sellers, "sellers", "seller"), ["Acme", "Outdoors", "Teashop"]);
    let acme = &sellers["sellers"][0];
    assert_eq!((acme["friends"].as_u64(), acme["purchases"].as_u64()), (Some(2), Some(3)));
    assert!((acme["average_rating"].as_f64().unwrap() - 13.0 / 3.0).abs() < 1e-9);
    assert_eq!(acme["prices"][0]["min"]["amount_minor"], 200);
    assert_eq!(acme["prices"][0]["max"]["amount_minor"], 2000);
    assert_eq!(acme["newest_review"]["review"], "Biscuits review");
    assert_eq!(acme["newest_review"]["from_name"], "carol");
    let text = bob.ok(&["feed", "sellers"]);
    assert!(text.contains("Acme  2 friends, 3 purchases, rated 4.3/5 (3), 2.00 EUR to 20.00 EUR"), "{text}");

    let top = bob.json(&["feed", "top"], "feed-top");
    assert_eq!(top["items"][0]["item"], "green TEA", "two friends, named as most recently written");
    assert_eq!(top["items"][0]["friends"], 2);
    let food = bob.json(&["feed", "top", "--tag", "food"], "feed-top");
    assert_eq!(names(&food, "items", "item"), ["green TEA", "Biscuits"]);
    let recent = bob.json(&["feed", "top", "--since", "2026-10-06"], "feed-top");
    assert_eq!(names(&recent, "items", "item"), ["Biscuits", "Teapot", "green TEA"]);
    assert_eq!(recent["since"], "2026-10-06");

    let also = bob.json(&["feed", "also", "green tea"], "feed-also");
    assert_eq!(also["buyers"], 2);
    assert_eq!(names(&also, "items", "item"), ["Biscuits", "Teapot", "Tent"]);
    let text = bob.ok(&["feed", "also", "Green Tea", "--limit", "1"]);
    assert!(text.starts_with("2 friends bought \"Green Tea\"; they also bought:"), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    let err = bob.fails(&["feed", "also", "caviar"], 1);
    assert!(err.contains("no friend bought \"caviar\""), "{err}");
}

#[test]
fn mutes_leave_friends_and_tags_out_until_unmuted() {
    let (_ada, _carol, bob, _nodes) = network();
    let muted = bob.json(&["feed", "mute", "carol"], "feed-mute");
    assert_eq!(muted["changed"], true);
    assert_eq!(muted["muted"]["peers"][0]["name"], "carol");
    assert_eq!(bob.json(&["feed"], "feed")["purchases"].as_array().unwrap().len(), 3);
    let sellers = bob.json(&["feed", "sellers"], "feed-sellers");
    assert_eq!(names(&sellers, "sellers", "seller"), ["Acme", "Outdoors"]);
    assert_eq!(sellers["sellers"][0]["friends"], 1);
    // Asked for by name, a muted friend is shown.
    assert_eq!(bob.json(&["feed", "--from", "carol"], "feed")["purchases"].as_array().unwrap().len(), 2);
    assert_eq!(bob.json(&["feed", "mute", "carol"], "feed-mute")["changed"], false);

    bob.ok(&["feed", "mute", "--tag", "FOOD"]);
    let items: Vec<String> = bob.json(&["feed"], "feed")["purchases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["item"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(items, ["Teapot", "Tent"]);
    let listed = bob.ok(&["feed", "mute"]);
    assert!(listed.contains("friend carol") && listed.contains("tag FOOD"), "{listed}");

    let text = bob.ok(&["feed", "unmute", "carol"]);
    assert!(text.contains("unmuted"), "{text}");
    bob.ok(&["feed", "unmute", "--tag", "food"]);
    assert_eq!(bob.json(&["feed"], "feed")["purchases"].as_array().unwrap().len(), 5);
    assert_eq!(bob.json(&["feed", "unmute", "carol"], "feed-mute")["changed"], false);
    let err = bob.fails(&["feed", "mute"], 1);
    assert!(err.contains("nothing is muted"), "{err}");
}

#[test]
fn bad_inputs_to_the_network_commands_are_named() {
    let bob = TestVault::new();
    let err = bob.fails(&["feed", "mute", "nobody"], 2);
    assert!(err.contains("nobody"), "{err}");
    let err = bob.fails(&["feed", "unmute"], 2);
    assert!(err.contains("name a friend or a --tag"), "{err}");
    let err = bob.fails(&["feed", "mute", "--tag", " "], 2);
    assert!(err.contains("the tag is empty"), "{err}");
    let err = bob.fails(&["feed", "mute", "carol", "--tag", "food"], 2);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = bob.fails(&["feed", "top", "--since", "last tuesday"], 2);
    assert!(err.contains("duration") || err.contains("date"), "{err}");
    let err = bob.fails(&["feed", "also", " "], 2);
    assert!(err.contains("the item is empty"), "{err}");
    let err = bob.fails(&["feed", "sellers"], 1);
    assert!(err.contains("no seller in your feed"), "{err}");
    let err = bob.fails(&["feed", "top"], 1);
    assert!(err.contains("nothing in your network matches"), "{err}");
}

/// `vault purchase add` of `item` from Acme for 1 EUR, with `extra` options.
fn purchase_args<'a>(item: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args =
        vec!["purchase", "add", "--item", item, "--seller", "Acme", "--price", "1", "--currency", "EUR"];
    args.extend_from_slice(extra);
    args
}

/// Finding: one day's purchases came in random order (purchases carried a date only). A
/// purchase recorded without a date is dated now, to the minute; one given `--time` keeps it;
/// the feed and `purchase list` put a day's purchases newest first, untimed ones after.
#[test]
fn a_days_purchases_come_newest_first() {
    let (ada, bob) = (TestVault::new(), TestVault::new());
    let add = |extra: &[&str], item: &str| ada.json(&purchase_args(item, extra), "purchase-add");
    add(&["--date", "2026-10-05", "--time", "09:15"], "breakfast");
    add(&["--date", "2026-10-05"], "untimed");
    add(&["--date", "2026-10-05", "--time", "19:40"], "dinner");
    add(&["--date", "2026-10-04", "--time", "23:59"], "yesterday");
    let now = add(&[], "just now");
    let time = now["time"].as_str().expect("a purchase bought now has a time");
    assert!(time.len() == 5 && time.as_bytes()[2] == b':', "{time}");
    let err = ada.fails(&purchase_args("x", &["--time", "25:00"]), 2);
    assert!(err.contains("HH:MM"), "{err}");
    let untimed = add(&["--no-time"], "x");
    assert!(untimed["time"].is_null(), "--no-time records none: {untimed}");
    ada.ok(&["purchase", "rm", untimed["id"].as_str().unwrap()]);

    let expected = ["just now", "dinner", "breakfast", "untimed", "yesterday"];
    let listed = ada.json(&["purchase", "list"], "purchase-list");
    let items: Vec<&str> =
        listed["purchases"].as_array().unwrap().iter().map(|p| p["item"].as_str().unwrap()).collect();
    assert_eq!(items, expected);

    ada.ok(&["contact", "add", "bob", &vault_tests::ticket(&bob)]);
    ada.ok(&["grant", "bob", "--fields", "purchases", "--purpose", "friends"]);
    let (_node, ticket) = serve(&ada);
    bob.ok(&["contact", "add", "ada", &ticket]);
    bob.ok(&["sync", "ada", "--no-relay"]);
    let feed = bob.json(&["feed"], "feed");
    let items: Vec<&str> =
        feed["purchases"].as_array().unwrap().iter().map(|p| p["item"].as_str().unwrap()).collect();
    assert_eq!(items, expected);
    let text = bob.ok(&["feed"]);
    assert!(text.contains("2026-10-05 19:40  ada bought dinner"), "{text}");
}
