//! The `received` table's rows, parsed once: a node answers "what do I hold, from whom" for
//! every session on every change, and a pass that decrypted, parsed and re-checked every record
//! each time made a seller with a thousand customers spend its time doing just that. The
//! parsed rows are kept in memory while no other connection has committed to the file
//! (SQLite's `data_version`); this connection's own writes update them in place, and a write
//! that fails drops them (`Vault::drop_caches`).

use super::Held;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::{RECEIVED, ShareKey, ShareStatus};
use crate::grant::SignedGrant;
use crate::identity::{DeviceId, Ticket};
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

    /// The ticket its issuer was last reached at.
    pub(in crate::vault::held) fn ticket(&self) -> Option<Ticket> {
        self.ticket.get_or_init(|| self.record.ticket.as_deref().and_then(|t| t.parse().ok())).clone()
    }
}

pub(in crate::vault::held) type Rows = Arc<BTreeMap<Vec<u8>, Arc<Row>>>;

/// Parsed rows by key, with the `data_version` they were read at.
#[derive(Default)]
pub(crate) struct ReceivedCache(RefCell<Option<(i64, Rows)>>);

impl ReceivedCache {
    /// Forgets every parsed row: they are read again on next use.
    pub(crate) fn clear(&self) {
        self.0.replace(None);
    }

    /// A share as the cache holds it (`None`: not cached, or no such row).
    fn cached(&self, id: &ShareKey) -> Option<Arc<Row>> {
        let cache = self.0.borrow();
        let (_, rows) = cache.as_ref()?;
        rows.get(id.as_bytes()).cloned()
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
        if let Some((cached, rows)) = &*self.vault.held.received_cache.0.borrow()
            && *cached == version
        {
            return Ok(rows.clone());
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
        let rows = Arc::new(rows);
        *self.vault.held.received_cache.0.borrow_mut() = Some((version, rows.clone()));
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
        self.update_received_cache(|rows| {
            rows.insert(id.as_bytes().clone(), Row::new(record.clone()));
        });
        Ok(())
    }

    #[cfg(test)]
    pub(in crate::vault::held) fn delete_received_record(&self, id: &ShareKey) -> Result<(), StoreError> {
        self.vault.store.delete(&RECEIVED, Key::Id(id.as_bytes()))?;
        self.update_received_cache(|rows| {
            rows.remove(id.as_bytes());
        });
        Ok(())
    }

    fn bump_issuers(&self) {
        let generation = &self.vault.held.issuers_generation;
        generation.set(generation.get().wrapping_add(1));
    }

    /// Applies this connection's own write to the parsed rows (its commits do not move
    /// `data_version`).
    fn update_received_cache(&self, f: impl FnOnce(&mut BTreeMap<Vec<u8>, Arc<Row>>)) {
        let mut cache = self.vault.held.received_cache.0.borrow_mut();
        if let Some((_, rows)) = cache.as_mut() {
            f(Arc::make_mut(rows));
        }
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
}
