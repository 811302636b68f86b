//! Creating, unlocking and verifying a vault: [`VaultOptions`] (where a vault lives and how to
//! open it), the errors of opening, and the whole-file checks of `verify`. Owns no table: it
//! hands an unlocked store to `Vault::load`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::changes::read_document;
use super::{Clock, Vault};
use crate::doc::{DocError, VaultDoc};
use crate::identity::{DeviceCertificate, DeviceKey, Identity};
use crate::primitives::{KdfParams, Passphrase, random_array};
use crate::store::sealed::ALL_TABLES;
use crate::store::{DB_FILE, Store, StoreError, UnlockFailure, UnlockKey};

/// What a new vault starts from.
struct Seed {
    /// The identity key on the first device; the identity's certificate for this device on a
    /// linked one (which never holds the identity key).
    identity: Result<Identity, DeviceCertificate>,
    device: DeviceKey,
    doc: VaultDoc,
}

/// A vault could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// There is already a vault in the directory; it was left untouched.
    #[error("a vault already exists at {}", .0.display())]
    AlreadyExists(PathBuf),
    /// An empty passphrase would leave the vault unprotected.
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
    /// The directory or file could not be created.
    #[error("cannot create the vault")]
    Store(#[from] StoreError),
    /// The identity's certificate handed over for this device does not verify.
    #[error("the certificate the other device sent for this one does not verify")]
    BadCertificate,
    /// The new vault did not open.
    #[error("cannot open the new vault")]
    Reopen(#[source] Box<OpenError>),
}

/// A vault could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The directory does not exist or holds no vault file.
    #[error("no vault at {}", .0.display())]
    NoVault(PathBuf),
    /// The file is not a vault (another SQLite file, or not SQLite at all).
    #[error("{} is not a vault file", .0.display())]
    NotAVault(PathBuf),
    /// Written by a newer version of vault.
    #[error("the vault file has format \"{0}\", which this version does not read")]
    UnknownFormat(String),
    /// The passphrase does not unlock the data key (or the key record is damaged: the two are
    /// indistinguishable by design).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The key an unlock agent lent is not this vault file's (another vault's, or from before
    /// its key changed); nothing was read with it.
    #[error("the unlock agent holds a key this vault does not use")]
    StaleKey,
    /// Part of the vault is damaged; nothing was modified.
    #[error("the vault is damaged: {0}")]
    Damaged(#[source] StoreError),
    /// The storage layer failed.
    #[error("cannot read the vault")]
    Store(#[source] StoreError),
}

impl From<StoreError> for OpenError {
    fn from(e: StoreError) -> Self {
        if e.is_damage() { OpenError::Damaged(e) } else { OpenError::Store(e) }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Sealed blobs checked.
    pub blobs_checked: usize,
    /// Problems, each naming what is damaged. Empty for a healthy vault.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// True when nothing is damaged.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Where a vault lives, and how to create or open it.
#[derive(Clone)]
pub struct VaultOptions {
    dir: PathBuf,
    kdf: KdfParams,
    clock: Clock,
}

impl std::fmt::Debug for VaultOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultOptions").field("dir", &self.dir).field("kdf", &self.kdf).finish_non_exhaustive()
    }
}

impl VaultOptions {
    pub(super) fn new(dir: PathBuf, kdf: KdfParams, clock: Clock) -> Self {
        Self { dir, kdf, clock }
    }

    /// The clock that decides expiry (tests inject one; the default is the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Argon2id parameters for a new vault (ignored when opening: the vault's own are used).
    pub fn kdf(mut self, params: KdfParams) -> Self {
        self.kdf = params;
        self
    }

    /// The database file's path.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }

    /// True when the directory holds a vault file.
    pub fn exists(&self) -> bool {
        self.db_path().exists()
    }

    /// Creates a new vault; refuses, touching nothing, when one exists.
    pub fn create(self, passphrase: &Passphrase) -> Result<Vault, CreateError> {
        let seed =
            Seed { identity: Ok(Identity::generate()), device: DeviceKey::generate(), doc: VaultDoc::new() };
        let mut vault = self.create_from(passphrase, seed)?;
        vault.devices_mut().add_this("first").map_err(CreateError::Store)?;
        Ok(vault)
    }

    /// Creates this device's vault of an identity another device of it handed over (see
    /// `pairing`): the package's identity and document, `device` (the key this device paired
    /// with), its own passphrase and data key. Refuses, touching nothing, when a vault exists.
    pub fn join(
        self,
        passphrase: &Passphrase,
        device: DeviceKey,
        package: crate::JoinPackage,
    ) -> Result<Vault, CreateError> {
        let damaged = |e: DocError| CreateError::Store(StoreError::Document(Box::new(e)));
        let doc = VaultDoc::load(&package.document, crate::doc::Allowed::Foreign).map_err(damaged)?;
        crate::doc::guarded_reads(|| doc.check_shape()).map_err(damaged)?;
        let this = device.public();
        if package.certificate.verify(this).is_err() {
            return Err(CreateError::BadCertificate);
        }
        let seed = Seed { identity: Err(package.certificate), device, doc };
        let mut vault = self.create_from(passphrase, seed)?;
        let others: Vec<_> = package.devices.into_iter().filter(|d| d.id != this).collect();
        let mut devices = vault.devices_mut();
        devices.add_this(&package.name).map_err(CreateError::Store)?;
        // Not seen yet by this device: merged as coming from itself.
        devices.merge_trusted(&this, &others)?;
        Ok(vault)
    }

    fn create_from(self, passphrase: &Passphrase, seed: Seed) -> Result<Vault, CreateError> {
        if passphrase.is_empty() {
            return Err(CreateError::EmptyPassphrase);
        }
        let path = self.db_path();
        if path.exists() {
            return Err(CreateError::AlreadyExists(self.dir));
        }
        if !self.dir.exists() {
            // Only its owner may list or read it: the file is encrypted, but a copy is a copy to
            // guess the passphrase against offline.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(&self.dir).map_err(StoreError::Io)?;
        } else if std::fs::read_dir(&self.dir).map_err(StoreError::Io)?.next().is_none() {
            // An empty directory made for the vault beforehand: owner-only too.
            owner_only(&self.dir, 0o700)?;
        }
        // Build in a temporary file and move it into place, so a crash never leaves a
        // half-made vault where `open` would find it.
        let tmp =
            self.dir.join(format!(".{DB_FILE}.{}.tmp", data_encoding::HEXLOWER.encode(&random_array::<6>())));
        let mut seed = seed;
        let result = (|| {
            let store = Store::create(&tmp, passphrase, self.kdf)?;
            // Owner-only before anything is written into it (SQLite gives its journal files
            // the same mode).
            owner_only(&tmp, 0o600)?;
            let Seed { identity, device, doc } = &mut seed;
            store.begin_write()?;
            let written = (|| {
                store.write_secret("device", &device.secret_bytes()[..])?;
                match identity {
                    Ok(identity) => store.write_secret("identity", &identity.secret_bytes()[..])?,
                    Err(certificate) => store.write_certificate(certificate)?,
                }
                store.write_snapshot(1, 0, &doc.automerge().save())?;
                store.commit()
            })();
            if written.is_err() {
                store.rollback();
            }
            written?;
            // Leave a single self-contained file behind.
            store.reclaim_space()?;
            Ok::<_, StoreError>(())
        })();
        if let Err(e) = result {
            remove_db_files(&tmp);
            return Err(e.into());
        }
        // Move the WAL-free file into place without overwriting anything that appeared.
        if let Err(e) = std::fs::hard_link(&tmp, &path) {
            remove_db_files(&tmp);
            return Err(if path.exists() {
                CreateError::AlreadyExists(self.dir)
            } else {
                StoreError::Io(e).into()
            });
        }
        remove_db_files(&tmp);
        sync_dir(&self.dir);
        self.unlock(passphrase).map_err(|e| match e {
            OpenError::Store(s) => CreateError::Store(s),
            OpenError::Damaged(s) => CreateError::Store(s),
            other => CreateError::Reopen(Box::new(other)),
        })
    }

    /// Opens and unlocks an existing vault. Nothing is modified when this fails.
    pub fn unlock(self, passphrase: &Passphrase) -> Result<Vault, OpenError> {
        let store = self.open_store(passphrase)?;
        Vault::load(store, self.dir, self.clock)
    }

    /// Opens and unlocks an existing vault with a key an unlock agent lent
    /// ([`Vault::unlock_key`]). A key that is not this file's current one is refused with
    /// [`OpenError::StaleKey`] before anything is read with it; nothing is modified on failure.
    pub fn unlock_with_key(self, key: &UnlockKey) -> Result<Vault, OpenError> {
        let path = self.existing_db()?;
        let (store, damage) = Store::open_with_key(&path, key).map_err(|e| self.open_error(&path, e))?;
        if let Some(damage) = damage {
            return Err(damage.into());
        }
        Vault::load(store, self.dir, self.clock)
    }

    fn existing_db(&self) -> Result<PathBuf, OpenError> {
        let path = self.db_path();
        if !path.is_file() {
            return Err(OpenError::NoVault(self.dir.clone()));
        }
        Ok(path)
    }

    fn open_error(&self, path: &Path, e: UnlockFailure) -> OpenError {
        match e {
            UnlockFailure::NotAVault => OpenError::NotAVault(path.to_owned()),
            UnlockFailure::UnknownFormat(f) => OpenError::UnknownFormat(f),
            UnlockFailure::WrongPassphrase => OpenError::WrongPassphrase,
            UnlockFailure::StaleKey => OpenError::StaleKey,
            UnlockFailure::Store(s) => s.into(),
        }
    }

    pub(super) fn open_store(&self, passphrase: &Passphrase) -> Result<Store, OpenError> {
        let path = self.existing_db()?;
        Store::open(&path, passphrase).map_err(|e| self.open_error(&path, e))
    }

    /// Checks the whole vault: the SQLite structure, every sealed blob, the document's history
    /// and its shape. Fails only when the vault cannot be unlocked at all; damage is reported in
    /// the [`VerifyReport`].
    pub fn verify(self, passphrase: &Passphrase) -> Result<VerifyReport, OpenError> {
        let store = self.open_store(passphrase)?;
        // One read transaction: a compaction by another process cannot make a healthy vault
        // look damaged halfway through.
        store.read_tx(|| verify_store(&store))
    }

    /// [`VaultOptions::verify`] with a key an unlock agent lent (see
    /// [`VaultOptions::unlock_with_key`]).
    pub fn verify_with_key(self, key: &UnlockKey) -> Result<VerifyReport, OpenError> {
        let path = self.existing_db()?;
        // Damage the opening found is found again, and reported, by the checks.
        let (store, _) = Store::open_with_key(&path, key).map_err(|e| self.open_error(&path, e))?;
        // One read transaction: a compaction by another process cannot make a healthy vault
        // look damaged halfway through.
        store.read_tx(|| verify_store(&store))
    }
}

/// The checks of [`VaultOptions::verify`], inside one read transaction.
fn verify_store(store: &Store) -> Result<VerifyReport, OpenError> {
    let mut report = VerifyReport::default();
    report.problems.extend(store.structure_problems());
    match store.check_rows() {
        Ok(tables) => report
            .problems
            .extend(tables.into_iter().map(|table| format!("{table}: rows were removed or replaced"))),
        Err(e) => report.problems.push(e.to_string()),
    }
    // Every sealed blob decrypts.
    for table in ALL_TABLES {
        match store.check_blobs(table) {
            Ok((checked, problems)) => {
                report.blobs_checked += checked;
                let name = table.name;
                report.problems.extend(problems.into_iter().map(|e| format!("{name}: {e}")));
            }
            Err(e) => report.problems.push(format!("{}: {e}", table.name)),
        }
    }
    if !report.problems.is_empty() {
        return Ok(report);
    }
    // The secrets have the right size; the chunks follow the snapshot without gaps; the
    // document loads and has the vault's shape.
    if let Err(e) = super::keys::read(store) {
        report.problems.push(e.to_string());
    }
    match read_document(store) {
        Ok(loaded) => {
            if let Err(e) = loaded.into_parts().and_then(|(doc, _, _)| doc.check_shape()) {
                report.problems.push(format!("document: {e}"));
            }
        }
        Err(e) => report.problems.push(e.to_string()),
    }
    Ok(report)
}

fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Makes `path` readable and writable by its owner only (`mode`), where permissions exist.
fn owner_only(path: &std::path::Path, mode: u32) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(StoreError::Io)?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::new_test_vault;

    #[test]
    fn init_over_existing_vault_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = new_test_vault(dir.path());
        v.records_mut().set_profile("name", "Ada").unwrap();
        drop(v);
        let err = Vault::at(dir.path())
            .kdf(KdfParams::INSECURE_FOR_TESTS)
            .create(&Passphrase::new("other"))
            .unwrap_err();
        assert!(matches!(err, CreateError::AlreadyExists(_)));
        let v = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(v.records().profile()["name"], "Ada");
    }

    #[test]
    fn a_lent_key_opens_its_vault_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = new_test_vault(dir.path());
        v.records_mut().set_profile("name", "Ada").unwrap();
        let lent = UnlockKey::from_bytes(&v.unlock_key().unwrap().to_bytes()).unwrap();
        drop(v);
        let v = Vault::at(dir.path()).unlock_with_key(&lent).unwrap();
        assert_eq!(v.records().profile()["name"], "Ada");
        drop(v);
        // Another vault's key, even with this vault's id and wrapped key, opens nothing.
        let other_dir = tempfile::tempdir().unwrap();
        let other = new_test_vault(other_dir.path()).unlock_key().unwrap();
        let err = Vault::at(dir.path()).unlock_with_key(&other).unwrap_err();
        assert!(matches!(err, OpenError::StaleKey), "{err:?}");
        let mut forged = lent.to_bytes().to_vec();
        forged[16..48].copy_from_slice(&other.to_bytes()[16..48]);
        let forged = UnlockKey::from_bytes(&forged).unwrap();
        let err = Vault::at(dir.path()).unlock_with_key(&forged).unwrap_err();
        assert!(matches!(err, OpenError::StaleKey), "{err:?}");
        assert!(!forged.same_as(&lent) && lent.same_as(&lent.clone()));
    }

    #[test]
    fn a_lent_key_from_before_the_key_changed_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let v = new_test_vault(dir.path());
        let lent = v.unlock_key().unwrap();
        drop(v);
        // The wrapped key changes (a new passphrase, a new data key): the lent key is refused
        // before it is used, whatever it would open.
        let path = dir.path().join(DB_FILE);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut wrapped: Vec<u8> =
            conn.query_row("SELECT value FROM meta WHERE key = 'wrapped_key'", [], |r| r.get(0)).unwrap();
        wrapped[0] ^= 1;
        conn.execute("UPDATE meta SET value = ?1 WHERE key = 'wrapped_key'", [wrapped]).unwrap();
        drop(conn);
        let err = Vault::at(dir.path()).unlock_with_key(&lent).unwrap_err();
        assert!(matches!(err, OpenError::StaleKey), "{err:?}");
    }

    #[test]
    fn lent_key_bytes_of_the_wrong_size_are_refused() {
        assert!(UnlockKey::from_bytes(&[]).is_none());
        assert!(UnlockKey::from_bytes(&[0; 48]).is_none());
        assert!(UnlockKey::from_bytes(&[0; 49]).is_some());
        assert!(UnlockKey::from_bytes(&[0; 48 + 257]).is_none());
        assert_eq!(format!("{:?}", UnlockKey::from_bytes(&[7; 60]).unwrap()), "UnlockKey(..)");
    }

    #[test]
    fn a_damaged_manifest_under_a_lent_key_is_damage_not_a_stale_key() {
        let dir = tempfile::tempdir().unwrap();
        let lent = new_test_vault(dir.path()).unlock_key().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        let mut blob: Vec<u8> = conn.query_row("SELECT blob FROM manifest", [], |r| r.get(0)).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        conn.execute("UPDATE manifest SET blob = ?1", [&blob]).unwrap();
        let err = Vault::at(dir.path()).unlock_with_key(&lent).unwrap_err();
        assert!(matches!(err, OpenError::Damaged(_)), "{err:?}");
        conn.execute("DELETE FROM manifest", []).unwrap();
        let err = Vault::at(dir.path()).unlock_with_key(&lent).unwrap_err();
        assert!(matches!(err, OpenError::Damaged(_)), "{err:?}");
        let report = Vault::at(dir.path()).verify_with_key(&lent).unwrap();
        assert!(!report.is_ok() && report.problems.iter().any(|p| p.contains("manifest")), "{report:?}");
    }
}
