//! Key states in a vault: this identity's chain of key events (see `key_event`) and the chains
//! of the identities it deals with, each stored sealed in the `node` table as
//! `key-events/<identity>` (the events' wire forms, one after another), next to what the vault
//! knows of their devices (`devices-of/<identity>`, roster.rs).
//!
//! Chains arrive from this identity's other devices (device sessions) and from peers (the
//! `KeyEvents` frame, sent before the roster). The first chain seen wins: an event that
//! contradicts one held here is refused (see `KeyLog::merge`). When this identity's chain moves
//! past the key this device holds (another device ran `vault device recover`), the device drops
//! that key and signs as a device from then on: the old key signs nothing anyone takes any more.
//!
//! Which signer a statement may have is decided once, in [`Keys::refused_signer`], with the
//! key-state rule of `signer::allowed`, and the freshness rule for devices
//! ([`MAX_ROSTER_AGE`]).

use super::Keys;
use std::ops::{Deref, DerefMut};
use zeroize::Zeroizing;

use super::Vault;
use crate::identity::{Identity, IdentityId};
use crate::key_event::{KeyEvent, KeyLog};
use crate::signer::{self, By};
use crate::statement::{Signed, Statement};
use crate::store::StoreError;
use crate::store::sealed::NODE;
use crate::vault::settings::Setting;

/// The secret row of the next key while it waits on this device to be written down (a vault
/// made here, or upgraded to key events): `vault device recovery-code` shows it once and
/// removes it, so that from then on it is on paper only.
pub(super) const PENDING_NEXT: &str = "identity-next";

impl<V: Deref<Target = Vault>> Keys<V> {
    /// The key state this vault holds for `identity` (empty: no event known).
    pub fn key_log(&self, identity: &IdentityId) -> Result<KeyLog, StoreError> {
        let key = Setting::KeyEvents(identity);
        match self.vault.settings().get(key)? {
            None => Ok(KeyLog::default()),
            Some(bytes) => KeyLog::from_stored(identity, &bytes).map_err(|_| StoreError::damaged(&NODE, key)),
        }
    }

    /// This identity's key events, to hand to its other devices and to peers.
    pub fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError> {
        Ok(self.key_log(&self.vault.identity())?.events().to_vec())
    }

    /// True when `statement` must be refused for who signed it: a device its author's identity
    /// removed (whatever date it claims: a removed device could claim any), or a key (or a
    /// device certified by a key) the author's key state does not allow at the statement's
    /// time: a key rotated away before it. The one place the key-state rule is applied.
    pub(crate) fn refused_signer<T: Statement>(&self, statement: &Signed<T>) -> Result<bool, StoreError> {
        let author = statement.statement().author();
        if let Some(device) = statement.signed_by()
            && self.vault.devices().is_removed_device(&author, &device)?
        {
            return Ok(true);
        }
        let log = self.key_log(&author)?;
        let vouched = match statement.by() {
            By::Device(cert) => {
                if author != self.vault.identity()
                    && !self.vault.devices().recently_vouched(&author, &cert.device())?
                {
                    return Ok(true);
                }
                self.vault.devices().device_vouched(&author, &cert.device(), &log)?
            }
            _ => false,
        };
        Ok(!signer::allowed(statement.by(), &author, statement.statement().made_at(), &log, vouched))
    }
}

impl<V: DerefMut<Target = Vault>> Keys<V> {
    /// Takes in key events of `identity` another device or a peer sent. Returns whether the
    /// chain held here grew. A chain that conflicts with the one held here is refused (logged,
    /// nothing stored). When this identity's chain moved past the key this device holds, the key
    /// is dropped here (see the module documentation).
    pub fn accept_key_events(
        &mut self,
        identity: IdentityId,
        events: &[KeyEvent],
    ) -> Result<bool, StoreError> {
        if events.is_empty() {
            return Ok(false);
        }
        let mut log = self.key_log(&identity)?;
        let added = match log.merge(&identity, events) {
            Ok(added) => added,
            Err(e) => {
                tracing::warn!(%identity, error = %e, "refusing key events");
                return Ok(false);
            }
        };
        if added == 0 {
            return Ok(false);
        }
        let current = log.current_key(&identity);
        let drop_held = identity == self.vault.identity()
            && self.vault.identity.as_ref().is_some_and(|held| held.public() != current);
        let bytes = log.to_bytes();
        let certificate = self.vault.certificate;
        self.vault.write(|v| {
            v.settings().put(Setting::KeyEvents(&identity), &bytes)?;
            if drop_held {
                v.store.write_certificate(&certificate)?;
                v.store.delete_secret("identity")?;
                v.store.delete_secret(PENDING_NEXT)?;
            }
            Ok::<_, StoreError>(())
        })?;
        if drop_held {
            tracing::warn!("the identity key was rotated on another device: this device no longer holds it");
            self.vault.identity = None;
        }
        Ok(true)
    }

    /// A vault that holds the identity key and has no key event yet (made before key events
    /// existed, or just made): commits to a fresh next key (event 0) and keeps that key, sealed,
    /// until `vault device recovery-code` shows it. Its old recovery code (the identity key
    /// itself) can no longer rotate anything.
    pub(super) fn upgrade_key_events(&mut self) -> Result<(), StoreError> {
        let Some(held) = &self.vault.identity else { return Ok(()) };
        // Only the device the identity was made on (no stored certificate): a device that took
        // the key on with an old code would make a second, conflicting event 0.
        if held.public() != self.vault.identity()
            || self.key_log(&self.vault.identity())?.last().is_some()
            || self.vault.store.read_certificate()?.is_some()
        {
            return Ok(());
        }
        let next = Identity::generate();
        let event = KeyEvent::inception(held, &next.public(), self.vault.now());
        let seed: Zeroizing<[u8; 32]> = next.secret_bytes();
        self.vault.write(|v| {
            let mut log = KeyLog::default();
            put_own_key_event(v, &mut log, event)?;
            v.store.write_secret(PENDING_NEXT, &seed[..])
        })
    }
}
/// Appends an event this vault made to its own chain (checked like any other).
pub(super) fn put_own_key_event(v: &Vault, log: &mut KeyLog, event: KeyEvent) -> Result<(), StoreError> {
    let identity = v.identity();
    log.append(event).map_err(|_| StoreError::damaged(&NODE, Setting::KeyEvents(&identity)))?;
    v.settings().put(Setting::KeyEvents(&identity), &log.to_bytes())
}
