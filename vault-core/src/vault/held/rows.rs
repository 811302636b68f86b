//! The `received` table's rows, parsed once: a node answers "what do I hold, from whom" for
//! every session on every change, and a pass that decrypted, parsed and re-checked every record
//! each time made a seller with a thousand customers spend its time doing just that. The
//! parsed rows are kept in memory while no other connection has committed to the file
//! (SQLite's `data_version`); this connection's own writes update them in place, and a write
//! that fails drops them (`Vault::drop_caches`).
//!
//! Beside the rows, two indexes kept with them, so that what a session or the clock asks costs
//! what it touches, not the number of shares: the rows are ordered by key, and a key starts
//! with the issuer, so one issuer's shares are a range (plus the few rows stored before shares
//! were keyed by issuer); and the live shares whose grant expires, by expiry.

use super::Held;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::{RECEIVED, ShareKey, ShareStatus};
use crate::grant::SignedGrant;
use crate::identity::{DeviceId, IdentityId, Ticket};
use crate::store::StoreError;
use crate::store::sealed::Key;
use crate::vault::Vault;

/// A received share's stored record.
#[derive(Clone, Serialize, Deserialize)]
pub(in crate::vault::held) struct Record {
    pub(in crate::vault::held) grant: Vec<u8>,
    #[serde(default)]
    pub(in crate::vault::held) ticket: Option<String>,
    pub(in crate::vault::held) status: ShareStatus,
    #[serde(default)]
    pub(in crate::vault::held) sync_state: Vec<u8>,
    #[serde(default)]
    pub(in crate::vault::held) updated_at: Option<i64>,
    #[serde(default)]
    pub(in crate::vault::held) ended_at: Option<i64>,
    #[serde(default)]
    pub(in crate::vault::held) receipt: Option<Vec<u8>>,
    #[serde(default)]
    pub(in crate::vault::held) receipt_confirmed: bool,
    /// The issuer's projection epoch this copy belongs to.
    #[serde(default)]
    pub(in crate::vault::held) epoch: u64,
    /// A new epoch's copy has not caught up yet: the view still shows the previous copy.
    #[serde(default)]
    pub(in crate::vault::held) view_pending: bool,
    /// The issuer's device this copy came from (each serves its own copy of the projection).
    #[serde(default)]
    pub(in crate::vault::held) from_device: Option<DeviceId>,
    /// The highest operation counter among the copy's heads when its view last changed: with
    /// `from_device` and `epoch`, which copy a mirror writes (several nodes of one seller
    /// write the same database).
    #[serde(default)]
    pub(in crate::vault::held) source_op: u64,
    /// Bumped whenever what a mirror shows of this share changes: its values or its status.
    #[serde(default)]
    pub(in crate::vault::held) rev: u64,
    /// Erased here, but the mirror has not confirmed erasing its rows yet: no receipt until it
    /// has (mirror.rs).
    #[serde(default)]
    pub(in crate::vault::held) erasure_pending: bool,
    /// Values of the copy left out of its view (conform.rs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(in crate::vault::held) refused: Vec<super::RefusedValue>,
    /// A stranger's grant nobody asked for: it counts against the strangers' bounds while live
    /// (strangers.rs).
    /// `None` in a record stored before this was kept: told again from contacts and requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(in crate::vault::held) unsolicited: Option<bool>,
}

/// One parsed row: the record, its grant, and the ticket it names (parsed on first use: a
/// ticket carries a certificate to verify).
pub(in crate::vault::held) struct Row {
    pub(in crate::vault::held) record: Record,
    grant: Option<SignedGrant>,
    ticket: OnceLock<Option<Ticket>>,
}

impl Row {
    fn new(record: Record) -> Arc<Self> {
        // Verified when it arrived; sealed storage authenticates it since.
        let grant = SignedGrant::from_stored(&record.grant);
        Arc::new(Self { record, grant, ticket: OnceLock::new() })
    }

    /// The grant, or the row is damaged.
    pub(in crate::vault::held) fn grant(&self, id: &ShareKey) -> Result<&SignedGrant, StoreError> {
        self.grant.as_ref().ok_or_else(|| StoreError::damaged(&RECEIVED, id))
    }

    /// When its grant expires, while the share is live.
    fn expires_while_live(&self) -> Option<i64> {
        if self.record.status != ShareStatus::Live {
            return None;
        }
        self.grant.as_ref()?.statement().expires_at
    }

    /// The ticket its issuer was last reached at.
    pub(in crate::vault::held) fn ticket(&self) -> Option<Ticket> {
        self.ticket.get_or_init(|| self.record.ticket.as_deref().and_then(|t| t.parse().ok())).clone()
    }
}

pub(in crate::vault::held) type Rows = Arc<BTreeMap<Vec<u8>, Arc<Row>>>;

/// Parsed rows by key, with the `data_version` they were read at, and their indexes.
#[derive(Default)]
pub(crate) struct ReceivedCache(RefCell<Option<Cached>>);

struct Cached {
    version: i64,
    rows: Rows,
    /// Keys of rows stored before shares were keyed by issuer (the grant id alone).
    legacy: BTreeSet<Vec<u8>>,
    /// Live shares whose grant expires: (expires_at, key).
    expiring: BTreeSet<(i64, Vec<u8>)>,
}

impl Cached {
    fn new(version: i64, rows: BTreeMap<Vec<u8>, Arc<Row>>) -> Self {
        let mut cached = Cached {
            version,
            rows: Arc::new(BTreeMap::new()),
            legacy: BTreeSet::new(),
            expiring: BTreeSet::new(),
        };
        for (key, row) in &rows {
            cached.index(key, None, Some(row));
        }
        cached.rows = Arc::new(rows);
        cached
    }

    /// Moves a row's index entries from what it was to what it is.
    fn index(&mut self, key: &[u8], was: Option<&Row>, is: Option<&Row>) {
        if let Some(at) = was.and_then(Row::expires_while_live) {
            self.expiring.remove(&(at, key.to_vec()));
        }
        if let Some(at) = is.and_then(Row::expires_while_live) {
            self.expiring.insert((at, key.to_vec()));
        }
        if key.len() == ShareKey::LEGACY_LEN {
            if is.is_some() {
                self.legacy.insert(key.to_vec());
            } else {
                self.legacy.remove(key);
            }
        }
    }
}

impl ReceivedCache {
    /// Forgets every parsed row: they are read again on next use.
    pub(crate) fn clear(&self) {
        self.0.replace(None);
    }

    /// A share as the cache holds it (`None`: not cached, or no such row).
    fn cached(&self, id: &ShareKey) -> Option<Arc<Row>> {
        let cache = self.0.borrow();
        cache.as_ref()?.rows.get(id.as_bytes()).cloned()
    }
}

/// What a mirror shows of a share: its revision, status and pending erasure.
fn mirrored(record: &Record) -> (u64, ShareStatus, bool) {
    (record.rev, record.status, record.erasure_pending)
}

/// What decides whether a node keeps a session with the share's issuer: its status, the ticket
/// its issuer was last reached at, and its receipt.
fn dialled(record: &Record) -> (ShareStatus, Option<&str>, bool, bool) {
    (record.status, record.ticket.as_deref(), record.receipt.is_some(), record.receipt_confirmed)
}

/// The grant of a stored record.
pub(in crate::vault::held) fn stored_grant(
    record: &Record,
    id: &ShareKey,
) -> Result<SignedGrant, StoreError> {
    SignedGrant::from_stored(&record.grant).ok_or_else(|| StoreError::damaged(&RECEIVED, id))
}

impl<V: Deref<Target = Vault>> Held<V> {
    /// Every row, parsed (from memory while nobody else wrote).
    pub(in crate::vault::held) fn received_rows(&self) -> Result<Rows, StoreError> {
        let version = self.vault.store.data_version()?;
        if let Some(cached) = &*self.vault.held.received_cache.0.borrow()
            && cached.version == version
        {
            return Ok(cached.rows.clone());
        }
        let mut rows = BTreeMap::new();
        for (key, body, _) in self.vault.store.list(&RECEIVED)? {
            let row = key.id().to_vec();
            let record: Record =
                serde_json::from_slice(&body).map_err(|_| match ShareKey::from_row(row.clone()) {
                    Some(id) => StoreError::damaged(&RECEIVED, id),
                    None => StoreError::damaged(&RECEIVED, "(a row with a malformed key)"),
                })?;
            rows.insert(row, Row::new(record));
        }
        let cached = Cached::new(version, rows);
        let rows = cached.rows.clone();
        *self.vault.held.received_cache.0.borrow_mut() = Some(cached);
        // Read whole again (first use, another process wrote, a write failed): which shares
        // changed is not known, so a mirror looks at every one.
        self.vault.held.mirror_dirty.borrow_mut().all = true;
        self.bump_issuers();
        self.vault.held.strangers.replace(None);
        Ok(rows)
    }

    /// One row, parsed.
    pub(in crate::vault::held) fn received_row(&self, id: &ShareKey) -> Result<Option<Arc<Row>>, StoreError> {
        Ok(self.received_rows()?.get(id.as_bytes()).cloned())
    }

    /// One record, to change and put back.
    pub(in crate::vault::held) fn received_record(
        &self,
        id: &ShareKey,
    ) -> Result<Option<Record>, StoreError> {
        Ok(self.received_row(id)?.map(|row| row.record.clone()))
    }

    pub(in crate::vault::held) fn put_received_record(
        &self,
        id: &ShareKey,
        record: &Record,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_vec(record).expect("serializes");
        let before = self.vault.held.received_cache.cached(id);
        self.vault.store.put(&RECEIVED, Key::Id(id.as_bytes()), &body)?;
        if before.as_ref().map(|r| mirrored(&r.record)) != Some(mirrored(record)) {
            self.vault.held.mirror_dirty.borrow_mut().keys.insert(id.clone());
        }
        if before.as_ref().map(|r| dialled(&r.record)) != Some(dialled(record)) {
            self.bump_issuers();
        }
        let was = before.as_ref().is_some_and(|r| r.record.status == ShareStatus::Live);
        let is = record.status == ShareStatus::Live;
        if was != is
            && self.vault.held.strangers.borrow().is_some()
            && let Some(grant) = SignedGrant::from_stored(&record.grant)
            && self.unsolicited(record, grant.statement())?
            && let Some(counts) = self.vault.held.strangers.borrow_mut().as_mut()
        {
            counts.add(grant.statement().issuer, is);
        }
        self.update_received_cache(id, Some(Row::new(record.clone())));
        Ok(())
    }

    #[cfg(test)]
    pub(in crate::vault::held) fn delete_received_record(&self, id: &ShareKey) -> Result<(), StoreError> {
        self.vault.store.delete(&RECEIVED, Key::Id(id.as_bytes()))?;
        self.update_received_cache(id, None);
        Ok(())
    }

    /// Drops a row this connection deleted from the parsed rows.
    pub(in crate::vault::held) fn drop_received_row(&self, id: &ShareKey) {
        self.update_received_cache(id, None);
    }

    pub(in crate::vault::held) fn bump_issuers(&self) {
        let generation = &self.vault.held.issuers_generation;
        generation.set(generation.get().wrapping_add(1));
    }

    /// Applies this connection's own write to the parsed rows and their indexes (its commits
    /// do not move `data_version`).
    fn update_received_cache(&self, id: &ShareKey, row: Option<Arc<Row>>) {
        let mut cache = self.vault.held.received_cache.0.borrow_mut();
        let Some(cached) = cache.as_mut() else { return };
        let key = id.as_bytes();
        let was = match &row {
            Some(row) => Arc::make_mut(&mut cached.rows).insert(key.clone(), row.clone()),
            None => Arc::make_mut(&mut cached.rows).remove(key),
        };
        cached.index(key, was.as_deref(), row.as_deref());
    }

    /// The rows of the shares from `issuer`: the range of keys it starts, and the rows stored
    /// before shares were keyed by issuer whose grant it signed.
    pub(in crate::vault::held) fn received_from(
        &self,
        issuer: &IdentityId,
    ) -> Result<Vec<(ShareKey, Arc<Row>)>, StoreError> {
        let rows = self.received_rows()?;
        let prefix = issuer.as_bytes().to_vec();
        let mut out: Vec<(ShareKey, Arc<Row>)> = rows
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, row)| Some((ShareKey::from_row(k.clone())?, row.clone())))
            .collect();
        let cache = self.vault.held.received_cache.0.borrow();
        for key in cache.iter().flat_map(|c| c.legacy.iter()) {
            let (Some(id), Some(row)) = (ShareKey::from_row(key.clone()), rows.get(key)) else { continue };
            if row.grant(&id).is_ok_and(|g| g.statement().issuer == *issuer) {
                out.push((id, row.clone()));
            }
        }
        Ok(out)
    }

    /// The live shares whose grant had expired by `now`.
    pub(in crate::vault::held) fn received_expired(
        &self,
        now: i64,
    ) -> Result<Vec<(ShareKey, Arc<Row>)>, StoreError> {
        let rows = self.received_rows()?;
        let cache = self.vault.held.received_cache.0.borrow();
        let Some(cached) = cache.as_ref() else { return Ok(Vec::new()) };
        Ok(cached
            .expiring
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, key)| Some((ShareKey::from_row(key.clone())?, rows.get(key)?.clone())))
            .collect())
    }

    /// Every row with its key, parsed.
    pub(in crate::vault::held) fn received_each(&self) -> Result<Vec<(ShareKey, Arc<Row>)>, StoreError> {
        Ok(self
            .received_rows()?
            .iter()
            .filter_map(|(k, row)| Some((ShareKey::from_row(k.clone())?, row.clone())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::ShareKey;
    use super::super::replica::tests::grant;
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::statement::GrantId;
    use crate::vault::Vault;

    fn open(dir: &std::path::Path) -> Vault {
        Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).unlock(&Passphrase::new("pw")).unwrap()
    }

    /// The parsed rows follow what another handle on the file commits (as another process
    /// would), and what a failed write of this handle rolled back.
    #[test]
    fn parsed_rows_follow_other_writers_and_rollbacks() {
        let dir = tempfile::tempdir().unwrap();
        let mut a =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let alice = Identity::generate();
        assert!(a.held_mut().list().unwrap().is_empty(), "read once: the rows are now held in memory");

        let mut b = open(dir.path());
        let first = grant(&alice, b.identity(), GrantId::random());
        b.held_mut().accept(alice.public(), None, &[first], &[], true).unwrap();
        assert_eq!(a.held_mut().list().unwrap().len(), 1, "another handle's commit is seen");
        assert_eq!(a.held().live_from(&alice.public()).unwrap().len(), 1);

        let failed: Result<(), crate::store::StoreError> = a.write(|v| {
            let (_, row) = v.held().received_each()?.remove(0);
            v.held().put_received_record(&ShareKey::new(&alice.public(), &GrantId::random()), &row.record)?;
            assert_eq!(v.held().live_from(&alice.public())?.len(), 2, "seen inside the write");
            Err(crate::store::StoreError::damaged(&super::RECEIVED, "rolled back on purpose"))
        });
        assert!(failed.is_err());
        assert_eq!(a.held().live_from(&alice.public()).unwrap().len(), 1, "the rolled-back row is gone");
        assert_eq!(open(dir.path()).held_mut().list().unwrap().len(), 1);
    }

    /// The live shares due to expire are found through their index, which follows this
    /// handle's writes and another handle's commits: each is erased once its time comes, and
    /// one issuer's shares are its own.
    #[test]
    fn expiring_shares_and_one_issuers_shares_are_found_without_walking_the_others() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicI64, Ordering};

        use crate::statement::Signed;

        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(AtomicI64::new(1_800_000_100));
        let c = clock.clone();
        let mut v = Vault::at(dir.path())
            .kdf(KdfParams::INSECURE_FOR_TESTS)
            .clock(Arc::new(move || c.load(Ordering::SeqCst)))
            .create(&Passphrase::new("pw"))
            .unwrap();
        let (alice, bob) = (Identity::generate(), Identity::generate());
        let me = v.identity();
        let expiring = |issuer: &Identity, at: Option<i64>| {
            let mut g = grant(issuer, me, GrantId::random()).statement().clone();
            g.expires_at = at;
            Signed::sign(g, issuer).unwrap()
        };
        let (a1, a2, b1) = (
            expiring(&alice, Some(1_800_000_300)),
            expiring(&alice, None),
            expiring(&bob, Some(1_800_000_200)),
        );
        for (issuer, g) in [(&alice, &a1), (&alice, &a2), (&bob, &b1)] {
            v.held_mut().accept(issuer.public(), None, std::slice::from_ref(g), &[], true).unwrap();
        }
        let ids = |v: &Vault, who: &Identity| {
            let mut ids: Vec<GrantId> =
                v.held().received_from(&who.public()).unwrap().into_iter().map(|(k, _)| k.grant).collect();
            ids.sort_by_key(|id| id.to_string());
            ids
        };
        let mut alices = vec![a1.statement().id, a2.statement().id];
        alices.sort_by_key(|id| id.to_string());
        assert_eq!(ids(&v, &alice), alices);
        assert_eq!(ids(&v, &bob), vec![b1.statement().id]);

        assert!(!v.held_mut().erase_expired().unwrap(), "nothing due yet");
        clock.store(1_800_000_200, Ordering::SeqCst);
        assert!(v.held_mut().erase_expired().unwrap(), "bob's share is due");
        assert!(v.held().live_from(&bob.public()).unwrap().is_empty());
        assert!(!v.held_mut().erase_expired().unwrap(), "erased once");

        // Another handle's commit: the index is built again from the rows it wrote.
        let mut other = open(dir.path());
        let late = expiring(&bob, Some(1_800_000_250));
        other.held_mut().accept(bob.public(), None, &[late], &[], true).unwrap();
        clock.store(1_800_000_300, Ordering::SeqCst);
        assert!(v.held_mut().erase_expired().unwrap());
        assert!(v.held().live_from(&bob.public()).unwrap().is_empty(), "bob's second share erased");
        assert_eq!(
            v.held().live_from(&alice.public()).unwrap(),
            vec![a2.statement().id],
            "alice's lasting one stays"
        );
    }
}
