//! The vault file: one SQLite database (WAL, synchronous=FULL) in the vault directory.
//!
//! Layout (see the migrations below):
//! - `meta`: the only plaintext — file format, vault id, Argon2id parameters and salt, and the
//!   data key wrapped under the passphrase-derived key;
//! - `secrets`: the identity and device keys, sealed;
//! - `doc_snapshot`: one sealed full save of the document, with a generation counter;
//! - `doc_changes`: one sealed chunk per committed change since that snapshot.
//!
//! Every blob is sealed under the data key with associated data naming the vault id, the table
//! and the row, so a blob copied to another row, table or vault fails to decrypt.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::primitives::{
    DecryptError, KdfParams, LABEL_BLOB, LABEL_WRAP, Passphrase, SymmetricKey, associated_data,
    derive_wrapping_key, open, random_array, seal,
};

/// Name of the database file inside a vault directory.
pub const DB_FILE: &str = "vault.db";
const FORMAT: &str = "vault/v1";

/// Schema migrations, applied in order and recorded in `migrations`. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: the vault itself.
    "CREATE TABLE secrets (name TEXT PRIMARY KEY, blob BLOB NOT NULL);
     CREATE TABLE doc_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1),
                                generation INTEGER NOT NULL, blob BLOB NOT NULL);
     CREATE TABLE doc_changes (seq INTEGER PRIMARY KEY, blob BLOB NOT NULL);",
    // 2: sharing. Row keys are random ids or counters; everything else is sealed.
    "CREATE TABLE grants (id BLOB PRIMARY KEY, blob BLOB NOT NULL);
     CREATE TABLE projection_chunks (grant_id BLOB NOT NULL, seq INTEGER NOT NULL, blob BLOB NOT NULL,
                                     PRIMARY KEY (grant_id, seq));
     CREATE TABLE contacts (id BLOB PRIMARY KEY, blob BLOB NOT NULL);
     CREATE TABLE audit (seq INTEGER PRIMARY KEY, blob BLOB NOT NULL);
     CREATE TABLE received (grant_id BLOB PRIMARY KEY, blob BLOB NOT NULL);
     CREATE TABLE node (key TEXT PRIMARY KEY, blob BLOB NOT NULL);",
    // 3: the grantee's copies, as Automerge chunks per received grant.
    "CREATE TABLE received_chunks (grant_id BLOB NOT NULL, seq INTEGER NOT NULL, blob BLOB NOT NULL,
                                   PRIMARY KEY (grant_id, seq));",
    // 4: consent requests (received and sent), and the grantee's decoded view of each share.
    "CREATE TABLE requests_in (id BLOB PRIMARY KEY, blob BLOB NOT NULL);
     CREATE TABLE requests_out (id BLOB PRIMARY KEY, blob BLOB NOT NULL);
     CREATE TABLE received_views (grant_id BLOB PRIMARY KEY, blob BLOB NOT NULL);",
];

/// Problems with the storage layer that are not the user's doing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// A sealed blob did not decrypt: it was altered, truncated or moved.
    #[error("{0} is damaged (it does not decrypt)")]
    Damaged(String),
    /// Reading or writing the vault directory failed.
    #[error("cannot access the vault directory")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// True when the error means the file is damaged rather than unreachable.
    pub(crate) fn is_damage(&self) -> bool {
        match self {
            StoreError::Damaged(_) => true,
            StoreError::Sqlite(e) => sqlite_damage(e),
            StoreError::Io(_) => false,
        }
    }
}

pub(crate) fn sqlite_damage(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase))
}

/// Why a vault file could not be unlocked; mapped to user-facing errors by the caller.
#[derive(Debug)]
pub(crate) enum UnlockFailure {
    NotAVault,
    UnknownFormat(String),
    WrongPassphrase,
    Store(StoreError),
}

impl From<rusqlite::Error> for UnlockFailure {
    fn from(e: rusqlite::Error) -> Self {
        UnlockFailure::Store(StoreError::Sqlite(e))
    }
}

/// An unlocked vault file.
pub(crate) struct Store {
    pub(crate) conn: Connection,
    vault_id: [u8; 16],
    key: SymmetricKey,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn wrap_ad(vault_id: &[u8; 16], params: &KdfParams) -> Vec<u8> {
    let params = serde_json::to_vec(params).expect("params serialize");
    associated_data(LABEL_WRAP, &[vault_id, &params])
}

impl Store {
    /// Creates a new vault file at `path` (which must not exist) with a fresh data key.
    pub(crate) fn create(
        path: &Path,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Must precede the first table: lets compaction hand freed pages back to the OS.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        configure(&conn)?;
        let vault_id = random_array::<16>();
        let salt = random_array::<16>();
        let key = SymmetricKey::random();
        let kek = derive_wrapping_key(passphrase, &salt, params)
            .map_err(|_| StoreError::Damaged("key-derivation parameters".into()))?;
        let wrapped = seal(&kek, &wrap_ad(&vault_id, &params), key.expose());
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);",
        )?;
        let put =
            |k: &str, v: &[u8]| conn.execute("INSERT INTO meta (key, value) VALUES (?1, ?2)", params![k, v]);
        put("format", FORMAT.as_bytes())?;
        put("vault_id", &vault_id)?;
        put("kdf", &serde_json::to_vec(&params).expect("params serialize"))?;
        put("salt", &salt)?;
        put("wrapped_key", &wrapped)?;
        conn.execute_batch("COMMIT")?;
        let mut store = Self { conn, vault_id, key, path: path.to_owned() };
        store.migrate()?;
        Ok(store)
    }

    /// Opens and unlocks an existing vault file. Nothing is written before the passphrase has
    /// been checked.
    pub(crate) fn open(path: &Path, passphrase: &Passphrase) -> Result<Self, UnlockFailure> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let get = |k: &str| -> Result<Option<Vec<u8>>, UnlockFailure> {
            match conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0)).optional() {
                Ok(v) => Ok(v),
                Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.starts_with("no such table") => {
                    Err(UnlockFailure::NotAVault)
                }
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
                    Err(UnlockFailure::NotAVault)
                }
                Err(e) => Err(e.into()),
            }
        };
        let format = get("format")?.ok_or(UnlockFailure::NotAVault)?;
        if format != FORMAT.as_bytes() {
            return Err(UnlockFailure::UnknownFormat(
                String::from_utf8_lossy(&format).chars().take(32).collect(),
            ));
        }
        let damaged = |what: &str| UnlockFailure::Store(StoreError::Damaged(what.to_owned()));
        let vault_id: [u8; 16] =
            get("vault_id")?.and_then(|v| v.try_into().ok()).ok_or_else(|| damaged("the vault id"))?;
        let params: KdfParams = get("kdf")?
            .and_then(|v| serde_json::from_slice(&v).ok())
            .ok_or_else(|| damaged("the key-derivation parameters"))?;
        let salt = get("salt")?.ok_or_else(|| damaged("the key salt"))?;
        let wrapped = get("wrapped_key")?.ok_or_else(|| damaged("the wrapped key"))?;
        let kek = derive_wrapping_key(passphrase, &salt, params)
            .map_err(|_| damaged("the key-derivation parameters"))?;
        let key_bytes = zeroize::Zeroizing::new(
            open(&kek, &wrap_ad(&vault_id, &params), &wrapped).map_err(|_| UnlockFailure::WrongPassphrase)?,
        );
        let key = SymmetricKey::from_bytes(&key_bytes).ok_or(UnlockFailure::WrongPassphrase)?;
        configure(&conn)?;
        let mut store = Self { conn, vault_id, key, path: path.to_owned() };
        store.migrate().map_err(UnlockFailure::Store)?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied: i64 =
            tx.query_row("SELECT COALESCE(MAX(version), 0) FROM migrations", [], |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO migrations (version, applied_at) VALUES (?1, ?2)",
                params![i as i64 + 1, jiff::Timestamp::now().as_second()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The schema version recorded in the file.
    #[cfg(test)]
    pub(crate) fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("SELECT COALESCE(MAX(version), 0) FROM migrations", [], |r| r.get(0))?)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn ad(&self, table: &str, row: &[u8]) -> Vec<u8> {
        associated_data(LABEL_BLOB, &[&self.vault_id, table.as_bytes(), row])
    }

    /// Seals `plaintext` for row `row` of `table`.
    pub(crate) fn seal_row(&self, table: &str, row: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal(&self.key, &self.ad(table, row), plaintext)
    }

    /// Opens a blob sealed by [`Store::seal_row`] for the same table and row.
    pub(crate) fn open_row(&self, table: &str, row: &[u8], blob: &[u8]) -> Result<Vec<u8>, DecryptError> {
        open(&self.key, &self.ad(table, row), blob)
    }

    /// Like [`Store::open_row`], naming the row in the error.
    pub(crate) fn open_row_named(
        &self,
        table: &str,
        row: &[u8],
        row_name: impl std::fmt::Display,
        blob: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        self.open_row(table, row, blob).map_err(|_| StoreError::Damaged(format!("{table} row {row_name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_bound_to_their_row() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::create(&dir.path().join(DB_FILE), &Passphrase::new("pw"), KdfParams::INSECURE_FOR_TESTS)
                .unwrap();
        let blob = store.seal_row("doc_changes", b"1", b"hello");
        assert_eq!(store.open_row("doc_changes", b"1", &blob).unwrap(), b"hello");
        assert!(store.open_row("doc_changes", b"2", &blob).is_err());
        assert!(store.open_row("secrets", b"1", &blob).is_err());
    }

    #[test]
    fn wrong_passphrase_is_reported_and_right_one_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        drop(Store::create(&path, &Passphrase::new("right"), KdfParams::INSECURE_FOR_TESTS).unwrap());
        assert!(matches!(Store::open(&path, &Passphrase::new("wrong")), Err(UnlockFailure::WrongPassphrase)));
        let store = Store::open(&path, &Passphrase::new("right")).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }
}
