//! Rosters in a vault: the one this vault hands to peers (its identity's devices), the one its
//! own devices exchange (with names), and what it learned of its peers' devices from theirs.
//! Stored sealed in the `node` table: `roster` (this identity's newest roster for peers, on a
//! device that cannot sign one) and `devices-of/<identity>` (a peer's devices: the newest
//! roster's active ones, and every removal ever seen).

use super::Devices;
use serde::{Deserialize, Serialize};
use std::ops::{Deref, DerefMut};

use super::{GrantError, Vault};
use crate::identity::{DeviceId, IdentityId};
use crate::roster::{
    DeviceRoster, MAX_ROSTER_ADDRS, MAX_ROSTER_DEVICES, RemovedDevice, RosterDevice, by_identity_key,
};
use crate::statement::Signed;
use crate::store::StoreError;
use crate::vault::settings::Setting;

/// What this vault knows of a peer identity's devices.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PeerDevices {
    /// `issued_at` of the newest roster taken.
    issued_at: i64,
    /// Its active devices.
    active: Vec<RosterDevice>,
    /// Every device any roster of the identity removed.
    removed: Vec<RemovedDevice>,
}

/// Certificates expire, in effect (finding: a peer that only ever meets a stolen device took
/// its statements as the customer's for ever). A device certificate names no time, so the
/// *roster* renews it: a statement a peer's device signed (a grant, a consent request, a
/// denial) is taken only while this vault holds a roster of that identity, signed by its
/// identity key less than this long ago by this vault's clock, that lists the device active.
/// Every session hands the newest roster over first, and a device that holds the identity key
/// signs a fresh one each time, so a device in use is re-certified at every sync, and a stolen
/// device (which cannot sign rosters) has at most this long after the last roster it was given.
/// Chosen over an expiry inside certificates: no certificate format changes (tickets, `Hello`,
/// the signed forms keep their bytes), and the bound is checked by the verifier's clock, not
/// the signer's. The cost: an identity's devices must meet a device that holds its identity key
/// at least this often, or peers refuse their new statements until they do. The identity
/// key's own signatures need no roster.
pub const MAX_ROSTER_AGE: i64 = 30 * 86_400;
/// How far in the future a roster may be dated (clock differences); later ones are refused,
/// or one would hold back every roster signed before its date.
const MAX_CLOCK_SKEW: i64 = 600;

impl<V: Deref<Target = Vault>> Devices<V> {
    /// The roster to hand to peers (it names no device): signed now where this device holds
    /// the identity key, otherwise the newest one another device of this identity passed on
    /// (if any).
    pub fn roster(&self) -> Result<Option<Signed<DeviceRoster>>, StoreError> {
        if self.vault.identity.is_none() {
            return Ok(self.vault.settings().get(Setting::OwnRoster)?.and_then(|b| Signed::from_stored(&b)));
        }
        self.sign_roster(false)
    }

    /// The rosters to hand to another device of this identity: where this device holds the
    /// identity key, the one with the devices' names (so that every device knows them by the
    /// names the customer gave) and the one for peers (which a device without the key passes
    /// on); otherwise the one for peers it was given, if any.
    pub fn rosters_for_devices(&self) -> Result<Vec<Signed<DeviceRoster>>, StoreError> {
        if self.vault.identity.is_none() {
            return Ok(self.roster()?.into_iter().collect());
        }
        Ok(self.sign_roster(true)?.into_iter().chain(self.sign_roster(false)?).collect())
    }

    /// Keeps a roster for peers signed now, for a device about to forget the identity key: it
    /// goes on handing peers the newest word of the identity (call inside the write).
    pub(super) fn keep_roster_before_forgetting(&self) -> Result<(), StoreError> {
        match self.sign_roster(false)? {
            Some(roster) => self.vault.settings().put(Setting::OwnRoster, &roster.to_bytes()),
            None => Ok(()),
        }
    }

    fn sign_roster(&self, named: bool) -> Result<Option<Signed<DeviceRoster>>, StoreError> {
        let Some(signer) = self.vault.identity_signer() else { return Ok(None) };
        let this = self.vault.device.public();
        let here = self.vault.serving().node_addrs();
        let mut active = Vec::new();
        let mut removed = Vec::new();
        for d in self.vault.devices().list()? {
            let name = named.then(|| d.name.clone());
            match d.removed_at {
                Some(removed_at) => removed.push(RemovedDevice { device: d.id, removed_at, name }),
                None => {
                    let addrs = if d.id == this { &here } else { &d.addrs };
                    let addrs = addrs.iter().take(MAX_ROSTER_ADDRS).copied().collect();
                    active.push(RosterDevice { device: d.id, addrs, name });
                }
            }
        }
        let roster =
            DeviceRoster { identity: self.vault.identity(), issued_at: self.vault.now(), active, removed };
        Ok(Signed::sign(roster, signer).ok())
    }

    /// What to hand a device of this identity that calls after it was removed: the roster for
    /// peers, when it names that device removed (the identity key's word, which the device
    /// checks before it believes it). Nothing for any other device.
    pub fn removal_notice(&self, device: &DeviceId) -> Result<Option<Signed<DeviceRoster>>, StoreError> {
        let removed_here = self.list()?.iter().any(|d| d.id == *device && !d.is_active());
        if !removed_here {
            return Ok(None);
        }
        Ok(self.roster()?.filter(|r| r.statement().removed.iter().any(|d| d.device == *device)))
    }

    fn future_dated(&self, roster: &DeviceRoster) -> bool {
        roster.issued_at > self.vault.now().saturating_add(MAX_CLOCK_SKEW)
    }

    fn peer_devices(&self, peer: &IdentityId) -> Result<PeerDevices, StoreError> {
        Ok(self
            .vault
            .settings()
            .get(Setting::DevicesOf(peer))?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    /// True when `peer`'s identity key said `device` was removed from it.
    pub fn is_removed_device(&self, peer: &IdentityId, device: &DeviceId) -> Result<bool, StoreError> {
        Ok(self.peer_devices(peer)?.removed.iter().any(|d| d.device == *device))
    }

    /// True when a connection from (or to) `device` of `peer` must be refused: the device was
    /// removed, or `peer`'s identity key was rotated and its newest roster (signed after the
    /// rotation) does not list the device: a device a thief certified with the old key.
    pub fn is_refused_device(&self, peer: &IdentityId, device: &DeviceId) -> Result<bool, StoreError> {
        if self.is_removed_device(peer, device)? {
            return Ok(true);
        }
        let log = self.vault.keys().key_log(peer)?;
        Ok(log.rotated_at().is_some() && !self.device_vouched(peer, device, &log)?)
    }

    /// The active devices of `peer` its newest roster named (where to reach it).
    pub fn devices_of(&self, peer: &IdentityId) -> Result<Vec<RosterDevice>, StoreError> {
        Ok(self.peer_devices(peer)?.active)
    }

    /// Whether `author`'s newest roster this vault holds lists `device` active and was signed
    /// less than [`MAX_ROSTER_AGE`] ago by this vault's clock: what a statement a peer's device
    /// signed needs to be taken (see [`MAX_ROSTER_AGE`]).
    pub(super) fn recently_vouched(
        &self,
        author: &IdentityId,
        device: &DeviceId,
    ) -> Result<bool, StoreError> {
        let known = self.peer_devices(author)?;
        let fresh = known.issued_at >= self.vault.now().saturating_sub(MAX_ROSTER_AGE);
        Ok(fresh && known.active.iter().any(|d| d.device == *device))
    }

    /// Whether `device`, certified by `author`'s inception key, is still vouched for once that
    /// key was rotated away (see `signer::allowed`): this vault's own devices by its list (the
    /// identity key's word); a peer's by its newest roster, when that roster was signed after
    /// the newest rotation (so by a key the rotation allows) and lists it active.
    pub(super) fn device_vouched(
        &self,
        author: &IdentityId,
        device: &DeviceId,
        log: &crate::key_event::KeyLog,
    ) -> Result<bool, StoreError> {
        let Some(rotated_at) = log.rotated_at() else { return Ok(true) };
        if *author == self.vault.identity() {
            return self.vault.devices().is_active(device);
        }
        let known = self.peer_devices(author)?;
        Ok(known.issued_at >= rotated_at && known.active.iter().any(|d| d.device == *device))
    }
}

impl<V: DerefMut<Target = Vault>> Devices<V> {
    /// Takes in a roster of this vault's own identity that another device passed on, when it
    /// is the identity key's word: on every device, whether or not it holds the identity key
    /// (two devices may hold it, after `vault device recover`), its removals are merged into
    /// the list (a removal is never undone) and the devices it lists are added. On a device
    /// without the key, the newest roster for peers is kept, to hand on. True when the list
    /// changed or a newer roster was kept.
    pub fn keep_own_roster(&mut self, roster: &Signed<DeviceRoster>) -> Result<bool, StoreError> {
        if roster.statement().identity != self.vault.identity()
            || !by_identity_key(roster)
            || self.future_dated(roster.statement())
            || self.vault.keys().refused_signer(roster)?
        {
            return Ok(false);
        }
        let r = roster.statement();
        let mut kept = false;
        if self.vault.identity.is_none() && !r.has_names() {
            let stored = self
                .vault
                .settings()
                .get(Setting::OwnRoster)?
                .and_then(|b| Signed::<DeviceRoster>::from_stored(&b));
            kept = match stored {
                // Equal dates: two rosters signed in one second; taking both is safe (removals
                // only add).
                Some(stored) => r.issued_at >= stored.statement().issued_at && stored != *roster,
                None => true,
            };
            if kept {
                let bytes = roster.to_bytes();
                self.vault.write(|v| v.settings().put(Setting::OwnRoster, &bytes))?;
            }
        }
        // The identity key's word on which devices act for it: merged into the list (the
        // merge is idempotent, and a removal wins over any sighting, older rosters included).
        let this = self.vault.device.public();
        let named = |d: &DeviceId, name: &Option<String>| {
            name.clone().unwrap_or_else(|| super::devices::placeholder_name(d))
        };
        let mut list: Vec<crate::vault::DeviceRecord> = r
            .removed
            .iter()
            .map(|d| crate::vault::DeviceRecord {
                id: d.device,
                name: named(&d.device, &d.name),
                added_at: d.removed_at,
                removed_at: Some(d.removed_at),
                addrs: Vec::new(),
                last_seen: None,
            })
            .collect();
        list.extend(r.active.iter().map(|d| crate::vault::DeviceRecord {
            id: d.device,
            name: named(&d.device, &d.name),
            added_at: r.issued_at,
            removed_at: None,
            addrs: d.addrs.clone(),
            last_seen: None,
        }));
        let merged = self.vault.devices_mut().merge_trusted(&this, &list)?;
        Ok(kept || merged.wrote)
    }

    /// Takes in a roster `peer` sent: only the peer identity's own (signed by its identity key)
    /// counts. Its removals are added to what is known; its active devices replace the known
    /// ones when it is the newest seen.
    pub fn accept_roster(
        &mut self,
        peer: IdentityId,
        roster: &Signed<DeviceRoster>,
    ) -> Result<(), StoreError> {
        let r = roster.statement();
        if r.identity != peer
            || !by_identity_key(roster)
            || peer == self.vault.identity()
            || self.future_dated(r)
            || self.vault.keys().refused_signer(roster)?
        {
            tracing::debug!(%peer, "ignoring a roster that is not the peer's own");
            return Ok(());
        }
        let mut known = self.peer_devices(&peer)?;
        let mut changed = false;
        for gone in &r.removed {
            // An identity never lists more devices than this, removed ones included.
            if known.removed.len() < MAX_ROSTER_DEVICES
                && !known.removed.iter().any(|k| k.device == gone.device)
            {
                known.removed.push(gone.clone());
                changed = true;
            }
        }
        if r.issued_at > known.issued_at {
            known.issued_at = r.issued_at;
            known.active = r.active.clone();
            changed = true;
        }
        let removed: Vec<DeviceId> = known.removed.iter().map(|d| d.device).collect();
        known.active.retain(|d| !removed.contains(&d.device));
        if changed {
            let bytes = serde_json::to_vec(&known).expect("serializes");
            self.vault.write(|v| v.settings().put(Setting::DevicesOf(&peer), &bytes))?;
        }
        Ok(())
    }

    /// True when this vault shares with `peer` (live or ended grants) or has it as a contact:
    /// the peers that get this identity's roster, and whose rosters are kept when they dial
    /// in. A stranger learns nothing of this identity's devices and stores nothing here.
    pub(crate) fn knows_peer(&mut self, peer: &IdentityId) -> Result<bool, GrantError> {
        if self.vault.contacts().petname(peer).is_some() {
            return Ok(true);
        }
        let (live, ended) = self.vault.grants_mut().shares_for(peer)?;
        Ok(!live.is_empty() || !ended.is_empty())
    }
}
