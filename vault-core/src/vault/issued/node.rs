//! The node's own settings, stored sealed by name next to the grants it serves: the addresses
//! it is bound to, and what serving streams persist to resume (see [`super::serving`]).

use super::serving::Serving;
use crate::store::StoreError;
use crate::vault::Vault;
use crate::vault::settings::Setting;
use std::ops::{Deref, DerefMut};

impl<V: Deref<Target = Vault>> Serving<V> {
    /// The addresses recorded by [`Serving::set_node_addrs`].
    pub fn node_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.vault
            .settings()
            .get(Setting::Addrs)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

impl<V: DerefMut<Target = Vault>> Serving<V> {
    /// Records the addresses the running node is bound to, so that `vault id` prints the same
    /// ticket as `vault serve`.
    pub fn set_node_addrs(&mut self, addrs: &[std::net::SocketAddr]) -> Result<(), StoreError> {
        let text = serde_json::to_vec(addrs).expect("addresses serialize");
        self.vault.write(|v| v.settings().put(Setting::Addrs, &text))
    }
}
