//! Contacts across devices: each contact row's writes are stamped, logged to the shared log and
//! merged by stamp (the later write wins, the same on every device).

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};

use super::{Entry, Replication};
use crate::identity::DeviceId;
use crate::store::StoreError;
use crate::store::sealed::CONTACTS as TABLE;
use crate::store::sealed::Key;
use crate::vault::Vault;
use crate::vault::contacts::{Contact, ROWS, check_addrs, valid_name};
use crate::vault::settings::Setting;

/// How a contact row's writes are ordered when devices' rows merge (see replication.rs): a
/// counter one past the row's stamp when written (so a write made after seeing another wins
/// over it), then the time, then the device. Kept after a removal, so that an older write
/// loses to it.
type Stamp = (i64, i64, DeviceId);

/// Highest contact clock: far above any real count of writes to one row.
const MAX_CONTACT_CLOCK: i64 = 1 << 40;
/// How far a merged write's clock may be ahead of this device's for the row. A row's clock
/// grows by one per write, so this bounds the writes another device made to one row unseen.
const MAX_CLOCK_STEP: i64 = 1 << 20;

impl<V: Deref<Target = Vault>> Replication<V> {
    fn contact_stamp(&self, row: &[u8]) -> Result<Option<Stamp>, StoreError> {
        Ok(self
            .vault
            .settings()
            .get(Setting::ContactStamp(row))?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Every contact row's state as last written here, with its stamp's clock and time
    /// unchanged (removed rows included), for logging the whole sharing state again after a
    /// fork of the shared log (replication/fork.rs): it wins nowhere it would not have won.
    pub(in crate::vault) fn contact_entries(&self) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        let mut stamped = HashSet::new();
        for row in self.vault.settings().stamped_contacts()? {
            let Some((clock, at, by)) = self.contact_stamp(&row)? else { continue };
            let contact = ROWS.get(&self.vault.store, Key::Id(&row))?;
            stamped.insert(row.clone());
            out.push(Entry::Contact { row, clock, at, contact, by: Some(by) });
        }
        for (row, contact) in self.vault.contacts().rows()? {
            if !stamped.contains(&row) {
                out.push(Entry::Contact { row, clock: 0, at: 0, contact: Some(contact), by: None });
            }
        }
        Ok(out)
    }

    /// Logs a contact row's new state (`None`: removed) and stamps the row; call inside the
    /// write transaction that changed it.
    pub(in crate::vault) fn log_contact(
        &self,
        row: &[u8],
        at: i64,
        contact: Option<&Contact>,
    ) -> Result<(), StoreError> {
        let clock = self.contact_stamp(row)?.map_or(0, |s| s.0).saturating_add(1).min(MAX_CONTACT_CLOCK);
        self.log_shared(&Entry::Contact {
            row: row.to_vec(),
            clock,
            at,
            contact: contact.cloned(),
            by: None,
        })?;
        let stamp: Stamp = (clock, at, self.vault.device_key().public());
        self.vault
            .settings()
            .put(Setting::ContactStamp(row), &serde_json::to_vec(&stamp).expect("serializes"))
    }
}

impl<V: DerefMut<Target = Vault>> Replication<V> {
    /// Merges a contact row another device wrote at `stamp`: it wins when its stamp is later
    /// than this device's of the row. False when it does not check out.
    pub(in crate::vault) fn merge_contact(
        &mut self,
        row: &[u8],
        stamp: Stamp,
        contact: Option<&Contact>,
    ) -> Result<bool, StoreError> {
        let bad = |c: &Contact| {
            !valid_name(&c.name) || check_addrs(&c.addrs).is_err() || c.identity == self.vault.identity()
        };
        if row.is_empty() || row.len() > 32 || contact.is_some_and(bad) {
            return Ok(false);
        }
        // A clock far ahead would pin the row against every later write.
        let mine = self.contact_stamp(row)?;
        let ahead = stamp.0 > mine.map_or(0, |m| m.0).saturating_add(MAX_CLOCK_STEP);
        if ahead || stamp.0 > MAX_CONTACT_CLOCK {
            return Ok(false);
        }
        if mine.is_some_and(|mine| mine > stamp) {
            return Ok(true);
        }
        if mine == Some(stamp) {
            // One stamp, two writes: only a device's file that went on from two copies makes
            // them (a restore, a copy). The greater content wins, the same on every device.
            let held = self.vault.store.get(&TABLE, Key::Id(row))?;
            let incoming = contact.map(|c| serde_json::to_vec(c).expect("serializes"));
            if held >= incoming {
                return Ok(true);
            }
        }
        match contact {
            Some(c) => {
                self.vault.store.put(&TABLE, Key::Id(row), &serde_json::to_vec(c).expect("serializes"))?;
            }
            None => {
                self.vault.store.delete(&TABLE, Key::Id(row))?;
            }
        }
        self.vault
            .settings()
            .put(Setting::ContactStamp(row), &serde_json::to_vec(&stamp).expect("serializes"))?;
        Ok(true)
    }
}
