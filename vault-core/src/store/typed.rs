//! Typed tables: a sealed table declared once with the type of its rows, in the manner of
//! redb's `TableDefinition`. Reading, writing and listing a row encode it (JSON), seal it
//! (through [`Store`]'s sealed rows, so the manifest stays in step) and map a row that does not
//! decode to [`StoreError::Damaged`] naming the table and the row, in this one place.
//!
//! ```text
//! const CONTACTS: TypedTable<Contact> = TypedTable::new(sealed::CONTACTS);
//! let contact = CONTACTS.get(&store, Key::Id(&row))?;
//! ```

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::sealed::{Key, OwnedKey, Table};
use super::{Store, StoreError};

/// A sealed table whose rows are JSON values of `R`.
pub(crate) struct TypedTable<R> {
    table: Table,
    row: PhantomData<fn() -> R>,
}

impl<R> TypedTable<R> {
    /// The typed form of `table`.
    pub(crate) const fn new(table: Table) -> Self {
        Self { table, row: PhantomData }
    }
}

impl<R: Serialize + DeserializeOwned> TypedTable<R> {
    /// The row under `key`; `None` when there is none.
    pub(crate) fn get(&self, store: &Store, key: Key<'_>) -> Result<Option<R>, StoreError> {
        match store.get(&self.table, key)? {
            Some(bytes) => self.decode(&bytes, key).map(Some),
            None => Ok(None),
        }
    }

    /// Writes the row under `key`; call inside a write transaction.
    pub(crate) fn put(&self, store: &Store, key: Key<'_>, row: &R) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(row).expect("rows serialize");
        store.put(&self.table, key, &bytes)?;
        Ok(())
    }

    /// Deletes the row under `key`; false when there was none. Call inside a write transaction.
    pub(crate) fn delete(&self, store: &Store, key: Key<'_>) -> Result<bool, StoreError> {
        store.delete(&self.table, key)
    }

    /// Every row with its key.
    pub(crate) fn list(&self, store: &Store) -> Result<Vec<(OwnedKey, R)>, StoreError> {
        store
            .list(&self.table)?
            .into_iter()
            .map(|(key, bytes, _)| {
                let row = self.decode(&bytes, key.as_key())?;
                Ok((key, row))
            })
            .collect()
    }

    /// At most `limit` rows of a sequence table after `seq`, in order, with their sequence.
    pub(crate) fn list_after(
        &self,
        store: &Store,
        seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, R)>, StoreError> {
        store
            .list_after_limit(&self.table, seq, limit)?
            .into_iter()
            .map(|(key, bytes, _)| Ok((key.seq(), self.decode(&bytes, key.as_key())?)))
            .collect()
    }

    fn decode(&self, bytes: &[u8], key: Key<'_>) -> Result<R, StoreError> {
        serde_json::from_slice(bytes).map_err(|_| StoreError::damaged(&self.table, RowName(key)))
    }
}

/// How a damaged row is named: its key (an id, a name or a number), never its content.
struct RowName<'a>(Key<'a>);

impl fmt::Display for RowName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |b: &[u8]| data_encoding::HEXLOWER.encode(b);
        match self.0 {
            Key::Id(id) => f.write_str(&hex(id)),
            Key::Name(name) => f.write_str(name),
            Key::Seq(seq) => write!(f, "{seq}"),
            Key::Chunk(id, seq) => write!(f, "{}/{seq}", hex(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sealed::CONTACTS;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Row {
        name: String,
    }

    const ROWS: TypedTable<Row> = TypedTable::new(CONTACTS);

    #[test]
    fn rows_round_trip_and_a_row_that_does_not_decode_is_damage_naming_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let vault = crate::vault::new_test_vault(dir.path());
        let store = vault.store_for_tests();
        store.begin_write().unwrap();
        ROWS.put(store, Key::Id(b"ab"), &Row { name: "Ada".into() }).unwrap();
        store.put(&CONTACTS, Key::Id(b"cd"), b"not json").unwrap();
        store.commit().unwrap();
        assert_eq!(ROWS.get(store, Key::Id(b"ab")).unwrap(), Some(Row { name: "Ada".into() }));
        assert_eq!(ROWS.get(store, Key::Id(b"zz")).unwrap(), None);
        let err = ROWS.get(store, Key::Id(b"cd")).unwrap_err();
        assert!(matches!(&err, StoreError::Damaged { table: "contacts", row } if row == "6364"), "{err:?}");
        assert!(ROWS.list(store).is_err(), "a list holding a damaged row is an error, not a shorter list");
    }
}
