use serde_json::json;

use super::*;
use crate::identity::Identity;
use crate::statement::GrantId;

fn grant(fields: &[&str]) -> Grant {
    Grant {
        id: GrantId::random(),
        issuer: Identity::generate().public(),
        audience: Identity::generate().public(),
        fields: fields.iter().map(|f| f.parse().unwrap()).collect(),
        filter: None,
        purpose: "tests".into(),
        issued_at: 0,
        expires_at: None,
        prices: true,
        request: None,
    }
}

fn conformed(fields: &[&str], view: Value) -> (Value, Vec<String>) {
    let mut c = Conformed::new();
    let kept = c.view(&grant(fields), &view);
    (kept, c.refused.into_iter().map(|r| format!("{}: {}", r.path, r.why)).collect())
}

#[test]
fn an_honest_copy_passes_unchanged() {
    let view = json!({
        "profile": {"name": "Alice", "email": "alice@example.org", "address": {"city": "Lyon"},
                    "birthday:over(18)": true},
        "purchases": {"abcd1234": {"item": "Tea", "price": {"amount_minor": 450, "currency": "EUR"},
                                   "price:band(10,50)": "under 10 EUR"}},
        "preferences": {"newsletter": "weekly"}
    });
    let fields = [
        "profile",
        "profile.birthday:over(18)",
        "purchases.*.item",
        "purchases.*.price",
        "purchases.*.price:band(10,50)",
        "preferences",
    ];
    let (kept, refused) = conformed(&fields, view.clone());
    assert_eq!(kept, view);
    assert!(refused.is_empty(), "{refused:?}");
}

#[test]
fn what_the_grant_does_not_name_is_left_out_and_named() {
    let view = json!({"profile": {"email": "a@b.c", "name": "Alice"}, "secrets": {"x": 1}});
    let (kept, refused) = conformed(&["profile.email"], view);
    assert_eq!(kept, json!({"profile": {"email": "a@b.c"}}));
    assert_eq!(refused, ["profile.name: not in the grant", "secrets: not a field of the document"]);
}

#[test]
fn a_dotted_key_cannot_pose_as_a_nested_field() {
    let view = json!({"profile": {"address.city": "Paris", "address": {"city": "Lyon"}}});
    let (kept, refused) = conformed(&["profile"], view);
    assert_eq!(kept, json!({"profile": {"address": {"city": "Lyon"}}}));
    assert_eq!(refused, ["profile.address\\u{2e}city: not a field of the document"]);
}

#[test]
fn values_the_schema_refuses_are_left_out_one_by_one() {
    let view = json!({"profile": {"email": 42, "name": "Al\u{0}ice", "phone": "+33 1 23 45 67 89"},
                      "purchases": {"abcd": {"item": "Tea", "rating": 9}, "BAD.ID": {"item": "x"}}});
    let (kept, refused) = conformed(&["profile", "purchases"], view);
    assert_eq!(
        kept,
        json!({"profile": {"phone": "+33 1 23 45 67 89"}, "purchases": {"abcd": {"item": "Tea"}}})
    );
    assert!(refused.contains(&"profile.email: must be a string".to_owned()), "{refused:?}");
    assert!(refused.contains(&"profile.name: holds U+0000 (NUL)".to_owned()), "{refused:?}");
    assert!(refused.contains(&"purchases.abcd.rating: must be at most 5".to_owned()), "{refused:?}");
    assert!(
        refused.iter().any(|r| r.starts_with("purchases.BAD\\u{2e}ID: not a purchase id")),
        "{refused:?}"
    );
}

#[test]
fn derived_values_must_have_their_derivations_type() {
    let view = json!({"profile": {"birthday:over(18)": "1990-01-01", "birthday:year": 1990, "x:y": 1}});
    let (kept, refused) = conformed(&["profile.birthday:over(18)", "profile.birthday:year", "profile"], view);
    assert_eq!(kept, json!({"profile": {"birthday:year": 1990}}));
    assert!(refused.contains(&"profile.birthday:over(18): must be true or false".to_owned()), "{refused:?}");
    assert!(refused.contains(&"profile.x:y: not a field of the document".to_owned()), "{refused:?}");
}

#[test]
fn keys_that_could_steer_a_terminal_are_shown_escaped() {
    let view = json!({"profile": {"\u{1b}[2Jname": "x"}});
    let (_, refused) = conformed(&["profile"], view);
    assert_eq!(refused, ["profile.\\u{1b}[2Jname: not a field of the document"]);
}

#[test]
fn conforming_twice_changes_nothing_and_refusals_are_bounded() {
    let mut profile = Map::new();
    for i in 0..500 {
        profile.insert(format!("k{i}"), json!(i));
    }
    let view = json!({"profile": profile, "preferences": {"ok": "yes"}});
    let (kept, refused) = conformed(&["profile", "preferences"], view);
    assert_eq!(refused.len(), MAX_REFUSED);
    assert_eq!(conformed(&["profile", "preferences"], kept.clone()), (kept, vec![]));
}

#[test]
fn refusals_of_a_part_conformed_again_are_replaced() {
    let r = |p: &str| RefusedValue { path: p.into(), why: "x".into() };
    let mut kept = vec![r("profile.a"), r("purchases.abcd.x"), r("purchases.abcde.y")];
    replace_refused(&mut kept, &["purchases", "abcd"], vec![r("purchases.abcd.z")]);
    let paths: Vec<&str> = kept.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["profile.a", "purchases.abcde.y", "purchases.abcd.z"]);
}

fn purchases_grant(prices: bool, filter: Option<&str>) -> Grant {
    Grant { prices, filter: filter.map(|f| f.parse().unwrap()), ..grant(&["purchases"]) }
}

#[test]
fn a_grant_without_prices_or_with_a_filter_keeps_to_them() {
    let view = json!({"purchases": {
        "abcd": {"item": "Tea", "tags": ["food"], "price": {"amount_minor": 450, "currency": "EUR"}},
        "efgh": {"item": "Lamp", "tags": ["home"]}
    }});
    let mut c = Conformed::new();
    let kept = c.view(&purchases_grant(false, Some("tag=food")), &view);
    assert_eq!(kept, json!({"purchases": {"abcd": {"item": "Tea", "tags": ["food"]}}}));
    let refused: Vec<String> = c.refused.iter().map(|r| format!("{}: {}", r.path, r.why)).collect();
    assert!(
        refused.contains(&"purchases.abcd.price: the grant does not include prices".to_owned()),
        "{refused:?}"
    );
    assert!(refused.contains(&"purchases.efgh: outside the grant's record filter".to_owned()), "{refused:?}");
}

#[test]
fn a_value_the_vault_could_not_read_is_refused() {
    // A price without its currency, an amount written 450.0: the schema's "integer" takes it,
    // the vault's own reader (the feed) would not.
    let view = json!({"purchases": {
        "abcd": {"item": "Tea", "price": {"amount_minor": 450}},
        "efgh": {"item": "Pen", "price": {"amount_minor": 450.0, "currency": "EUR"}, "rating": 3.0}
    }});
    let (kept, refused) = conformed(&["purchases"], view);
    assert_eq!(kept, json!({"purchases": {"abcd": {"item": "Tea"}, "efgh": {"item": "Pen"}}}));
    assert!(refused.iter().any(|r| r.starts_with("purchases.abcd.price: missing")), "{refused:?}");
    assert!(refused.contains(&"purchases.efgh.price: must be a whole number".to_owned()), "{refused:?}");
    assert!(refused.contains(&"purchases.efgh.rating: must be a whole number".to_owned()), "{refused:?}");
}

#[test]
fn list_items_and_preference_keys_are_refused_one_by_one() {
    let view = json!({"purchases": {"abcd": {"item": "Tea", "tags": ["A", "B", "ok", "fine"]}},
                      "preferences": {"good": "yes", "Bad Key": "no"}});
    let (kept, refused) = conformed(&["purchases", "preferences"], view);
    assert_eq!(
        kept,
        json!({"purchases": {"abcd": {"item": "Tea", "tags": ["ok", "fine"]}}, "preferences": {"good": "yes"}})
    );
    assert_eq!(refused.iter().filter(|r| r.starts_with("purchases.abcd.tags")).count(), 2, "{refused:?}");
    assert!(
        refused.iter().any(|r| r.starts_with("preferences.Bad Key: not a preference key")),
        "{refused:?}"
    );
}

/// A copy nested thousands deep cannot crash the node: it is read only so deep (deeper reads
/// as null, which the schema refuses), on a stack as small as a runtime's worker thread.
#[test]
fn a_deeply_nested_copy_is_read_shallow() {
    use automerge::{AutoCommit, ObjType, ROOT, transaction::Transactable};
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let mut am = AutoCommit::new();
            let mut obj = am.put_object(ROOT, "profile", ObjType::Map).unwrap();
            for _ in 0..5_000 {
                obj = am.put_object(&obj, "address", ObjType::Map).unwrap();
            }
            let view = crate::doc::obj_to_json(&am, &ROOT);
            let (kept, refused) = conformed(&["profile"], view);
            assert_eq!(kept, json!({"profile": {"address": {}}}));
            assert!(!refused.is_empty());
            drop(am);
        })
        .unwrap();
    handle.join().expect("no stack overflow");
}
