//! The grantee's side: shares received from others, kept as read-only replicas, erased with a
//! signed receipt when the grant is revoked or expires.

use std::collections::HashMap;

use automerge::sync::{Message, State as SyncState, SyncDoc};
use automerge::{AutoCommit, ROOT, ReadDoc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Vault;
use super::audit::{AuditEvent, AuditKind};
use crate::doc::{PURCHASES, Touched, obj_to_json, touched_between};
use crate::grant::{ErasureReceipt, GrantId, Signed, SignedGrant};
use crate::identity::{IdentityId, Ticket};
use crate::protocol::Ended;
use crate::store::StoreError;
use crate::store::sealed::{Key, Table};

const RECEIVED: &str = "received";
const CHUNKS: &str = "received_chunks";
/// The decoded values of each live share (JSON), kept beside its chunks so that reading what
/// is shared (`shared`, `feed`) does not load Automerge documents.
const VIEWS: &str = "received_views";

/// Where a received share stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShareStatus {
    /// Live: updates arrive while connected.
    Live,
    /// The issuer revoked it; the copy was erased.
    Revoked,
    /// It expired; the copy was erased.
    Expired,
}

/// A share received from someone.
#[derive(Clone, Debug)]
pub struct Share {
    /// The signed grant: the consent receipt.
    pub grant: SignedGrant,
    /// The issuer's petname, if a contact.
    pub issuer_name: Option<String>,
    /// The values held (none once erased).
    pub values: Option<Value>,
    /// Live or withdrawn.
    pub status: ShareStatus,
    /// When the last update arrived (unix seconds).
    pub updated_at: Option<i64>,
    /// When it was withdrawn (unix seconds).
    pub ended_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    grant: Vec<u8>,
    #[serde(default)]
    ticket: Option<String>,
    status: ShareStatus,
    #[serde(default)]
    sync_state: Vec<u8>,
    #[serde(default)]
    updated_at: Option<i64>,
    #[serde(default)]
    ended_at: Option<i64>,
    #[serde(default)]
    receipt: Option<Vec<u8>>,
    #[serde(default)]
    receipt_confirmed: bool,
}

/// A loaded replica.
pub(crate) struct Replica {
    am: AutoCommit,
    sync: SyncState,
    last_seq: i64,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replica(..)")
    }
}

/// Replicas this process has loaded, by grant.
pub(crate) type ReplicaCache = HashMap<GrantId, Replica>;

/// A received share could not be stored or synced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The peer sent a sync message that does not decode or apply.
    #[error("malformed sync message")]
    BadMessage,
    /// No live share with this id.
    #[error("no live share {0}")]
    Unknown(GrantId),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Vault {
    fn received_record(&self, id: &GrantId) -> Result<Option<Record>, StoreError> {
        let Some(body) = self.store.get(Table::named(RECEIVED), Key::Id(id.as_bytes()))? else {
            return Ok(None);
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|_| StoreError::Damaged(format!("{RECEIVED} row {id}")))
    }

    fn put_received_record(&self, id: &GrantId, record: &Record) -> Result<(), StoreError> {
        let body = serde_json::to_vec(record).expect("serializes");
        self.store.put(Table::named(RECEIVED), Key::Id(id.as_bytes()), &body)?;
        Ok(())
    }

    fn received_ids(&self) -> Result<Vec<GrantId>, StoreError> {
        let raw = self.store.keys(Table::named(RECEIVED))?;
        Ok(raw.iter().filter_map(|r| GrantId::from_raw(r.id())).collect())
    }

    /// Erases a received copy and signs the receipt. Call inside a write transaction.
    fn erase_received(
        &mut self,
        id: &GrantId,
        record: &mut Record,
        status: ShareStatus,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let grant = SignedGrant::from_bytes(&record.grant)
            .map_err(|_| StoreError::Damaged(format!("{RECEIVED} row {id}")))?;
        self.store.delete_group(Table::named(CHUNKS), id.as_bytes())?;
        self.store.delete(Table::named(VIEWS), Key::Id(id.as_bytes()))?;
        self.replicas.remove(id);
        let receipt = Signed::sign(
            ErasureReceipt {
                grant: *id,
                issuer: grant.statement().issuer,
                grantee: self.identity(),
                erased_at: now,
            },
            &self.identity,
        )
        .expect("this vault is the grantee");
        record.status = status;
        record.sync_state.clear();
        record.ended_at = Some(now);
        record.receipt = Some(receipt.to_bytes());
        self.put_received_record(id, record)?;
        let mut event = AuditEvent::new(now, AuditKind::ShareErased);
        event.peer = Some(grant.statement().issuer);
        event.grant = Some(*id);
        event.detail = Some(match status {
            ShareStatus::Revoked => "revoked by the issuer".into(),
            _ => "expired".into(),
        });
        self.log_event(&event)
    }

    /// Takes in what an issuer says is shared with this vault (the `Shares` frame): stores new
    /// live grants addressed to this vault by that issuer, erases copies of grants that ended,
    /// and erases expired copies by this vault's own clock. Grants not issued by `issuer` to
    /// this vault are ignored. Returns the erasure receipts the issuer has not confirmed yet.
    pub fn accept_shares(
        &mut self,
        issuer: IdentityId,
        ticket: Option<&Ticket>,
        live: &[SignedGrant],
        ended: &[Ended],
    ) -> Result<Vec<Signed<ErasureReceipt>>, ShareError> {
        let me = self.identity();
        let now = self.now();
        self.write(|v| {
            for grant in live {
                let g = grant.statement();
                if g.issuer != issuer || g.audience != me || !g.is_live_at(now) {
                    tracing::warn!(grant = %g.id, "ignoring a grant not addressed to this vault by its issuer");
                    continue;
                }
                if v.received_record(&g.id)?.is_some() {
                    continue;
                }
                v.put_received_record(
                    &g.id,
                    &Record {
                        grant: grant.to_bytes(),
                        ticket: ticket.map(ToString::to_string),
                        status: ShareStatus::Live,
                        sync_state: Vec::new(),
                        updated_at: None,
                        ended_at: None,
                        receipt: None,
                        receipt_confirmed: false,
                    },
                )?;
                let mut event = AuditEvent::new(now, AuditKind::ShareReceived);
                event.peer = Some(issuer);
                event.grant = Some(g.id);
                event.fields = g.fields.iter().map(ToString::to_string).collect();
                event.detail = Some(format!("purpose: {}", g.purpose));
                v.log_event(&event)?;
            }
            for end in ended {
                let id = end.grant();
                let Some(mut record) = v.received_record(&id)? else { continue };
                let Ok(grant) = SignedGrant::from_bytes(&record.grant) else { continue };
                if grant.statement().issuer != issuer {
                    continue;
                }
                if let Ended::Revoked(r) = end
                    && r.statement().issuer != issuer
                {
                    continue;
                }
                if record.status == ShareStatus::Live {
                    let status =
                        if matches!(end, Ended::Revoked(_)) { ShareStatus::Revoked } else { ShareStatus::Expired };
                    v.erase_received(&id, &mut record, status)?;
                }
            }
            v.note_answers(&issuer, live, &[])?;
            v.erase_expired_locked()?;
            // A receipt for a grant this issuer no longer lists as ended has been recorded.
            for id in v.received_ids()? {
                let Some(mut record) = v.received_record(&id)? else { continue };
                if record.receipt.is_none() || record.receipt_confirmed {
                    continue;
                }
                let from_issuer =
                    SignedGrant::from_bytes(&record.grant).is_ok_and(|g| g.statement().issuer == issuer);
                if from_issuer && !ended.iter().any(|e| e.grant() == id) {
                    record.receipt_confirmed = true;
                    v.put_received_record(&id, &record)?;
                }
            }
            v.unconfirmed_receipts(Some(issuer))
        })
    }

    fn erase_expired_locked(&mut self) -> Result<(), StoreError> {
        let now = self.now();
        for id in self.received_ids()? {
            let Some(mut record) = self.received_record(&id)? else { continue };
            if record.status != ShareStatus::Live {
                continue;
            }
            let expired = SignedGrant::from_bytes(&record.grant)
                .map(|g| !g.statement().is_live_at(now))
                .unwrap_or(false);
            if expired {
                self.erase_received(&id, &mut record, ShareStatus::Expired)?;
            }
        }
        Ok(())
    }

    /// Erases every received copy whose grant has expired by this vault's clock.
    pub fn erase_expired_shares(&mut self) -> Result<(), StoreError> {
        self.write(|v| v.erase_expired_locked())
    }

    /// Erasure receipts not yet confirmed by their issuer (all issuers, or one).
    pub fn unconfirmed_receipts(
        &self,
        issuer: Option<IdentityId>,
    ) -> Result<Vec<Signed<ErasureReceipt>>, ShareError> {
        let mut out = Vec::new();
        for id in self.received_ids()? {
            let Some(record) = self.received_record(&id)? else { continue };
            if record.receipt_confirmed {
                continue;
            }
            if let Some(bytes) = &record.receipt {
                let receipt = Signed::<ErasureReceipt>::from_bytes(bytes)
                    .map_err(|_| StoreError::Damaged(format!("{RECEIVED} row {id}")))?;
                if issuer.is_none_or(|i| receipt.statement().issuer == i) {
                    out.push(receipt);
                }
            }
        }
        Ok(out)
    }

    /// Notes that an erasure receipt reached its issuer.
    pub fn receipt_delivered(&mut self, id: &GrantId) -> Result<(), StoreError> {
        self.write(|v| {
            if let Some(mut record) = v.received_record(id)? {
                record.receipt_confirmed = true;
                v.put_received_record(id, &record)?;
            }
            Ok(())
        })
    }

    /// Ids of live received shares from `issuer`.
    pub fn live_shares_from(&self, issuer: &IdentityId) -> Result<Vec<GrantId>, StoreError> {
        let mut out = Vec::new();
        for id in self.received_ids()? {
            let Some(record) = self.received_record(&id)? else { continue };
            if record.status != ShareStatus::Live {
                continue;
            }
            if SignedGrant::from_bytes(&record.grant).is_ok_and(|g| g.statement().issuer == *issuer) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Issuers of live shares with the ticket they were last reached at.
    pub fn share_issuers(&self) -> Result<Vec<(IdentityId, Option<Ticket>)>, StoreError> {
        let mut out: Vec<(IdentityId, Option<Ticket>)> = Vec::new();
        for id in self.received_ids()? {
            let Some(record) = self.received_record(&id)? else { continue };
            let Ok(grant) = SignedGrant::from_bytes(&record.grant) else { continue };
            let issuer = grant.statement().issuer;
            let ticket = record.ticket.as_deref().and_then(|t| t.parse().ok());
            if (record.status == ShareStatus::Live || (record.receipt.is_some() && !record.receipt_confirmed))
                && !out.iter().any(|(i, _)| *i == issuer)
            {
                out.push((issuer, ticket));
            }
        }
        Ok(out)
    }

    fn load_replica(&mut self, id: &GrantId) -> Result<&mut Replica, ShareError> {
        let record = self.received_record(id)?.ok_or(ShareError::Unknown(*id))?;
        if record.status != ShareStatus::Live {
            return Err(ShareError::Unknown(*id));
        }
        let after = self.replicas.get(id).map_or(0, |r| r.last_seq);
        let rows = self.store.list_group(Table::named(CHUNKS), id.as_bytes(), after)?;
        if !self.replicas.contains_key(id) {
            let sync = SyncState::decode(&record.sync_state).unwrap_or_else(|_| SyncState::new());
            self.replicas.insert(*id, Replica { am: AutoCommit::new(), sync, last_seq: 0 });
        }
        for (key, bytes, _) in rows {
            let seq = key.seq();
            let replica = self.replicas.get_mut(id).expect("inserted above");
            replica
                .am
                .load_incremental(&bytes)
                .map_err(|_| StoreError::Damaged(format!("{CHUNKS} row {id}/{seq}")))?;
            replica.last_seq = seq;
        }
        Ok(self.replicas.get_mut(id).expect("inserted above"))
    }

    /// Starts a new sync session for a share: the sync state restarts from what is persisted
    /// (the shared heads), as Automerge requires for every new connection.
    pub fn share_sync_open(&mut self, id: &GrantId) -> Result<(), ShareError> {
        let replica = self.load_replica(id)?;
        replica.sync = SyncState::decode(&replica.sync.encode()).unwrap_or_default();
        Ok(())
    }

    /// The next sync message this vault (as grantee) sends for a share, if any.
    pub fn share_sync_generate(&mut self, id: &GrantId) -> Result<Option<Vec<u8>>, ShareError> {
        let replica = self.load_replica(id)?;
        Ok(replica.am.sync().generate_sync_message(&mut replica.sync).map(Message::encode))
    }

    /// True when this vault's copy has everything the issuer said it has (their last heads are
    /// ours) and nothing is left to send: a one-shot sync can stop.
    pub fn share_in_sync(&mut self, id: &GrantId) -> Result<bool, ShareError> {
        let replica = self.load_replica(id)?;
        let heads = replica.am.get_heads();
        Ok(replica.sync.their_heads.as_ref() == Some(&heads) && replica.sync.have_responded)
    }

    /// Applies a sync message from the issuer and makes the result durable. Returns true when
    /// the replica changed.
    pub fn share_sync_receive(&mut self, id: &GrantId, bytes: &[u8]) -> Result<bool, ShareError> {
        let message = Message::decode(bytes).map_err(|_| ShareError::BadMessage)?;
        // The replica changes only through received messages, so the chunks a message carries
        // are exactly what to store: no need to re-encode them.
        let received: Vec<u8> = message.changes.iter().flatten().copied().collect();
        let now = self.now();
        self.write(|v| {
            let replica = v.load_replica(id)?;
            let before = replica.am.get_heads();
            replica
                .am
                .sync()
                .receive_sync_message(&mut replica.sync, message)
                .map_err(|_| ShareError::BadMessage)?;
            let changed = replica.am.get_heads() != before;
            let sync_state = replica.sync.encode();
            let new_bytes = if changed { Some(received) } else { None };
            let seq = replica.last_seq + 1;
            if let Some(bytes) = new_bytes {
                v.store.put(Table::named(CHUNKS), Key::Chunk(id.as_bytes(), seq), &bytes)?;
                v.replicas.get_mut(id).expect("loaded").last_seq = seq;
            }
            if changed {
                let old_view = v.view(id)?;
                let replica = v.replicas.get_mut(id).expect("loaded");
                let after = replica.am.get_heads();
                let view = match old_view {
                    Some(mut view) if !before.is_empty() => {
                        let touched = touched_between(&mut replica.am, &before, &after);
                        update_view(&mut view, &replica.am, &touched);
                        view
                    }
                    _ => obj_to_json(&replica.am, &ROOT),
                };
                v.put_view(id, &view)?;
            }
            let mut record = v.received_record(id)?.ok_or(ShareError::Unknown(*id))?;
            record.sync_state = sync_state;
            if changed {
                record.updated_at = Some(now);
            }
            v.put_received_record(id, &record)?;
            Ok(changed)
        })
    }

    pub(crate) fn view_bytes(&self, id: &GrantId) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(Table::named(VIEWS), Key::Id(id.as_bytes()))
    }

    /// Every received grant with its status (grants were verified when they arrived).
    pub(crate) fn received_grants(&self) -> Result<Vec<(SignedGrant, ShareStatus)>, StoreError> {
        let mut out = Vec::new();
        for id in self.received_ids()? {
            let Some(record) = self.received_record(&id)? else { continue };
            let grant = SignedGrant::from_stored(&record.grant)
                .ok_or_else(|| StoreError::Damaged(format!("{RECEIVED} row {id}")))?;
            out.push((grant, record.status));
        }
        Ok(out)
    }

    /// The replica of a live share.
    pub(crate) fn replica_doc(&mut self, id: &GrantId) -> Result<&AutoCommit, StoreError> {
        match self.load_replica(id) {
            Ok(replica) => Ok(&replica.am),
            Err(ShareError::Store(e)) => Err(e),
            Err(_) => Err(StoreError::Damaged(format!("{RECEIVED} row {id}"))),
        }
    }

    fn view(&self, id: &GrantId) -> Result<Option<Value>, StoreError> {
        self.view_bytes(id)?
            .map(|b| serde_json::from_slice(&b).map_err(|_| StoreError::Damaged(format!("{VIEWS} row {id}"))))
            .transpose()
    }

    fn put_view(&self, id: &GrantId, view: &Value) -> Result<(), StoreError> {
        let body = serde_json::to_vec(view).expect("serializes");
        self.store.put(Table::named(VIEWS), Key::Id(id.as_bytes()), &body)?;
        Ok(())
    }

    /// Everything shared with this vault, live and withdrawn.
    pub fn shares(&mut self) -> Result<Vec<Share>, ShareError> {
        let mut out = Vec::new();
        for id in self.received_ids()? {
            let Some(record) = self.received_record(&id)? else { continue };
            let grant = SignedGrant::from_bytes(&record.grant)
                .map_err(|_| StoreError::Damaged(format!("{RECEIVED} row {id}")))?;
            let values = if record.status == ShareStatus::Live {
                match self.view(&id)? {
                    Some(view) => Some(view),
                    // Shares received before views existed, or before their first update.
                    None => Some(obj_to_json(&self.load_replica(&id)?.am, &ROOT)),
                }
            } else {
                None
            };
            out.push(Share {
                issuer_name: self.petname(&grant.statement().issuer),
                grant,
                values,
                status: record.status,
                updated_at: record.updated_at,
                ended_at: record.ended_at,
            });
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.grant.statement().issued_at));
        Ok(out)
    }
}

/// Brings a decoded view up to date with what changed in its replica.
fn update_view(view: &mut Value, am: &AutoCommit, touched: &[Touched]) {
    if !view.is_object() {
        *view = Value::Object(Default::default());
    }
    let root = view.as_object_mut().expect("an object");
    for t in touched {
        match t {
            Touched::Section(section) => match am.get(ROOT, section.as_str()) {
                Ok(Some((automerge::Value::Object(_), obj))) => {
                    root.insert(section.clone(), obj_to_json(am, &obj));
                }
                _ => {
                    root.remove(section);
                }
            },
            Touched::Purchase(pid) => {
                let purchases = match am.get(ROOT, PURCHASES) {
                    Ok(Some((automerge::Value::Object(_), obj))) => obj,
                    _ => {
                        root.remove(PURCHASES);
                        continue;
                    }
                };
                let entry = root.entry(PURCHASES).or_insert_with(|| Value::Object(Default::default()));
                if !entry.is_object() {
                    *entry = Value::Object(Default::default());
                }
                let map = entry.as_object_mut().expect("an object");
                match am.get(&purchases, pid.as_str()) {
                    Ok(Some((automerge::Value::Object(_), obj))) => {
                        map.insert(pid.clone(), obj_to_json(am, &obj));
                    }
                    _ => {
                        map.remove(pid);
                    }
                }
            }
        }
    }
}
