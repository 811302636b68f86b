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
//! and the row, so a blob copied to another row, table or vault fails to decrypt. Sealed rows
//! are read and written only through [`sealed`], which also keeps the sealed `manifest`: a
//! digest of every table's set of rows, checked at open and by `verify`.
//!
//! Every connection runs with `secure_delete`, and a transaction that deleted rows is followed
//! by a WAL checkpoint, so erased ciphertext does not linger in free pages or in the log.
//!
//! The data key changes only with [`rekey`](Store::rekey) (`vault rekey`, `vault passwd`): every
//! row re-sealed under a new key in one transaction. A store opened before that holds a key the
//! file no longer uses; its writes are refused ([`StoreError::KeyChanged`]) rather than sealed
//! under a key nobody can unwrap any more.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior, params};

use crate::primitives::{
    DecryptError, KdfParams, LABEL_BLOB, LABEL_WRAP_MANIFEST, Passphrase, SymmetricKey, associated_data,
    derive_digest_key, derive_wrapping_key, open, random_array, seal,
};

pub(crate) mod doc;
mod manifest;
mod rekey;
pub(crate) mod sealed;
pub(crate) mod typed;
mod unlock;

pub use unlock::UnlockKey;

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
    // 5: the sealed digest of every table's rows (see `sealed`).
    "CREATE TABLE manifest (id INTEGER PRIMARY KEY CHECK (id = 1), blob BLOB NOT NULL);",
    // 6: the devices of the identity.
    "CREATE TABLE devices (id BLOB PRIMARY KEY, blob BLOB NOT NULL);",
    // 7: the sharing state's changes, by the device that made them (replicated between devices).
    "CREATE TABLE shared_log (origin BLOB NOT NULL, seq INTEGER NOT NULL, blob BLOB NOT NULL,
                              PRIMARY KEY (origin, seq));",
    // 8: breach notices, sent (seller) and received (customer).
    "CREATE TABLE notices_out (id BLOB PRIMARY KEY, blob BLOB NOT NULL);
     CREATE TABLE notices_in (id BLOB PRIMARY KEY, blob BLOB NOT NULL);",
    // 9: intentions: this customer's (with their pseudonym keys), and those a seller received.
    "CREATE TABLE intents_out (id BLOB PRIMARY KEY, blob BLOB NOT NULL);
     CREATE TABLE intents_in (id BLOB PRIMARY KEY, blob BLOB NOT NULL);",
    // 10: public topics joined (with their pseudonym keys), and the signals heard on them.
    "CREATE TABLE topics (id BLOB PRIMARY KEY, blob BLOB NOT NULL);
     CREATE TABLE signals (id BLOB PRIMARY KEY, blob BLOB NOT NULL);",
];

/// Problems with the storage layer that are not the user's doing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// A row's content does not make sense once opened.
    #[error("{table} row {row} is damaged (it does not decode)")]
    Damaged {
        /// The table.
        table: &'static str,
        /// The row's key (an id or a number, never a value).
        row: String,
    },
    /// A part of the file's plaintext header does not make sense.
    #[error("{0} is damaged")]
    DamagedHeader(&'static str),
    /// A sealed blob did not decrypt: it was altered, truncated or moved.
    #[error("{table} row {row} is damaged (it does not decrypt)")]
    Unreadable {
        /// The table.
        table: &'static str,
        /// The row's key (an id or a number, never a value).
        row: String,
    },
    /// A row the vault needs is not there.
    #[error("{table} row {row} is missing")]
    Missing {
        /// The table.
        table: &'static str,
        /// The row's key.
        row: String,
    },
    /// The set of rows of a table is not the one the vault wrote: rows were removed, put
    /// back from an older copy, or copied from elsewhere.
    #[error("rows of \"{table}\" were removed or replaced")]
    Integrity {
        /// The table.
        table: &'static str,
    },
    /// The stored document does not load.
    #[error("the document is damaged")]
    Document(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Reading or writing the vault directory failed.
    #[error("cannot access the vault directory")]
    Io(#[from] std::io::Error),
    /// The database abandoned a write half-way (disk full, I/O error): nothing of it was
    /// written.
    #[error("the database abandoned the write (is the disk full?); nothing was written")]
    TransactionLost,
    /// The vault's data key changed since this process opened it (`vault rekey` or `vault
    /// passwd` ran meanwhile): nothing is read or written with the old one.
    #[error("the vault's key changed since this command opened it (vault rekey or passwd); run it again")]
    KeyChanged,
}

impl StoreError {
    /// Row `row` of `table` is damaged.
    pub(crate) fn damaged(table: &sealed::Table, row: impl std::fmt::Display) -> Self {
        StoreError::Damaged { table: table.name, row: row.to_string() }
    }

    /// True when the error means the file is damaged rather than unreachable.
    pub(crate) fn is_damage(&self) -> bool {
        match self {
            StoreError::Damaged { .. }
            | StoreError::DamagedHeader(_)
            | StoreError::Unreadable { .. }
            | StoreError::Missing { .. }
            | StoreError::Integrity { .. }
            | StoreError::Document(_) => true,
            StoreError::Sqlite(e) => sqlite_damage(e),
            StoreError::Io(_) | StoreError::TransactionLost | StoreError::KeyChanged => false,
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
    /// A lent key that is not (or no longer) this file's.
    StaleKey,
    Store(StoreError),
}

impl From<rusqlite::Error> for UnlockFailure {
    fn from(e: rusqlite::Error) -> Self {
        UnlockFailure::Store(StoreError::Sqlite(e))
    }
}

/// See [`Store::table_mark`].
pub(crate) type WriteMark = (i64, u64, u64);

/// An unlocked vault file.
pub(crate) struct Store {
    conn: Connection,
    vault_id: [u8; 16],
    key: SymmetricKey,
    /// Key of the row-set digest, derived from `key`.
    digest_key: SymmetricKey,
    /// The wrapped key `key` came from. Every write transaction checks that the file's is
    /// still this one: after a `vault rekey` by another process, this store's key is no longer
    /// the file's, and a row sealed with it would be lost (see [`Store::ensure_key_current`]).
    wrapped: Vec<u8>,
    /// Set when the current transaction deleted rows: its commit is followed by a checkpoint
    /// so that the erased ciphertext leaves the WAL too.
    erased: Cell<bool>,
    /// Set between [`Store::begin_write`] and its commit or rollback.
    writing: Cell<bool>,
    /// Transactions this connection rolled back, whoever asked (SQLite's rollback hook counts
    /// them, its own automatic rollbacks included): part of [`Store::table_mark`].
    rollbacks: Arc<AtomicU64>,
    /// Rows this connection wrote or deleted, per table: part of [`Store::table_mark`].
    table_writes: std::cell::RefCell<std::collections::HashMap<&'static str, u64>>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

/// How long a statement waits for another process's lock.
const BUSY_WAIT: Duration = Duration::from_secs(10);
/// How long a checkpoint waits for readers in other processes before giving up for now.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(1);

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_WAIT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Deleted rows are overwritten with zeros, in the file and in the pages the WAL receives.
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

/// Associated data of the wrapped key. `label` is [`LABEL_WRAP_MANIFEST`] for vaults whose rows
/// are covered by the manifest, [`LABEL_WRAP`] for vaults from before it.
fn wrap_ad(label: &[u8], vault_id: &[u8; 16], params: &KdfParams) -> Vec<u8> {
    let params = serde_json::to_vec(params).expect("params serialize");
    associated_data(label, &[vault_id, &params])
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
            .map_err(|_| StoreError::DamagedHeader("the key-derivation parameters"))?;
        let wrapped = seal(&kek, &wrap_ad(LABEL_WRAP_MANIFEST, &vault_id, &params), key.expose());
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
        let mut store = Self::with_key(conn, vault_id, key, wrapped, path)?;
        store.migrate()?;
        store.conn.execute_batch("BEGIN IMMEDIATE")?;
        store.build_manifest()?;
        store.conn.execute_batch("COMMIT")?;
        Ok(store)
    }

    fn with_key(
        mut conn: Connection,
        vault_id: [u8; 16],
        key: SymmetricKey,
        wrapped: Vec<u8>,
        path: &Path,
    ) -> rusqlite::Result<Self> {
        let digest_key = derive_digest_key(&key);
        let rollbacks = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&rollbacks);
        conn.rollback_hook(Some(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        }))?;
        Ok(Self {
            conn,
            rollbacks,
            table_writes: Default::default(),
            vault_id,
            key,
            digest_key,
            wrapped,
            erased: Cell::new(false),
            writing: Cell::new(false),
            path: path.to_owned(),
        })
    }

    /// Makes `key` the data key (and the digest key derived from it).
    pub(super) fn set_key(&mut self, key: SymmetricKey) {
        self.digest_key = derive_digest_key(&key);
        self.key = key;
    }

    /// Call after a transaction committed: when it deleted rows, checkpoint the WAL so that the
    /// erased ciphertext leaves it (best effort: a reader in another process can keep the log).
    pub(crate) fn after_commit(&self) {
        if self.erased.replace(false)
            && let Err(e) = self.checkpoint()
        {
            tracing::warn!(error = %e, "checkpoint after erasure failed");
        }
    }

    /// Copies the WAL into the file and empties it. Waits at most [`CHECKPOINT_WAIT`] for
    /// readers in other processes (a reader's snapshot keeps the log); returns whether the log
    /// was emptied.
    fn checkpoint(&self) -> Result<bool, StoreError> {
        self.conn.busy_timeout(CHECKPOINT_WAIT)?;
        let busy = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
        self.conn.busy_timeout(BUSY_WAIT)?;
        Ok(busy? == 0)
    }

    /// Marks the current transaction as an erasure even though it deletes nothing by itself
    /// (a copy replaced by a new one): its commit is followed by a checkpoint, so that the old
    /// copy's blobs leave the log and, with `secure_delete`, the file.
    pub(crate) fn note_erasure(&self) {
        self.erased.set(true);
    }

    /// Call after a transaction rolled back.
    pub(crate) fn after_rollback(&self) {
        self.erased.set(false);
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
    fn seal_row(&self, table: &str, row: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal(&self.key, &self.ad(table, row), plaintext)
    }

    /// Opens a blob sealed by [`Store::seal_row`] for the same table and row.
    fn open_row(&self, table: &str, row: &[u8], blob: &[u8]) -> Result<Vec<u8>, DecryptError> {
        open(&self.key, &self.ad(table, row), blob)
    }

    // ----- transactions -----

    /// Starts a write transaction (`BEGIN IMMEDIATE`: waits for the write lock), refused when
    /// the file's data key is no longer this store's.
    pub(crate) fn begin_write(&self) -> Result<(), StoreError> {
        self.begin_immediate()?;
        self.writing.set(true);
        Ok(())
    }

    /// `BEGIN IMMEDIATE`, then [`Store::ensure_key_current`] (rolled back when that fails).
    fn begin_immediate(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        if let Err(e) = self.ensure_key_current() {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        Ok(())
    }

    /// Fails with [`StoreError::KeyChanged`] when the file's wrapped key is no longer the one
    /// this store's key came from. Inside a write transaction the answer holds until its commit:
    /// a rekey needs the write lock too.
    pub(crate) fn ensure_key_current(&self) -> Result<(), StoreError> {
        let wrapped: Vec<u8> = self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = 'wrapped_key'")?
            .query_row([], |r| r.get(0))?;
        if wrapped != self.wrapped {
            return Err(StoreError::KeyChanged);
        }
        Ok(())
    }

    /// True when the file's data key is known to have changed since this store opened it (a
    /// blob that does not decrypt then says so rather than look damaged).
    fn key_changed(&self) -> bool {
        matches!(self.ensure_key_current(), Err(StoreError::KeyChanged))
    }

    /// Starts a read transaction: everything read until [`Store::commit`] is one state of the
    /// file, whatever other processes commit meanwhile.
    pub(crate) fn begin_read(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN")?;
        Ok(())
    }

    /// Commits the open transaction (then checkpoints when it erased rows).
    pub(crate) fn commit(&self) -> Result<(), StoreError> {
        if self.writing.replace(false) && self.conn.is_autocommit() {
            return Err(StoreError::TransactionLost);
        }
        self.conn.execute_batch("COMMIT")?;
        self.after_commit();
        Ok(())
    }

    /// Rolls back the open transaction, if any.
    pub(crate) fn rollback(&self) {
        self.writing.set(false);
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.after_rollback();
    }

    /// Fails when a write transaction begun with [`Store::begin_write`] is no longer open:
    /// SQLite rolls a transaction back by itself on some errors (disk full, I/O), and what
    /// follows must not run outside it, committed piece by piece.
    pub(super) fn still_writing(&self) -> Result<(), StoreError> {
        if self.writing.get() && self.conn.is_autocommit() {
            return Err(StoreError::TransactionLost);
        }
        Ok(())
    }

    /// SQLite's `data_version`: changes when another connection commits.
    pub(crate) fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// A mark that changes whenever the rows of `table` this connection reads may have changed:
    /// another connection's commit moves `data_version`, this connection's own writes to the
    /// table move its count of them, and a rollback (which undoes writes without moving either)
    /// moves the count of rollbacks. Writes to other tables leave it as it is. For caches of one table's rows (a seller's contacts need not be
    /// read again because a customer's copy grew).
    pub(crate) fn table_mark(&self, table: &sealed::Table) -> Result<WriteMark, StoreError> {
        let writes = self.table_writes.borrow().get(table.name).copied().unwrap_or(0);
        Ok((self.data_version()?, writes, self.rollbacks.load(Ordering::Relaxed)))
    }

    /// Problems `PRAGMA integrity_check` finds in the file's structure (at most ten).
    pub(crate) fn structure_problems(&self) -> Vec<String> {
        let rows: Result<Vec<String>, _> = self
            .conn
            .prepare("PRAGMA integrity_check")
            .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect());
        match rows {
            Ok(rows) if rows == ["ok"] => vec![],
            Ok(rows) => rows.into_iter().take(10).map(|r| format!("database structure: {r}")).collect(),
            Err(e) => vec![format!("database structure: {e}")],
        }
    }

    /// Hands freed pages back to the file system and empties the WAL; returns whether the log
    /// was emptied (a reader in another process may keep it until a later checkpoint).
    /// Finishes a reclaim an earlier rekey could not (a reader in another process kept the old
    /// pages): hands free pages back and empties the log, then forgets the note. Best effort.
    pub(crate) fn finish_reclaim(&self) {
        let pending =
            self.conn.query_row("SELECT 1 FROM meta WHERE key = 'reclaim_pending'", [], |_| Ok(())).is_ok();
        if pending && self.reclaim_space().unwrap_or(false) {
            let _ = self.conn.execute("DELETE FROM meta WHERE key = 'reclaim_pending'", []);
        }
    }

    pub(crate) fn reclaim_space(&self) -> Result<bool, StoreError> {
        // Each step of incremental_vacuum frees one page: run it to the end.
        {
            let mut stmt = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
        }
        let emptied = self.checkpoint()?;
        if !emptied {
            tracing::debug!("a reader kept the WAL; it is emptied at a later checkpoint");
        }
        Ok(emptied)
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
        assert!(store.check_rows().unwrap().is_empty());
        assert_eq!(store.open_row("doc_changes", b"1", &blob).unwrap(), b"hello");
        assert!(store.open_row("doc_changes", b"2", &blob).is_err());
        assert!(store.open_row("secrets", b"1", &blob).is_err());
    }

    /// SQLite rolls a transaction back by itself on some errors (disk full, I/O); the writes
    /// that follow in the same operation must fail, not commit one by one.
    #[test]
    fn writes_after_the_database_dropped_the_transaction_fail_and_write_nothing() {
        use sealed::{GRANTS, Key};
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::create(&dir.path().join(DB_FILE), &Passphrase::new("pw"), KdfParams::INSECURE_FOR_TESTS)
                .unwrap();
        store.begin_write().unwrap();
        store.put(&GRANTS, Key::Id(b"a"), b"first").unwrap();
        // What SQLite does on SQLITE_FULL or SQLITE_IOERR in the middle of a transaction.
        store.conn.execute_batch("ROLLBACK").unwrap();
        assert!(matches!(store.put(&GRANTS, Key::Id(b"b"), b"second"), Err(StoreError::TransactionLost)));
        assert!(matches!(store.commit(), Err(StoreError::TransactionLost)));
        store.rollback();
        assert_eq!(store.keys(&GRANTS).unwrap().len(), 0);
        assert!(store.check_rows().unwrap().is_empty());
        // The next write works as usual.
        store.put(&GRANTS, Key::Id(b"c"), b"third").unwrap();
        assert_eq!(store.keys(&GRANTS).unwrap().len(), 1);
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
