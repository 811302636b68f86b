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

    /// The port the node last served on when none was asked for: it binds the same one again,
    /// so that the ticket its peers saved still reaches it.
    pub fn node_port(&self) -> Option<u16> {
        let bytes = self.vault.settings().get(Setting::ServePort).ok().flatten()?;
        Some(u16::from_le_bytes(bytes.as_slice().try_into().ok()?)).filter(|p| *p != 0)
    }
}

impl<V: DerefMut<Target = Vault>> Serving<V> {
    /// Records the addresses the node is bound to, so that `vault id` and `vault status` print
    /// the same ticket as `vault serve` (kept once it stops: it binds them again), and the port
    /// to bind again (`None`: keep the one recorded).
    pub fn set_node_addrs(
        &mut self,
        addrs: &[std::net::SocketAddr],
        port: Option<u16>,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_vec(addrs).expect("addresses serialize");
        self.vault.write(|v| {
            v.settings().put(Setting::Addrs, &text)?;
            match port {
                Some(port) => v.settings().put(Setting::ServePort, &port.to_le_bytes()),
                None => Ok(()),
            }
        })
    }
}
