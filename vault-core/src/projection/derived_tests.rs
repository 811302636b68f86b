//! Derived fields in projections: the derived value is there, kept live, and the source never
//! is, in the values or in the history.

use std::collections::BTreeSet;

use automerge::{AutoCommit, ScalarValue};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Projection, project};
use crate::doc::{Touched, VaultDoc};
use crate::identity::Identity;
use crate::statement::GrantId;
use crate::statement::grant::Grant;

/// 2027-01-15, the issuer's clock at the start.
const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn grant(fields: &[&str], prices: bool) -> Grant {
    Grant {
        id: GrantId::random(),
        issuer: Identity::from_secret_bytes(&[1; 32]).public(),
        audience: Identity::from_secret_bytes(&[2; 32]).public(),
        fields: fields.iter().map(|f| f.parse().unwrap()).collect(),
        filter: None,
        purpose: "test".into(),
        issued_at: 0,
        expires_at: None,
        prices,
        request: None,
    }
}

fn purchase(amount: i64) -> Value {
    json!({"item": "Tea", "seller": "Acme", "price": {"amount_minor": amount, "currency": "EUR"},
           "date": "2026-01-02"})
}

fn doc() -> VaultDoc {
    let mut doc = VaultDoc::new();
    doc.set_profile(&["birthday"], json!("2009-01-20")).unwrap();
    doc.set_profile(&["email"], json!("ada@example.org")).unwrap();
    doc.set_profile(
        &["address"],
        json!({"street": "1 rue Neuve", "city": "Lyon", "postcode": "69001", "country": "FR"}),
    )
    .unwrap();
    doc.set_preference("diet", "vegetarian").unwrap();
    doc.put_purchase("aaaa", &purchase(1250)).unwrap();
    doc
}

#[test]
fn only_the_derived_values_are_projected() {
    let d = doc();
    let g = grant(
        &[
            "profile.birthday:over(18)",
            "profile.birthday:year",
            "profile.address:country",
            "profile.address.postcode:prefix(2)",
            "purchases.*.price:band(10,50,100)",
        ],
        true,
    );
    assert_eq!(
        project(&g, &d.to_json(), NOW),
        json!({
            "profile": {"birthday:over(18)": false, "birthday:year": 2009, "address:country": "FR",
                        "address": {"postcode:prefix(2)": "69"}},
            "purchases": {"aaaa": {"price:band(10,50,100)": "10 to 50 EUR"}},
        })
    );
    // Beside plain fields, in the same maps.
    let g = grant(&["profile.email", "profile.birthday:over(18)", "purchases.*.item"], true);
    assert_eq!(
        project(&g, &d.to_json(), NOW + 17 * DAY + 4 * 3600),
        json!({"profile": {"email": "ada@example.org", "birthday:over(18)": true},
               "purchases": {"aaaa": {"item": "Tea"}}})
    );
    // A price band is a price: without prices, none (such a grant is refused when made; a
    // projection never ships one all the same).
    let g = grant(&["purchases.*.price:band(10)"], false);
    assert_eq!(project(&g, &d.to_json(), NOW), json!({"purchases": {"aaaa": {}}}));
}

#[test]
fn a_missing_source_gives_no_value_rather_than_a_guess() {
    let g = grant(&["profile.birthday:over(18)", "profile.address:country", "profile.phone:prefix(3)"], true);
    assert_eq!(project(&g, &json!({"profile": {}}), NOW), json!({"profile": {}}));
    let mut d = VaultDoc::new();
    let mut p = Projection::build(&g, &d, NOW);
    assert_eq!(p.to_json(), json!({"profile": {}}));
    d.set_profile(&["birthday"], json!("1990-05-01")).unwrap();
    d.set_profile(&["phone"], json!("+33 6 12")).unwrap();
    p.apply(&g, &d, &[Touched::Section("profile".into())], NOW);
    assert_eq!(p.to_json(), json!({"profile": {"birthday:over(18)": true, "phone:prefix(3)": "+33"}}));
    d.unset_profile(&["birthday"]);
    p.apply(&g, &d, &[Touched::Section("profile".into())], NOW);
    assert_eq!(p.to_json(), json!({"profile": {"phone:prefix(3)": "+33"}}), "unset: gone, not false");
}

#[test]
fn over_follows_the_date_when_the_projection_is_brought_up_to_date() {
    let d = doc();
    let g = grant(&["profile.birthday:over(18)"], true);
    let mut p = Projection::build(&g, &d, NOW);
    assert_eq!(p.to_json()["profile"]["birthday:over(18)"], json!(false));
    let profile = [Touched::Section("profile".into())];
    assert!(
        !p.apply(&g, &d, &profile, NOW + 5 * DAY).changed,
        "2027-01-20: 18 today, but counted by the month"
    );
    let applied = p.apply(&g, &d, &profile, NOW + 17 * DAY + 4 * 3600);
    assert!(applied.changed, "2027-02-01 12:00 UTC: February everywhere");
    assert_eq!(p.to_json()["profile"]["birthday:over(18)"], json!(true));
}

// ----- the security property -----

#[derive(Debug, Clone)]
enum Edit {
    Birthday(u16, u8, u8),
    UnsetBirthday,
    Address(u32),
    Postcode(u32),
    Price(usize, i64),
    RemovePurchase(usize),
    Days(i64),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (1900u16..2026, 1u8..13, 1u8..29).prop_map(|(y, m, d)| Edit::Birthday(y, m, d)),
        Just(Edit::UnsetBirthday),
        any::<u32>().prop_map(Edit::Address),
        any::<u32>().prop_map(Edit::Postcode),
        // Every band: under 10, 10 to 50, 50 to 100 and over 100 EUR (amounts in cents, none
        // in 1900..=2026, where the years are).
        (0..3usize, prop_oneof![1i64..1000, 2100i64..5000, 5000i64..10_000, 10_000i64..1_000_000_000_000])
            .prop_map(|(i, a)| Edit::Price(i, a)),
        (0..3usize).prop_map(Edit::RemovePurchase),
        (0i64..4000).prop_map(Edit::Days),
    ]
}

const DERIVED_PATHS: [&str; 6] = [
    "profile.birthday:over(18)",
    "profile.birthday:over(65)",
    "profile.birthday:year",
    "profile.address:country",
    "profile.address.postcode:prefix(2)",
    "purchases.*.price:band(10,50,100)",
];

/// What a source value looks like, to look for it in the projection.
#[derive(Default)]
struct Sources {
    strings: BTreeSet<String>,
    amounts: BTreeSet<i64>,
    /// Exact prices as text ("12.50"): looked for inside every string.
    amount_texts: BTreeSet<String>,
}

/// The values `band(10,50,100)` can take.
const BAND_LABELS: [&str; 4] = ["under 10 EUR", "10 to 50 EUR", "50 to 100 EUR", "100 EUR or more"];

/// Applies `edit` at `now`; returns what it touched.
fn apply(doc: &mut VaultDoc, edit: &Edit, now: &mut i64, sources: &mut Sources) -> Vec<Touched> {
    let profile = || vec![Touched::Section("profile".into())];
    match edit {
        Edit::Birthday(y, m, d) => {
            let date = format!("{y:04}-{m:02}-{d:02}");
            doc.set_profile(&["birthday"], json!(date)).unwrap();
            sources.strings.insert(date);
            profile()
        }
        Edit::UnsetBirthday => {
            doc.unset_profile(&["birthday"]);
            profile()
        }
        Edit::Address(n) => {
            let (street, city) = (format!("{n} rue S{n:08x}"), format!("Ville{n:08x}"));
            let country = ["FR", "DE", "IT"][*n as usize % 3];
            doc.set_profile(&["address", "street"], json!(street)).unwrap();
            doc.set_profile(&["address", "city"], json!(city)).unwrap();
            doc.set_profile(&["address", "country"], json!(country)).unwrap();
            sources.strings.extend([street, city]);
            profile()
        }
        Edit::Postcode(n) => {
            let postcode = format!("P{n:09}");
            doc.set_profile(&["address", "postcode"], json!(postcode)).unwrap();
            sources.strings.insert(postcode);
            profile()
        }
        Edit::Price(i, amount) => {
            let id = format!("rec{i}");
            doc.put_purchase(&id, &purchase(*amount)).unwrap();
            sources.amounts.insert(*amount);
            sources.amount_texts.insert(format!("{}.{:02}", amount / 100, amount % 100));
            vec![Touched::Purchase(id)]
        }
        Edit::RemovePurchase(i) => {
            let id = format!("rec{i}");
            doc.remove_purchase(&id);
            vec![Touched::Purchase(id)]
        }
        Edit::Days(n) => {
            *now += n * DAY;
            // What the serving node does when the date changes: the dated sections again.
            profile()
        }
    }
}

/// Every scalar ever put in a document's history, and every map key, strings and integers
/// apart.
fn history(am: &mut AutoCommit) -> (BTreeSet<String>, BTreeSet<i64>) {
    let (mut strings, mut ints) = (BTreeSet::new(), BTreeSet::new());
    for change in am.get_changes(&[]) {
        for op in change.decode().operations {
            if let automerge::legacy::Key::Map(key) = &op.key {
                strings.insert(key.to_string());
            }
            match op.action {
                automerge::legacy::OpType::Put(ScalarValue::Str(s)) => {
                    strings.insert(s.to_string());
                }
                automerge::legacy::OpType::Put(ScalarValue::Int(i)) => {
                    ints.insert(i);
                }
                automerge::legacy::OpType::Put(ScalarValue::Uint(u)) => {
                    ints.insert(i64::try_from(u).unwrap_or(i64::MAX));
                }
                _ => {}
            }
        }
    }
    (strings, ints)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// No derived grant's projection ever holds its source: not the birthday, the street, the
    /// city, the whole postcode or the exact price, in its current values, its saved bytes or
    /// any operation of its history; and the incrementally kept projection equals one built
    /// from scratch on the same date.
    #[test]
    fn derived_projections_never_carry_their_source(
        before_grant in proptest::collection::vec(edit(), 0..8),
        after_grant in proptest::collection::vec(edit(), 0..16),
        paths in proptest::sample::subsequence(DERIVED_PATHS.to_vec(), 1..5),
    ) {
        let g = grant(&paths, true);
        let mut doc = VaultDoc::new();
        let mut now = NOW;
        let mut sources = Sources::default();
        for e in &before_grant {
            apply(&mut doc, e, &mut now, &mut sources);
        }
        let mut projection = Projection::build(&g, &doc, now);
        for e in &after_grant {
            let touched = apply(&mut doc, e, &mut now, &mut sources);
            projection.apply(&g, &doc, &touched, now);
        }
        prop_assert_eq!(projection.to_json(), project(&g, &doc.to_json(), now));
        // Uncompressed: a source in a deflated column would hide from a byte search.
        let bytes = projection.automerge().save_nocompress();
        for source in &sources.strings {
            prop_assert!(!bytes.windows(source.len()).any(|w| w == source.as_bytes()), "{} in the bytes", source);
        }
        let (strings, ints) = history(projection.automerge());
        prop_assert!(strings.is_disjoint(&sources.strings), "a source string in the history: {:?}", strings);
        for text in &sources.amount_texts {
            prop_assert!(!strings.iter().any(|s| s.contains(text.as_str())), "{} in the history", text);
        }
        prop_assert!(
            strings.iter().filter(|s| s.contains("EUR")).all(|s| BAND_LABELS.contains(&s.as_str())),
            "only band labels speak of prices: {:?}", strings
        );
        prop_assert!(ints.is_disjoint(&sources.amounts), "an exact price in the history: {:?}", ints);
        prop_assert!(ints.iter().all(|i| (1900..2026).contains(i)), "only years: {:?}", ints);
    }
}
