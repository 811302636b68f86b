//! Projections: for each grant, a separate Automerge document holding exactly the granted
//! values.
//!
//! A projection is built from the main document's *current values*, never from its history,
//! and is then kept up to date from what each edit touched (a section, or one purchase record):
//! only the touched part is recomputed, so an edit costs the same on a 10-record vault as on a
//! 100,000-record one. Removals follow: a field unset, a purchase deleted, a record that stops
//! matching the filter are deleted from the projection. Only projections ever leave the device
//! for a grantee; the history they carry holds granted values only.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc};
use serde_json::{Map, Value};

use jiff::civil::Date;

use crate::doc::{PREFERENCES, PROFILE, PURCHASES, Touched, VaultDoc, assign, obj_to_json, to_hydrate};
use crate::path::FieldPath;
use crate::path::derive::{Derivation, counting_day};
use crate::statement::grant::Grant;

/// The value at `path` under `root`, if any.
fn lookup<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, segment| v.get(segment))
}

/// Puts `value` at `parent.key` under `root` (a map), creating the maps on the way; a root
/// that is not a map (never, in a document that fits its schema) takes nothing.
fn put_at(root: &mut Value, parent: &[String], key: &str, value: Value) {
    if !root.is_object() && !root.is_null() {
        return;
    }
    let mut target = root;
    for segment in parent {
        if !target.get(segment).is_some_and(Value::is_object) {
            target[segment.as_str()] = Value::Object(Map::new());
        }
        target = target.get_mut(segment.as_str()).expect("just inserted");
    }
    target[key] = value;
}

/// Adds to `out` (a section's projection) each derived value of `grant` whose source is in
/// `section` (`source_path` picks it out), counted on `day` ([`counting_day`]); a source missing or
/// unreadable gives no value at all.
fn add_derived(
    grant: &Grant,
    current: &Value,
    out: &mut Value,
    day: Date,
    source_path: impl Fn(&FieldPath) -> Option<Vec<String>>,
) -> bool {
    let mut any = false;
    for field in &grant.fields {
        let FieldPath::Derived(d) = field else { continue };
        let Some(path) = source_path(d.source()) else { continue };
        any = true;
        if matches!(d.derivation(), Derivation::Band(_)) && !grant.prices {
            continue;
        }
        let Some(value) = lookup(current, &path).and_then(|v| d.derivation().compute(v, day)) else {
            continue;
        };
        let parent = &path[..path.len().saturating_sub(1)];
        put_at(out, parent, &d.key(), value);
    }
    any
}

/// The granted part of the profile, if the grant covers any of it.
fn project_profile(grant: &Grant, profile: &Value, day: Date) -> Option<Value> {
    let paths: Vec<&Vec<String>> = grant
        .fields
        .iter()
        .filter_map(|f| if let FieldPath::Profile(p) = f { Some(p) } else { None })
        .collect();
    let mut out = Value::Object(Map::new());
    if paths.iter().any(|p| p.is_empty()) {
        out = profile.clone();
    } else {
        for path in &paths {
            if let Some(value) = lookup(profile, path) {
                put_at(&mut out, &path[..path.len() - 1], &path[path.len() - 1], value.clone());
            }
        }
    }
    let derived = add_derived(grant, profile, &mut out, day, |source| match source {
        FieldPath::Profile(p) if !p.is_empty() => Some(p.clone()),
        _ => None,
    });
    (!paths.is_empty() || derived).then_some(out)
}

fn project_preferences(grant: &Grant, prefs: &Value, day: Date) -> Option<Value> {
    let mut out = Value::Object(Map::new());
    let mut any = false;
    for field in &grant.fields {
        match field {
            FieldPath::Preferences(None) => {
                any = true;
                out = prefs.clone();
                break;
            }
            FieldPath::Preferences(Some(key)) => {
                any = true;
                if let Some(v) = prefs.get(key) {
                    out[key.as_str()] = v.clone();
                }
            }
            _ => {}
        }
    }
    let derived = add_derived(grant, prefs, &mut out, day, |source| match source {
        FieldPath::Preferences(Some(key)) => Some(vec![key.clone()]),
        _ => None,
    });
    (any || derived).then_some(out)
}

/// The purchase fields `grant` names: `None` when none, `Some(None)` for every field,
/// `Some(Some(list))` for some (an empty list when only derived values are granted).
fn purchase_fields(grant: &Grant) -> Option<Option<Vec<&str>>> {
    let mut fields = Vec::new();
    let mut any = false;
    for field in &grant.fields {
        match field {
            FieldPath::Purchases(None) => return Some(None),
            FieldPath::Purchases(Some(f)) => fields.push(f.as_str()),
            _ if field.is_purchases() => any = true,
            _ => {}
        }
    }
    if fields.is_empty() && !any { None } else { Some(Some(fields)) }
}

/// The granted part of one purchase record; `None` when the grant does not cover it (no
/// purchase field granted, or the record does not match the filter).
fn project_purchase(grant: &Grant, record: &Value, day: Date) -> Option<Value> {
    let fields = purchase_fields(grant)?;
    if grant.filter.as_ref().is_some_and(|f| !f.matches(record)) {
        return None;
    }
    let mut out = match fields {
        None => record.as_object()?.clone(),
        Some(fields) => {
            let mut out = Map::new();
            for f in fields {
                if let Some(v) = record.get(f) {
                    out.insert(f.to_owned(), v.clone());
                }
            }
            out
        }
    };
    if !grant.prices {
        out.remove("price");
    }
    let mut out = Value::Object(out);
    add_derived(grant, record, &mut out, day, |source| match source {
        FieldPath::Purchases(Some(f)) => Some(vec![f.clone()]),
        _ => None,
    });
    Some(out)
}

/// Whether `grant` names any field of `section`.
fn covers(grant: &Grant, section: &str) -> bool {
    grant.fields.iter().any(|f| match f.source() {
        FieldPath::Profile(_) => section == PROFILE,
        FieldPath::Preferences(_) => section == PREFERENCES,
        FieldPath::Purchases(_) => section == PURCHASES,
        FieldPath::Derived(_) => false,
    })
}

/// True when some value of `grant` depends on the date (`over(N)`): its projection is brought
/// up to date when the date changes, not only when the document does.
pub(crate) fn is_dated(grant: &Grant) -> bool {
    grant.fields.iter().any(|f| f.derived().is_some_and(|(_, d)| d.is_dated()))
}

/// What `grant` covers of a document (as JSON) at `now` (unix seconds, the issuer's clock;
/// `over(N)` counts ages on the first day of its month): only the granted sections appear, and
/// of a derived field only the derived value.
pub fn project(grant: &Grant, doc: &Value, now: i64) -> Value {
    let day = counting_day(now);
    let mut out = Map::new();
    if let Some(p) = project_profile(grant, &doc[PROFILE], day) {
        out.insert(PROFILE.into(), p);
    }
    if let Some(p) = project_preferences(grant, &doc[PREFERENCES], day) {
        out.insert(PREFERENCES.into(), p);
    }
    if purchase_fields(grant).is_some() {
        let mut purchases = Map::new();
        if let Some(records) = doc[PURCHASES].as_object() {
            for (id, record) in records {
                if let Some(p) = project_purchase(grant, record, day) {
                    purchases.insert(id.clone(), p);
                }
            }
        }
        out.insert(PURCHASES.into(), Value::Object(purchases));
    }
    Value::Object(out)
}

/// What bringing a projection up to date did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The projection changed.
    pub(crate) changed: bool,
    /// A value the projection held was deleted or overwritten (a removal, a record that
    /// stopped matching, a new value): its history now holds a value that is no longer granted.
    pub(crate) retracted: bool,
}

/// A grant's projection document.
pub(crate) struct Projection {
    am: AutoCommit,
}

impl std::fmt::Debug for Projection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Projection(..)")
    }
}

impl Projection {
    /// Builds the projection of `grant` from the current values of `doc`.
    pub(crate) fn build(grant: &Grant, doc: &VaultDoc, now: i64) -> Self {
        let mut am = AutoCommit::new().with_actor(ActorId::random());
        // Only the sections the grant covers are read: a profile-only grant rebuilt after an
        // overwrite must not pay for converting ten thousand purchases.
        let covered: Map<String, Value> = [PROFILE, PREFERENCES, PURCHASES]
            .into_iter()
            .filter(|section| covers(grant, section))
            .map(|section| (section.to_owned(), doc.section_json(section)))
            .collect();
        let projected = project(grant, &Value::Object(covered), now);
        if let Value::Object(sections) = &projected {
            for (section, value) in sections {
                // A section is a map: created in one batch (ten thousand purchases one op at a
                // time cost seconds).
                let batch = value.is_object().then(|| to_hydrate(value));
                match batch.map(|b| am.batch_create_object(ROOT, section.as_str(), &b, false)) {
                    Some(Ok(_)) => {}
                    _ => assign(&mut am, &ROOT, section, value),
                }
            }
        }
        am.commit();
        Self { am }
    }

    /// Wraps a stored projection document.
    pub(crate) fn from_automerge(am: AutoCommit) -> Self {
        Self { am }
    }

    pub(crate) fn automerge(&mut self) -> &mut AutoCommit {
        &mut self.am
    }

    /// Brings the projection up to date with the parts of `doc` that an edit touched, and says
    /// whether it changed and whether that retracted a value it held.
    /// `now` (unix seconds) dates `over(N)`.
    pub(crate) fn apply(&mut self, grant: &Grant, doc: &VaultDoc, touched: &[Touched], now: i64) -> Applied {
        let before = self.am.get_heads();
        let day = counting_day(now);
        for t in touched {
            match t {
                Touched::Section(section) if section == PURCHASES => {
                    if purchase_fields(grant).is_some() {
                        let projected = project(
                            grant,
                            &serde_json::json!({ PURCHASES: doc.section_json(PURCHASES) }),
                            now,
                        );
                        assign(&mut self.am, &ROOT, PURCHASES, &projected[PURCHASES]);
                    }
                }
                Touched::Section(section) => {
                    let current = doc.section_json(section);
                    let projected = match section.as_str() {
                        PROFILE => project_profile(grant, &current, day),
                        PREFERENCES => project_preferences(grant, &current, day),
                        _ => None,
                    };
                    if let Some(value) = projected {
                        assign(&mut self.am, &ROOT, section, &value);
                    }
                }
                Touched::Purchase(id) => {
                    if purchase_fields(grant).is_none() {
                        continue;
                    }
                    let purchases = match self.am.get(ROOT, PURCHASES) {
                        Ok(Some((automerge::Value::Object(ObjType::Map), obj))) => obj,
                        _ => self.am.put_object(ROOT, PURCHASES, ObjType::Map).expect("root is a map"),
                    };
                    match doc.purchase_json(id).and_then(|r| project_purchase(grant, &r, day)) {
                        Some(value) => assign(&mut self.am, &purchases, id, &value),
                        None => {
                            if matches!(self.am.get(&purchases, id.as_str()), Ok(Some(_))) {
                                self.am.delete(&purchases, id.as_str()).expect("map key");
                            }
                        }
                    }
                }
            }
        }
        self.am.commit();
        if self.am.get_heads() == before {
            return Applied::default();
        }
        // An operation with predecessors deletes or overwrites them: a retraction.
        let retracted = self
            .am
            .get_changes(&before)
            .iter()
            .any(|c| c.decode().operations.iter().any(|op| !op.pred.is_empty()));
        Applied { changed: true, retracted }
    }

    /// The projection's current values.
    pub(crate) fn to_json(&self) -> Value {
        obj_to_json(&self.am, &ROOT)
    }
}

#[cfg(test)]
mod derived_tests;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::identity::Identity;
    use crate::statement::GrantId;
    use proptest::prelude::*;
    use serde_json::json;

    /// The issuer's clock in these tests (2027-01-15).
    const NOW: i64 = 1_800_000_000;

    fn grant(fields: &[&str], filter: Option<&str>, prices: bool) -> Grant {
        Grant {
            id: GrantId::random(),
            issuer: Identity::from_secret_bytes(&[1; 32]).public(),
            audience: Identity::from_secret_bytes(&[2; 32]).public(),
            fields: fields.iter().map(|f| f.parse().unwrap()).collect(),
            filter: filter.map(|f| f.parse().unwrap()),
            purpose: "test".into(),
            issued_at: 0,
            expires_at: None,
            prices,
            request: None,
        }
    }

    fn purchase(item: &str, seller: &str, tag: &str) -> Value {
        json!({"item": item, "seller": seller, "price": {"amount_minor": 100, "currency": "EUR"},
               "date": "2026-01-02", "tags": [tag], "review": item.chars().rev().collect::<String>()})
    }

    #[test]
    fn projects_exactly_the_granted_fields() {
        let doc = json!({
            "profile": {"name": "Ada", "email": "ada@example.org", "address": {"city": "Lyon", "street": "1 rue"}},
            "preferences": {"diet": "vegan", "size": "M"},
            "purchases": {"aaaa": purchase("Dune", "Books", "books"), "bbbb": purchase("Tea", "Acme", "food")}
        });
        let g = grant(&["profile.email", "profile.address.city"], None, true);
        assert_eq!(
            project(&g, &doc, NOW),
            json!({"profile": {"email": "ada@example.org", "address": {"city": "Lyon"}}})
        );
        let g = grant(&["purchases"], Some("tag=books"), false);
        let p = project(&g, &doc, NOW);
        assert_eq!(p["purchases"].as_object().unwrap().len(), 1);
        assert!(p["purchases"]["aaaa"].get("price").is_none(), "no prices");
        let g = grant(&["purchases.*.item", "preferences.diet"], None, true);
        assert_eq!(
            project(&g, &doc, NOW),
            json!({"preferences": {"diet": "vegan"}, "purchases": {"aaaa": {"item": "Dune"}, "bbbb": {"item": "Tea"}}})
        );
    }

    // ----- the security property -----

    #[derive(Debug, Clone)]
    enum Edit {
        Profile(usize),
        UnsetProfile(usize),
        Pref(usize),
        UnsetPref(usize),
        AddPurchase(usize, usize, usize),
        ChangePurchase(usize, usize, usize),
        RemovePurchase(usize),
    }

    const PROFILE_FIELDS: [&[&str]; 4] =
        [&["name"], &["email"], &["address", "city"], &["address", "street"]];
    const PREF_KEYS: [&str; 3] = ["diet", "size", "brand"];
    const SELLERS: [&str; 2] = ["acme", "books"];
    const TAGS: [&str; 2] = ["food", "sf"];
    const GRANT_PATHS: [&str; 11] = [
        "profile",
        "profile.email",
        "profile.address",
        "profile.address.city",
        "preferences",
        "preferences.diet",
        "purchases",
        "purchases.*.item",
        "purchases.*.review",
        "profile.address.postcode:prefix(2)",
        "purchases.*.price:band(1,5)",
    ];

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0..4usize).prop_map(Edit::Profile),
            (0..4usize).prop_map(Edit::UnsetProfile),
            (0..3usize).prop_map(Edit::Pref),
            (0..3usize).prop_map(Edit::UnsetPref),
            (0..4usize, 0..2usize, 0..2usize).prop_map(|(i, s, t)| Edit::AddPurchase(i, s, t)),
            (0..4usize, 0..2usize, 0..2usize).prop_map(|(i, s, t)| Edit::ChangePurchase(i, s, t)),
            (0..4usize).prop_map(Edit::RemovePurchase),
        ]
    }

    /// Applies an edit with a never-used value; returns that value.
    fn apply(doc: &mut VaultDoc, edit: &Edit, counter: &mut u32) -> Option<String> {
        *counter += 1;
        let unique = format!("u{counter:04}q{}", counter.wrapping_mul(2_654_435_761) % 99_991);
        let id = |i: usize| format!("rec{i}");
        let written = match edit {
            Edit::Profile(f) => {
                let value = if PROFILE_FIELDS[*f] == ["email"] {
                    format!("{unique}@example.org")
                } else {
                    unique.clone()
                };
                doc.set_profile(PROFILE_FIELDS[*f], json!(value)).unwrap();
                Some(value)
            }
            Edit::UnsetProfile(f) => {
                doc.unset_profile(PROFILE_FIELDS[*f]);
                None
            }
            Edit::Pref(k) => {
                doc.set_preference(PREF_KEYS[*k], &unique).unwrap();
                Some(unique.clone())
            }
            Edit::UnsetPref(k) => {
                doc.unset_preference(PREF_KEYS[*k]);
                None
            }
            Edit::AddPurchase(i, s, t) | Edit::ChangePurchase(i, s, t) => {
                if matches!(edit, Edit::ChangePurchase(..)) && doc.purchase_json(&id(*i)).is_none() {
                    return None;
                }
                doc.put_purchase(&id(*i), &purchase(&unique, SELLERS[*s], TAGS[*t])).unwrap();
                Some(unique.clone())
            }
            Edit::RemovePurchase(i) => {
                doc.remove_purchase(&id(*i));
                None
            }
        };
        doc.automerge().commit();
        written
    }

    fn strings(value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::String(s) => {
                out.insert(s.clone());
            }
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Object(map) => map.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }

    /// Every string value that appears anywhere in a document's change history.
    fn history_strings(am: &mut AutoCommit) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for change in am.get_changes(&[]) {
            for op in change.decode().operations {
                if let automerge::legacy::OpType::Put(automerge::ScalarValue::Str(s)) = op.action {
                    out.insert(s.to_string());
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// No value that was never granted, and no part of the main document's history, ever
        /// reaches a projection: every string in the projection's full change history was a
        /// granted current value at some point. And the incrementally maintained projection
        /// equals one built from scratch.
        #[test]
        fn projections_never_carry_non_granted_values(
            before_grant in proptest::collection::vec(edit(), 0..12),
            after_grant in proptest::collection::vec(edit(), 0..16),
            paths in proptest::sample::subsequence(GRANT_PATHS.to_vec(), 1..4),
            filter in proptest::option::of(prop_oneof![Just("tag=sf"), Just("seller=books")]),
            prices in any::<bool>(),
        ) {
            let with_purchases = paths.iter().any(|p| p.starts_with("purchases"));
            let g = grant(&paths, if with_purchases { filter } else { None }, prices);
            let mut doc = VaultDoc::new();
            let mut counter = 0;
            let mut written = BTreeSet::new();
            for e in &before_grant {
                written.extend(apply(&mut doc, e, &mut counter));
            }
            let mut projection = Projection::build(&g, &doc, NOW);
            let mut ever_granted = BTreeSet::new();
            strings(&project(&g, &doc.to_json(), NOW), &mut ever_granted);
            for e in &after_grant {
                let before = doc.automerge().get_heads();
                written.extend(apply(&mut doc, e, &mut counter));
                let after = doc.automerge().get_heads();
                let touched = doc.touched_between(&before, &after);
                let _ = projection.apply(&g, &doc, &touched, NOW);
                strings(&project(&g, &doc.to_json(), NOW), &mut ever_granted);
            }
            // Incremental == from scratch.
            prop_assert_eq!(projection.to_json(), project(&g, &doc.to_json(), NOW));
            // Nothing in the projection's history that was never granted.
            let leaked: Vec<String> = history_strings(projection.automerge())
                .into_iter()
                .filter(|s| !ever_granted.contains(s))
                .collect();
            prop_assert!(leaked.is_empty(), "non-granted values in the projection's history: {:?}", leaked);
            // And byte-level: no never-granted unique value appears in the saved projection.
            let bytes = projection.automerge().save();
            for value in written.iter().filter(|v| !ever_granted.contains(*v)) {
                prop_assert!(!bytes.windows(value.len()).any(|w| w == value.as_bytes()), "{} in the bytes", value);
            }
        }
    }
}
