//! The grantee's side: shares received from others, kept as read-only replicas, erased with a
//! signed receipt when the grant is revoked or expires. Owns the sealed tables `received` (the
//! grants received and their erasure receipts: customer state), `received_chunks` (the
//! replicas, refetched from their issuers) and `received_views` (their decoded values, derived);
//! replica.rs holds the replicas' sync.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::ops::{Deref, DerefMut};

use super::Vault;
use super::audit::{AuditEvent, AuditKind};
use crate::grant::{ErasureReceipt, SignedGrant};
use crate::identity::{IdentityId, Ticket};
use crate::protocol::Ended;
use crate::statement::{GrantId, Signed};
use crate::store::StoreError;
use crate::store::sealed::Key;

mod conform;
mod let_go;
mod mirror;
mod replica;
mod rows;
mod strangers;
mod unheld;
mod views;

pub use conform::RefusedValue;
pub use mirror::{Mirror, MirrorEntry, MirrorShare, MirrorSource, MirrorStatus};
pub(crate) use replica::{ReplicaCache, ShareSync};
pub(crate) use rows::ReceivedCache;
use rows::{Record, stored_grant};
pub use strangers::{AcceptGrants, DEFAULT_MAX_UNSOLICITED, MAX_UNSOLICITED_PER_STRANGER};

use crate::store::sealed::RECEIVED;
use crate::store::sealed::RECEIVED_CHUNKS as CHUNKS;
/// The decoded values of each live share (JSON), kept beside its chunks so that reading what
/// is shared (`shared`, `feed`) does not load Automerge documents.
use crate::store::sealed::RECEIVED_VIEWS as VIEWS;

/// Receipts for grants this vault never held that one `Shares` frame can get signed, at most
/// (as many as the live shares kept per issuer): signing is cheap but not free.
const MAX_RECEIPTS_FOR_UNKNOWN_GRANTS: usize = 64;

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
    /// Withdrawn and erased here, but the seller's mirror still has to erase its rows: the
    /// erasure receipt waits for it.
    pub erasure_pending: bool,
    /// Values of the copy left out: outside the grant, or refused by the document schema.
    pub refused: Vec<RefusedValue>,
}

/// Where a received share is stored: its issuer's identity and its grant id, so that an issuer
/// who learned another's grant id (from a receipt, say) cannot occupy it. Shares stored before
/// this rule are keyed by the grant id alone and keep that key (see [`Held::share_key`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ShareKey {
    row: Vec<u8>,
    grant: GrantId,
}

impl ShareKey {
    fn new(issuer: &IdentityId, grant: &GrantId) -> Self {
        Self { row: [issuer.as_bytes().as_slice(), grant.as_bytes()].concat(), grant: *grant }
    }

    fn legacy(grant: &GrantId) -> Self {
        Self { row: grant.as_bytes().to_vec(), grant: *grant }
    }

    /// The length of a key stored before shares were keyed by issuer (the grant id alone).
    const LEGACY_LEN: usize = 10;

    fn from_row(row: Vec<u8>) -> Option<Self> {
        if row.len() != Self::LEGACY_LEN && row.len() != 42 {
            return None;
        }
        let grant = GrantId::from_raw(&row[row.len() - 10..])?;
        Some(Self { row, grant })
    }

    /// The SQL key and the row named in the sealed blob's associated data.
    fn as_bytes(&self) -> &Vec<u8> {
        &self.row
    }
}

impl std::fmt::Display for ShareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.grant.fmt(f)
    }
}

/// A received grant, when it ended here (if it has), and its issuer's last ticket.
pub(crate) type HeldGrant = (SignedGrant, Option<i64>, Option<Ticket>);

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

/// What the roles over held shares keep in memory (derived data: the file is the truth).
#[derive(Default)]
pub(crate) struct HeldState {
    /// Replicas of received shares loaded by this process.
    pub(in crate::vault) replicas: ReplicaCache,
    /// Parsed records of received shares, valid while nobody else wrote (rows.rs).
    pub(in crate::vault) received_cache: ReceivedCache,
    /// Erasures of grants never held, waiting for the mirror or for their receipts to be
    /// delivered (unheld.rs).
    pub(in crate::vault) unheld: unheld::UnheldErasures,
    /// Shares whose mirrored form changed since the mirror last asked (mirror.rs).
    pub(in crate::vault) mirror_dirty: std::cell::RefCell<mirror::Dirty>,
    /// The revision of each share the mirror committed last (let_go.rs).
    pub(in crate::vault) mirrored: let_go::Mirrored,
    /// Moves whenever [`Held::issuers`] may answer differently (a share taken in or ended, an
    /// issuer's ticket, a receipt confirmed, the rows read again): a node asks who to keep a
    /// session with only when it moved.
    pub(in crate::vault) issuers_generation: std::cell::Cell<u64>,
    /// Every stored view is known to be conformed (views.rs).
    pub(in crate::vault) views_conformed: std::cell::Cell<bool>,
    /// Live unsolicited shares per stranger (strangers.rs); `None` until counted.
    pub(in crate::vault) strangers: std::cell::RefCell<Option<strangers::StrangerCounts>>,
}

/// What this vault holds from others (shares received, their replicas and views): `vault.held()` to read, `vault.held_mut()` to take in, refresh and erase.
#[derive(Debug)]
pub struct Held<V> {
    pub(in crate::vault) vault: V,
}

impl<V: Deref<Target = Vault>> Held<V> {
    pub(in crate::vault) fn new(vault: V) -> Self {
        Self { vault }
    }
}

impl<V: Deref<Target = Vault>> Held<V> {
    /// The key of the share of grant `id` from `issuer`: its own row, or a row stored before
    /// shares were keyed by issuer if that row's grant is from `issuer`.
    fn share_key(&self, issuer: &IdentityId, id: &GrantId) -> Result<ShareKey, StoreError> {
        let key = ShareKey::new(issuer, id);
        if self.received_row(&key)?.is_some() {
            return Ok(key);
        }
        let legacy = ShareKey::legacy(id);
        if let Some(row) = self.received_row(&legacy)?
            && row.grant(&legacy).is_ok_and(|g| g.statement().issuer == *issuer)
        {
            return Ok(legacy);
        }
        Ok(key)
    }

    /// This vault's signed word that it holds nothing (any more) of grant `grant` of `issuer`.
    fn erasure_receipt(&self, issuer: IdentityId, grant: GrantId, now: i64) -> Signed<ErasureReceipt> {
        Signed::sign(
            ErasureReceipt {
                grant,
                issuer,
                grantee: self.vault.identity(),
                erased_at: now,
                device: Some(self.vault.device_key().public()),
            },
            self.vault.signer(),
        )
        .expect("this vault is the grantee")
    }

    /// Erasure receipts not yet confirmed by their issuer (all issuers, or one).
    pub fn unconfirmed_receipts(
        &self,
        issuer: Option<IdentityId>,
    ) -> Result<Vec<Signed<ErasureReceipt>>, ShareError> {
        let mut out = Vec::new();
        let rows = match issuer {
            Some(issuer) => self.received_from(&issuer)?,
            None => self.received_each()?,
        };
        for (id, row) in rows {
            if row.record.receipt_confirmed {
                continue;
            }
            if let Some(bytes) = &row.record.receipt {
                // Signed by this vault, read back from sealed storage.
                let receipt = Signed::<ErasureReceipt>::from_stored(bytes)
                    .ok_or_else(|| StoreError::damaged(&RECEIVED, &id))?;
                if issuer.is_none_or(|i| receipt.statement().issuer == i) {
                    out.push(receipt);
                }
            }
        }
        out.extend(self.unheld_receipts(issuer));
        Ok(out)
    }

    /// Ids of live received shares from `issuer`.
    pub fn live_from(&self, issuer: &IdentityId) -> Result<Vec<GrantId>, StoreError> {
        let mut out = Vec::new();
        for (id, row) in self.received_from(issuer)? {
            if row.record.status != ShareStatus::Live {
                continue;
            }
            if row.grant(&id).is_ok_and(|g| g.statement().issuer == *issuer) {
                out.push(id.grant);
            }
        }
        Ok(out)
    }

    /// Issuers of live shares with the ticket they were last reached at.
    pub fn issuers(&self) -> Result<Vec<(IdentityId, Option<Ticket>)>, StoreError> {
        let mut out: Vec<(IdentityId, Option<Ticket>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (id, row) in self.received_each()? {
            let Ok(grant) = row.grant(&id) else { continue };
            let issuer = grant.statement().issuer;
            let record = &row.record;
            if (record.status == ShareStatus::Live || (record.receipt.is_some() && !record.receipt_confirmed))
                && seen.insert(issuer)
            {
                out.push((issuer, row.ticket()));
            }
        }
        for (issuer, ticket) in self.unheld_issuers() {
            if seen.insert(issuer) {
                out.push((issuer, ticket));
            }
        }
        Ok(out)
    }

    /// Whether `issuer` is among [`Held::issuers`], and its ticket: a range of rows, not all.
    pub fn issuer_ticket(&self, issuer: &IdentityId) -> Result<Option<Option<Ticket>>, StoreError> {
        for (_, row) in self.received_from(issuer)? {
            let record = &row.record;
            if record.status == ShareStatus::Live || (record.receipt.is_some() && !record.receipt_confirmed) {
                return Ok(Some(row.ticket()));
            }
        }
        Ok(self.unheld_issuers().into_iter().find(|(i, _)| i == issuer).map(|(_, t)| t))
    }

    /// A number that moves whenever [`Held::issuers`] may answer differently (cheap: no row is
    /// read unless another process wrote).
    pub(crate) fn issuers_generation(&self) -> Result<u64, StoreError> {
        let _ = self.received_rows()?;
        Ok(self.vault.held.issuers_generation.get())
    }

    /// Every received grant with when it ended here (if it has) and the ticket its issuer was
    /// last reached at: what a breach notice covers.
    pub(crate) fn held_grants(&self) -> Result<Vec<HeldGrant>, StoreError> {
        let mut out = Vec::new();
        for (id, row) in self.received_each()? {
            out.push((row.grant(&id)?.clone(), row.record.ended_at, row.ticket()));
        }
        Ok(out)
    }

    /// Every received grant with its status (grants were verified when they arrived).
    pub(crate) fn received_grants(&self) -> Result<Vec<(SignedGrant, ShareStatus)>, StoreError> {
        let mut out = Vec::new();
        for (id, row) in self.received_each()? {
            out.push((row.grant(&id)?.clone(), row.record.status));
        }
        Ok(out)
    }
}

impl<V: DerefMut<Target = Vault>> Held<V> {
    /// Erases a received copy and signs the receipt. Call inside a write transaction.
    fn erase_received(
        &mut self,
        id: &ShareKey,
        record: &mut Record,
        status: ShareStatus,
    ) -> Result<(), StoreError> {
        let now = self.vault.now();
        let grant = stored_grant(record, id)?;
        self.vault.store.delete_group(&CHUNKS, id.as_bytes())?;
        self.vault.store.delete(&VIEWS, Key::Id(id.as_bytes()))?;
        self.vault.held.replicas.remove(id);
        // With a mirror attached, its rows go first: the receipt is signed once they have.
        let mirrored = self.vault.mirror().mirror_attached()?;
        record.status = status;
        record.sync_state.clear();
        // The keys an issuer chose go with the copy.
        record.refused.clear();
        record.ended_at = Some(now);
        record.rev += 1;
        if mirrored {
            record.erasure_pending = true;
        } else {
            record.receipt = Some(self.erasure_receipt(grant.statement().issuer, id.grant, now).to_bytes());
        }
        self.put_received_record(id, record)?;
        let mut event = AuditEvent::new(now, AuditKind::ShareErased);
        event.peer = Some(grant.statement().issuer);
        event.grant = Some(id.grant);
        let why = match status {
            ShareStatus::Revoked => "revoked by the issuer",
            _ => "expired",
        };
        event.detail =
            Some(if mirrored { format!("{why}; erasure from the mirror pending") } else { why.to_owned() });
        self.vault.access_log().append(&event)
    }

    /// Takes in what an issuer says is shared with this vault (the `Shares` frame): stores new
    /// live grants addressed to this vault by that issuer, erases copies of grants that ended,
    /// and erases expired copies by this vault's own clock. Grants not issued by `issuer` to
    /// this vault are ignored. Returns the erasure receipts the issuer has not confirmed yet.
    ///
    /// `complete` says `live` and `ended` are the issuer's whole list (a `Shares` frame), not one
    /// ended grant (an `Ended` frame): only a whole list that names a grant neither live nor ended
    /// confirms its receipt. A grant the issuer still lists as live (its clock behind this
    /// vault's) keeps its receipt unconfirmed, so it is sent again once the issuer ends it.
    pub fn accept(
        &mut self,
        issuer: IdentityId,
        ticket: Option<&Ticket>,
        live: &[SignedGrant],
        ended: &[Ended],
        complete: bool,
    ) -> Result<Vec<Signed<ErasureReceipt>>, ShareError> {
        let me = self.vault.identity();
        let now = self.vault.now();
        self.vault.write(|v| {
            let mut policy = None;
            for grant in live {
                let g = grant.statement();
                if g.issuer != issuer || g.audience != me || !g.is_live_at(now) {
                    tracing::warn!(grant = %g.id, "ignoring a grant not addressed to this vault by its issuer");
                    continue;
                }
                if v.keys().refused_signer(grant)? {
                    // Revocations from such a device are still honoured (they only take away).
                    tracing::warn!(grant = %g.id, "ignoring a grant signed by a device its identity removed");
                    continue;
                }
                let key = v.held().share_key(&issuer, &g.id)?;
                if v.held().received_record(&key)?.is_some() {
                    continue;
                }
                let policy = match policy {
                    Some(p) => p,
                    None => *policy.insert(v.held().accepts()?),
                };
                let unsolicited = match v.held().judge(policy, g)? {
                    strangers::Verdict::Taken { unsolicited } => unsolicited,
                    strangers::Verdict::Refused(why) => {
                        tracing::warn!(grant = %g.id, issuer = %g.issuer, "not taking in a grant: {why}");
                        continue;
                    }
                };
                v.held().put_received_record(
                    &key,
                    &Record {
                        grant: grant.to_bytes(),
                        ticket: ticket.map(ToString::to_string),
                        status: ShareStatus::Live,
                        sync_state: Vec::new(),
                        updated_at: None,
                        ended_at: None,
                        receipt: None,
                        receipt_confirmed: false,
                        epoch: 0,
                        view_pending: false,
                        from_device: None,
                        source_op: 0,
                        rev: v.held().first_rev()?,
                        erasure_pending: false,
                        refused: Vec::new(),
                        unsolicited: Some(unsolicited),
                    },
                )?;
                let mut event = AuditEvent::new(now, AuditKind::ShareReceived);
                event.peer = Some(issuer);
                event.grant = Some(g.id);
                event.fields = g.fields.iter().map(ToString::to_string).collect();
                event.detail = Some(format!("purpose: {}", g.purpose));
                v.access_log().append(&event)?;
            }
            // Grants that ended before this vault ever received them: it holds nothing of them,
            // and says so, or the issuer would wait for their erasure forever.
            let mut never_held = Vec::new();
            // With a mirror attached, the database may hold rows of a grant this vault never
            // held (another node's customer, a restore): its receipt waits until the mirror
            // erased them (unheld.rs).
            let mirrored = v.mirror().mirror_attached()?;
            for end in ended {
                let id = v.held().share_key(&issuer, &end.grant())?;
                let Some(mut record) = v.held().received_record(&id)? else {
                    // Only for a revocation the issuer signed: a bare "expired" names any id,
                    // and this vault's signature must not be had for grants of others. With a
                    // mirror, a bare "expired" too (a node that let the customer go, see
                    // let_go.rs): the receipt then waits until the database shows that consent
                    // of this issuer past its expiry and erased its rows, and names the issuer.
                    let by_issuer = match end {
                        Ended::Revoked(r) => r.statement().issuer == issuer,
                        Ended::Expired(_) => mirrored,
                    };
                    if by_issuer
                        && never_held.len() < MAX_RECEIPTS_FOR_UNKNOWN_GRANTS
                        && v.held().may_sign_unheld(
                            mirrored,
                            issuer,
                            end.grant(),
                            ticket,
                            matches!(end, Ended::Expired(_)),
                        )
                    {
                        never_held.push(end.grant());
                    }
                    continue;
                };
                let Some(grant) = SignedGrant::from_stored(&record.grant) else { continue };
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
                    v.held_mut().erase_received(&id, &mut record, status)?;
                }
            }
            v.outbox_mut().note_answers(&issuer, live, &[])?;
            v.held_mut().erase_expired_locked()?;
            // A receipt for a grant this issuer no longer lists as ended has been recorded.
            for (id, row) in v.held().received_from(&issuer)? {
                if row.record.receipt.is_none() || row.record.receipt_confirmed {
                    continue;
                }
                let from_issuer = row.grant(&id).is_ok_and(|g| g.statement().issuer == issuer);
                let listed = ended.iter().any(|e| e.grant() == id.grant)
                    || live.iter().any(|g| g.statement().id == id.grant);
                if complete && from_issuer && !listed {
                    let mut record = row.record.clone();
                    record.receipt_confirmed = true;
                    v.held().put_received_record(&id, &record)?;
                }
            }
            if complete {
                let still: Vec<GrantId> = ended.iter().map(Ended::grant).collect();
                v.held().unheld_confirmed(&issuer, &still);
            }
            let mut receipts = v.held().unconfirmed_receipts(Some(issuer))?;
            // Those the mirror erased are among the unconfirmed ones already.
            let listed: std::collections::HashSet<GrantId> =
                receipts.iter().map(|r| r.statement().grant).collect();
            receipts.extend(
                never_held
                    .into_iter()
                    .filter(|g| !listed.contains(g))
                    .map(|grant| v.held().erasure_receipt(issuer, grant, now)),
            );
            Ok(receipts)
        })
    }

    fn erase_expired_locked(&mut self) -> Result<bool, StoreError> {
        let now = self.vault.now();
        let mut erased = false;
        for (id, row) in self.received_expired(now)? {
            if row.record.status != ShareStatus::Live {
                continue;
            }
            let expired = row.grant(&id).is_ok_and(|g| !g.statement().is_live_at(now));
            if expired {
                let mut record = row.record.clone();
                self.erase_received(&id, &mut record, ShareStatus::Expired)?;
                erased = true;
            }
        }
        Ok(erased)
    }

    /// Erases every received copy whose grant has expired by this vault's clock; true when one
    /// was.
    pub fn erase_expired(&mut self) -> Result<bool, StoreError> {
        // Asked every second by a node: no write transaction unless a copy is due.
        if self.received_expired(self.vault.now())?.is_empty() {
            return Ok(false);
        }
        self.vault.write(|v| v.held_mut().erase_expired_locked())
    }

    /// Notes that an erasure receipt reached its issuer.
    pub fn receipt_delivered(&mut self, issuer: &IdentityId, id: &GrantId) -> Result<(), StoreError> {
        self.vault.write(|v| {
            let key = v.held().share_key(issuer, id)?;
            if let Some(mut record) = v.held().received_record(&key)? {
                record.receipt_confirmed = true;
                v.held().put_received_record(&key, &record)?;
            }
            Ok(())
        })
    }

    /// The decoded view of the share of grant `id` from `issuer`.
    pub(crate) fn share_view_bytes(
        &mut self,
        issuer: &IdentityId,
        id: &GrantId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.share_key(issuer, id)?;
        self.live_view_bytes(&key)
    }

    /// Everything shared with this vault, live and withdrawn.
    pub fn list(&mut self) -> Result<Vec<Share>, ShareError> {
        self.shares_with(true)
    }

    /// Every share received, as [`Held::list`] but without reading their values (`values`
    /// is `None`): for summaries such as `vault status`.
    pub fn records(&mut self) -> Result<Vec<Share>, ShareError> {
        self.shares_with(false)
    }

    fn shares_with(&mut self, values: bool) -> Result<Vec<Share>, ShareError> {
        let mut out = Vec::new();
        for (id, row) in self.received_each()? {
            let (record, grant) = (&row.record, row.grant(&id)?.clone());
            let values =
                if values && record.status == ShareStatus::Live { self.live_view(&id)? } else { None };
            // Building the view (on its first read) names what it refused.
            let refused = match values {
                Some(_) => self.received_record(&id)?.map(|r| r.refused).unwrap_or_default(),
                None => Vec::new(),
            };
            out.push(Share {
                issuer_name: self.vault.contacts().petname(&grant.statement().issuer),
                grant,
                values,
                status: record.status,
                updated_at: record.updated_at,
                ended_at: record.ended_at,
                erasure_pending: record.erasure_pending,
                refused,
            });
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.grant.statement().issued_at));
        Ok(out)
    }
}
