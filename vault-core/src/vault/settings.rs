//! The node's settings: the `node` table, sealed rows stored by name. Every role that keeps a
//! setting (addresses, stream states, rosters, key events, mutes, stamps) goes through here.

use crate::store::sealed::{Key, NODE};
use crate::store::{Store, StoreError};

/// The `node` table of one vault.
pub(crate) struct Settings<'a> {
    pub(super) store: &'a Store,
}

impl Settings<'_> {
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(&NODE, Key::Name(key))
    }

    /// Call inside a write transaction.
    pub(crate) fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.put(&NODE, Key::Name(key), value)?;
        Ok(())
    }

    /// Call inside a write transaction.
    pub(crate) fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(&NODE, Key::Name(key))?;
        Ok(())
    }
}
