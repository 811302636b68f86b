//! The late-grantee property, through the real sharing path: an issuer vault edits at random,
//! a grantee vault syncs at random points (the sans-IO `ServeStream` / `ShareStream` machines),
//! and everything the grantee ever receives -- every change in every sync message, that is the
//! history in its replica -- holds only values granted at the moment they were sent.
//!
//! The oracle does not use `project()`: it keeps its own model of the issuer's values and
//! derives what the grant covers from the grant's shape directly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use automerge::sync::Message;
use automerge::{AutoCommit, ChangeHash};
use proptest::prelude::*;
use serde_json::Value;
use vault_core::{
    Frame, GrantId, KdfParams, NewGrant, Passphrase, Price, PurchaseRecord, ServeStep, ServeStream,
    ShareStream, Vault,
};

fn vault(dir: &std::path::Path) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
}

/// Something the grantee could learn: a value, or a map key of interest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Atom {
    Str(String),
    Num(i64),
    Key(String),
}

const PROFILE_FIELDS: [&str; 4] = ["name", "email", "address.city", "address.street"];
const PREF_KEYS: [&str; 3] = ["diet", "size", "brand"];
const SELLERS: [&str; 2] = ["acme", "shop"];
const CATEGORIES: [&str; 2] = ["books", "food"];
const PURCHASE_KEYS: [&str; 8] = ["item", "seller", "price", "date", "category", "tags", "rating", "review"];
const GRANT_PATHS: [&str; 13] = [
    "profile",
    "profile.email",
    "profile.address",
    "profile.address.city",
    "preferences",
    "preferences.diet",
    "purchases",
    "purchases.*.item",
    "purchases.*.price",
    "purchases.*.rating",
    "purchases.*.review",
    "purchases.*.tags",
    "purchases.*.category",
];
const FILTERS: [Option<&str>; 4] = [None, Some("tag=books"), Some("category=books"), Some("seller=shop")];

#[derive(Clone, Debug)]
struct Rec {
    item: String,
    seller: String,
    amount_minor: i64,
    category: String,
    tags: Vec<String>,
    rating: i64,
    review: String,
}

/// The oracle's model of the issuer's values.
#[derive(Default)]
struct Model {
    profile: BTreeMap<&'static str, String>,
    prefs: BTreeMap<&'static str, String>,
    purchases: BTreeMap<String, Rec>,
}

struct Shape {
    paths: Vec<&'static str>,
    filter: Option<&'static str>,
    prices: bool,
}

impl Shape {
    fn has(&self, p: &str) -> bool {
        self.paths.contains(&p)
    }

    fn profile_field(&self, field: &str) -> bool {
        self.has("profile")
            || (field == "email" && self.has("profile.email"))
            || (field.starts_with("address.") && self.has("profile.address"))
            || (field == "address.city" && self.has("profile.address.city"))
    }

    fn pref(&self, key: &str) -> bool {
        self.has("preferences") || (key == "diet" && self.has("preferences.diet"))
    }

    fn purchase_field(&self, field: &str) -> bool {
        let any = self.has("purchases");
        let named = self.has(&format!("purchases.*.{field}"));
        (any || named) && (field != "price" || self.prices)
    }

    fn matches(&self, r: &Rec) -> bool {
        match self.filter {
            None => true,
            Some("tag=books") => r.tags.iter().any(|t| t == "books"),
            Some("category=books") => r.category == "books",
            Some("seller=shop") => r.seller == "shop",
            Some(other) => unreachable!("{other}"),
        }
    }

    fn covers_purchases(&self) -> bool {
        self.paths.iter().any(|p| p.starts_with("purchases"))
    }

    /// What the grant covers of the model, now.
    fn granted(&self, m: &Model) -> BTreeSet<Atom> {
        let mut out = BTreeSet::new();
        for (field, value) in &m.profile {
            if self.profile_field(field) {
                out.insert(Atom::Str(value.clone()));
                for segment in field.split('.') {
                    out.insert(Atom::Key(segment.to_owned()));
                }
            }
        }
        for (key, value) in &m.prefs {
            if self.pref(key) {
                out.insert(Atom::Str(value.clone()));
                out.insert(Atom::Key((*key).to_owned()));
            }
        }
        if self.covers_purchases() {
            for (id, r) in m.purchases.iter().filter(|(_, r)| self.matches(r)) {
                out.insert(Atom::Key(id.clone()));
                let mut field = |name: &str, atoms: Vec<Atom>| {
                    if self.purchase_field(name) {
                        out.insert(Atom::Key(name.to_owned()));
                        out.extend(atoms);
                    }
                };
                field("item", vec![Atom::Str(r.item.clone())]);
                field("seller", vec![Atom::Str(r.seller.clone())]);
                field("price", vec![Atom::Num(r.amount_minor), Atom::Str("EUR".into())]);
                field("date", vec![Atom::Str("2026-01-02".into())]);
                field("category", vec![Atom::Str(r.category.clone())]);
                field("tags", r.tags.iter().cloned().map(Atom::Str).collect());
                field("rating", vec![Atom::Num(r.rating)]);
                field("review", vec![Atom::Str(r.review.clone())]);
            }
        }
        out
    }
}

/// Atoms that tell one value from another: every unique marker, number and key of interest
/// (not `address`: an empty address object is structure the grant names, not a value).
fn interesting(atom: &Atom, ids: &BTreeSet<String>) -> bool {
    match atom {
        Atom::Str(s) => s.contains('q'),
        Atom::Num(_) => true,
        Atom::Key(k) => {
            ids.contains(k)
                || PREF_KEYS.contains(&k.as_str())
                || PURCHASE_KEYS.contains(&k.as_str())
                || ["name", "email", "city", "street"].contains(&k.as_str())
        }
    }
}

/// Every value and map key written by the changes of `am` that are not ancestors of `since`.
fn atoms_since(am: &mut AutoCommit, since: &[ChangeHash]) -> BTreeSet<Atom> {
    use automerge::legacy::{Key, OpType};
    let mut out = BTreeSet::new();
    for change in am.get_changes(since) {
        for op in change.decode().operations {
            if let Key::Map(k) = &op.key {
                out.insert(Atom::Key(k.to_string()));
            }
            if let OpType::Put(v) = op.action {
                match v {
                    automerge::ScalarValue::Str(s) => {
                        out.insert(Atom::Str(s.to_string()));
                    }
                    automerge::ScalarValue::Int(i) => {
                        out.insert(Atom::Num(i));
                    }
                    automerge::ScalarValue::Uint(u) => {
                        out.insert(Atom::Num(u as i64));
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Step {
    Profile(usize),
    UnsetProfile(usize),
    Pref(usize),
    UnsetPref(usize),
    Add {
        seller: usize,
        books_tag: bool,
        category: usize,
        rating: i64,
    },
    Change {
        which: usize,
        seller: usize,
        books_tag: bool,
        category: usize,
        rating: i64,
        new_item: bool,
    },
    Remove(usize),
    /// Sync; then, when true, read what the grantee shows (which builds its decoded view, kept
    /// and updated by later syncs).
    Sync(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..4usize).prop_map(Step::Profile),
        1 => (0..4usize).prop_map(Step::UnsetProfile),
        1 => (0..3usize).prop_map(Step::Pref),
        1 => (0..3usize).prop_map(Step::UnsetPref),
        3 => (0..2usize, any::<bool>(), 0..2usize, 1..6i64)
            .prop_map(|(seller, books_tag, category, rating)| Step::Add { seller, books_tag, category, rating }),
        3 => (any::<usize>(), 0..2usize, any::<bool>(), 0..2usize, 1..6i64, any::<bool>()).prop_map(
            |(which, seller, books_tag, category, rating, new_item)| Step::Change {
                which, seller, books_tag, category, rating, new_item
            }
        ),
        2 => any::<usize>().prop_map(Step::Remove),
        3 => any::<bool>().prop_map(Step::Sync),
    ]
}

/// The grantee's side of the test: the real vault, plus a shadow of everything it received.
struct Grantee {
    vault: Vault,
    /// Replays the issuer's messages of the current epoch: its history is what the grantee got.
    shadow: AutoCommit,
    epoch: u64,
    received: BTreeSet<Atom>,
}

/// One connection: the grantee opens the grant's stream and both sides sync until quiet.
/// Returns the atoms the grantee received in it.
fn sync(issuer: &mut Vault, grantee: &mut Grantee, id: &GrantId) -> BTreeSet<Atom> {
    let me = grantee.vault.identity();
    issuer.projections_mut().update(None).unwrap();
    let (mut share, open) =
        ShareStream::open(&mut grantee.vault, issuer.identity(), issuer.device_key().public(), *id, true)
            .unwrap();
    let device = grantee.vault.device_key().public();
    let mut serve = ServeStream::open(issuer, me, device, &open, Instant::now()).unwrap();
    let mut got = BTreeSet::new();
    for _ in 0..30 {
        let from_grantee = share.next(&mut grantee.vault).unwrap().send;
        let step = match &from_grantee {
            Some(frame) => serve.on_frame(issuer, frame, Instant::now()).unwrap(),
            None => serve.on_change(issuer).unwrap(),
        };
        let from_issuer = match step {
            ServeStep::Send(m) => Some(m),
            _ => None,
        };
        if let Some(m) = &from_issuer {
            // A sync body: a bare Automerge message (epoch 0), or 20, the epoch (8 bytes), the message.
            let (epoch, message) = match m.first() {
                Some(20) => (u64::from_be_bytes(m[1..9].try_into().unwrap()), &m[9..]),
                _ => (0, &m[..]),
            };
            if epoch > grantee.epoch {
                grantee.shadow = AutoCommit::new();
                grantee.epoch = epoch;
            }
            if epoch == grantee.epoch {
                let before = grantee.shadow.get_heads();
                for chunk in Message::decode(message).unwrap().changes.iter() {
                    grantee.shadow.load_incremental(chunk).unwrap();
                }
                got.extend(atoms_since(&mut grantee.shadow, &before));
            }
            share.on_frame(&mut grantee.vault, &Frame::Sync(m.clone())).unwrap();
        }
        if from_grantee.is_none() && from_issuer.is_none() {
            return got;
        }
    }
    panic!("sync did not settle");
}

fn record(r: &Rec) -> PurchaseRecord {
    PurchaseRecord::new(
        r.item.clone(),
        r.seller.clone(),
        Price::parse(&format!("{}.{:02}", r.amount_minor / 100, r.amount_minor % 100), "EUR").unwrap(),
        "2026-01-02".into(),
    )
    .category(Some(r.category.clone()))
    .tags(r.tags.clone())
    .rating(Some(r.rating))
    .review(Some(r.review.clone()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the grant's shape and whenever the grantee connects, a value retracted before
    /// the grantee synced never reaches it, not even in history: every value and key of interest
    /// the grantee receives in a sync was granted at that moment (or was received before). And
    /// after a sync the grantee holds exactly what is granted.
    #[test]
    fn late_grantees_receive_only_values_granted_when_sent(
        before_grant in proptest::collection::vec(step(), 0..8),
        after_grant in proptest::collection::vec(step(), 1..28),
        paths in proptest::sample::subsequence(GRANT_PATHS.to_vec(), 1..4),
        filter in proptest::sample::select(FILTERS.to_vec()),
        prices in any::<bool>(),
    ) {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut issuer = vault(d1.path());
        let mut grantee =
            Grantee { vault: vault(d2.path()), shadow: AutoCommit::new(), epoch: 0, received: BTreeSet::new() };
        let shape = Shape { paths, filter, prices };
        let mut model = Model::default();
        let mut ids = BTreeSet::new();
        let mut counter = 0u32;
        let mut id = None;
        for (i, s) in before_grant.iter().chain(&after_grant).enumerate() {
            if i == before_grant.len() {
                let new = NewGrant {
                    audience: grantee.vault.identity(),
                    fields: shape.paths.iter().map(|p| p.parse().unwrap()).collect(),
                    filter: if shape.covers_purchases() { shape.filter.map(|f| f.parse().unwrap()) } else { None },
                    purpose: "test".into(),
                    expires_at: None,
                    prices: shape.prices,
                };
                let g = issuer.grants_mut().issue(new).unwrap().statement().id;
                let (live, ended) = issuer.grants_mut().shares_for(&grantee.vault.identity()).unwrap();
                grantee.vault.held_mut().accept(issuer.identity(), None, &live, &ended, true).unwrap();
                id = Some(g);
            }
            counter += 1;
            let unique = format!("u{counter:03}q{}", counter.wrapping_mul(2_654_435_761) % 99_991);
            let amount = i64::from(counter) * 1_000 + 7;
            let fresh = |seller: usize, books_tag: bool, category: usize, rating: i64, item: String| Rec {
                item,
                seller: SELLERS[seller].into(),
                amount_minor: amount,
                category: CATEGORIES[category].into(),
                tags: if books_tag { vec!["books".into(), format!("t{unique}")] } else { vec![format!("t{unique}")] },
                rating,
                review: format!("r{unique}"),
            };
            match s {
                Step::Profile(f) => {
                    let value = if PROFILE_FIELDS[*f] == "email" { format!("{unique}@example.org") } else { unique.clone() };
                    issuer.records_mut().set_profile(PROFILE_FIELDS[*f], &value).unwrap();
                    model.profile.insert(PROFILE_FIELDS[*f], value);
                }
                Step::UnsetProfile(f) => {
                    issuer.records_mut().unset_profile(PROFILE_FIELDS[*f]).unwrap();
                    model.profile.remove(PROFILE_FIELDS[*f]);
                }
                Step::Pref(k) => {
                    issuer.records_mut().set_preference(PREF_KEYS[*k], &unique).unwrap();
                    model.prefs.insert(PREF_KEYS[*k], unique.clone());
                }
                Step::UnsetPref(k) => {
                    issuer.records_mut().unset_preference(PREF_KEYS[*k]).unwrap();
                    model.prefs.remove(PREF_KEYS[*k]);
                }
                Step::Add { seller, books_tag, category, rating } => {
                    let r = fresh(*seller, *books_tag, *category, *rating, format!("i{unique}"));
                    let pid = issuer.records_mut().add_purchase(&record(&r)).unwrap();
                    ids.insert(pid.clone());
                    model.purchases.insert(pid, r);
                }
                Step::Change { which, seller, books_tag, category, rating, new_item } => {
                    if model.purchases.is_empty() {
                        continue;
                    }
                    let pid = model.purchases.keys().nth(which % model.purchases.len()).unwrap().clone();
                    let item = if *new_item { format!("i{unique}") } else { model.purchases[&pid].item.clone() };
                    let r = fresh(*seller, *books_tag, *category, *rating, item);
                    // Edit through the import of an edited export (the one way to change a record).
                    let mut export = issuer.records().export_json();
                    export["purchases"][&pid] = serde_json::to_value(record(&r)).unwrap();
                    issuer.records_mut().import(&serde_json::to_vec(&export).unwrap()).unwrap();
                    model.purchases.insert(pid, r);
                }
                Step::Remove(which) => {
                    if model.purchases.is_empty() {
                        continue;
                    }
                    let pid = model.purchases.keys().nth(which % model.purchases.len()).unwrap().clone();
                    issuer.records_mut().remove_purchase(&pid).unwrap();
                    model.purchases.remove(&pid);
                }
                Step::Sync(read) => {
                    let Some(g) = id else { continue };
                    let granted = shape.granted(&model);
                    let got = sync(&mut issuer, &mut grantee, &g);
                    let leaked: Vec<&Atom> = got
                        .iter()
                        .filter(|a| interesting(a, &ids) && !granted.contains(a) && !grantee.received.contains(a))
                        .collect();
                    prop_assert!(leaked.is_empty(), "not granted when sent: {:?}", leaked);
                    grantee.received.extend(got);
                    if *read {
                        let shown = grantee.vault.held_mut().list().unwrap()[0].values.clone();
                        prop_assert_eq!(shown, issuer.projections_mut().values(&g).unwrap(), "the view after a sync");
                    }
                }
            }
        }
        // A last sync: the grantee holds exactly what is granted now.
        let g = id.unwrap();
        let granted = shape.granted(&model);
        let got = sync(&mut issuer, &mut grantee, &g);
        let leaked: Vec<&Atom> =
            got.iter().filter(|a| interesting(a, &ids) && !granted.contains(a) && !grantee.received.contains(a)).collect();
        prop_assert!(leaked.is_empty(), "not granted when sent: {:?}", leaked);
        let values = grantee.vault.held_mut().list().unwrap()[0].values.clone().unwrap();
        let mut held = BTreeSet::new();
        atoms_of(&values, &mut held);
        let interesting_granted: BTreeSet<Atom> =
            granted.into_iter().filter(|a| interesting(a, &ids)).collect();
        let held: BTreeSet<Atom> = held.into_iter().filter(|a| interesting(a, &ids)).collect();
        prop_assert_eq!(held, interesting_granted);
        prop_assert_eq!(Some(values), issuer.projections_mut().values(&g).unwrap());
    }
}

fn atoms_of(value: &Value, out: &mut BTreeSet<Atom>) {
    match value {
        Value::String(s) => {
            out.insert(Atom::Str(s.clone()));
        }
        Value::Number(n) => {
            out.insert(Atom::Num(n.as_i64().unwrap()));
        }
        Value::Array(items) => items.iter().for_each(|v| atoms_of(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.insert(Atom::Key(k.clone()));
                atoms_of(v, out);
            }
        }
        _ => {}
    }
}
