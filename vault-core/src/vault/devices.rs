//! [`Devices`]: the devices of this vault's identity (this one and those linked to it with
//! `vault device add`), and the replication of the customer's document between them. Owns the
//! sealed table `devices`.
//!
//! The list merges between devices: a device unknown to one side is added, and a removal, once
//! made on any device, wins over every later sighting (a removed device never comes back under
//! the same key). A removed device is refused by every device that knows of the removal.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

use automerge::sync::{State as SyncState, SyncDoc};
use serde::{Deserialize, Serialize};

use super::{EditError, Vault};
use crate::identity::DeviceId;
use crate::pairing::JoinPackage;
use crate::store::StoreError;
use crate::store::sealed::DEVICES;
use crate::store::typed::TypedTable;

/// The identity's devices, one row per device under its key.
const ROWS: TypedTable<DeviceRecord> = TypedTable::new(DEVICES);
use crate::store::sealed::Key;

/// Most devices one identity lists (linked and removed).
pub const MAX_DEVICES: usize = 64;
/// Most addresses kept for one device.
const MAX_ADDRS: usize = 16;
/// How far in the future another device's date for a new device may be (clock differences).
const MAX_CLOCK_SKEW: i64 = 600;

/// What [`Devices::merge`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// The list says this device is removed: it must stop syncing.
    pub removed_here: bool,
    /// A device was added or removed here (sessions should look again at whom they admit).
    pub wrote: bool,
}

/// A device of this vault's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Its device key (the iroh node id).
    pub id: DeviceId,
    /// The name its user gave it when linking it.
    pub name: String,
    /// When it was linked (unix seconds; 0: the first device of a vault made before devices
    /// were listed).
    pub added_at: i64,
    /// When it was removed, if it was.
    #[serde(default)]
    pub removed_at: Option<i64>,
    /// Where it was last reachable.
    #[serde(default)]
    pub addrs: Vec<SocketAddr>,
    /// When this vault last synced with it.
    #[serde(default)]
    pub last_seen: Option<i64>,
}

impl DeviceRecord {
    /// A device list as sent to another device.
    pub fn encode_list(list: &[DeviceRecord]) -> Vec<u8> {
        serde_json::to_vec(list).expect("serializes")
    }

    /// A device list another device sent; `None` when it does not decode.
    pub fn decode_list(bytes: &[u8]) -> Option<Vec<DeviceRecord>> {
        serde_json::from_slice(bytes).ok()
    }

    /// Not removed.
    pub fn is_active(&self) -> bool {
        self.removed_at.is_none()
    }
}

/// A device operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Device names are 1-64 letters, digits, `-`, `_` or `.`.
    #[error("invalid device name \"{0}\": use 1-64 letters, digits, '-', '_' or '.'")]
    BadName(String),
    /// Another device already has that name.
    #[error("a device named \"{0}\" already exists")]
    Exists(String),
    /// No active device by that name.
    #[error("no device named \"{0}\" (see `vault device list`)")]
    NoSuchDevice(String),
    /// Two active devices have that name.
    #[error("two devices are named \"{0}\"; name the one to remove by its device id")]
    Ambiguous(String),
    /// A device cannot remove itself.
    #[error("\"{0}\" is this device; remove it from another device of yours")]
    ThisDevice(String),
    /// The list is full.
    #[error("this identity already lists {MAX_DEVICES} devices")]
    TooMany,
    /// Only a device holding the identity key can link another.
    #[error(
        "this device does not hold your identity key: link new devices from the one that does, or enter your recovery code here first (`vault device recover`)"
    )]
    NoIdentityKey,
    /// The identity key was rotated: device certificates (made by the inception key, naming no
    /// key) cannot be made by the current key yet.
    #[error(
        "linking a device after the identity key was rotated is not supported yet (certificates name no key)"
    )]
    Rotated,
    /// The vault could not be brought up to date with other processes' commits.
    #[error("cannot read the vault's latest changes")]
    Refresh(#[from] EditError),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

use crate::roster::valid_device_name as valid_name;

/// The name a device learned from a roster that names none goes by, until a roster with its
/// real name arrives.
pub(super) fn placeholder_name(id: &DeviceId) -> String {
    format!("device-{}", &id.to_string()[..8])
}

/// The devices of a vault's identity: `vault.devices()` to read, `vault.devices_mut()` to change.
#[derive(Debug)]
pub struct Devices<V> {
    pub(in crate::vault) vault: V,
}

impl<V: Deref<Target = Vault>> Devices<V> {
    pub(super) fn new(vault: V) -> Self {
        Self { vault }
    }

    /// Every device, this one included, in the order they were linked.
    pub fn list(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut out: Vec<DeviceRecord> = ROWS.list(&self.vault.store)?.into_iter().map(|(_, d)| d).collect();
        let this = self.vault.device.public();
        if !out.iter().any(|d| d.id == this) {
            // A vault made before devices were listed: its own device is implied.
            out.push(DeviceRecord {
                id: this,
                name: "this-device".into(),
                added_at: 0,
                removed_at: None,
                addrs: Vec::new(),
                last_seen: None,
            });
        }
        out.sort_by_key(|d| (d.added_at, d.name.clone()));
        Ok(out)
    }

    /// True when `device` is an active device of this identity (this one included).
    pub fn is_active(&self, device: &DeviceId) -> Result<bool, StoreError> {
        Ok(self.list()?.iter().any(|d| d.id == *device && d.is_active()))
    }

    /// Whether to sync with `peer`: another device of this identity, active, while this one is
    /// active too (one read of the list).
    pub fn may_sync_with(&self, peer: &DeviceId) -> Result<bool, StoreError> {
        let this = self.vault.device.public();
        let list = self.list()?;
        let active = |id: &DeviceId| list.iter().any(|d| d.id == *id && d.is_active());
        Ok(*peer != this && active(peer) && active(&this))
    }

    /// When this device was removed from its identity, if it was (and learned it).
    pub fn removed_here(&self) -> Result<Option<i64>, StoreError> {
        let this = self.vault.device.public();
        Ok(self.list()?.into_iter().find(|d| d.id == this).and_then(|d| d.removed_at))
    }

    /// The other active devices.
    pub fn others(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let this = self.vault.device.public();
        Ok(self.list()?.into_iter().filter(|d| d.id != this && d.is_active()).collect())
    }
}

impl Devices<&mut Vault> {
    fn put(vault: &Vault, record: &DeviceRecord) -> Result<(), StoreError> {
        ROWS.put(&vault.store, Key::Id(record.id.as_bytes()), record)
    }

    /// Lists this device under `name` (when a vault is made or joined).
    pub(super) fn add_this(&mut self, name: &str) -> Result<(), StoreError> {
        let record = DeviceRecord {
            id: self.vault.device.public(),
            name: name.to_owned(),
            added_at: self.vault.now(),
            removed_at: None,
            addrs: Vec::new(),
            last_seen: None,
        };
        self.vault.write(|v| Self::put(v, &record))
    }

    /// Links a new device (the inviter's side of pairing, once its user confirmed).
    pub fn add(&mut self, id: DeviceId, name: &str) -> Result<DeviceRecord, DeviceError> {
        if !valid_name(name) {
            return Err(DeviceError::BadName(name.chars().take(64).collect()));
        }
        let now = self.vault.now();
        self.vault.write(|v| {
            let list = v.devices().list()?;
            if list.iter().any(|d| d.name == name && d.is_active()) {
                return Err(DeviceError::Exists(name.to_owned()));
            }
            if list.iter().any(|d| d.id == id) {
                // Never re-list a removed device (nor list one twice).
                return Err(DeviceError::Exists(id.to_string()));
            }
            if list.len() >= MAX_DEVICES {
                return Err(DeviceError::TooMany);
            }
            let record = DeviceRecord {
                id,
                name: name.to_owned(),
                added_at: now,
                removed_at: None,
                addrs: Vec::new(),
                last_seen: None,
            };
            Self::put(v, &record)?;
            Ok(record)
        })
    }

    /// Links the device `joiner` under `name` and makes the package that hands it this
    /// identity: the identity's certificate for it (never the identity key), the list of
    /// devices (this one with the addresses its node last recorded) and the document, as of now
    /// (other processes' commits included). Only a device holding the identity key can.
    pub fn invite(&mut self, joiner: DeviceId, name: &str) -> Result<JoinPackage, DeviceError> {
        let held = self.vault.identity.as_ref().ok_or(DeviceError::NoIdentityKey)?;
        if held.public() != self.vault.identity() {
            // Certificates name no key: one made by a rotated key would not verify anywhere.
            return Err(DeviceError::Rotated);
        }
        let certificate = held.certify(joiner);
        self.vault.refresh()?;
        self.add(joiner, name)?;
        let addrs = self.vault.serving().node_addrs();
        Ok(JoinPackage {
            certificate,
            name: name.to_owned(),
            devices: self.for_peer(&addrs)?,
            document: self.vault.doc.automerge().save(),
        })
    }

    /// Checks a name for a device about to be linked (before its user is asked anything).
    pub fn check_new_name(&self, name: &str) -> Result<(), DeviceError> {
        if self.vault.identity.is_none() {
            return Err(DeviceError::NoIdentityKey);
        }
        if !valid_name(name) {
            return Err(DeviceError::BadName(name.chars().take(64).collect()));
        }
        if self.vault.devices().list()?.iter().any(|d| d.name == name && d.is_active()) {
            return Err(DeviceError::Exists(name.to_owned()));
        }
        Ok(())
    }

    /// Removes an active device, named by its name or its device id: from now on this vault
    /// refuses it, and tells the other devices when it next syncs with them. Two active
    /// devices with that name: refused (name it by id).
    pub fn remove(&mut self, name: &str) -> Result<DeviceRecord, DeviceError> {
        let now = self.vault.now();
        let this = self.vault.device.public();
        self.vault.write(|v| {
            let matching: Vec<DeviceRecord> = v
                .devices()
                .list()?
                .into_iter()
                .filter(|d| d.is_active() && (d.name == name || d.id.to_string() == name))
                .collect();
            let mut record = match matching.as_slice() {
                [one] => one.clone(),
                [] => return Err(DeviceError::NoSuchDevice(name.to_owned())),
                _ => return Err(DeviceError::Ambiguous(name.to_owned())),
            };
            if record.id == this {
                return Err(DeviceError::ThisDevice(name.to_owned()));
            }
            record.removed_at = Some(now);
            Self::put(v, &record)?;
            Ok(record)
        })
    }

    /// Takes in the list another active device of this identity sent. Removals of devices
    /// known here are always applied (a removal wins, whatever the list's length); new devices
    /// are added while the list has room, unless their name is already an active device's here
    /// (a look-alike would make `device rm NAME` remove the wrong one) or their date is in the
    /// future; the sender's own addresses are taken as they are. Returns whether this device
    /// itself is removed there (then it must stop syncing) and whether anything was written.
    ///
    /// Another device's list is only news about addresses and sightings: which devices act for
    /// the identity is the identity key's word, so additions and removals come from this
    /// device's own actions, the join package, and rosters the identity key signed
    /// ([`Devices::keep_own_roster`]); a stolen device cannot plant a device or remove one here.
    pub fn merge(&mut self, from: &DeviceId, theirs: &[DeviceRecord]) -> Result<Merged, StoreError> {
        self.merge_from(from, theirs, false)
    }

    /// [`Devices::merge`], taking additions and removals too: for lists the identity key
    /// vouches for (the join package, a roster).
    pub(super) fn merge_trusted(
        &mut self,
        from: &DeviceId,
        theirs: &[DeviceRecord],
    ) -> Result<Merged, StoreError> {
        self.merge_from(from, theirs, true)
    }

    fn merge_from(
        &mut self,
        from: &DeviceId,
        theirs: &[DeviceRecord],
        trusted: bool,
    ) -> Result<Merged, StoreError> {
        let now = self.vault.now();
        let this = self.vault.device.public();
        self.vault.write(|v| {
            let mut mine = v.devices().list()?;
            let mut out = Merged::default();
            // Removals first, so that no number of new entries can crowd one out.
            let mut ordered: Vec<&DeviceRecord> = theirs.iter().filter(|d| d.removed_at.is_some()).collect();
            ordered.extend(theirs.iter().filter(|d| d.removed_at.is_none()));
            for incoming in ordered.into_iter().take(2 * MAX_DEVICES) {
                let merged = match mine.iter().find(|d| d.id == incoming.id) {
                    Some(known) if !trusted => {
                        let mut m = known.clone();
                        if incoming.id == *from && !incoming.addrs.is_empty() {
                            m.addrs = incoming.addrs.iter().take(MAX_ADDRS).copied().collect();
                        }
                        m
                    }
                    None if !trusted => continue,
                    Some(known) => {
                        let mut m = known.clone();
                        // The name the customer gave replaces one made up for a device learned
                        // from a roster for peers (which names none).
                        let named = incoming.name != placeholder_name(&incoming.id);
                        let clash = mine.iter().any(|d| d.name == incoming.name && d.is_active());
                        if known.name == placeholder_name(&known.id) && named && !clash {
                            m.name = incoming.name.clone();
                        }
                        m.removed_at = match (known.removed_at, incoming.removed_at) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        if incoming.id == *from && !incoming.addrs.is_empty() {
                            m.addrs = incoming.addrs.iter().take(MAX_ADDRS).copied().collect();
                        }
                        m
                    }
                    None => {
                        let taken = |name: &str| mine.iter().any(|d| d.name == name && d.is_active());
                        if mine.len() >= MAX_DEVICES
                            || !valid_name(&incoming.name)
                            || incoming.added_at > now + MAX_CLOCK_SKEW
                        {
                            continue;
                        }
                        // A name already an active device's here: the identity key vouches for
                        // the device (two key holders may each have linked a "phone"), so it is
                        // listed under a made-up name rather than left out, never under the
                        // other's name.
                        let name = match taken(&incoming.name) {
                            false => incoming.name.clone(),
                            true if trusted && !taken(&placeholder_name(&incoming.id)) => {
                                placeholder_name(&incoming.id)
                            }
                            true => continue,
                        };
                        DeviceRecord {
                            name,
                            addrs: incoming.addrs.iter().take(MAX_ADDRS).copied().collect(),
                            last_seen: None,
                            ..incoming.clone()
                        }
                    }
                };
                let mut merged = merged;
                if merged.id == this && merged.removed_at.is_some() {
                    out.removed_here = true;
                }
                if merged.id == *from {
                    merged.last_seen = Some(now);
                }
                match mine.iter_mut().find(|d| d.id == merged.id) {
                    Some(known) if *known == merged => {}
                    Some(known) => {
                        out.wrote |= known.removed_at != merged.removed_at;
                        Self::put(v, &merged)?;
                        *known = merged;
                    }
                    None => {
                        out.wrote = true;
                        Self::put(v, &merged)?;
                        mine.push(merged);
                    }
                }
            }
            Ok(out)
        })
    }

    /// The list to send another device, with this device's current addresses in it.
    pub fn for_peer(&mut self, addrs: &[SocketAddr]) -> Result<Vec<DeviceRecord>, StoreError> {
        let this = self.vault.device.public();
        let mut list = self.vault.devices().list()?;
        for d in &mut list {
            if d.id == this {
                d.addrs = addrs.to_vec();
            }
            d.last_seen = None;
        }
        Ok(list)
    }
}

/// What one session with another device knows of that device's copy of the document (kept
/// in memory for the session; a new session starts afresh).
#[derive(Debug, Default)]
pub struct DeviceSync(SyncState);

impl<V: DerefMut<Target = Vault>> Devices<V> {
    /// The next message of the document's sync with another device of this identity, if any.
    /// The node's watcher brings in other processes' commits; this only reads memory.
    pub fn sync_generate(&mut self, sync: &mut DeviceSync) -> Result<Option<Vec<u8>>, EditError> {
        Ok(self.vault.doc.automerge().sync().generate_sync_message(&mut sync.0).map(|m| m.encode()))
    }

    /// Applies a sync message from another device of this identity to the document, durably.
    /// Returns whether the document changed (the caller then updates the projections). A message that does not decode, or that would
    /// leave a document of the wrong shape, changes nothing.
    pub fn sync_receive(&mut self, sync: &mut DeviceSync, bytes: &[u8]) -> Result<bool, EditError> {
        let state = &mut sync.0;
        let message = crate::doc::sync_message(bytes).ok_or(EditError::BadSyncMessage)?;
        let before = self.vault.doc.automerge().get_heads();
        self.vault.edit(|doc| Ok(doc.receive_sync(state, message)?)).map_err(|e| match e {
            EditError::Doc(_) => EditError::BadSyncMessage,
            other => other,
        })?;
        Ok(self.vault.doc.automerge().get_heads() != before)
    }
}
