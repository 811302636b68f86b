//! [`Vault`]: an unlocked vault, its document, its keys, and durable edits.
//!
//! Each edit is one Automerge commit, persisted as one sealed chunk inside one SQLite
//! transaction (`BEGIN IMMEDIATE` ... `COMMIT` with synchronous=FULL): when an edit method
//! returns `Ok`, the change is on disk. Before editing, the vault catches up with chunks other
//! processes wrote since it last looked, so two commands on one vault never lose each other's
//! changes. When chunks pile up (more than half the snapshot's size, at least 64 KiB) they are
//! folded into a new sealed snapshot.

use std::path::{Path, PathBuf};

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod audit;
mod contacts;
mod feed;
pub(crate) mod import;
mod inbox;
mod received;
mod requests;
mod rollback;
#[cfg(test)]
mod serve_tests;
mod sharing;

pub use audit::{AuditEvent, AuditFilter, AuditKind};
pub use contacts::{Contact, ContactError, Peer};
pub use feed::{FeedEntry, FeedFilter};
pub use received::{Share, ShareError, ShareStatus};
pub use requests::{
    Approval, Holding, MAX_PENDING_PER_PEER, MAX_REQUESTS_PER_PEER_PER_DAY, NewRequest, Refusal,
    RequestError, RequestInfo, RequestStatus,
};
pub use sharing::{GrantError, GrantInfo, GrantStatus, NewGrant, ServeError};

use crate::doc::{DocError, PREFERENCES, PROFILE, Touched, VaultDoc};
use crate::identity::{DeviceCertificate, DeviceKey, Identity, IdentityId, Ticket};
use crate::money::Price;
use crate::primitives::{KdfParams, Passphrase, random_array};
use crate::schema::SchemaError;
use crate::store::sealed::{ALL_TABLES, DOC_CHANGES};
use crate::store::{DB_FILE, Store, StoreError, UnlockFailure};

/// Chunks are folded into the snapshot when they exceed this many bytes...
const COMPACT_MIN_BYTES: u64 = 64 * 1024;
/// ...and also exceed this fraction (1/N) of the snapshot's size.
const COMPACT_SNAPSHOT_DIVISOR: u64 = 2;
/// First bytes of every Automerge file (document or change chunk).
const AUTOMERGE_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// First byte of a change chunk that carries what the change touched (see [`change_plaintext`]).
const CHUNK_WITH_TOUCHED: u8 = 0x01;

/// A change chunk's plaintext: a marker, what the change touched (for projections; `null`
/// when unknown), then the Automerge bytes.
fn change_plaintext(touched: &Option<Vec<Touched>>, bytes: &[u8]) -> Vec<u8> {
    let list: Option<Vec<String>> = touched.as_ref().map(|t| t.iter().map(Touched::encode).collect());
    let meta = serde_json::to_vec(&list).expect("serializes");
    let mut out = Vec::with_capacity(5 + meta.len() + bytes.len());
    out.push(CHUNK_WITH_TOUCHED);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(bytes);
    out
}

/// Splits a change chunk's plaintext into what it touched (`None`: unknown) and the Automerge
/// bytes. Chunks that are bare Automerge bytes read as "unknown".
pub(crate) fn split_change(plain: &[u8]) -> Option<(Option<Vec<Touched>>, &[u8])> {
    match plain.first() {
        Some(&CHUNK_WITH_TOUCHED) => {
            let len = u32::from_be_bytes(plain.get(1..5)?.try_into().ok()?) as usize;
            let meta = plain.get(5..5 + len)?;
            let list: Option<Vec<String>> = serde_json::from_slice(meta).ok()?;
            let touched = list.map(|l| l.iter().filter_map(|t| Touched::decode(t)).collect());
            Some((touched, &plain[5 + len..]))
        }
        _ => Some((None, plain)),
    }
}

/// The Automerge bytes of change chunk `seq` (dropping the touched list).
fn change_bytes(seq: i64, plain: &[u8]) -> Result<&[u8], StoreError> {
    let (_, bytes) =
        split_change(plain).ok_or_else(|| StoreError::Damaged(format!("{} row {seq}", DOC_CHANGES.name)))?;
    Ok(bytes)
}

/// Marker of a JSON export.
pub const EXPORT_FORMAT: &str = "vault-export/v1";

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

/// An edit was refused or could not be saved. When this is returned, nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The value does not fit the document schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A field path is malformed (empty segment).
    #[error("invalid field name \"{0}\"")]
    BadField(String),
    /// The storage layer failed.
    #[error("cannot save the change")]
    Store(#[from] StoreError),
    /// The stored document is damaged.
    #[error("the vault document is damaged")]
    Doc(#[from] DocError),
}

/// A file could not be imported. When this is returned, nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Neither a JSON export nor an Automerge document.
    #[error("not a vault export: expected a JSON export or an Automerge document")]
    UnknownFormat,
    /// JSON that does not parse.
    #[error("the JSON export is malformed (line {line}, column {column})")]
    MalformedJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON, but not a vault export.
    #[error("the JSON file is not a vault export (no \"format\": \"{EXPORT_FORMAT}\")")]
    NotAnExport,
    /// An Automerge document that does not load or is not shaped like a vault.
    #[error("the Automerge document cannot be imported: {0}")]
    Automerge(#[source] DocError),
    /// The data does not fit the document schema.
    #[error("the export does not fit the vault schema: {0}")]
    Schema(#[source] SchemaError),
    /// Saving failed.
    #[error(transparent)]
    Edit(#[from] EditError),
}

/// How an import was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportMode {
    /// A CRDT merge: both histories were kept.
    Merged,
    /// The values were written as new changes (a JSON export, or an Automerge document that
    /// does not descend from a vault).
    Values,
}

/// One purchase as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PurchaseRecord {
    /// What was bought.
    pub item: String,
    /// Who sold it.
    pub seller: String,
    /// What it cost.
    pub price: Price,
    /// When (YYYY-MM-DD).
    pub date: String,
    /// A free category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Tags (lowercase).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// 1 to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<i64>,
    /// A review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
}

/// A purchase with its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    /// The purchase id.
    pub id: String,
    /// The record.
    #[serde(flatten)]
    pub record: PurchaseRecord,
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

/// Sizes of the vault file, for benchmarks and `verify`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StorageStats {
    /// Bytes of the database file.
    pub db_bytes: u64,
    /// Bytes of the write-ahead log.
    pub wal_bytes: u64,
    /// Bytes of the sealed snapshot.
    pub snapshot_bytes: u64,
    /// Number of change chunks since the snapshot.
    pub chunk_count: u64,
    /// Bytes of those chunks.
    pub chunk_bytes: u64,
}

/// The vault's clock: unix seconds. Injectable so that expiry is testable without sleeping.
pub type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> Clock {
    std::sync::Arc::new(|| jiff::Timestamp::now().as_second())
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
        if passphrase.is_empty() {
            return Err(CreateError::EmptyPassphrase);
        }
        let path = self.db_path();
        if path.exists() {
            return Err(CreateError::AlreadyExists(self.dir));
        }
        std::fs::create_dir_all(&self.dir).map_err(StoreError::Io)?;
        // Build in a temporary file and move it into place, so a crash never leaves a
        // half-made vault where `open` would find it.
        let tmp =
            self.dir.join(format!(".{DB_FILE}.{}.tmp", data_encoding::HEXLOWER.encode(&random_array::<6>())));
        let result = (|| {
            let store = Store::create(&tmp, passphrase, self.kdf)?;
            let identity = Identity::generate();
            let device = DeviceKey::generate();
            let mut doc = VaultDoc::new();
            store.begin_write()?;
            let written = (|| {
                for (name, seed) in [("identity", identity.secret_bytes()), ("device", device.secret_bytes())]
                {
                    store.write_secret(name, &seed[..])?;
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

    fn open_store(&self, passphrase: &Passphrase) -> Result<Store, OpenError> {
        let path = self.db_path();
        if !path.is_file() {
            return Err(OpenError::NoVault(self.dir.clone()));
        }
        Store::open(&path, passphrase).map_err(|e| match e {
            UnlockFailure::NotAVault => OpenError::NotAVault(path.clone()),
            UnlockFailure::UnknownFormat(f) => OpenError::UnknownFormat(f),
            UnlockFailure::WrongPassphrase => OpenError::WrongPassphrase,
            UnlockFailure::Store(s) => s.into(),
        })
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
    for name in ["identity", "device"] {
        if let Err(e) = store.read_secret(name) {
            report.problems.push(e.to_string());
        }
    }
    match read_document(store) {
        Ok(loaded) => {
            if let Err(e) = VaultDoc::load(&loaded.bytes).and_then(|doc| doc.check_shape().map(|_| doc)) {
                report.problems.push(format!("document: {e}"));
            }
        }
        Err(e) => report.problems.push(e.to_string()),
    }
    Ok(report)
}

/// The document as stored: the snapshot and the chunks after it, joined.
struct Loaded {
    bytes: Vec<u8>,
    generation: i64,
    last_seq: i64,
    snapshot_bytes: u64,
    chunk_count: u64,
    chunk_bytes: u64,
}

/// Reads the snapshot and its chunks; call inside one transaction (see [`Store::read_tx`]).
fn read_document(store: &Store) -> Result<Loaded, StoreError> {
    let snapshot = store.read_snapshot()?;
    let mut loaded = Loaded {
        bytes: snapshot.bytes,
        generation: snapshot.generation,
        last_seq: snapshot.through_seq,
        snapshot_bytes: snapshot.sealed_len,
        chunk_count: 0,
        chunk_bytes: 0,
    };
    for chunk in store.changes_after(loaded.last_seq)? {
        if chunk.seq != loaded.last_seq + 1 {
            return Err(StoreError::Missing {
                table: DOC_CHANGES.name,
                row: format!("{} to {}", loaded.last_seq + 1, chunk.seq - 1),
            });
        }
        loaded.bytes.extend_from_slice(change_bytes(chunk.seq, &chunk.plaintext)?);
        loaded.chunk_count += 1;
        loaded.chunk_bytes += chunk.sealed_len;
        loaded.last_seq = chunk.seq;
    }
    Ok(loaded)
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

/// An unlocked vault.
pub struct Vault {
    dir: PathBuf,
    store: Store,
    doc: VaultDoc,
    identity: Identity,
    device: DeviceKey,
    /// Generation of the snapshot this process has loaded.
    snapshot_generation: i64,
    /// Highest change chunk this process has seen.
    last_seq: i64,
    snapshot_bytes: u64,
    chunk_count: u64,
    chunk_bytes: u64,
    /// Projections this process has loaded, by grant (derived data; the file is the truth).
    projections: sharing::ProjectionCache,
    /// Last `PRAGMA data_version` seen by [`Vault::changed_elsewhere`].
    data_version: i64,
    /// Sync states of grants being served by this process.
    serve_states: sharing::ServeStates,
    /// Parsed grants, valid while nobody else wrote (see [`Vault::grants`]).
    grant_cache: sharing::GrantCache,
    /// Replicas of received shares loaded by this process.
    replicas: received::ReplicaCache,
    /// When a refused request was last logged, per peer and kind (keeps floods out of the log).
    refusals_logged: std::collections::HashMap<(IdentityId, u8), i64>,
    /// What the inbox limits need, without decrypting the inbox (see inbox.rs).
    inbox_index: inbox::InboxCache,
    /// A table whose set of rows stopped matching the manifest while this process held the
    /// vault open (another process, or someone with the file, changed it behind our back):
    /// nothing is served any more (see [`Vault::refresh`]).
    tampered: Option<&'static str>,
    clock: Clock,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .field("identity", &self.identity.public())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// The vault in directory `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> VaultOptions {
        VaultOptions { dir: dir.into(), kdf: KdfParams::DEFAULT, clock: system_clock() }
    }

    /// Now, by the vault's clock (unix seconds).
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`): committed when it returns `Ok`,
    /// rolled back otherwise.
    fn write<T, E: From<StoreError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, E>) -> Result<T, E> {
        self.store.begin_write()?;
        // A panic in `f` rolls back too (see rollback.rs).
        match rollback::guarded(self, f) {
            Ok(value) => {
                if let Err(e) = self.store.commit() {
                    self.store.rollback();
                    // What this process cached may not be on disk: reload on next use.
                    self.projections.clear();
                    self.replicas.clear();
                    self.grant_cache.replace(None);
                    return Err(e.into());
                }
                Ok(value)
            }
            Err(e) => {
                self.store.rollback();
                self.projections.clear();
                self.replicas.clear();
                self.grant_cache.replace(None);
                Err(e)
            }
        }
    }

    fn load(store: Store, dir: PathBuf, clock: Clock) -> Result<Self, OpenError> {
        // One read transaction: the rows checked against the manifest are the rows loaded, and
        // a compaction by another process cannot fall between the snapshot and its chunks.
        let (identity, device, loaded) = store.read_tx(|| {
            let identity = Identity::from_secret_bytes(&*store.read_secret("identity")?);
            let device = DeviceKey::from_secret_bytes(&*store.read_secret("device")?);
            let loaded = read_document(&store)?;
            if let Some(table) = store.check_rows()?.first() {
                return Err(StoreError::Integrity { table });
            }
            Ok((identity, device, loaded))
        })?;
        let doc = VaultDoc::load(&loaded.bytes)
            .map_err(|e| OpenError::Damaged(StoreError::Document(Box::new(e))))?;
        let (last_seq, chunk_count, chunk_bytes) = (loaded.last_seq, loaded.chunk_count, loaded.chunk_bytes);
        Ok(Self {
            dir,
            store,
            doc,
            identity,
            device,
            snapshot_generation: loaded.generation,
            last_seq,
            snapshot_bytes: loaded.snapshot_bytes,
            chunk_count,
            chunk_bytes,
            projections: Default::default(),
            serve_states: Default::default(),
            grant_cache: Default::default(),
            replicas: Default::default(),
            refusals_logged: Default::default(),
            inbox_index: Default::default(),
            tampered: None,
            data_version: 0,
            clock,
        })
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This vault's identity (public key).
    pub fn identity(&self) -> IdentityId {
        self.identity.public()
    }

    /// The identity's signing key.
    pub fn identity_key(&self) -> &Identity {
        &self.identity
    }

    /// The device key that runs this vault's network endpoint.
    pub fn device_key(&self) -> &DeviceKey {
        &self.device
    }

    /// The identity's certificate for this device.
    pub fn device_certificate(&self) -> DeviceCertificate {
        self.identity.certify(self.device.public())
    }

    /// A ticket for this vault with the given direct addresses.
    pub fn ticket(&self, addrs: Vec<std::net::SocketAddr>) -> Ticket {
        Ticket::new(self.device_certificate(), addrs)
    }

    /// True when another connection (another process) committed to the file since the last
    /// call. Cheap: reads SQLite's `data_version`, no I/O beyond the shared-memory index.
    pub fn changed_elsewhere(&mut self) -> Result<bool, StoreError> {
        let version = self.store.data_version()?;
        let changed = version != self.data_version;
        self.data_version = version;
        Ok(changed)
    }

    /// Applies changes written to the file by other processes since this one last looked.
    /// Returns true when something new arrived.
    ///
    /// The set of rows is checked against the manifest in the same read transaction (a long-
    /// running node must not serve a grant row put back behind its back); on a mismatch the
    /// vault stops serving anyone and the error names the table.
    pub fn refresh(&mut self) -> Result<bool, EditError> {
        self.store.begin_read()?;
        let result = self.catch_up().and_then(|changed| {
            if let Some(table) = self.store.check_rows()?.first() {
                self.tampered = Some(table);
                return Err(StoreError::Integrity { table }.into());
            }
            Ok(changed)
        });
        if result.is_ok() {
            let _ = self.store.commit();
        } else {
            self.store.rollback();
        }
        result
    }

    /// Call inside a transaction (read or write), so the snapshot and the chunks read are one
    /// state of the file.
    fn catch_up(&mut self) -> Result<bool, EditError> {
        let generation = self.store.snapshot_generation()?;
        let mut changed = false;
        if generation != self.snapshot_generation {
            let snapshot = self.store.read_snapshot()?;
            self.doc.load_incremental(&snapshot.bytes)?;
            self.snapshot_generation = snapshot.generation;
            self.snapshot_bytes = snapshot.sealed_len;
            self.last_seq = self.last_seq.max(snapshot.through_seq);
            self.chunk_count = 0;
            self.chunk_bytes = 0;
            changed = true;
        }
        for chunk in self.store.changes_after(self.last_seq)? {
            self.doc.load_incremental(change_bytes(chunk.seq, &chunk.plaintext)?)?;
            self.last_seq = chunk.seq;
            self.chunk_count += 1;
            self.chunk_bytes += chunk.sealed_len;
            changed = true;
        }
        Ok(changed)
    }

    /// Runs `edit` on the document and makes the result durable as one change. When `edit`
    /// fails, or saving fails, nothing is written and the in-memory document is rolled back.
    fn edit<T>(&mut self, edit: impl FnOnce(&mut VaultDoc) -> Result<T, EditError>) -> Result<T, EditError> {
        let result = rollback::guarded(self, |v| v.edit_locked(edit));
        if result.is_err() {
            self.store.rollback();
        }
        result
    }

    fn edit_locked<T>(
        &mut self,
        edit: impl FnOnce(&mut VaultDoc) -> Result<T, EditError>,
    ) -> Result<T, EditError> {
        self.store.begin_write()?;
        self.catch_up()?;
        let before: Vec<ChangeHash> = self.doc.automerge().get_heads();
        self.doc.take_touched();
        let value = match edit(&mut self.doc) {
            Ok(v) => v,
            Err(e) => {
                self.doc.automerge().rollback();
                self.doc.take_touched();
                return Err(e);
            }
        };
        self.doc.automerge().commit();
        // Compare heads rather than trusting commit(): a merge adds changes without a local
        // commit, and those must be persisted too.
        if self.doc.automerge().get_heads() != before {
            let bytes = self.doc.automerge().save_after(&before);
            let touched = self.doc.take_touched();
            let seq = self.last_seq + 1;
            let written = self
                .store
                .append_change(seq, &change_plaintext(&touched, &bytes))
                .and_then(|len| self.store.commit().map(|_| len));
            let sealed_len = match written {
                Ok(len) => len,
                Err(e) => {
                    // The change is not durable: drop it from memory too, by reloading.
                    self.store.rollback();
                    self.reload()?;
                    return Err(e.into());
                }
            };
            self.last_seq = seq;
            self.chunk_count += 1;
            self.chunk_bytes += sealed_len;
            if self.chunk_bytes > COMPACT_MIN_BYTES.max(self.snapshot_bytes / COMPACT_SNAPSHOT_DIVISOR) {
                // The edit is already durable; a failed compaction only leaves chunks behind.
                if let Err(e) = self.compact() {
                    tracing::warn!(error = %e, "compaction failed; will retry on a later write");
                }
            }
        } else {
            self.store.commit()?;
        }
        Ok(value)
    }

    fn reload(&mut self) -> Result<(), EditError> {
        let loaded = self.store.read_tx(|| read_document(&self.store))?;
        self.last_seq = loaded.last_seq;
        self.snapshot_generation = loaded.generation;
        self.doc = VaultDoc::load(&loaded.bytes)?;
        Ok(())
    }

    /// Folds all change chunks into a new sealed snapshot and returns freed space to the
    /// file system.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        self.store.begin_write()?;
        let result = (|| {
            self.catch_up().map_err(|e| match e {
                EditError::Store(s) => s,
                EditError::Doc(d) => StoreError::Document(Box::new(d)),
                other => StoreError::Document(Box::new(other)),
            })?;
            let bytes = self.doc.automerge().save();
            let generation = self.snapshot_generation + 1;
            let sealed = self.store.write_snapshot(generation, self.last_seq, &bytes)?;
            self.store.drop_changes_through(self.last_seq)?;
            self.store.commit()?;
            self.snapshot_generation = generation;
            self.snapshot_bytes = sealed;
            self.chunk_count = 0;
            self.chunk_bytes = 0;
            Ok(())
        })();
        if result.is_err() {
            self.store.rollback();
            return result;
        }
        self.store.reclaim_space()
    }

    /// What the changes after `seq` touched, from their chunks; `None` when that is unknown
    /// (chunks folded into the snapshot, a merge, or chunks from before this was recorded).
    fn touched_since(&self, seq: i64) -> Result<Option<Vec<Touched>>, StoreError> {
        let mut expected = seq + 1;
        let mut all: Vec<Touched> = Vec::new();
        for chunk in self.store.changes_after(seq)? {
            let (s, plain) = (chunk.seq, chunk.plaintext);
            if s != expected {
                return Ok(None);
            }
            expected += 1;
            match split_change(&plain) {
                Some((Some(list), _)) => {
                    for t in list {
                        if !all.contains(&t) {
                            all.push(t);
                        }
                    }
                }
                _ => return Ok(None),
            }
        }
        if expected - 1 != self.last_seq {
            return Ok(None);
        }
        Ok(Some(all))
    }

    /// File sizes and chunk counts.
    pub fn storage_stats(&self) -> StorageStats {
        let len = |suffix: &str| {
            let mut p = self.store.path().as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(PathBuf::from(p)).map(|m| m.len()).unwrap_or(0)
        };
        StorageStats {
            db_bytes: len(""),
            wal_bytes: len("-wal"),
            snapshot_bytes: self.snapshot_bytes,
            chunk_count: self.chunk_count,
            chunk_bytes: self.chunk_bytes,
        }
    }

    // ----- profile -----

    fn field_path(field: &str) -> Result<Vec<&str>, EditError> {
        let path: Vec<&str> = field.split('.').collect();
        if field.is_empty() || path.iter().any(|s| s.is_empty()) {
            return Err(EditError::BadField(field.chars().take(64).collect()));
        }
        Ok(path)
    }

    /// The profile as JSON.
    pub fn profile(&self) -> Value {
        self.doc.section_json(PROFILE)
    }

    /// One profile field (`email`, `address.city`, `address`), if set.
    pub fn profile_field(&self, field: &str) -> Result<Option<Value>, EditError> {
        let path = Self::field_path(field)?;
        let mut value = &self.profile();
        for segment in path {
            match value.get(segment) {
                Some(v) => value = v,
                None => return Ok(None),
            }
        }
        Ok(Some(value.clone()))
    }

    /// Sets a profile field, validated against the schema.
    pub fn set_profile(&mut self, field: &str, value: &str) -> Result<(), EditError> {
        let path: Vec<String> = Self::field_path(field)?.into_iter().map(str::to_owned).collect();
        let value = Value::String(value.to_owned());
        self.edit(|doc| {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            Ok(doc.set_profile(&path, value)?)
        })
    }

    /// Removes a profile field; false when it was not set.
    pub fn unset_profile(&mut self, field: &str) -> Result<bool, EditError> {
        let path: Vec<String> = Self::field_path(field)?.into_iter().map(str::to_owned).collect();
        self.edit(|doc| {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            Ok(doc.unset_profile(&path))
        })
    }

    // ----- purchases -----

    fn new_purchase_id() -> String {
        data_encoding::BASE32_NOPAD.encode(&random_array::<10>()).to_ascii_lowercase()
    }

    /// Adds a purchase; returns its id.
    pub fn add_purchase(&mut self, record: &PurchaseRecord) -> Result<String, EditError> {
        Ok(self.add_purchases(std::slice::from_ref(record))?.remove(0))
    }

    /// Adds many purchases as one change (one durable commit).
    pub fn add_purchases(&mut self, records: &[PurchaseRecord]) -> Result<Vec<String>, EditError> {
        let values: Vec<Value> =
            records.iter().map(|r| serde_json::to_value(r).expect("records serialize")).collect();
        self.edit(|doc| {
            let mut ids = Vec::with_capacity(values.len());
            for value in &values {
                let id = Self::new_purchase_id();
                doc.put_purchase(&id, value)?;
                ids.push(id);
            }
            Ok(ids)
        })
    }

    /// Removes a purchase; false when there is none with this id.
    pub fn remove_purchase(&mut self, id: &str) -> Result<bool, EditError> {
        self.edit(|doc| Ok(doc.remove_purchase(id)))
    }

    /// One purchase.
    pub fn purchase(&self, id: &str) -> Option<Purchase> {
        let value = self.doc.purchase_json(id)?;
        serde_json::from_value(value).ok().map(|record| Purchase { id: id.to_owned(), record })
    }

    /// All purchases, newest first (by date, then id).
    pub fn purchases(&self) -> Vec<Purchase> {
        let mut out: Vec<Purchase> =
            self.doc.purchase_ids().iter().filter_map(|id| self.purchase(id)).collect();
        out.sort_by(|a, b| b.record.date.cmp(&a.record.date).then_with(|| a.id.cmp(&b.id)));
        out
    }

    // ----- preferences -----

    /// All preferences as JSON.
    pub fn preferences(&self) -> Value {
        self.doc.section_json(PREFERENCES)
    }

    /// Sets a preference, validated against the schema.
    pub fn set_preference(&mut self, key: &str, value: &str) -> Result<(), EditError> {
        self.edit(|doc| Ok(doc.set_preference(key, value)?))
    }

    /// Removes a preference; false when it was not set.
    pub fn unset_preference(&mut self, key: &str) -> Result<bool, EditError> {
        self.edit(|doc| Ok(doc.unset_preference(key)))
    }

    // ----- export and import -----

    /// Everything, as a JSON export (`schemas/doc/vault-document.schema.json`).
    pub fn export_json(&self) -> Value {
        let mut value = self.doc.to_json();
        value["format"] = Value::from(EXPORT_FORMAT);
        value
    }

    /// Everything, as a standard Automerge document (with its full history).
    pub fn export_automerge(&mut self) -> Vec<u8> {
        self.doc.automerge().save()
    }

    /// Imports a JSON export or an Automerge document (detected from the content). An Automerge
    /// document that descends from a vault is merged (the CRDT merge: both sides' edits kept);
    /// anything else has its values written as new changes. Validated first; nothing is written
    /// when it does not fit.
    pub fn import(&mut self, bytes: &[u8]) -> Result<ImportMode, ImportError> {
        let decoded = import::Decoded::decode(bytes)?;
        Ok(self.edit(|doc| decoded.apply(doc))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_vault(dir: &Path) -> Vault {
        Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
    }

    fn tea() -> PurchaseRecord {
        PurchaseRecord {
            item: "Tea".into(),
            seller: "Acme".into(),
            price: Price::parse("4.50", "EUR").unwrap(),
            date: "2026-11-01".into(),
            category: None,
            tags: vec!["food".into()],
            rating: Some(4),
            review: None,
        }
    }

    #[test]
    fn edits_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = new_vault(dir.path());
        v.set_profile("email", "ada@example.org").unwrap();
        let id = v.add_purchase(&tea()).unwrap();
        v.set_preference("diet", "vegan").unwrap();
        drop(v);
        let v = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(v.profile_field("email").unwrap(), Some(Value::from("ada@example.org")));
        assert_eq!(v.purchase(&id).unwrap().record, tea());
        assert_eq!(v.preferences()["diet"], "vegan");
    }

    #[test]
    fn two_handles_on_one_vault_do_not_lose_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = new_vault(dir.path());
        let mut b = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        a.set_profile("name", "Ada").unwrap();
        b.set_preference("diet", "vegan").unwrap();
        a.set_preference("size", "M").unwrap();
        let c = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(c.profile()["name"], "Ada");
        assert_eq!(c.preferences()["diet"], "vegan");
        assert_eq!(c.preferences()["size"], "M");
    }

    #[test]
    fn compaction_keeps_everything_and_shrinks_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = new_vault(dir.path());
        for i in 0..50 {
            v.set_preference("counter", &i.to_string()).unwrap();
        }
        assert!(v.storage_stats().chunk_count > 0);
        v.compact().unwrap();
        assert_eq!(v.storage_stats().chunk_count, 0);
        v.set_profile("name", "Ada").unwrap();
        drop(v);
        let v = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(v.preferences()["counter"], "49");
        assert_eq!(v.profile()["name"], "Ada");
    }

    #[test]
    fn init_over_existing_vault_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = new_vault(dir.path());
        v.set_profile("name", "Ada").unwrap();
        drop(v);
        let err = Vault::at(dir.path())
            .kdf(KdfParams::INSECURE_FOR_TESTS)
            .create(&Passphrase::new("other"))
            .unwrap_err();
        assert!(matches!(err, CreateError::AlreadyExists(_)));
        let v = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(v.profile()["name"], "Ada");
    }

    #[test]
    fn merged_changes_are_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let mut other = new_vault(other_dir.path());
        other.set_profile("name", "Ada").unwrap();
        let bytes = other.export_automerge();
        let mut v = new_vault(dir.path());
        assert_eq!(v.import(&bytes).unwrap(), ImportMode::Merged);
        drop(v);
        let v = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(v.profile()["name"], "Ada");
    }

    #[test]
    fn refused_edit_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = new_vault(dir.path());
        let before = v.storage_stats().chunk_count;
        let mut bad = tea();
        bad.rating = Some(9);
        assert!(matches!(v.add_purchase(&bad), Err(EditError::Schema(_))));
        assert!(v.set_profile("nickname", "x").is_err());
        assert_eq!(v.storage_stats().chunk_count, before);
        assert!(v.purchases().is_empty());
    }
}
