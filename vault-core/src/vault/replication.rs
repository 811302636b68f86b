//! One sharing state across the identity's devices: grants with their revocations and erasure
//! receipts, contacts and blocks, consent requests and their answers, and the access log.
//! Owns the sealed table `shared_log`.
//!
//! Every change to a grant, contact or request row is also appended to `shared_log` as an
//! [`Entry`] (the row's new state) under (the device that made it, its next number). Devices
//! tell each other how far they hold each device's entries ([`SharedHave`], a version vector)
//! and send what the other lacks, in order ([`Replication::batch`]); an entry is relayed under
//! its origin, so a device that never meets another still gets its entries through a third.
//! Each entry is merged into the tables by a rule that is commutative, associative and
//! idempotent, so devices that saw the same entries hold the same state, whatever the order:
//! - a grant: the signed grant, verified and issued by this identity; a revocation or an
//!   erasure receipt, once known, stays (of two revocations, the earlier): a grant revoked on
//!   one device and not on another is revoked on both once they meet, never half-revoked;
//! - a consent request: the answer further along wins (pending, then denied, then approved);
//! - a contact: the last write wins, by (Lamport clock, time, origin); a removal is a write;
//! - a breach notice a seller sent: kept once, never removed.
//!
//! The access log travels beside the entries: each device sends the events it logged itself,
//! after the other's cursor, and a received event names the device it happened on
//! ([`AuditEvent::device`]). Events are not relayed: a device learns another's events from
//! that device.
//!
//! Each entry is signed by the device that made it, over (origin, number, entry): a device that
//! relays another's entries cannot change them, drop a revocation from them, or fill another's
//! numbers. Received bytes come from an authenticated active device of this identity and are
//! still checked: the origin is a listed device other than this one, the entry's signature, the
//! number that comes next for its origin, then every statement in it (signature, issuer, ids,
//! dates). An authentic entry whose content does not check out is kept in the log without
//! being applied (and logged), so that its origin's later entries still apply; one that is
//! not authentic stops that origin's entries for this batch.
//!
//! An origin is a device in one incarnation, and each entry's signature chains it to the one
//! before under its origin: a device restored from a backup, or a file copied to a second
//! machine, reuses numbers its other devices hold, and the chain shows it. How such a fork is
//! found and repaired (a fresh origin, the whole state logged again) is in `replication/fork.rs`
//! and `replication/origin.rs`.

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};

use data_encoding::BASE64;
use serde::{Deserialize, Serialize};

use super::Vault;
use super::audit::AuditEvent;
use super::contacts::Contact;
use super::requests::Record as RequestRecord;
use crate::identity::DeviceId;
use crate::store::StoreError;
use crate::store::sealed::{AUDIT, Key, REQUESTS_IN, REQUESTS_OUT, SHARED_LOG as TABLE};
use crate::vault::settings::Setting;

mod contacts;
mod fork;
mod have;
mod origin;

pub use have::SharedHave;
pub(crate) use origin::Origin;
use origin::entry_digest;

/// A batch stops growing past this many bytes of entries and events.
const BATCH_BYTES: usize = 256 * 1024;
/// Largest batch accepted from another device.
pub(crate) const MAX_SHARED_BATCH: usize = 16 << 20;
/// Largest [`SharedHave`] accepted from another device.
pub(crate) const MAX_SHARED_HAVE: usize = 64 * 1024;
/// Rows read from the log or the access log to build one batch, at most.
const BATCH_ROWS: usize = 512;
/// What a device signed its entries under before entries were chained (incarnation 0 only).
const LABEL_ENTRY: &[u8] = b"vault/v1/shared-entry";
/// What a device signs its chained entries under.
const LABEL_CHAINED: &[u8] = b"vault/v2/shared-entry";
/// Marks a stored row of a chained entry (an unchained row's body starts with `{`).
const ROW_CHAINED: u8 = 0x02;
/// The previous digest of an origin's first chained entry.
const NO_PREV: [u8; 32] = [0; 32];

/// The message a device signed for its unchained entry `seq`.
fn entry_message(device: &DeviceId, seq: i64, body: &[u8]) -> Vec<u8> {
    [device.as_bytes().as_slice(), &seq.to_be_bytes(), body].concat()
}

/// The message a device signs for its chained entry `seq` of `origin`, after `prev`.
fn chained_message(origin: &Origin, seq: i64, prev: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let device = origin.device.as_bytes().as_slice();
    [device, &origin.incarnation.to_be_bytes(), &seq.to_be_bytes(), prev, body].concat()
}

/// An entry as stored or sent: its origin's signature, the digest it chains to (none for
/// entries signed before chaining), and the entry's JSON.
struct LogRow<'a> {
    sig: [u8; 64],
    prev: Option<[u8; 32]>,
    body: &'a [u8],
}

impl LogRow<'_> {
    fn row(&self) -> Vec<u8> {
        match &self.prev {
            Some(prev) => [&self.sig[..], &[ROW_CHAINED], prev, self.body].concat(),
            None => [&self.sig[..], self.body].concat(),
        }
    }

    /// True when `origin` signed it as its entry `seq`.
    fn verifies(&self, origin: &Origin, seq: i64) -> bool {
        match &self.prev {
            Some(prev) => {
                origin.device.verify(LABEL_CHAINED, &chained_message(origin, seq, prev, self.body), &self.sig)
            }
            None => {
                origin.incarnation == 0
                    && origin.device.verify(
                        LABEL_ENTRY,
                        &entry_message(&origin.device, seq, self.body),
                        &self.sig,
                    )
            }
        }
    }
}

/// The parts of a stored log row.
fn split_row(row: &[u8]) -> Option<LogRow<'_>> {
    let sig = row.get(..64)?.try_into().ok()?;
    match row.get(64) {
        Some(&ROW_CHAINED) => {
            Some(LogRow { sig, prev: Some(row.get(65..97)?.try_into().ok()?), body: row.get(97..)? })
        }
        _ => Some(LogRow { sig, prev: None, body: &row[64..] }),
    }
}

/// An entry's signature, the digest it chains to, and its body.
type Opened = ([u8; 64], Option<[u8; 32]>, Vec<u8>);

/// The signature, chain and body of an entry as sent, when its origin signed them as its
/// entry `seq`.
fn open_wire(wire: &WireEntry) -> Option<Opened> {
    let sig: [u8; 64] = BASE64.decode(wire.sig.as_bytes()).ok()?.try_into().ok()?;
    let body = BASE64.decode(wire.body.as_bytes()).ok()?;
    let prev = match &wire.prev {
        Some(p) => Some(BASE64.decode(p.as_bytes()).ok()?.try_into().ok()?),
        None => None,
    };
    LogRow { sig, prev, body: &body }.verifies(&wire.origin, wire.seq).then_some((sig, prev, body))
}

/// The state of one shared row, as logged and sent to the other devices.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Entry {
    /// A grant this identity issued, with what is known of its end.
    Grant {
        signed: Vec<u8>,
        #[serde(default)]
        revocation: Option<Vec<u8>>,
        #[serde(default)]
        erasure: Option<Vec<u8>>,
        /// The issuing device's document heads at issue (hex); see `GrantRecord`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        heads: Vec<String>,
        /// Erasure receipts of the grantee's other devices.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        erasures: Vec<Vec<u8>>,
        /// The grantee's devices served.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        served: Vec<DeviceId>,
    },
    /// A contact row (`None`: removed), written at `at` (unix seconds), `clock` one past the
    /// row's stamp when written, by `by` (absent: the entry's origin; present when a device
    /// logs another's write again after a fork, so that its stamp stays the same).
    Contact {
        row: Vec<u8>,
        clock: i64,
        at: i64,
        contact: Option<Contact>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<DeviceId>,
    },
    /// A consent request made to this identity (`incoming`) or by it.
    Request { incoming: bool, id: Vec<u8>, record: RequestRecord },
    /// A seller's breach notice this identity received (the signed notice), and when.
    Notice { signed: Vec<u8>, received_at: i64 },
}

impl Entry {
    /// The entry as another device logs it again under its own origin: the same, a contact's
    /// write keeping the device that made it (its stamp).
    fn relogged(&self, origin: &DeviceId) -> Entry {
        match self {
            Entry::Contact { row, clock, at, contact, by } => Entry::Contact {
                row: row.clone(),
                clock: *clock,
                at: *at,
                contact: contact.clone(),
                by: Some(by.unwrap_or(*origin)),
            },
            other => other.clone(),
        }
    }
}

/// One entry as sent: its origin and number, the origin's signature and the entry's JSON
/// (both base64).
#[derive(Serialize, Deserialize)]
struct WireEntry {
    origin: Origin,
    seq: i64,
    sig: String,
    body: String,
    /// The digest it chains to (base64); absent for entries signed before chaining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prev: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Batch {
    entries: Vec<WireEntry>,
    audit: Vec<(i64, AuditEvent)>,
}

/// A batch from another device could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// The bytes are not a batch.
    #[error("malformed batch of sharing state")]
    Malformed,
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One sharing state across the identity's devices (the shared log): `vault.replication()`, `vault.replication_mut()`.
#[derive(Debug)]
pub struct Replication<V> {
    pub(in crate::vault) vault: V,
}

impl<V: Deref<Target = Vault>> Replication<V> {
    pub(in crate::vault) fn new(vault: V) -> Self {
        Self { vault }
    }
}

impl<V: Deref<Target = Vault>> Replication<V> {
    /// Logs a consent request row's new state; call inside the write transaction that wrote it.
    pub(in crate::vault) fn log_request(
        &self,
        incoming: bool,
        id: &[u8],
        record: &RequestRecord,
    ) -> Result<(), StoreError> {
        self.log_shared(&Entry::Request { incoming, id: id.to_vec(), record: record.clone() })?;
        Ok(())
    }

    /// Appends `entry` to the shared log as this device's next, chained to the one before;
    /// call inside the write transaction that changes the row. Returns the entry's number.
    pub(super) fn log_shared(&self, entry: &Entry) -> Result<i64, StoreError> {
        let origin = self.current_origin()?;
        let group = origin.group();
        let seq = self.vault.store.next_group_seq(&TABLE, &group)?;
        let prev = self.digest_at(&origin, seq - 1)?.unwrap_or(NO_PREV);
        let body = serde_json::to_vec(entry).expect("serializes");
        let sig = self.vault.device.sign(LABEL_CHAINED, &chained_message(&origin, seq, &prev, &body));
        let row = LogRow { sig, prev: Some(prev), body: &body }.row();
        self.vault.store.put(&TABLE, Key::Chunk(&group, seq), &row)?;
        Ok(seq)
    }

    /// True when `origin`'s entry `seq` is held here and chained.
    fn chained_at(&self, origin: &Origin, seq: i64) -> Result<bool, StoreError> {
        if seq <= 0 {
            return Ok(false);
        }
        let Some(row) = self.vault.store.get(&TABLE, Key::Chunk(&origin.group(), seq))? else {
            return Ok(false);
        };
        Ok(split_row(&row).ok_or_else(|| StoreError::damaged(&TABLE, seq))?.prev.is_some())
    }

    /// The digest of `origin`'s entry `seq` held here (the zero digest before the first).
    fn digest_at(&self, origin: &Origin, seq: i64) -> Result<Option<[u8; 32]>, StoreError> {
        if seq <= 0 {
            return Ok(Some(NO_PREV));
        }
        let Some(row) = self.vault.store.get(&TABLE, Key::Chunk(&origin.group(), seq))? else {
            return Ok(None);
        };
        let parts = split_row(&row).ok_or_else(|| StoreError::damaged(&TABLE, seq))?;
        Ok(Some(entry_digest(&parts.sig)))
    }

    /// What this device holds of the shared log, and of `peer`'s access log.
    pub fn have(&self, peer: &DeviceId) -> Result<SharedHave, StoreError> {
        let suspects = self.suspects()?;
        let mut log = self.log_maxima()?;
        let mut digests = Vec::with_capacity(log.len());
        for (origin, seq) in &mut log {
            // An origin whose digest another device said differs is asked for again from the
            // entry in question: what comes back proves a fork, or that there is none.
            if let Some((_, at)) = suspects.iter().find(|(o, _)| o == origin) {
                *seq = (*seq).min(at - 1);
            }
            if let Some(d) = self.digest_at(origin, *seq)? {
                digests.push((*origin, BASE64.encode(&d)));
            }
        }
        Ok(SharedHave { log, audit: self.audit_cursor(peer)?, digests })
    }

    /// The highest entry held of each origin.
    fn log_maxima(&self) -> Result<Vec<(Origin, i64)>, StoreError> {
        self.vault
            .store
            .group_maxima(&TABLE)?
            .into_iter()
            .map(|(group, seq)| {
                let origin =
                    Origin::from_group(&group).ok_or_else(|| StoreError::damaged(&TABLE, "(origin)"))?;
                Ok((origin, seq))
            })
            .collect()
    }

    fn audit_cursor(&self, peer: &DeviceId) -> Result<i64, StoreError> {
        Ok(self
            .vault
            .settings()
            .get(Setting::AuditFrom(peer))?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(0))
    }

    /// The next batch `peer` lacks, given what it holds (`theirs`, moved past what the batch
    /// carries); `None` when it lacks nothing.
    pub fn batch(&self, theirs: &mut SharedHave) -> Result<Option<Vec<u8>>, StoreError> {
        let mut batch = Batch { entries: Vec::new(), audit: Vec::new() };
        let mut bytes = 0;
        let full = |bytes: usize, rows: usize| bytes > BATCH_BYTES || rows >= BATCH_ROWS;
        for (origin, seq) in self.log_maxima()? {
            let after = theirs.of(&origin);
            if seq <= after {
                continue;
            }
            let limit = BATCH_ROWS - batch.entries.len();
            for (key, row, _) in self.vault.store.list_group_limit(&TABLE, &origin.group(), after, limit)? {
                let parts = split_row(&row).ok_or_else(|| StoreError::damaged(&TABLE, key.seq()))?;
                bytes += row.len();
                batch.entries.push(WireEntry {
                    origin,
                    seq: key.seq(),
                    sig: BASE64.encode(&parts.sig),
                    body: BASE64.encode(parts.body),
                    prev: parts.prev.map(|p| BASE64.encode(&p)),
                });
                theirs.set(origin, key.seq());
                if full(bytes, batch.entries.len()) {
                    break;
                }
            }
            if full(bytes, batch.entries.len()) {
                break;
            }
        }
        // Scans on past other devices' events until one of this device's is found, or none.
        while !full(bytes, batch.entries.len()) && batch.entries.is_empty() && batch.audit.is_empty() {
            let rows = self.vault.store.list_after_limit(&AUDIT, theirs.audit, BATCH_ROWS)?;
            if rows.is_empty() {
                break;
            }
            for (key, body, _) in rows {
                let event: AuditEvent =
                    serde_json::from_slice(&body).map_err(|_| StoreError::damaged(&AUDIT, key.seq()))?;
                theirs.audit = key.seq();
                // Only this device's own events: the others' come from them.
                if event.device.is_none() {
                    bytes += body.len();
                    batch.audit.push((key.seq(), event));
                    if bytes > BATCH_BYTES {
                        break;
                    }
                }
            }
        }
        if batch.entries.is_empty() && batch.audit.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::to_vec(&batch).expect("serializes")))
    }
}

impl<V: DerefMut<Target = Vault>> Replication<V> {
    /// Logs every shared row once, for a vault whose rows predate the shared log (a device
    /// joining later then gets them all). Idempotent.
    pub fn seed(&mut self) -> Result<(), StoreError> {
        if self.vault.settings().get(Setting::SharedLogSeeded)?.is_some() {
            return Ok(());
        }
        self.vault.write(|v| {
            if v.settings().get(Setting::SharedLogSeeded)?.is_some() {
                return Ok(());
            }
            // Rows already logged are logged again: merging is idempotent.
            for entry in v.grants().grant_entries()? {
                v.replication().log_shared(&entry)?;
            }
            for (row, contact) in v.contacts().rows()? {
                let at = v.now();
                v.replication().log_contact(&row, at, Some(&contact))?;
            }
            for (table, incoming) in [(REQUESTS_IN, true), (REQUESTS_OUT, false)] {
                for (id, record) in super::requests::raw_list(v, table)? {
                    v.replication().log_shared(&Entry::Request { incoming, id, record })?;
                }
            }
            v.settings().put(Setting::SharedLogSeeded, b"1")
        })
    }

    /// Takes a batch from `from`, another active device of this identity, in one transaction:
    /// merges each entry that comes next in its origin's sequence and checks out, and appends
    /// the access log's events after this device's cursor. `theirs` (what this side believes
    /// `from` holds) learns what `from` evidently holds. Returns whether anything changed.
    pub fn receive(
        &mut self,
        from: &DeviceId,
        theirs: &mut SharedHave,
        bytes: &[u8],
    ) -> Result<bool, ReplicationError> {
        let batch: Batch = serde_json::from_slice(bytes).map_err(|_| ReplicationError::Malformed)?;
        let this = self.vault.device.public();
        // Origins: the other active devices of this identity, and this device itself: its
        // current origin's entries come back from a device that held more of them than this
        // copy of the file (restored from an older copy), and another incarnation's are a copy
        // of this file's that went on elsewhere. A removed device's entries that were not
        // relayed before its removal are refused.
        let listed: HashSet<DeviceId> = self.vault.devices().others()?.into_iter().map(|d| d.id).collect();
        let allowed = |o: &Origin| listed.contains(&o.device) || o.device == this;
        for e in batch.entries.iter().filter(|e| allowed(&e.origin)) {
            theirs.set(e.origin, e.seq);
        }
        // Where a fork showed: the sender holds the other branch, and is sent this one's entry
        // at that number, which proves the fork to it too.
        let mut shown: Vec<(Origin, i64)> = Vec::new();
        let changed = self.vault.write(|v| {
            let mut changed = false;
            let forked = v.replication().forked_origins()?;
            let mut forks: Vec<Origin> = Vec::new();
            // Origins whose entries stop here for this batch (the sender resends from what we hold).
            let mut stopped: HashSet<Origin> = HashSet::new();
            for wire in batch.entries {
                let origin = wire.origin;
                if stopped.contains(&origin) || forks.contains(&origin) {
                    continue;
                }
                let next = v.store.next_group_seq(&TABLE, &origin.group())?;
                if wire.seq < next {
                    // Held already: the same entry, or another under the same number, signed
                    // by the origin's own key: the proof of a fork.
                    if allowed(&origin)
                        && let Some((sig, _, _)) = open_wire(&wire)
                    {
                        if v.replication().digest_at(&origin, wire.seq)? != Some(entry_digest(&sig))
                            && !forked.contains(&origin)
                        {
                            forks.push(origin);
                            shown.push((origin, wire.seq - 1));
                        }
                        v.replication().clear_suspect(&origin)?;
                    }
                    continue;
                }
                let authentic = (allowed(&origin) && wire.seq == next).then(|| open_wire(&wire)).flatten();
                let Some((sig, prev, body)) = authentic else {
                    tracing::warn!(
                        origin = %origin,
                        seq = wire.seq,
                        "another device relayed a sharing-state entry that is not authentic; its origin's entries wait"
                    );
                    stopped.insert(origin);
                    continue;
                };
                let held_prev = v.replication().chained_at(&origin, wire.seq - 1)?;
                let follows = match prev {
                    Some(prev) => v.replication().digest_at(&origin, wire.seq - 1)? == Some(prev),
                    // Unchained (signed before entries were chained): never after a chained one.
                    None => !held_prev,
                };
                if !follows {
                    // Authentic, but it follows another entry than the one held here.
                    if !forked.contains(&origin) {
                        forks.push(origin);
                        shown.push((origin, wire.seq - 2));
                    }
                    stopped.insert(origin);
                    continue;
                }
                let applied = match serde_json::from_slice::<Entry>(&body) {
                    Ok(entry) => {
                        let applied = v.replication_mut().merge_entry(&origin.device, &entry)?;
                        // An origin known to have forked may not reach every device: what it
                        // brings is logged again under this one.
                        if applied && forked.contains(&origin) {
                            v.replication().log_shared(&entry.relogged(&origin.device))?;
                        }
                        applied
                    }
                    Err(_) => false,
                };
                if !applied {
                    tracing::warn!(origin = %origin, seq = wire.seq, "a sharing-state entry from another device does not check out; kept, not applied");
                }
                let row = LogRow { sig, prev, body: &body }.row();
                v.store.put(&TABLE, Key::Chunk(&origin.group(), wire.seq), &row)?;
                changed = true;
            }
            changed |= v.replication().note_forks(&forks)?;
            let mut cursor = v.replication().audit_cursor(from)?;
            for (seq, mut event) in batch.audit {
                if seq <= cursor {
                    continue;
                }
                cursor = seq;
                event.device = Some(*from);
                v.access_log().append(&event)?;
                changed = true;
            }
            v.settings().put(Setting::AuditFrom(from), cursor.to_string().as_bytes())?;
            Ok::<_, ReplicationError>(changed)
        })?;
        for (origin, seq) in shown {
            theirs.lower(origin, seq.max(0));
        }
        Ok(changed)
    }

    /// Merges one entry from another device into the tables; false when it does not check out.
    fn merge_entry(&mut self, origin: &DeviceId, entry: &Entry) -> Result<bool, StoreError> {
        match entry {
            Entry::Grant { signed, revocation, erasure, heads, erasures, served } => {
                self.vault.grants_mut().merge_grant(super::issued::GrantParts {
                    signed,
                    revocation: revocation.as_deref(),
                    erasure: erasure.as_deref(),
                    heads,
                    erasures,
                    served,
                })
            }
            Entry::Contact { row, clock, at, contact, by } => {
                self.merge_contact(row, (*clock, *at, by.unwrap_or(*origin)), contact.as_ref())
            }
            Entry::Notice { signed, received_at } => {
                self.vault.notices_mut().merge_notice(signed, *received_at)
            }
            Entry::Request { incoming, id, record } => {
                let table = if *incoming { REQUESTS_IN } else { REQUESTS_OUT };
                let merged = super::requests::merge(&self.vault, table, *incoming, id, record)?;
                if merged && *incoming {
                    self.vault.inbox.forget_index();
                }
                Ok(merged)
            }
        }
    }
}
