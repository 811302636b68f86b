//! The node's own settings, stored sealed by name next to the grants it serves: the addresses
//! it is bound to, and what serving streams persist to resume (see [`super::serving`]).

use crate::store::StoreError;
use crate::store::sealed::{Key, NODE};
use crate::vault::Vault;

impl Vault {
    pub(in crate::vault) fn node_value(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(&NODE, Key::Name(key))
    }

    pub(in crate::vault) fn put_node_value(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.put(&NODE, Key::Name(key), value)?;
        Ok(())
    }

    pub(in crate::vault) fn delete_node_value(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(&NODE, Key::Name(key))?;
        Ok(())
    }

    /// Records the addresses the running node is bound to, so that `vault id` prints the same
    /// ticket as `vault serve`.
    pub fn set_node_addrs(&mut self, addrs: &[std::net::SocketAddr]) -> Result<(), StoreError> {
        let text = serde_json::to_vec(addrs).expect("addresses serialize");
        self.write(|v| v.put_node_value("addrs", &text))
    }

    /// The addresses recorded by [`Vault::set_node_addrs`].
    pub fn node_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.node_value("addrs")
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}
