//! A new data key, and optionally a new passphrase: [`VaultOptions::rekey`], behind `vault
//! rekey` and `vault passwd`.
//!
//! The passphrase alone never changes: a new passphrase always comes with a new data key. A
//! passphrase is changed because it may have leaked, and whoever learnt it may have unwrapped
//! the data key from a copy of the file; only a new data key keeps what is written afterwards
//! from that key. It costs one pass over the rows, which `vault passwd` can afford.
//!
//! A copy of the file taken before keeps opening with the old passphrase (and the old key): a
//! rekey protects what is written after it, not what was copied before.

use super::VaultOptions;
use super::open::OpenError;
use crate::primitives::Passphrase;
use crate::store::{Store, StoreError};

/// A rekey could not be done; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RekeyError {
    /// The vault did not open with the current passphrase.
    #[error("cannot open the vault")]
    Open(#[source] OpenError),
    /// An empty new passphrase would leave the vault unprotected.
    #[error("the new passphrase must not be empty")]
    EmptyPassphrase,
    /// Part of the vault is damaged (a row does not decrypt, rows were removed or put back):
    /// re-sealing it would make the damage the new baseline, so nothing was changed.
    #[error("the vault is damaged, so its key was not changed")]
    Damaged(#[source] StoreError),
    /// The storage layer failed (or another process changed the key meanwhile); nothing was
    /// changed.
    #[error("cannot change the vault's key; nothing was changed")]
    Store(#[source] StoreError),
}

impl From<StoreError> for RekeyError {
    fn from(e: StoreError) -> Self {
        if e.is_damage() { RekeyError::Damaged(e) } else { RekeyError::Store(e) }
    }
}

/// What [`Rekey::run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rekeyed {
    /// Rows re-sealed under the new data key.
    pub rows: usize,
    /// Whether the write-ahead log, which held the old blobs, was emptied at once. When another
    /// process was reading, it is emptied at a later checkpoint.
    pub log_emptied: bool,
}

/// A vault opened with its passphrase, ready to take a new data key: [`VaultOptions::rekey`],
/// then [`Rekey::run`]. In between (a new passphrase being typed, say) nothing is locked; a key
/// changed meanwhile by another process makes `run` refuse.
pub struct Rekey {
    store: Store,
}

impl std::fmt::Debug for Rekey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rekey").field("path", &self.store.path()).finish_non_exhaustive()
    }
}

impl VaultOptions {
    /// Opens the vault with `passphrase` (which a rekey needs: the new key is wrapped under a
    /// passphrase, never under a lent key) to give it a new data key with [`Rekey::run`].
    /// Nothing is modified here.
    pub fn rekey(self, passphrase: &Passphrase) -> Result<Rekey, RekeyError> {
        Ok(Rekey { store: self.open_store(passphrase).map_err(RekeyError::Open)? })
    }
}

impl Rekey {
    /// Replaces the vault's data key with a fresh random one, re-sealing every row in one
    /// transaction (a kill at any point leaves the old vault or the new one), and wraps it
    /// under `passphrase`: the current one again, or a new one.
    ///
    /// Afterwards every key an unlock agent lent ([`UnlockKey`](crate::UnlockKey)) is refused
    /// as stale, and a process that opened the vault before can no longer write to it (nor read
    /// a row it had not read). The caller keeps a running node, which writes with the key it
    /// opened with, from running meanwhile: its writes would be refused, not lost.
    pub fn run(mut self, passphrase: &Passphrase) -> Result<Rekeyed, RekeyError> {
        if passphrase.is_empty() {
            return Err(RekeyError::EmptyPassphrase);
        }
        let done = self.store.rekey(passphrase)?;
        Ok(Rekeyed { rows: done.rows, log_emptied: done.log_emptied })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UnlockKey;
    use crate::vault::{Vault, new_test_vault};

    /// The whole vault through a rekey: the same document and sharing state, `verify` clean,
    /// the old lent key stale, a vault that opened before unable to write.
    #[test]
    fn a_rekeyed_vault_holds_the_same_data_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let pw = Passphrase::new("pw");
        let mut v = new_test_vault(dir.path());
        v.records_mut().set_profile("name", "Ada").unwrap();
        v.records_mut().set_preference("diet", "vegetarian").unwrap();
        let identity = v.identity();
        let lent = v.unlock_key().unwrap();
        let export = v.records().export_json();
        let done = Vault::at(dir.path()).rekey(&pw).unwrap().run(&pw).unwrap();
        assert!(done.rows > 0 && done.log_emptied, "{done:?}");
        // The vault opened before holds the old key: refused, nothing lost.
        assert!(v.records_mut().set_profile("name", "Stale").is_err());
        drop(v);
        let err = Vault::at(dir.path()).unlock_with_key(&lent).unwrap_err();
        assert!(matches!(err, OpenError::StaleKey), "{err:?}");
        let v = Vault::at(dir.path()).unlock(&pw).unwrap();
        assert_eq!(v.identity(), identity);
        assert_eq!(v.records().export_json(), export);
        let fresh = v.unlock_key().unwrap();
        assert!(!fresh.same_as(&lent));
        drop(v);
        assert!(Vault::at(dir.path()).unlock_with_key(&fresh).is_ok());
        let report = Vault::at(dir.path()).verify(&pw).unwrap();
        assert!(report.is_ok() && report.blobs_checked > 0, "{report:?}");
    }

    #[test]
    fn a_new_passphrase_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        drop(new_test_vault(dir.path()));
        let (old, new) = (Passphrase::new("pw"), Passphrase::new("a new one"));
        Vault::at(dir.path()).rekey(&old).unwrap().run(&new).unwrap();
        assert!(matches!(Vault::at(dir.path()).unlock(&old).unwrap_err(), OpenError::WrongPassphrase));
        assert!(Vault::at(dir.path()).verify(&new).unwrap().is_ok());
    }

    #[test]
    fn a_wrong_passphrase_or_an_empty_new_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lent: UnlockKey = new_test_vault(dir.path()).unlock_key().unwrap();
        let before = std::fs::read(dir.path().join(crate::DB_FILE)).unwrap();
        let err = Vault::at(dir.path()).rekey(&Passphrase::new("nope")).unwrap_err();
        assert!(matches!(err, RekeyError::Open(OpenError::WrongPassphrase)), "{err:?}");
        let rekey = Vault::at(dir.path()).rekey(&Passphrase::new("pw")).unwrap();
        let err = rekey.run(&Passphrase::new("")).unwrap_err();
        assert!(matches!(err, RekeyError::EmptyPassphrase), "{err:?}");
        assert!(std::fs::read(dir.path().join(crate::DB_FILE)).unwrap() == before, "the file changed");
        assert!(Vault::at(dir.path()).unlock_with_key(&lent).is_ok());
    }
}
