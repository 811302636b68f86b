//! A new data key for the whole file (`vault rekey`, `vault passwd`).
//!
//! The data key is what an unlock agent lends and what a thief of an unlocked device can read
//! from memory; a copy of it opens every row written under it, later ones included. [`rekey`]
//! ends that: it draws a fresh random key, re-seals every row of every sealed table under it
//! (fresh nonces, the same associated data binding vault, table and row), rebuilds the sealed
//! manifest (its digest key is derived from the data key, so every row's element changes), and
//! wraps the new key under the passphrase (the vault's stored Argon2id parameters, a fresh
//! salt). All of it is one SQLite transaction: a crash or kill at any point leaves the old vault
//! or the new one, each whole and readable with its own passphrase.
//!
//! Before anything is re-sealed the rows are checked against the manifest: re-sealing rows
//! someone tampered with would make them the new baseline. Afterwards the WAL is checkpointed
//! and emptied and freed pages handed back (with `secure_delete`, the old blobs are overwritten
//! in the file): the old ciphertext does not linger for the old key to open.
//!
//! A lent [`UnlockKey`](super::UnlockKey) is bound to the wrapped key it came from, which this
//! replaces, so every key lent before is refused afterwards; and another process that opened
//! the vault before has its writes refused ([`StoreError::KeyChanged`]).
//!
//! [`rekey`]: Store::rekey

use rusqlite::params;

use super::{Store, StoreError, wrap_ad};
use crate::primitives::{
    KdfParams, LABEL_WRAP_MANIFEST, Passphrase, SymmetricKey, derive_wrapping_key, random_array, seal,
};

/// What a rekey did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resealed {
    /// Rows re-sealed under the new key.
    pub(crate) rows: usize,
    /// Whether the write-ahead log was emptied at once (a reader in another process can keep
    /// it until a later checkpoint).
    pub(crate) log_emptied: bool,
}

#[cfg(test)]
thread_local! {
    /// When set, a rekey fails after every row is re-sealed and the new key is wrapped, just
    /// before its commit (tests of a rekey interrupted half-way).
    pub(crate) static FAIL_BEFORE_COMMIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Store {
    /// Replaces the data key: see the module docs. `passphrase` wraps the new key (the current
    /// one or a new one; the caller has checked the current one by opening this store).
    /// Nothing is changed on failure, and this store keeps the key it had.
    pub(crate) fn rekey(&mut self, passphrase: &Passphrase) -> Result<Resealed, StoreError> {
        let params: KdfParams = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'kdf'", [], |r| r.get::<_, Vec<u8>>(0))
            .ok()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .ok_or(StoreError::DamagedHeader("the key-derivation parameters"))?;
        // Argon2id before the write lock is taken: other processes wait for the lock only while
        // rows are re-sealed.
        let salt = random_array::<16>();
        let kek = derive_wrapping_key(passphrase, &salt, params)
            .map_err(|_| StoreError::DamagedHeader("the key-derivation parameters"))?;
        let new_key = SymmetricKey::random();
        let wrapped = seal(&kek, &wrap_ad(LABEL_WRAP_MANIFEST, &self.vault_id, &params), new_key.expose());
        drop(kek);

        self.begin_immediate()?;
        let old_key = self.key.clone();
        let result = (|| {
            if let Some(table) = self.check_rows()?.first() {
                return Err(StoreError::Integrity { table });
            }
            let rows = self.reseal_all(new_key)?;
            self.build_manifest()?;
            let update = "UPDATE meta SET value = ?1 WHERE key = ?2";
            self.conn.execute(update, params![&salt[..], "salt"])?;
            self.conn.execute(update, params![&wrapped, "wrapped_key"])?;
            #[cfg(test)]
            if FAIL_BEFORE_COMMIT.with(|f| f.replace(false)) {
                return Err(StoreError::Io(std::io::Error::other("interrupted before the commit")));
            }
            Ok(rows)
        })();
        let ended = match &result {
            Ok(_) => self.conn.execute_batch("COMMIT"),
            Err(_) => self.conn.execute_batch("ROLLBACK"),
        };
        let rows = match (result, ended) {
            (Ok(rows), Ok(())) => rows,
            (result, ended) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                self.set_key(old_key);
                result?;
                return Err(ended.expect_err("one of them failed").into());
            }
        };
        self.wrapped = wrapped;
        // The old blobs leave the log and the free pages. Best effort: the rekey is done.
        let log_emptied = self.reclaim_space().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "emptying the log after a rekey failed");
            false
        });
        if !log_emptied {
            // Another process's reader kept old pages (in the log, and in the file, which the
            // checkpoint could not rewrite): every later open tries again until it succeeds.
            let _ = self
                .conn
                .execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('reclaim_pending', x'01')", []);
        }
        Ok(Resealed { rows, log_emptied })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sealed::{ALL_TABLES, GRANTS, Key, PROJECTION_CHUNKS, SECRETS};
    use crate::store::{DB_FILE, UnlockFailure};

    fn store(path: &std::path::Path) -> Store {
        let s = Store::create(path, &Passphrase::new("pw"), KdfParams::INSECURE_FOR_TESTS).unwrap();
        s.put(&SECRETS, Key::Name("device"), &[7; 32]).unwrap();
        s.put(&GRANTS, Key::Id(b"g1"), b"grant one").unwrap();
        s.put(&PROJECTION_CHUNKS, Key::Chunk(b"g1", 1), b"chunk").unwrap();
        s
    }

    fn raw_blobs(path: &std::path::Path) -> Vec<Vec<u8>> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut out = Vec::new();
        for table in ALL_TABLES.iter().map(|t| t.name).chain(["manifest"]) {
            let mut stmt = conn.prepare(&format!("SELECT blob FROM {table}")).unwrap();
            out.extend(stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap().map(Result::unwrap));
        }
        out
    }

    fn meta(path: &std::path::Path, key: &str) -> Vec<u8> {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).unwrap()
    }

    /// Every file of the vault, concatenated (the database and whatever log is left).
    fn file_bytes(path: &std::path::Path) -> Vec<u8> {
        let mut all = std::fs::read(path).unwrap();
        for suffix in ["-wal", "-journal"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            all.extend(std::fs::read(std::path::PathBuf::from(p)).unwrap_or_default());
        }
        all
    }

    #[test]
    fn a_rekey_reseals_every_row_and_the_old_key_opens_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let mut s = store(&path);
        let old_lent = s.unlock_key().unwrap();
        let old_blobs = raw_blobs(&path);
        let old_salt = meta(&path, "salt");
        let done = s.rekey(&Passphrase::new("pw")).unwrap();
        assert_eq!(done.rows, 3);
        assert!(done.log_emptied);
        // The same rows, every blob new, the manifest right, and this store goes on writing.
        assert_eq!(s.get(&GRANTS, Key::Id(b"g1")).unwrap().as_deref(), Some(&b"grant one"[..]));
        assert!(s.check_rows().unwrap().is_empty());
        s.put(&GRANTS, Key::Id(b"g2"), b"grant two").unwrap();
        let new_blobs = raw_blobs(&path);
        assert!(old_blobs.iter().all(|b| !new_blobs.contains(b)), "every blob was re-sealed");
        assert_ne!(meta(&path, "salt"), old_salt, "a fresh salt");
        // The old ciphertext is gone from the file and its log.
        let bytes = file_bytes(&path);
        for old in &old_blobs {
            assert!(!bytes.windows(old.len().min(40)).any(|w| w == &old[..old.len().min(40)]));
        }
        drop(s);
        // The old key, even bound to the new wrapped key, opens nothing.
        assert!(matches!(Store::open_with_key(&path, &old_lent), Err(UnlockFailure::StaleKey)));
        let mut forged = old_lent.to_bytes().to_vec();
        forged.truncate(48);
        forged.extend_from_slice(&meta(&path, "wrapped_key"));
        let forged = crate::store::UnlockKey::from_bytes(&forged).unwrap();
        assert!(matches!(Store::open_with_key(&path, &forged), Err(UnlockFailure::StaleKey)));
        // The passphrase opens the new key.
        let s = Store::open(&path, &Passphrase::new("pw")).unwrap();
        assert_eq!(s.get(&GRANTS, Key::Id(b"g2")).unwrap().as_deref(), Some(&b"grant two"[..]));
        assert!(s.check_rows().unwrap().is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
        /// Whatever rows the tables hold, a rekey gives every one back unchanged under the new
        /// key, with a manifest that matches.
        #[test]
        fn every_row_reads_back_the_same_after_a_rekey(
            rows in proptest::collection::btree_map(
                (0u8..3, proptest::collection::vec(proptest::prelude::any::<u8>(), 1..8)),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                0..24,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(DB_FILE);
            let mut s = Store::create(&path, &Passphrase::new("pw"), KdfParams::INSECURE_FOR_TESTS).unwrap();
            let tables = [GRANTS, crate::store::sealed::CONTACTS, crate::store::sealed::NOTICES_IN];
            for ((t, id), value) in &rows {
                s.put(&tables[usize::from(*t)], Key::Id(id), value).unwrap();
            }
            s.rekey(&Passphrase::new("pw")).unwrap();
            drop(s);
            let s = Store::open(&path, &Passphrase::new("pw")).unwrap();
            proptest::prop_assert!(s.check_rows().unwrap().is_empty());
            for ((t, id), value) in &rows {
                let read = s.get(&tables[usize::from(*t)], Key::Id(id)).unwrap();
                proptest::prop_assert_eq!(read.as_ref(), Some(value));
            }
            let total: usize = tables.iter().map(|t| s.keys(t).unwrap().len()).sum();
            proptest::prop_assert_eq!(total, rows.len());
        }
    }

    #[test]
    fn a_rekey_can_change_the_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let mut s = store(&path);
        s.rekey(&Passphrase::new("new pw")).unwrap();
        drop(s);
        assert!(matches!(Store::open(&path, &Passphrase::new("pw")), Err(UnlockFailure::WrongPassphrase)));
        let s = Store::open(&path, &Passphrase::new("new pw")).unwrap();
        assert_eq!(s.get(&SECRETS, Key::Name("device")).unwrap(), Some(vec![7; 32]));
    }

    /// A rekey stopped at its last step (a crash, a kill, a full disk) leaves the old vault
    /// exactly as it was, and the store that tried keeps working with the old key.
    #[test]
    fn an_interrupted_rekey_leaves_the_old_vault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let mut s = store(&path);
        let lent = s.unlock_key().unwrap();
        let before = raw_blobs(&path);
        let wrapped = meta(&path, "wrapped_key");
        FAIL_BEFORE_COMMIT.with(|f| f.set(true));
        assert!(s.rekey(&Passphrase::new("other")).is_err());
        assert_eq!(raw_blobs(&path), before);
        assert_eq!(meta(&path, "wrapped_key"), wrapped);
        s.put(&GRANTS, Key::Id(b"g2"), b"after").unwrap();
        assert!(s.check_rows().unwrap().is_empty());
        drop(s);
        let s = Store::open(&path, &Passphrase::new("pw")).unwrap();
        assert_eq!(s.get(&GRANTS, Key::Id(b"g2")).unwrap().as_deref(), Some(&b"after"[..]));
        drop(s);
        assert!(Store::open(&path, &Passphrase::new("other")).is_err());
        assert!(Store::open_with_key(&path, &lent).is_ok(), "nothing changed: the lent key still opens it");
    }

    /// Rows tampered with are not laundered into a new baseline: the rekey refuses.
    #[test]
    fn a_rekey_refuses_a_vault_whose_rows_were_tampered_with() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let mut s = store(&path);
        s.conn.execute("DELETE FROM grants", []).unwrap();
        let wrapped = meta(&path, "wrapped_key");
        assert!(matches!(s.rekey(&Passphrase::new("pw")), Err(StoreError::Integrity { table: "grants" })));
        assert_eq!(meta(&path, "wrapped_key"), wrapped);
        assert_eq!(s.check_rows().unwrap(), vec!["grants"]);
    }

    /// Another process that opened the vault before the rekey holds a key the file no longer
    /// uses: its writes are refused, and its reads say why instead of calling the file damaged.
    #[test]
    fn a_store_opened_before_a_rekey_writes_nothing_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let mut s = store(&path);
        let other = Store::open(&path, &Passphrase::new("pw")).unwrap();
        s.rekey(&Passphrase::new("pw")).unwrap();
        assert!(matches!(other.put(&GRANTS, Key::Id(b"g9"), b"stale"), Err(StoreError::KeyChanged)));
        assert!(matches!(other.begin_write(), Err(StoreError::KeyChanged)));
        assert!(other.conn.is_autocommit(), "the refused transaction is not left open");
        assert!(matches!(other.get(&GRANTS, Key::Id(b"g1")), Err(StoreError::KeyChanged)));
        assert!(matches!(other.unlock_key(), Err(StoreError::KeyChanged)));
        drop(other);
        let s = Store::open(&path, &Passphrase::new("pw")).unwrap();
        assert!(s.get(&GRANTS, Key::Id(b"g9")).unwrap().is_none());
        assert!(s.check_rows().unwrap().is_empty());
    }
}
