//! [`Vault`]: an unlocked vault, the thin handle that holds the store, the keys and the clock,
//! and hands out the roles that own the tables and their rules.
//!
//! Where things live (one role per file under `vault/`):
//!
//! | file | role | owns |
//! |---|---|---|
//! | `open.rs` | [`VaultOptions`]: create, unlock, verify | the file as a whole |
//! | `changes.rs` | the change log: catch-up, durable edits, compaction | `doc_snapshot`, `doc_changes` |
//! | `records.rs` | profile, purchases, preferences, import, export | the document's content |
//! | `contacts.rs` | [`Contacts`]: petnames, tickets, blocks | `contacts` |
//! | `audit.rs` | [`AccessLog`]: the access log | `audit` |
//! | `requests.rs` | what both sides of a consent request share | (rows of `requests_in`/`requests_out`) |
//! | `outbox.rs` | [`Outbox`]: requests this vault made, and their answers | `requests_out` |
//! | `inbox.rs` | [`Inbox`]: requests made to this vault, approve, deny | `requests_in` |
//! | `inbox/limits.rs` | the inbox's limits (per peer, strangers) | an in-memory index |
//! | `sharing.rs` | grants issued, revocations, erasure receipts, serving | `grants`, `projection_chunks`, `node` |
//! | `received.rs` | shares received from others, their replicas and views | `received`, `received_chunks`, `received_views` |
//! | `feed.rs` | the merged purchase feed over received shares | (reads `received_views`) |
//! | `network.rs` | what the network says (sellers, top items, also bought) and the feed's mutes | (reads the feed; mutes in `node`) |
//! | `keys.rs` | this device's keys, the recovery code (the next key), rotating with it | `secrets` rows `identity`, `identity-next`, the certificate |
//! | `key_state.rs` | key events: this identity's and its peers', which signer a statement may have | `node` rows `key-events/<identity>` |
//! | `roster.rs` | rosters: this identity's, its peers' devices, re-certification | `node` rows `roster`, `devices-of/<identity>` |
//! | `replication.rs` | one sharing state across the identity's devices | `shared_log` |
//! | `rollback.rs` | the panic guard of write transactions | nothing |
//!
//! Roles are reached through the vault: `vault.inbox_mut().approve(...)`,
//! `vault.contacts().petname(...)`. A role handle over `&Vault` reads; over `&mut Vault` it
//! also writes, each write in one transaction through [`Vault::write`] (rolled back on any
//! error or panic).
//!
//! **The customer's state.** What belongs to the customer, and is the same on every device of
//! theirs, is the document (`doc_snapshot`, `doc_changes`), the identity key (`secrets` row
//! `identity`) and its key events (`node` row `key-events/<identity>`), and the sharing state: grants issued with their revocations and erasure
//! receipts (`grants`), contacts and blocks (`contacts`), consent requests and their answers
//! (`requests_in`, `requests_out`), shares received and their receipts (`received`), and the
//! access log (`audit`). Everything else is device-local or derived and can be rebuilt: the
//! device key (`secrets` row `device`), sync states and node addresses (`node`), projections
//! (`projection_chunks`, rebuilt from the document and the grants), received replicas and
//! their views (`received_chunks`, `received_views`, refetched from their issuers), and every
//! in-memory cache below.

use std::path::{Path, PathBuf};

mod audit;
mod changes;
mod contacts;
mod devices;
mod feed;
mod inbox;
mod key_state;
mod keys;
pub mod network;
mod notices;
mod open;
mod outbox;
mod received;
pub(crate) mod records;
mod rekey;
mod replication;
mod requests;
mod rollback;
mod roster;
mod sharing;
#[cfg(test)]
mod tests;

pub use audit::{AccessLog, AuditEvent, AuditFilter, AuditKind};
pub use changes::{EditError, StorageStats};
pub use contacts::{Contact, ContactError, Contacts, Peer};
pub use devices::{DeviceError, DeviceRecord, DeviceSync, Devices, MAX_DEVICES, Merged};
pub use feed::{FeedEntry, FeedFilter};
pub use inbox::{Inbox, MAX_PENDING_PER_PEER, MAX_REQUESTS_PER_PEER_PER_DAY, Refusal};
pub use keys::RecoveryError;
pub use notices::{MAX_NOTICES_PER_SELLER, NoticeError, NoticeInfo};
pub use open::{CreateError, OpenError, VaultOptions, VerifyReport};
pub use outbox::Outbox;
pub use received::{MirrorEntry, MirrorShare, MirrorStatus, Share, ShareError, ShareStatus};
pub use records::{EXPORT_FORMAT, ImportError, ImportMode, Purchase, PurchaseRecord};
pub use rekey::{Rekey, RekeyError, Rekeyed};
pub use replication::{MAX_SHARED_BATCH, MAX_SHARED_HAVE, ReplicationError, SharedHave};
pub use requests::{Approval, Holding, NewRequest, RequestError, RequestInfo, RequestStatus};
pub use roster::MAX_ROSTER_AGE;
pub use sharing::{GrantError, GrantInfo, GrantStatus, Logged, NewGrant, ServeError};
pub(crate) use {received::ShareSync, sharing::ServeSync};

use crate::doc::{Touched, VaultDoc};
use crate::identity::{DeviceCertificate, DeviceKey, Identity, IdentityId, Ticket};
use crate::primitives::KdfParams;
use crate::store::{Store, StoreError};
use changes::{ChangeLog, LogState, read_document};

/// The vault's clock: unix seconds. Injectable so that expiry is testable without sleeping.
pub type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> Clock {
    std::sync::Arc::new(|| jiff::Timestamp::now().as_second())
}

/// An unlocked vault.
pub struct Vault {
    dir: PathBuf,
    store: Store,
    /// The document, as of change chunk `last_seq` (moved forward by the change log, read by
    /// the records and the projections).
    doc: VaultDoc,
    /// Highest change chunk this process has applied.
    last_seq: i64,
    /// What the change log keeps beyond the document (see changes.rs).
    log: LogState,
    /// The identity key, on the device that holds it (see keys.rs).
    identity: Option<Identity>,
    device: DeviceKey,
    /// The identity's certificate for `device`.
    certificate: DeviceCertificate,
    /// Projections this process has loaded, by grant (derived data; the file is the truth).
    projections: sharing::ProjectionCache,
    /// Last `PRAGMA data_version` seen by [`Vault::changed_elsewhere`].
    data_version: i64,
    /// Sync states of grants being served by this process.
    serve_states: sharing::ServeStates,
    /// Records of served messages waiting for their group commit (sharing/served_log.rs).
    served_log: sharing::ServedLog,
    /// Parsed grants, valid while nobody else wrote (see [`Vault::grants`]).
    grant_cache: sharing::GrantCache,
    /// Blocked identities, valid while no row changed (see [`Contacts::blocked`]).
    blocked_cache: contacts::BlockedCache,
    /// Replicas of received shares loaded by this process.
    replicas: received::ReplicaCache,
    /// Parsed records of received shares, valid while nobody else wrote (received/rows.rs).
    received_cache: received::ReceivedCache,
    /// What the inbox remembers between deliveries (see inbox.rs).
    inbox: inbox::InboxState,
    /// A table whose set of rows stopped matching the manifest while this process held the
    /// vault open (another process, or someone with the file, changed it behind our back):
    /// nothing is served any more (see [`Vault::refresh`]).
    tampered: Option<&'static str>,
    /// The database mirror running in this process has removed the rows of every share this
    /// vault does not hold (see received/mirror.rs): receipts for grants never held are safe.
    mirror_reconciled: bool,
    clock: Clock,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .field("identity", &self.identity())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// The vault in directory `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> VaultOptions {
        VaultOptions::new(dir.into(), KdfParams::DEFAULT, system_clock())
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
                    self.drop_caches();
                    return Err(e.into());
                }
                Ok(value)
            }
            Err(e) => {
                self.store.rollback();
                self.drop_caches();
                Err(e)
            }
        }
    }

    /// Drops what this process cached of rows a failed write may have changed: it may not be
    /// on disk, so it is reloaded on next use.
    fn drop_caches(&mut self) {
        self.projections.clear();
        self.replicas.clear();
        self.grant_cache.replace(None);
        self.blocked_cache.replace(None);
        self.received_cache.clear();
    }

    fn load(store: Store, dir: PathBuf, clock: Clock) -> Result<Self, open::OpenError> {
        // One read transaction: the rows checked against the manifest are the rows loaded, and
        // a compaction by another process cannot fall between the snapshot and its chunks.
        let (keys, loaded) = store.read_tx(|| {
            let keys = keys::read(&store)?;
            let loaded = read_document(&store)?;
            if let Some(table) = store.check_rows()?.first() {
                return Err(StoreError::Integrity { table });
            }
            Ok((keys, loaded))
        })?;
        let keys::Keys { identity, device, certificate } = keys;
        let (doc, last_seq, log) =
            loaded.into_parts().map_err(|e| open::OpenError::Damaged(StoreError::Document(Box::new(e))))?;
        let mut vault = Self {
            dir,
            store,
            doc,
            last_seq,
            log,
            identity,
            device,
            certificate,
            projections: Default::default(),
            serve_states: Default::default(),
            served_log: Default::default(),
            grant_cache: Default::default(),
            blocked_cache: Default::default(),
            replicas: Default::default(),
            received_cache: Default::default(),
            inbox: Default::default(),
            tampered: None,
            mirror_reconciled: false,
            data_version: 0,
            clock,
        };
        // Vaults made before key events commit to a next key now (see key_state.rs).
        vault.upgrade_key_events()?;
        Ok(vault)
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data key as an unlock agent may hold it instead of the passphrase (see
    /// [`VaultOptions::unlock_with_key`]).
    pub fn unlock_key(&self) -> Result<crate::UnlockKey, StoreError> {
        self.store.unlock_key()
    }

    /// This vault's identity (public key).
    pub fn identity(&self) -> IdentityId {
        self.certificate.identity()
    }

    /// The device key that runs this vault's network endpoint.
    pub fn device_key(&self) -> &DeviceKey {
        &self.device
    }

    /// The identity's certificate for this device.
    pub fn device_certificate(&self) -> DeviceCertificate {
        self.certificate
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
            // Another process may have taken the identity key onto this device (`device
            // recover`) or removed it (`device forget-key`): a running node signs with what
            // the file holds now.
            self.reload_keys()?;
            Ok(changed)
        });
        if result.is_ok() {
            let _ = self.store.commit();
        } else {
            self.store.rollback();
        }
        result
    }

    // ----- the roles -----

    /// The change log (see changes.rs).
    fn change_log(&mut self) -> ChangeLog<'_> {
        ChangeLog {
            store: &self.store,
            doc: &mut self.doc,
            last_seq: &mut self.last_seq,
            state: &mut self.log,
        }
    }

    /// Contacts and blocks, to read.
    pub fn contacts(&self) -> Contacts<&Self> {
        Contacts::new(self)
    }

    /// Contacts and blocks, to read and change.
    pub fn contacts_mut(&mut self) -> Contacts<&mut Self> {
        Contacts::new(self)
    }

    /// The devices of this identity, to read.
    pub fn devices(&self) -> Devices<&Self> {
        Devices::new(self)
    }

    /// The devices of this identity, to link, remove and merge.
    pub fn devices_mut(&mut self) -> Devices<&mut Self> {
        Devices::new(self)
    }

    /// The access log, to read.
    pub fn access_log(&self) -> AccessLog<&Self> {
        AccessLog::new(self)
    }

    /// The access log, to read and append to.
    pub fn access_log_mut(&mut self) -> AccessLog<&mut Self> {
        AccessLog::new(self)
    }

    /// Consent requests made to this vault, to read.
    pub fn inbox(&self) -> Inbox<&Self> {
        Inbox::new(self)
    }

    /// Consent requests made to this vault, to take in and answer.
    pub fn inbox_mut(&mut self) -> Inbox<&mut Self> {
        Inbox::new(self)
    }

    /// Consent requests this vault made, to read.
    pub fn outbox(&self) -> Outbox<&Self> {
        Outbox::new(self)
    }

    /// Consent requests this vault made, to make and to note their answers.
    pub fn outbox_mut(&mut self) -> Outbox<&mut Self> {
        Outbox::new(self)
    }

    // ----- the change log -----

    /// Call inside a transaction (read or write), so the snapshot and the chunks read are one
    /// state of the file. The logic lives in changes.rs.
    fn catch_up(&mut self) -> Result<bool, EditError> {
        self.change_log().catch_up()
    }

    /// Runs `edit` on the document and makes the result durable as one change. When `edit`
    /// fails, or saving fails, nothing is written and the in-memory document is rolled back.
    fn edit<T>(&mut self, edit: impl FnOnce(&mut VaultDoc) -> Result<T, EditError>) -> Result<T, EditError> {
        let result = rollback::guarded(self, |v| v.change_log().edit(edit));
        if result.is_err() {
            self.store.rollback();
        }
        result
    }

    /// Reloads the document from the file (drops what this process holds in memory).
    fn reload(&mut self) -> Result<(), EditError> {
        self.change_log().reload()
    }

    /// What the changes after `seq` touched, from their chunks; `None` when that is unknown.
    /// The logic lives in changes.rs.
    fn touched_since(&self, seq: i64) -> Result<Option<Vec<Touched>>, StoreError> {
        changes::touched_since(&self.store, self.last_seq, seq)
    }

    /// Folds all change chunks into a new sealed snapshot and returns freed space to the
    /// file system.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        self.change_log().compact()
    }

    /// File sizes and chunk counts.
    pub fn storage_stats(&self) -> StorageStats {
        changes::stats(&self.store, &self.log)
    }
}

/// A new vault in `dir` with the passphrase `pw` and the test KDF, for unit tests.
#[cfg(test)]
pub(crate) fn new_test_vault(dir: &Path) -> Vault {
    let passphrase = crate::primitives::Passphrase::new("pw");
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&passphrase).unwrap()
}

/// A test vault whose clock reads `clock` (Unix seconds), for tests that move time.
#[cfg(test)]
pub(crate) fn new_test_vault_with_clock(
    dir: &Path,
    clock: std::sync::Arc<std::sync::atomic::AtomicI64>,
) -> Vault {
    let passphrase = crate::primitives::Passphrase::new("pw");
    Vault::at(dir)
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .clock(std::sync::Arc::new(move || clock.load(std::sync::atomic::Ordering::SeqCst)))
        .create(&passphrase)
        .unwrap()
}
