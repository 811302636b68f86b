//! This device's keys: its device key, and either the identity key (the first device, or one
//! where the recovery code was entered) or the identity's certificate for this device (a
//! linked device). Also the recovery code: the identity's *next* key written out for paper
//! (pre-rotation, see `key_event`), the way back when the device that held the identity key is
//! lost, and the way to keep that key on no device at all.
//!
//! Entering the recovery code rotates: the next key becomes current, a new next key is committed
//! and printed as the new code, and the rotation event reaches the other devices and the peers.
//! The code is shown once, where the next key was made (`vault device recovery-code` after
//! `init` or the upgrade, or `vault device recover`), and is then on paper only: a thief who
//! takes a device and its passphrase holds at most the current key, which cannot rotate.
//!
//! Codes made before key events held the identity key itself. Such a code still puts the
//! current key on a device while no rotation replaced it (as before), but it cannot rotate;
//! the upgrade made a new code for that.

use std::ops::{Deref, DerefMut};
use zeroize::Zeroizing;

use super::Vault;
use crate::identity::{DeviceCertificate, DeviceKey, Identity};
use crate::store::{Store, StoreError};

/// Prefix of a recovery code; the digit is its format version.
const RECOVERY_PREFIX: &str = "vaultkey1";

/// This device's keys.
pub(super) struct LoadedKeys {
    pub(super) identity: Option<Identity>,
    pub(super) device: DeviceKey,
    pub(super) certificate: DeviceCertificate,
}

/// Reads and checks the keys: the certificate must name this device and, when the identity key
/// is here, be that identity's.
pub(super) fn read(store: &Store) -> Result<LoadedKeys, StoreError> {
    let device = DeviceKey::from_secret_bytes(&*store.read_secret("device")?);
    // Read (and so checked) at every open like the other secrets, though used only when shown.
    store.read_secret_if_any(super::key_state::PENDING_NEXT)?;
    let damaged = || StoreError::damaged(&crate::store::sealed::SECRETS, "certificate");
    let (identity, certificate) = match store.read_secret_if_any("identity")? {
        Some(seed) => {
            let identity = Identity::from_secret_bytes(&seed);
            // After a rotation the key held is not the identity id; the certificate the inception
            // key made for this device was stored at the rotation and stays.
            let certificate = match store.read_certificate()? {
                Some(certificate) => {
                    certificate.verify(device.public()).map_err(|_| damaged())?;
                    certificate
                }
                None => identity.certify(device.public()),
            };
            (Some(identity), certificate)
        }
        None => {
            let certificate = store.read_certificate()?.ok_or_else(damaged)?;
            certificate.verify(device.public()).map_err(|_| damaged())?;
            (None, certificate)
        }
    };
    Ok(LoadedKeys { identity, device, certificate })
}

/// A recovery code could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// Not a recovery code (wrong prefix, not base32, wrong length or checksum).
    #[error("that is not a recovery code (check for a typo: it starts with {RECOVERY_PREFIX})")]
    Malformed,
    /// A valid code, but not this identity's next key nor its current one: another identity's,
    /// or one a later rotation replaced.
    #[error(
        "that recovery code is not this identity's current one (it is for another identity, or a later rotation replaced it)"
    )]
    OtherIdentity,
    /// The code was used up by a rotation (its key became current then, or was replaced since).
    #[error("that recovery code was used up by a rotation; use the code printed at the last rotation")]
    RotatedAway,
    /// This device does not know its identity's key events yet, so it cannot check a new code.
    #[error(
        "this device has not learned your identity's key events yet; let it sync with another of your devices first"
    )]
    NoKeyState,
    /// The code was shown already: the next key is on paper only.
    #[error("the recovery code was shown already and is no longer on this device (it is on paper only)")]
    Shown,
    /// This device does not hold the identity key, so it has no code to show.
    #[error(
        "this device does not hold the identity key; its recovery code is on paper, or on the device that holds it"
    )]
    NotHeld,
    /// The key event could not be made.
    #[error("cannot make the key event")]
    KeyEvent(#[source] crate::key_event::KeyEventError),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes an identity key as a recovery code: prefix, then base32 of the 32-byte seed and a
/// 4-byte checksum, in groups of four for copying by hand.
fn encode_recovery(identity: &Identity) -> Zeroizing<String> {
    let seed = identity.secret_bytes();
    let mut raw = Zeroizing::new(Vec::with_capacity(36));
    raw.extend_from_slice(&seed[..]);
    raw.extend_from_slice(&blake3::hash(&seed[..]).as_bytes()[..4]);
    let body = Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&raw).to_ascii_lowercase());
    let mut out = Zeroizing::new(String::from(RECOVERY_PREFIX));
    for (i, c) in body.chars().enumerate() {
        if i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Reads a recovery code (case, spaces and dashes do not matter).
fn decode_recovery(code: &str) -> Result<Identity, RecoveryError> {
    let code = code.trim().to_ascii_lowercase();
    let body = code.strip_prefix(RECOVERY_PREFIX).ok_or(RecoveryError::Malformed)?;
    let cleaned: Zeroizing<String> = Zeroizing::new(
        body.chars().filter(|c| !matches!(c, '-' | ' ')).collect::<String>().to_ascii_uppercase(),
    );
    let raw = Zeroizing::new(
        data_encoding::BASE32_NOPAD.decode(cleaned.as_bytes()).map_err(|_| RecoveryError::Malformed)?,
    );
    if raw.len() != 36 || blake3::hash(&raw[..32]).as_bytes()[..4] != raw[32..] {
        return Err(RecoveryError::Malformed);
    }
    let seed = Zeroizing::new(<[u8; 32]>::try_from(&raw[..32]).map_err(|_| RecoveryError::Malformed)?);
    Ok(Identity::from_secret_bytes(&seed))
}

/// This identity's keys as this device holds them: the recovery code (the next key), restoring and forgetting the identity key, and every identity's key events: `vault.keys()`, `vault.keys_mut()`.
#[derive(Debug)]
pub struct Keys<V> {
    pub(in crate::vault) vault: V,
}

impl<V: Deref<Target = Vault>> Keys<V> {
    pub(in crate::vault) fn new(vault: V) -> Self {
        Self { vault }
    }
}

impl<V: Deref<Target = Vault>> Keys<V> {
    /// True while the recovery code waits on this device to be shown (and written down).
    pub fn recovery_code_pending(&self) -> Result<bool, StoreError> {
        Ok(self.vault.identity.is_some()
            && self.vault.store.read_secret_if_any(super::key_state::PENDING_NEXT)?.is_some())
    }
}

impl<V: DerefMut<Target = Vault>> Keys<V> {
    /// The recovery code, to write down: the identity's next key, shown once. It waits on the
    /// device where it was made until shown, and is removed from it then.
    pub fn recovery_code(&mut self) -> Result<Zeroizing<String>, RecoveryError> {
        if self.vault.identity.is_none() {
            return Err(RecoveryError::NotHeld);
        }
        let seed = self
            .vault
            .store
            .read_secret_if_any(super::key_state::PENDING_NEXT)?
            .ok_or(RecoveryError::Shown)?;
        let code = encode_recovery(&Identity::from_secret_bytes(&seed));
        self.vault.write(|v| v.store.delete_secret(super::key_state::PENDING_NEXT))?;
        Ok(code)
    }

    /// Enters a recovery code on this device (after the device that held the identity key was
    /// lost, or to add or remove devices from here). The code of the next key rotates: that key
    /// becomes current here, a fresh next key is committed, and its code is returned, to write
    /// down (shown once). A code made before key events (the current key itself) takes that key
    /// onto this device without rotating, while no rotation replaced it; then `None`. The
    /// certificate for this device stays as it is.
    pub fn restore_identity_key(&mut self, code: &str) -> Result<Option<Zeroizing<String>>, RecoveryError> {
        let key = decode_recovery(code)?;
        let me = self.vault.identity();
        let mut log = self.key_log(&me)?;
        let Some(last) = log.last().cloned() else {
            // No key event known here: only the identity key itself can be taken on.
            if key.public() == me {
                self.take_identity_key(key)?;
                return Ok(None);
            }
            return Err(RecoveryError::NoKeyState);
        };
        if last.commits_to(&key.public()) {
            let next = Identity::generate();
            let event = crate::key_event::KeyEvent::rotation(
                &last,
                &key,
                &next.public(),
                self.vault.now().max(last.at()),
            );
            log.clone().append(event.clone()).map_err(RecoveryError::KeyEvent)?;
            let certificate = self.vault.certificate;
            let seed = key.secret_bytes();
            self.vault.write(|v| {
                // The certificate the inception key made for this device stays this device's.
                v.store.write_certificate(&certificate)?;
                v.store.write_secret("identity", &seed[..])?;
                v.store.delete_secret(super::key_state::PENDING_NEXT)?;
                super::key_state::put_own_key_event(v, &mut log, event)?;
                Ok::<_, RecoveryError>(())
            })?;
            self.vault.identity = Some(key);
            return Ok(Some(encode_recovery(&next)));
        }
        // A code made before key events: the inception key, while nothing rotated it. (After a
        // rotation the used code is the current key; it is refused all the same, so that a code
        // on paper is good for one thing only.)
        if key.public() == me && log.rotations() == 0 {
            self.take_identity_key(key)?;
            return Ok(None);
        }
        if log.events().iter().any(|e| e.key() == key.public()) {
            return Err(RecoveryError::RotatedAway);
        }
        Err(RecoveryError::OtherIdentity)
    }

    fn take_identity_key(&mut self, key: Identity) -> Result<(), RecoveryError> {
        let seed = key.secret_bytes();
        self.vault.write(|v| v.store.write_secret("identity", &seed[..]).map_err(RecoveryError::from))?;
        self.vault.identity = Some(key);
        Ok(())
    }

    /// Reads this device's keys again (another process may have restored or forgotten the
    /// identity key). The device key never changes.
    pub(super) fn reload_keys(&mut self) -> Result<(), StoreError> {
        let keys = read(&self.vault.store)?;
        self.vault.identity = keys.identity;
        self.vault.certificate = keys.certificate;
        Ok(())
    }

    /// Removes the identity key from this device, keeping the identity's certificate for it:
    /// from then on it signs as a device, and can be removed like any other. Only with the
    /// recovery code typed back (proof it was written down): without it, no device could ever
    /// link or remove another. The code typed is the identity's next key (or, for a code made
    /// before key events, the key held here).
    pub fn forget_identity_key(&mut self, code: &str) -> Result<(), RecoveryError> {
        let Some(held) = &self.vault.identity else { return Err(RecoveryError::NotHeld) };
        let typed = decode_recovery(code)?;
        let log = self.key_log(&self.vault.identity())?;
        let next = log.last().is_some_and(|last| last.commits_to(&typed.public()));
        if !next && typed.public() != held.public() {
            return Err(RecoveryError::OtherIdentity);
        }
        let certificate = self.vault.certificate;
        self.vault.write(|v| {
            v.store.write_certificate(&certificate)?;
            v.devices().keep_roster_before_forgetting()?;
            v.store.delete_secret("identity")?;
            v.store.delete_secret(super::key_state::PENDING_NEXT)?;
            Ok::<_, RecoveryError>(())
        })?;
        self.vault.identity = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_roundtrip_and_catch_typos() {
        let identity = Identity::generate();
        let code = encode_recovery(&identity);
        assert!(code.starts_with("vaultkey1-"));
        assert_eq!(decode_recovery(&code).unwrap().public(), identity.public());
        assert_eq!(
            decode_recovery(&code.to_uppercase().replace('-', " ")).unwrap().public(),
            identity.public()
        );
        // One character changed: the checksum catches it.
        let mut typo = code.to_string();
        let last = typo.pop().unwrap();
        typo.push(if last == 'a' { 'b' } else { 'a' });
        assert!(matches!(decode_recovery(&typo), Err(RecoveryError::Malformed)));
        assert!(matches!(decode_recovery("vault1abc"), Err(RecoveryError::Malformed)));
        assert!(matches!(decode_recovery(""), Err(RecoveryError::Malformed)));
    }
}

#[cfg(test)]
mod upgrade_tests {
    use super::*;
    use crate::primitives::{KdfParams, Passphrase};

    /// A vault made before key events: its recovery code was the identity key itself. Opened
    /// with this version it commits to a next key; the old code still takes the key onto a
    /// device while nothing rotated, but cannot rotate; the new code does.
    #[test]
    fn a_vault_from_before_key_events_commits_at_upgrade_and_the_old_code_cannot_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS);
        let mut v = open().create(&Passphrase::new("pw")).unwrap();
        let me = v.identity();
        // Back to a vault of before: no key event, no next key waiting.
        v.write(|v| {
            v.settings().delete(crate::vault::settings::Setting::KeyEvents(&me))?;
            v.store.delete_secret(super::super::key_state::PENDING_NEXT)
        })
        .unwrap();
        let old_code = encode_recovery(v.identity_key().unwrap());
        drop(v);

        let mut v = open().unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(v.keys().key_log(&me).unwrap().events().len(), 1, "event 0 made at the upgrade");
        assert!(v.keys().recovery_code_pending().unwrap());
        // The old code: the current key, taken as it is (no rotation).
        assert!(v.keys_mut().restore_identity_key(&old_code).unwrap().is_none());
        assert_eq!(v.keys().key_log(&me).unwrap().rotations(), 0);
        let new_code = v.keys_mut().recovery_code().unwrap();
        assert_ne!(new_code.as_str(), old_code.as_str());
        assert!(!v.keys().recovery_code_pending().unwrap());
        assert!(v.keys_mut().restore_identity_key(&new_code).unwrap().is_some(), "the new code rotates");
        assert_eq!(v.keys().key_log(&me).unwrap().rotations(), 1);
        assert!(matches!(v.keys_mut().restore_identity_key(&old_code), Err(RecoveryError::RotatedAway)));
        // Reopened, the device holds the new key with the certificate the inception key made.
        drop(v);
        let v = open().unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(v.identity(), me);
        assert_ne!(v.identity_key().unwrap().public(), me);
        assert!(v.certificate.verify(v.device.public()).is_ok());
    }
}
