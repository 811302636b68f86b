//! The vault's one Automerge document: `profile`, `purchases` and `preferences`.
//!
//! Every vault starts from the same deterministic *genesis* change (fixed actor, fixed time),
//! which creates the three section maps. Two vaults therefore share their root objects, and
//! merging any two copies (a backup and the device, two devices edited apart) merges field by
//! field instead of one section replacing the other.
//!
//! Edits go through [`VaultDoc`] methods that validate the affected section against the schema
//! before touching the document; nothing is written when validation fails. Committing and
//! persisting is the caller's business ([`crate::Vault`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ChangeHash, ObjId, ObjType, Prop, ROOT, ReadDoc, Value as AmValue};
use serde_json::{Map, Value};

use crate::schema::{SchemaError, Shape, validate};

mod chunks;
mod json;
pub(crate) use chunks::{Allowed, sync_message, well_formed};
pub(crate) use json::{assign, obj_to_json, to_hydrate};

pub(crate) const PROFILE: &str = "profile";
pub(crate) const PURCHASES: &str = "purchases";
pub(crate) const PREFERENCES: &str = "preferences";
const SECTIONS: [&str; 3] = [PROFILE, PURCHASES, PREFERENCES];
const GENESIS_ACTOR: &[u8] = b"vault/v1/genesis";

/// A document could not be read as a vault document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// Not an Automerge document at all, or a damaged one.
    #[error("not a readable Automerge document")]
    NotAutomerge(#[source] Option<automerge::AutomergeError>),
    /// An Automerge document, but not shaped like a vault.
    #[error("not a vault document: {0}")]
    WrongShape(#[source] SchemaError),
    /// Changes refer to history that is not there.
    #[error("the document's history is incomplete ({0} changes missing)")]
    MissingHistory(usize),
}

/// What an edit changed, at the granularity projections are updated at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Touched {
    /// A whole section (`profile`, `preferences`; or `purchases` replaced wholesale).
    Section(String),
    /// One purchase record (added, changed or removed).
    Purchase(String),
}

impl Touched {
    /// Compact text form, stored beside each change chunk: `s:SECTION` or `p:ID`.
    pub(crate) fn encode(&self) -> String {
        match self {
            Touched::Section(s) => format!("s:{s}"),
            Touched::Purchase(id) => format!("p:{id}"),
        }
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        match text.split_once(':')? {
            ("s", s) => Some(Touched::Section(s.to_owned())),
            ("p", id) => Some(Touched::Purchase(id.to_owned())),
            _ => None,
        }
    }
}

/// The vault document and its edits.
pub(crate) struct VaultDoc {
    am: AutoCommit,
    /// What the edits since the last [`VaultDoc::take_touched`] changed; `None` when unknown
    /// (a merge), in which case projections diff the document instead.
    touched: Option<Vec<Touched>>,
    /// Another document's changes were handed to Automerge (a merge, a device's sync message)
    /// and are not known to be saved: Automerge changes memory (its actors, its queue of
    /// changes waiting for their dependencies) even when it fails and the heads stay put, so
    /// whoever owns the document reloads it unless the edit was saved.
    foreign: bool,
}

impl std::fmt::Debug for VaultDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultDoc(..)")
    }
}

fn genesis() -> AutoCommit {
    let mut am = AutoCommit::new().with_actor(ActorId::from(GENESIS_ACTOR));
    for section in SECTIONS {
        am.put_object(ROOT, section, ObjType::Map).expect("root is a map");
    }
    am.commit_with(CommitOptions::default().with_time(0));
    am
}

/// The hash of the genesis change every vault document starts from.
pub(crate) fn genesis_hash() -> ChangeHash {
    static HASH: OnceLock<ChangeHash> = OnceLock::new();
    *HASH.get_or_init(|| genesis().get_heads()[0])
}

/// Runs automerge on bytes that may come from anywhere; a panic inside is reported as damage.
fn guarded<T>(f: impl FnOnce() -> Result<T, automerge::AutomergeError>) -> Result<T, DocError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(DocError::NotAutomerge(Some(e))),
        Err(_) => Err(DocError::NotAutomerge(None)),
    }
}

/// Runs `f`, which reads or changes a document holding bytes from anywhere, with every panic
/// inside reported as damage. Automerge validates some columns only when they are first read,
/// so a foreign document can panic well after it loaded.
pub(crate) fn guarded_reads<T>(f: impl FnOnce() -> Result<T, DocError>) -> Result<T, DocError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(Err(DocError::NotAutomerge(None)))
}

impl VaultDoc {
    /// A new, empty vault document with a fresh actor.
    pub(crate) fn new() -> Self {
        let mut am = genesis();
        am.set_actor(ActorId::random());
        Self { am, touched: Some(Vec::new()), foreign: false }
    }

    /// Loads saved (or concatenated incremental) bytes. The result is checked for history gaps
    /// but not for shape; see [`VaultDoc::check_shape`].
    pub(crate) fn load(bytes: &[u8], from: Allowed) -> Result<Self, DocError> {
        if !well_formed(bytes, from) {
            return Err(DocError::NotAutomerge(None));
        }
        let mut am = guarded(|| AutoCommit::load(bytes))?;
        am.set_actor(ActorId::random());
        let mut doc = Self { am, touched: Some(Vec::new()), foreign: false };
        doc.check_history()?;
        Ok(doc)
    }

    /// Adds saved or incremental bytes to this document.
    pub(crate) fn load_incremental(&mut self, bytes: &[u8], from: Allowed) -> Result<(), DocError> {
        if !well_formed(bytes, from) {
            return Err(DocError::NotAutomerge(None));
        }
        guarded(|| self.am.load_incremental(bytes))?;
        Ok(())
    }

    /// Fails when some change depends on a change the document does not have.
    pub(crate) fn check_history(&mut self) -> Result<(), DocError> {
        let missing = self.am.get_missing_deps(&[]);
        if missing.is_empty() { Ok(()) } else { Err(DocError::MissingHistory(missing.len())) }
    }

    /// True when the document descends from the vault genesis change.
    pub(crate) fn has_genesis(&mut self) -> bool {
        self.am.get_change_by_hash(&genesis_hash()).is_some()
    }

    /// Checks the whole document against the schema.
    pub(crate) fn check_shape(&self) -> Result<(), DocError> {
        validate(Shape::Document, "", &self.to_json()).map_err(DocError::WrongShape)
    }

    /// Which sections and purchase records changed between two sets of heads.
    pub(crate) fn touched_between(&mut self, before: &[ChangeHash], after: &[ChangeHash]) -> Vec<Touched> {
        touched_between(&mut self.am, before, after)
    }

    pub(crate) fn automerge(&mut self) -> &mut AutoCommit {
        &mut self.am
    }
}

impl VaultDoc {
    fn section(&self, name: &str) -> Option<ObjId> {
        match self.am.get(ROOT, name) {
            Ok(Some((AmValue::Object(ObjType::Map), id))) => Some(id),
            _ => None,
        }
    }

    fn section_or_create(&mut self, name: &str) -> ObjId {
        match self.section(name) {
            Some(id) => id,
            None => self.am.put_object(ROOT, name, ObjType::Map).expect("root is a map"),
        }
    }

    /// The whole document as JSON (`profile`, `purchases`, `preferences`).
    pub(crate) fn to_json(&self) -> Value {
        let mut root = Map::new();
        for section in SECTIONS {
            root.insert(section.to_owned(), self.section_json(section));
        }
        Value::Object(root)
    }

    /// One section as JSON; an absent section reads as an empty object.
    pub(crate) fn section_json(&self, name: &str) -> Value {
        match self.section(name) {
            Some(id) => obj_to_json(&self.am, &id),
            None => Value::Object(Map::new()),
        }
    }

    /// One purchase record as JSON.
    pub(crate) fn purchase_json(&self, id: &str) -> Option<Value> {
        let purchases = self.section(PURCHASES)?;
        match self.am.get(&purchases, id) {
            Ok(Some((AmValue::Object(_), obj))) => Some(obj_to_json(&self.am, &obj)),
            _ => None,
        }
    }

    /// Ids of all purchases.
    pub(crate) fn purchase_ids(&self) -> Vec<String> {
        match self.section(PURCHASES) {
            Some(id) => self.am.keys(&id).collect(),
            None => Vec::new(),
        }
    }

    fn note(&mut self, t: Touched) {
        if let Some(list) = &mut self.touched
            && !list.contains(&t)
        {
            list.push(t);
        }
    }

    /// What the edits since the last call changed (`None`: unknown, e.g. after a merge).
    pub(crate) fn take_touched(&mut self) -> Option<Vec<Touched>> {
        self.touched.replace(Vec::new())
    }

    /// Sets `profile.<path>` to `value` after validating the resulting profile.
    pub(crate) fn set_profile(&mut self, path: &[&str], value: Value) -> Result<(), SchemaError> {
        let mut candidate = self.section_json(PROFILE);
        set_in_json(&mut candidate, path, value.clone());
        validate(Shape::Profile, PROFILE, &candidate)?;
        let mut obj = self.section_or_create(PROFILE);
        for segment in &path[..path.len() - 1] {
            obj = match self.am.get(&obj, *segment) {
                Ok(Some((AmValue::Object(ObjType::Map), id))) => id,
                _ => self.am.put_object(&obj, *segment, ObjType::Map).expect("map"),
            };
        }
        assign(&mut self.am, &obj, path[path.len() - 1], &value);
        self.note(Touched::Section(PROFILE.into()));
        Ok(())
    }

    /// Puts `value` at `section.key` with no check at all: what a hostile issuer's own software
    /// can write into its document. For tests that play one.
    #[cfg(any(test, feature = "test-utils"))]
    pub(crate) fn put_unchecked(&mut self, section: &str, key: &str, value: &Value) {
        let obj = self.section_or_create(section);
        assign(&mut self.am, &obj, key, value);
        self.note(if section == PURCHASES {
            Touched::Purchase(key.to_owned())
        } else {
            Touched::Section(section.to_owned())
        });
    }

    /// Removes `profile.<path>`; false when it was not set.
    pub(crate) fn unset_profile(&mut self, path: &[&str]) -> bool {
        self.note(Touched::Section(PROFILE.into()));
        let Some(mut obj) = self.section(PROFILE) else { return false };
        for segment in &path[..path.len() - 1] {
            obj = match self.am.get(&obj, *segment) {
                Ok(Some((AmValue::Object(ObjType::Map), id))) => id,
                _ => return false,
            };
        }
        let last = path[path.len() - 1];
        if matches!(self.am.get(&obj, last), Ok(Some(_))) {
            self.am.delete(&obj, last).expect("map key");
            true
        } else {
            false
        }
    }

    /// Writes a purchase record (new, or replacing the record with this id) after validation.
    pub(crate) fn put_purchase(&mut self, id: &str, record: &Value) -> Result<(), SchemaError> {
        if !(4..=32).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(SchemaError::Invalid {
                field: "purchases".into(),
                problem: "purchase ids use only a-z and 0-9 (4 to 32)".into(),
            });
        }
        validate(Shape::Purchase, "purchases.*", record)?;
        let purchases = self.section_or_create(PURCHASES);
        assign(&mut self.am, &purchases, id, record);
        self.note(Touched::Purchase(id.to_owned()));
        Ok(())
    }

    /// Deletes a purchase; false when there is none with this id.
    pub(crate) fn remove_purchase(&mut self, id: &str) -> bool {
        self.note(Touched::Purchase(id.to_owned()));
        let Some(purchases) = self.section(PURCHASES) else { return false };
        if matches!(self.am.get(&purchases, id), Ok(Some(_))) {
            self.am.delete(&purchases, id).expect("map key");
            true
        } else {
            false
        }
    }

    /// Sets a preference after validation.
    pub(crate) fn set_preference(&mut self, key: &str, value: &str) -> Result<(), SchemaError> {
        let entry = Value::from(value);
        validate(Shape::Preferences, PREFERENCES, &serde_json::json!({ key: entry }))?;
        let prefs = self.section_or_create(PREFERENCES);
        assign(&mut self.am, &prefs, key, &entry);
        self.note(Touched::Section(PREFERENCES.into()));
        Ok(())
    }

    /// Removes a preference; false when it was not set.
    pub(crate) fn unset_preference(&mut self, key: &str) -> bool {
        self.note(Touched::Section(PREFERENCES.into()));
        let Some(prefs) = self.section(PREFERENCES) else { return false };
        if matches!(self.am.get(&prefs, key), Ok(Some(_))) {
            self.am.delete(&prefs, key).expect("map key");
            true
        } else {
            false
        }
    }

    /// Brings the values of a document-shaped JSON value into this document: profile fields
    /// and preferences are set, purchases are written by id. Values absent from `data` are left
    /// alone. Validates the whole of `data` first; nothing is written when it does not fit.
    pub(crate) fn apply_json(&mut self, data: &Value) -> Result<(), SchemaError> {
        validate(Shape::Document, "", data)?;
        for section in SECTIONS {
            let obj = self.section_or_create(section);
            if let Some(Value::Object(entries)) = data.get(section) {
                for (key, value) in entries {
                    assign(&mut self.am, &obj, key, value);
                    if section == PURCHASES {
                        self.note(Touched::Purchase(key.clone()));
                    }
                }
                if section != PURCHASES {
                    self.note(Touched::Section(section.into()));
                }
            }
        }
        Ok(())
    }

    /// Applies a sync message from another device of the same identity (the CRDT merge, a
    /// message at a time); refused when the result is not shaped like a vault.
    pub(crate) fn receive_sync(
        &mut self,
        state: &mut automerge::sync::State,
        message: automerge::sync::Message,
    ) -> Result<(), DocError> {
        use automerge::sync::SyncDoc;
        self.foreign = true;
        self.touched = None;
        guarded(|| self.am.sync().receive_sync_message(state, message))?;
        guarded_reads(|| self.check_shape())
    }

    /// Merges another Automerge document into this one (the CRDT merge).
    pub(crate) fn merge(&mut self, other: &mut VaultDoc) -> Result<(), DocError> {
        self.foreign = true;
        self.touched = None;
        guarded(|| self.am.merge(&mut other.am))?;
        Ok(())
    }

    /// True when another document's changes were applied since [`VaultDoc::saved`].
    pub(crate) fn holds_foreign(&self) -> bool {
        self.foreign
    }

    /// What the document holds is durable (or was reloaded from the file).
    pub(crate) fn saved(&mut self) {
        self.foreign = false;
    }
}

fn set_in_json(target: &mut Value, path: &[&str], value: Value) {
    let mut cursor = target;
    for segment in &path[..path.len() - 1] {
        if !cursor.get(*segment).is_some_and(Value::is_object) {
            cursor[*segment] = Value::Object(Map::new());
        }
        cursor = cursor.get_mut(*segment).expect("just inserted");
    }
    cursor[path[path.len() - 1]] = value;
}

/// Which sections and purchase records of a vault-shaped document (the main document or a
/// projection) changed between two sets of heads.
pub(crate) fn touched_between(
    am: &mut AutoCommit,
    before: &[ChangeHash],
    after: &[ChangeHash],
) -> Vec<Touched> {
    let mut touched: Vec<Touched> = Vec::new();
    // A message can touch thousands of purchases: seen in a set, kept in order in the list.
    let mut seen: std::collections::HashSet<Touched> = std::collections::HashSet::new();
    let mut push = |t: Touched| {
        if seen.insert(t.clone()) {
            touched.push(t);
        }
    };
    for patch in am.diff(before, after) {
        let key_of = |action: &automerge::PatchAction| match action {
            automerge::PatchAction::PutMap { key, .. } | automerge::PatchAction::DeleteMap { key } => {
                Some(key.clone())
            }
            _ => None,
        };
        let section = match patch.path.first() {
            Some((_, Prop::Map(section))) => section.clone(),
            Some(_) => continue,
            None => {
                // A whole section was put or deleted at the root.
                if let Some(key) = key_of(&patch.action) {
                    push(Touched::Section(key));
                }
                continue;
            }
        };
        if section == PURCHASES {
            let id = match patch.path.get(1) {
                Some((_, Prop::Map(id))) => Some(id.clone()),
                Some(_) => None,
                None => key_of(&patch.action),
            };
            match id {
                Some(id) => push(Touched::Purchase(id)),
                None => push(Touched::Section(section)),
            }
        } else {
            push(Touched::Section(section));
        }
    }
    touched
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn purchase(item: &str, rating: i64) -> Value {
        json!({"item": item, "seller": "Acme", "price": {"amount_minor": 100, "currency": "EUR"},
               "date": "2026-01-02", "rating": rating, "tags": ["a"]})
    }

    #[test]
    fn genesis_is_shared_by_every_new_document() {
        let mut a = VaultDoc::new();
        let mut b = VaultDoc::new();
        assert!(a.has_genesis() && b.has_genesis());
        assert_ne!(a.am.get_actor(), b.am.get_actor());
    }

    #[test]
    fn bad_values_write_nothing() {
        let mut doc = VaultDoc::new();
        let heads = doc.am.get_heads();
        assert!(doc.put_purchase("abcd", &purchase("x", 9)).is_err());
        assert!(doc.set_profile(&["nickname"], json!("x")).is_err());
        assert!(doc.set_preference("Bad Key", "x").is_err());
        doc.am.commit();
        assert_eq!(doc.am.get_heads(), heads);
    }

    #[test]
    fn json_round_trips_through_the_document() {
        let mut doc = VaultDoc::new();
        doc.set_profile(&["address", "city"], json!("Lyon")).unwrap();
        doc.set_profile(&["email"], json!("ada@example.org")).unwrap();
        doc.put_purchase("abcd", &purchase("Tea", 5)).unwrap();
        doc.set_preference("diet", "vegetarian").unwrap();
        let exported = doc.to_json();
        let mut other = VaultDoc::new();
        other.apply_json(&exported).unwrap();
        assert_eq!(other.to_json(), exported);
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Profile(&'static str, String),
        Unset(&'static str),
        Purchase(String, i64),
        RemovePurchase(String),
        Pref(String, String),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let field = prop_oneof![Just("name"), Just("postcode"), Just("city")];
        prop_oneof![
            (field.clone(), "[a-z]{1,8}").prop_map(|(f, v)| Edit::Profile(f, v)),
            field.prop_map(Edit::Unset),
            ("[a-d]{4}", 1i64..=5).prop_map(|(id, r)| Edit::Purchase(id, r)),
            "[a-d]{4}".prop_map(Edit::RemovePurchase),
            ("[a-c]", "[a-z]{1,5}").prop_map(|(k, v)| Edit::Pref(k, v)),
        ]
    }

    fn apply(doc: &mut VaultDoc, edit: &Edit) {
        let path = |f: &'static str| if f == "name" { vec!["name"] } else { vec!["address", f] };
        match edit {
            Edit::Profile(f, v) => doc.set_profile(&path(f), json!(v)).unwrap(),
            Edit::Unset(f) => {
                doc.unset_profile(&path(f));
            }
            Edit::Purchase(id, r) => doc.put_purchase(id, &purchase(id, *r)).unwrap(),
            Edit::RemovePurchase(id) => {
                doc.remove_purchase(id);
            }
            Edit::Pref(k, v) => doc.set_preference(k, v).unwrap(),
        }
        doc.am.commit();
    }

    proptest! {
        /// Two replicas of one vault edited concurrently converge to the same state, whichever
        /// way round they merge, and every edit made on only one side survives.
        #[test]
        fn concurrent_edits_converge(common in proptest::collection::vec(edit(), 0..5),
                                     left in proptest::collection::vec(edit(), 0..8),
                                     right in proptest::collection::vec(edit(), 0..8)) {
            let mut base = VaultDoc::new();
            for e in &common { apply(&mut base, e); }
            let bytes = base.am.save();
            let mut a = VaultDoc::load(&bytes, Allowed::Foreign).unwrap();
            let mut b = VaultDoc::load(&bytes, Allowed::Foreign).unwrap();
            for e in &left { apply(&mut a, e); }
            for e in &right { apply(&mut b, e); }
            let mut a2 = VaultDoc::load(&a.am.save(), Allowed::Foreign).unwrap();
            let mut b2 = VaultDoc::load(&b.am.save(), Allowed::Foreign).unwrap();
            a.merge(&mut b2).unwrap();
            b.merge(&mut a2).unwrap();
            prop_assert_eq!(a.to_json(), b.to_json());
            a.check_shape().unwrap();
            // A preference set only on the left (and not touched on the right) survives.
            let right_keys: Vec<_> = right.iter().filter_map(|e| match e { Edit::Pref(k, _) => Some(k.clone()), _ => None }).collect();
            let mut last_left = std::collections::BTreeMap::new();
            for e in &left { if let Edit::Pref(k, v) = e { last_left.insert(k.clone(), v.clone()); } }
            for (k, v) in last_left {
                if !right_keys.contains(&k) {
                    prop_assert_eq!(&a.to_json()["preferences"][&k], &json!(v));
                }
            }
        }

        /// Arbitrary bytes never panic the loader.
        #[test]
        fn loading_garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = VaultDoc::load(&bytes, Allowed::Foreign);
        }
    }
}
