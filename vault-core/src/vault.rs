//! [`Vault`]: an unlocked vault, the thin handle that holds the store, the keys and the clock,
//! and hands out the roles that own the tables and their rules.
//!
//! Where things live. Each role is a handle type over the vault (`vault.grants()` to read,
//! `vault.grants_mut()` to change) that owns its tables, its in-memory state and its rules;
//! `impl Vault` itself is this file (and the panic guard in `rollback.rs`).
//!
//! | file or folder | role | owns |
//! |---|---|---|
//! | `open.rs`, `rekey.rs` | [`VaultOptions`]: create, unlock, verify, rekey | the file as a whole |
//! | `changes.rs` | the change log: catch-up, durable edits, compaction | `doc_snapshot`, `doc_changes` |
//! | `records.rs`, `records/` | [`Records`]: profile, purchases, preferences, import, export | the document's content |
//! | `issued.rs`, `issued/` | the issuer's side: [`Grants`] (issue, revoke, expire, erasure receipts), [`Projections`] (what each grant shares), [`Serving`] (sync states, what was served) | `grants`, `projection_chunks`; [`IssuedState`](issued::IssuedState) in memory |
//! | `held.rs`, `held/` | what this vault holds from others: [`Held`] (shares, replicas, views), [`Mirror`] (the seller's database) | `received`, `received_chunks`, `received_views`; [`HeldState`](held::HeldState) in memory |
//! | `contacts.rs` | [`Contacts`]: petnames, tickets, blocks | `contacts` |
//! | `requests.rs`, `inbox.rs`, `outbox.rs` | consent requests: [`Inbox`] (made to this vault: approve, deny), [`Outbox`] (made by it) | `requests_in`, `requests_out` |
//! | `notices.rs` | [`Notices`]: breach notices sent and received | `notices_out`, `notices_in` |
//! | `network.rs`, `network/` | [`Network`]: the purchase feed over held shares, its mutes, what the network says | (reads `received_views`) |
//! | `intents.rs`, `market.rs`, `market/` | intentions: [`Intents`] (this customer's, with their pseudonym keys), [`Market`] (a seller's, received) | `intents_out`, `intents_in`; the seller's counts ([`MarketTally`](market::MarketTally)) in memory |
//! | `topics.rs` | [`Topics`]: public topics joined (a pseudonym each), signals heard, what they say | `topics`, `signals` |
//! | `audit.rs` | [`AccessLog`]: the access log | `audit` |
//! | `keys.rs`, `key_state.rs` | [`Keys`]: the recovery code (the next key), restoring and forgetting the identity key, key events | `secrets` rows `identity`, `identity-next`; key events |
//! | `devices.rs`, `roster.rs` | [`Devices`]: this identity's devices, rosters, peers' devices | `devices`; rosters |
//! | `replication.rs`, `replication/` | [`Replication`]: one sharing state across the identity's devices, forks | `shared_log` |
//! | `settings.rs` | the `node` table: every setting's name, spelled once | `node` |
//! | `rollback.rs` | the panic guard of write transactions | nothing |
//!
//! Rows are typed: each role declares its tables with their row type
//! ([`TypedTable`](crate::store::typed::TypedTable)), which encodes, seals and maps damage in
//! one place. A role handle over `&Vault` reads; over `&mut Vault` it also writes, each write in
//! one transaction through [`Vault::write`] (rolled back on any error or panic).
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
mod display_name;
mod held;
mod inbox;
mod intents;
mod issued;
mod key_state;
mod keys;
mod market;
pub mod network;
mod notices;
mod open;
mod outbox;
pub(crate) mod records;
mod rekey;
mod replication;
mod requests;
mod rollback;
mod roster;
pub(crate) mod settings;
#[cfg(test)]
mod tests;
mod topics;

pub use audit::{AccessLog, AuditEvent, AuditFilter, AuditKind};
pub use changes::{EditError, StorageStats};
pub use contacts::{Contact, ContactError, Contacts, Peer};
pub use devices::{DeviceError, DeviceRecord, DeviceSync, Devices, MAX_DEVICES, Merged};
pub use display_name::DisplayNameError;
pub use held::{
    AcceptGrants, DEFAULT_MAX_UNSOLICITED, Held, MAX_UNSOLICITED_PER_STRANGER, Mirror, MirrorEntry,
    MirrorShare, MirrorSource, MirrorStatus, RefusedValue, Share, ShareError, ShareStatus,
};
pub use inbox::{Inbox, MAX_PENDING_PER_PEER, Refusal};
pub use intents::{
    Accepted, Intents, IntentsError, MAX_OFFERS_PER_INTENTION, MAX_OFFERS_PER_SELLER, MIN_PREFIX,
    MyIntention, ends_at,
};
pub use issued::{
    GrantError, GrantInfo, GrantStatus, Grants, Logged, NewGrant, Projections, ServeError, Serving,
};
pub use keys::{Keys, RecoveryError};
pub use market::{
    HeldIntention, MAX_HELD_INTENTIONS, MAX_HELD_PER_TOPIC, MAX_INTENTION_DAYS, MAX_OFFERS_MADE,
    MAX_WITHDRAWN_MARKS, Market, MarketError,
};
pub use network::Network;
pub use network::{FeedEntry, FeedFilter};
pub use notices::{NoticeError, NoticeInfo, Notices, RecordedConsent};
pub use open::{CreateError, OpenError, VaultOptions, VerifyReport};
pub use outbox::Outbox;
pub use records::{ImportError, ImportMode, Purchase, PurchaseRecord, Records};
pub use rekey::{Rekey, RekeyError, Rekeyed};
pub(crate) use replication::{MAX_SHARED_BATCH, MAX_SHARED_HAVE};
pub use replication::{Replication, ReplicationError, SharedHave};
pub use requests::{Approval, Holding, NewRequest, RequestError, RequestInfo, RequestStatus};
pub use roster::MAX_ROSTER_AGE;
pub use topics::{
    JoinedTopic, MAX_ITEMS_PER_PSEUDONYM, MAX_SIGNALS_PER_TOPIC, MAX_TOPICS, SignalCounts, TopicItem, Topics,
    TopicsError,
};
pub(crate) use {held::ShareSync, issued::ServeSync};

use crate::doc::{Touched, VaultDoc};
use crate::identity::{DeviceCertificate, DeviceKey, Identity, IdentityId, Ticket};
use crate::primitives::KdfParams;
use crate::signer::Signer;
use crate::store::{Store, StoreError};
use changes::{ChangeLog, LogState, read_document};

/// The vault's clock: unix seconds. Injectable so that expiry is testable without sleeping.
pub(crate) type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

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
    /// Last `PRAGMA data_version` seen by [`Vault::changed_elsewhere`].
    data_version: i64,
    /// What the issuer's roles keep in memory: grants, projections, serving streams (issued.rs).
    issued: issued::IssuedState,
    /// What the roles over held shares keep in memory: replicas, rows, the mirror (held.rs).
    held: held::HeldState,
    /// Blocked identities, valid while no row changed (see [`Contacts::blocked`]).
    blocked_cache: contacts::BlockedCache,
    /// What a seller's node counts of the intentions it holds (see market/tally.rs).
    market_tally: market::MarketTally,
    /// What the inbox remembers between deliveries (see inbox.rs).
    inbox: inbox::InboxState,
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
        self.issued.projections.clear();
        self.held.replicas.clear();
        self.issued.grant_cache.replace(None);
        self.blocked_cache.replace(None);
        self.held.received_cache.clear();
        self.market_tally.clear();
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
        let keys::LoadedKeys { identity, device, certificate } = keys;
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
            issued: Default::default(),
            held: Default::default(),
            blocked_cache: Default::default(),
            market_tally: Default::default(),
            inbox: Default::default(),
            tampered: None,
            data_version: 0,
            clock,
        };
        // Vaults made before key events commit to a next key now (see key_state.rs).
        vault.keys_mut().upgrade_key_events()?;
        Ok(vault)
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A mark that moves when `table`'s rows may have changed (see
    /// [`Store::table_mark`](crate::store::Store::table_mark)).
    pub(crate) fn table_mark(
        &self,
        table: &crate::store::sealed::Table,
    ) -> Result<crate::store::WriteMark, StoreError> {
        self.store.table_mark(table)
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

    /// Signs this vault's statements: the identity key where this device holds it (its current
    /// key after a rotation), otherwise this device's key with its certificate.
    pub fn signer(&self) -> Signer<'_> {
        match self.identity_signer() {
            Some(signer) => signer,
            None => Signer::Device { key: &self.device, certificate: &self.certificate },
        }
    }

    /// The identity's current signing key, when this device holds it.
    pub fn identity_key(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The identity key this device holds, as a signer: the inception key itself, or the
    /// current key after a rotation (whose signatures name it).
    pub(crate) fn identity_signer(&self) -> Option<Signer<'_>> {
        let held = self.identity.as_ref()?;
        let identity = self.identity();
        Some(if held.public() == identity {
            Signer::Identity(held)
        } else {
            Signer::Rotated { key: held, identity }
        })
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
            self.keys_mut().reload_keys()?;
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

    /// The node's settings (the `node` table).
    pub(crate) fn settings(&self) -> settings::Settings<'_> {
        settings::Settings { store: &self.store }
    }

    /// The change log (see changes.rs).
    fn change_log(&mut self) -> ChangeLog<'_> {
        ChangeLog {
            store: &self.store,
            doc: &mut self.doc,
            last_seq: &mut self.last_seq,
            state: &mut self.log,
        }
    }

    /// The grants this vault issued, to read.
    pub fn grants(&self) -> Grants<&Self> {
        Grants::new(self)
    }

    /// The grants this vault issued, to change.
    pub fn grants_mut(&mut self) -> Grants<&mut Self> {
        Grants::new(self)
    }

    /// What each grant shares (its projection), to read.
    pub fn projections(&self) -> Projections<&Self> {
        Projections::new(self)
    }

    /// What each grant shares (its projection), to change.
    pub fn projections_mut(&mut self) -> Projections<&mut Self> {
        Projections::new(self)
    }

    /// Serving grants to their grantees, to read.
    pub fn serving(&self) -> Serving<&Self> {
        Serving::new(self)
    }

    /// Serving grants to their grantees, to change.
    pub fn serving_mut(&mut self) -> Serving<&mut Self> {
        Serving::new(self)
    }

    /// What this vault holds from others, to read.
    pub fn held(&self) -> Held<&Self> {
        Held::new(self)
    }

    /// What this vault holds from others, to change.
    pub fn held_mut(&mut self) -> Held<&mut Self> {
        Held::new(self)
    }

    /// The database mirror of what this vault holds, to read.
    pub fn mirror(&self) -> Mirror<&Self> {
        Mirror::new(self)
    }

    /// The database mirror of what this vault holds, to change.
    pub fn mirror_mut(&mut self) -> Mirror<&mut Self> {
        Mirror::new(self)
    }

    /// This identity's keys and key events, to read.
    pub fn keys(&self) -> Keys<&Self> {
        Keys::new(self)
    }

    /// This identity's keys and key events, to change.
    pub fn keys_mut(&mut self) -> Keys<&mut Self> {
        Keys::new(self)
    }

    /// The sharing state shared with this identity's other devices, to read.
    pub fn replication(&self) -> Replication<&Self> {
        Replication::new(self)
    }

    /// The sharing state shared with this identity's other devices, to change.
    pub fn replication_mut(&mut self) -> Replication<&mut Self> {
        Replication::new(self)
    }

    /// Breach notices, to read.
    pub fn notices(&self) -> Notices<&Self> {
        Notices::new(self)
    }

    /// Breach notices, to change.
    pub fn notices_mut(&mut self) -> Notices<&mut Self> {
        Notices::new(self)
    }

    /// The purchase feed and what the network says, to read.
    pub fn network(&self) -> Network<&Self> {
        Network::new(self)
    }

    /// The purchase feed and what the network says, to change.
    pub fn network_mut(&mut self) -> Network<&mut Self> {
        Network::new(self)
    }

    /// The profile, purchases and preferences, with export, to read.
    pub fn records(&self) -> Records<&Self> {
        Records::new(self)
    }

    /// The profile, purchases and preferences, to change, export whole and import.
    pub fn records_mut(&mut self) -> Records<&mut Self> {
        Records::new(self)
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

#[cfg(test)]
impl Vault {
    /// The store under this vault, for tests of the storage seam.
    pub(crate) fn store_for_tests(&self) -> &Store {
        &self.store
    }
}
