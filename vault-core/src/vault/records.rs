//! The customer's records: the profile, purchases and preferences of the vault document, and
//! its export and import. The records live in the document the change log keeps (see
//! changes.rs); this file holds their rules: field paths, purchase ids, the export format and
//! how an import is applied: `vault.records_mut().set_profile(...)`, `vault.records().purchases()`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::ops::{Deref, DerefMut};

use super::Vault;
use super::changes::EditError;
use crate::doc::{DocError, PREFERENCES, PROFILE};
use crate::money::Price;
use crate::primitives::random_array;
use crate::schema::SchemaError;

pub(crate) mod import;

/// First bytes of every Automerge file (document or change chunk).
const AUTOMERGE_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Marker of a JSON export.
pub(crate) const EXPORT_FORMAT: &str = "vault-export/v1";

/// A file could not be imported. When this is returned, nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Neither a JSON export nor an Automerge document.
    #[error("not a vault export: expected a JSON export or an Automerge document")]
    UnknownFormat,
    /// JSON that does not parse.
    #[error("the JSON export is malformed (line {line}, column {column})")]
    MalformedJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON, but not a vault export.
    #[error("the JSON file is not a vault export (no \"format\": \"{EXPORT_FORMAT}\")")]
    NotAnExport,
    /// An Automerge document that does not load or is not shaped like a vault.
    #[error("the Automerge document cannot be imported: {0}")]
    Automerge(#[source] DocError),
    /// The data does not fit the document schema.
    #[error("the export does not fit the vault schema: {0}")]
    Schema(#[source] SchemaError),
    /// Saving failed.
    #[error(transparent)]
    Edit(#[from] EditError),
}

/// How an import was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportMode {
    /// A CRDT merge: both histories were kept.
    Merged,
    /// The values were written as new changes (a JSON export, or an Automerge document that
    /// does not descend from a vault).
    Values,
}

/// One purchase as stored. Made with [`PurchaseRecord::new`] and its setters, so that a new
/// optional field is added here (and in the document schema) and nowhere else.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PurchaseRecord {
    /// What was bought.
    pub item: String,
    /// Who sold it.
    pub seller: String,
    /// What it cost.
    pub price: Price,
    /// When (YYYY-MM-DD).
    pub date: String,
    /// At what time of day (HH:MM, local), when known: orders one day's purchases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// A free category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Tags (lowercase).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// 1 to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<i64>,
    /// A review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
}

impl PurchaseRecord {
    /// A purchase of `item` from `seller` for `price` on `date` (`YYYY-MM-DD`), with no
    /// category, tags, rating or review.
    pub fn new(item: String, seller: String, price: Price, date: String) -> Self {
        Self {
            item,
            seller,
            price,
            date,
            time: None,
            category: None,
            tags: Vec::new(),
            rating: None,
            review: None,
        }
    }

    /// At this time of day (`HH:MM`).
    pub fn time(mut self, time: Option<String>) -> Self {
        self.time = time;
        self
    }

    /// With this category.
    pub fn category(mut self, category: Option<String>) -> Self {
        self.category = category;
        self
    }

    /// With these tags.
    pub fn tags(mut self, tags: Vec<String>) -> Self {
        self.tags = tags;
        self
    }

    /// With this rating (1 to 5).
    pub fn rating(mut self, rating: Option<i64>) -> Self {
        self.rating = rating;
        self
    }

    /// With this review.
    pub fn review(mut self, review: Option<String>) -> Self {
        self.review = review;
        self
    }
}

/// A purchase with its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    /// The purchase id.
    pub id: String,
    /// The record.
    #[serde(flatten)]
    pub record: PurchaseRecord,
}

/// The customer's records: `vault.records()` to read, `vault.records_mut()` to change.
#[derive(Debug)]
pub struct Records<V> {
    pub(in crate::vault) vault: V,
}

fn field_path(field: &str) -> Result<Vec<&str>, EditError> {
    let path: Vec<&str> = field.split('.').collect();
    if field.is_empty() || path.iter().any(|s| s.is_empty()) {
        return Err(EditError::BadField(field.chars().take(64).collect()));
    }
    Ok(path)
}

fn new_purchase_id() -> String {
    data_encoding::BASE32_NOPAD.encode(&random_array::<10>()).to_ascii_lowercase()
}

impl<V: Deref<Target = Vault>> Records<V> {
    pub(super) fn new(vault: V) -> Self {
        Self { vault }
    }

    /// The profile as JSON.
    pub fn profile(&self) -> Value {
        self.vault.doc.section_json(PROFILE)
    }

    /// One profile field (`email`, `address.city`, `address`), if set.
    pub fn profile_field(&self, field: &str) -> Result<Option<Value>, EditError> {
        let path = field_path(field)?;
        let mut value = &self.profile();
        for segment in path {
            match value.get(segment) {
                Some(v) => value = v,
                None => return Ok(None),
            }
        }
        Ok(Some(value.clone()))
    }

    /// One purchase.
    pub fn purchase(&self, id: &str) -> Option<Purchase> {
        let value = self.vault.doc.purchase_json(id)?;
        serde_json::from_value(value).ok().map(|record| Purchase { id: id.to_owned(), record })
    }

    /// All purchases, newest first (by date, then id).
    pub fn purchases(&self) -> Vec<Purchase> {
        let mut out: Vec<Purchase> =
            self.vault.doc.purchase_ids().iter().filter_map(|id| self.purchase(id)).collect();
        // Newest first: by date, then time of day (untimed after the day's timed ones).
        out.sort_by(|a, b| {
            (b.record.date.as_str(), b.record.time.as_deref())
                .cmp(&(a.record.date.as_str(), a.record.time.as_deref()))
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    /// All preferences as JSON.
    pub fn preferences(&self) -> Value {
        self.vault.doc.section_json(PREFERENCES)
    }

    /// Everything, as a JSON export (`schemas/doc/vault-document.schema.json`).
    pub fn export_json(&self) -> Value {
        let mut value = self.vault.doc.to_json();
        value["format"] = Value::from(EXPORT_FORMAT);
        value
    }
}

impl<V: DerefMut<Target = Vault>> Records<V> {
    /// Sets a profile field, validated against the schema.
    pub fn set_profile(&mut self, field: &str, value: &str) -> Result<(), EditError> {
        let path: Vec<String> = field_path(field)?.into_iter().map(str::to_owned).collect();
        let value = Value::String(value.to_owned());
        self.vault.edit(|doc| {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            Ok(doc.set_profile(&path, value)?)
        })
    }

    /// Puts `value` at `section.key` of the document with no check: what a hostile issuer's own
    /// software can do. Only for tests that play such an issuer (the `test-utils` feature).
    #[cfg(any(test, feature = "test-utils"))]
    pub fn put_unchecked_for_tests(
        &mut self,
        section: &str,
        key: &str,
        value: Value,
    ) -> Result<(), EditError> {
        self.vault.edit(|doc| {
            doc.put_unchecked(section, key, &value);
            Ok(())
        })
    }

    /// Removes a profile field; false when it was not set.
    pub fn unset_profile(&mut self, field: &str) -> Result<bool, EditError> {
        let path: Vec<String> = field_path(field)?.into_iter().map(str::to_owned).collect();
        self.vault.edit(|doc| {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            Ok(doc.unset_profile(&path))
        })
    }

    /// Adds a purchase; returns its id.
    pub fn add_purchase(&mut self, record: &PurchaseRecord) -> Result<String, EditError> {
        Ok(self.add_purchases(std::slice::from_ref(record))?.remove(0))
    }

    /// Adds many purchases as one change (one durable commit).
    pub fn add_purchases(&mut self, records: &[PurchaseRecord]) -> Result<Vec<String>, EditError> {
        let values: Vec<Value> =
            records.iter().map(|r| serde_json::to_value(r).expect("records serialize")).collect();
        self.vault.edit(|doc| {
            let mut ids = Vec::with_capacity(values.len());
            for value in &values {
                let id = new_purchase_id();
                doc.put_purchase(&id, value)?;
                ids.push(id);
            }
            Ok(ids)
        })
    }

    /// Removes a purchase; false when there is none with this id.
    pub fn remove_purchase(&mut self, id: &str) -> Result<bool, EditError> {
        self.vault.edit(|doc| Ok(doc.remove_purchase(id)))
    }

    /// Sets a preference, validated against the schema.
    pub fn set_preference(&mut self, key: &str, value: &str) -> Result<(), EditError> {
        self.vault.edit(|doc| Ok(doc.set_preference(key, value)?))
    }

    /// Removes a preference; false when it was not set.
    pub fn unset_preference(&mut self, key: &str) -> Result<bool, EditError> {
        self.vault.edit(|doc| Ok(doc.unset_preference(key)))
    }

    /// Everything, as a standard Automerge document (with its full history).
    pub fn export_automerge(&mut self) -> Vec<u8> {
        self.vault.doc.automerge().save()
    }

    /// Imports a JSON export or an Automerge document (detected from the content). An Automerge
    /// document that descends from a vault is merged (the CRDT merge: both sides' edits kept);
    /// anything else has its values written as new changes. Validated first; nothing is written
    /// when it does not fit.
    pub fn import(&mut self, bytes: &[u8]) -> Result<ImportMode, ImportError> {
        let decoded = import::Decoded::decode(bytes)?;
        Ok(self.vault.edit(|doc| decoded.apply(doc))?)
    }
}

#[cfg(test)]
mod tests {
    use crate::vault::new_test_vault;

    use super::*;
    use crate::primitives::Passphrase;

    fn tea() -> PurchaseRecord {
        PurchaseRecord {
            item: "Tea".into(),
            seller: "Acme".into(),
            price: Price::parse("4.50", "EUR").unwrap(),
            date: "2026-11-01".into(),
            time: None,
            category: None,
            tags: vec!["food".into()],
            rating: Some(4),
            review: None,
        }
    }

    #[test]
    fn edits_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = new_test_vault(dir.path());
        v.records_mut().set_profile("email", "ada@example.org").unwrap();
        let id = v.records_mut().add_purchase(&tea()).unwrap();
        v.records_mut().set_preference("diet", "vegan").unwrap();
        drop(v);
        let v = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(v.records().profile_field("email").unwrap(), Some(Value::from("ada@example.org")));
        assert_eq!(v.records().purchase(&id).unwrap().record, tea());
        assert_eq!(v.records().preferences()["diet"], "vegan");
    }

    /// The Automerge export of another vault whose profile name is Ada.
    fn another_vault_named_ada() -> Vec<u8> {
        let other_dir = tempfile::tempdir().unwrap();
        let mut other = new_test_vault(other_dir.path());
        other.records_mut().set_profile("name", "Ada").unwrap();
        other.records_mut().export_automerge()
    }

    #[test]
    fn merged_changes_are_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = another_vault_named_ada();
        let mut v = new_test_vault(dir.path());
        assert_eq!(v.records_mut().import(&bytes).unwrap(), ImportMode::Merged);
        drop(v);
        let v = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(v.records().profile()["name"], "Ada");
    }

    #[test]
    fn a_merge_refused_after_it_applied_leaves_nothing_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = another_vault_named_ada();
        let mut v = new_test_vault(dir.path());
        let heads = v.doc.automerge().get_heads();
        let refused: Result<(), EditError> = v.edit(|doc| {
            let mut theirs = crate::doc::VaultDoc::load(&bytes, crate::doc::Allowed::Foreign)?;
            doc.merge(&mut theirs)?;
            Err(EditError::BadField("refused after the merge".into()))
        });
        assert!(refused.is_err());
        assert_eq!(v.doc.automerge().get_heads(), heads, "the merged changes left memory");
        assert!(v.records().profile().get("name").is_none());
        // A later edit saves only itself, and the file agrees with memory.
        v.records_mut().set_profile("email", "ada@example.org").unwrap();
        drop(v);
        let v = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert!(v.records().profile().get("name").is_none());
        assert_eq!(v.records().profile()["email"], "ada@example.org");
    }

    #[test]
    fn refused_edit_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = new_test_vault(dir.path());
        let before = v.storage_stats().chunk_count;
        let mut bad = tea();
        bad.rating = Some(9);
        assert!(matches!(v.records_mut().add_purchase(&bad), Err(EditError::Schema(_))));
        assert!(v.records_mut().set_profile("nickname", "x").is_err());
        assert_eq!(v.storage_stats().chunk_count, before);
        assert!(v.records().purchases().is_empty());
    }
}
