//! Breach notices. The seller's side: [`Notices::notify`] signs one notice per customer
//! whose data this vault held under a matching grant in the window, and queues it; sessions
//! deliver it (as they deliver consent requests) until the customer's vault acknowledges it.
//! The customer's side: [`Notices::receive`] checks a notice against this vault's own grants
//! before keeping it; [`Notices::list`] lists them with the grants concerned. Owns the sealed
//! tables `notices_out` and `notices_in`.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Serialize};

use super::audit::{AuditEvent, AuditKind};
use super::replication::Entry;
use super::{GrantStatus, Vault};
use crate::identity::{IdentityId, Ticket};
use crate::notice::BreachNotice;
use crate::path::FieldPath;
use crate::statement::{GrantId, NoticeId, Signed, StatementError};
use crate::store::StoreError;
use crate::store::sealed::{Key, NOTICES_IN, NOTICES_OUT, Table};
use crate::store::typed::TypedTable;

/// Notices kept from one seller, at most: beyond, new ones are refused (a flood is not news).
pub(crate) const MAX_NOTICES_PER_SELLER: usize = 32;

#[derive(Serialize, Deserialize)]
struct OutRecord {
    notice: Vec<u8>,
    ticket: Option<String>,
    delivered: bool,
}

#[derive(Serialize, Deserialize)]
struct InRecord {
    notice: Vec<u8>,
    received_at: i64,
}

/// A consent a breach notice covers: one this vault holds, or one the seller's database
/// records ([`Notices::notify_with`]).
#[derive(Clone, Debug)]
pub struct RecordedConsent {
    /// The customer who granted it.
    pub customer: IdentityId,
    /// The grant.
    pub grant: GrantId,
    /// The fields it shares.
    pub fields: Vec<FieldPath>,
    /// Its purpose.
    pub purpose: String,
    /// When it was issued (unix seconds).
    pub issued_at: i64,
    /// When it ended, if it has (unix seconds).
    pub ended_at: Option<i64>,
    /// Where the customer was last reached.
    pub ticket: Option<Ticket>,
}

/// A breach notice, sent or received.
#[derive(Clone, Debug)]
pub struct NoticeInfo {
    /// The signed notice.
    pub notice: Signed<BreachNotice>,
    /// The other party's petname (the customer's for a notice sent, the seller's for one
    /// received).
    pub peer_name: Option<String>,
    /// Sent: acknowledged by the customer's vault. Received: always true.
    pub delivered: bool,
    /// Received: when.
    pub received_at: Option<i64>,
    /// Received: each grant named, with its status here (`None`: not a grant of this vault).
    pub grants: Vec<(GrantId, Option<GrantStatus>)>,
    /// Received: the fields this vault's own grants named in the notice gave the seller (the
    /// notice's `fields` are only the seller's claim).
    pub granted: Vec<FieldPath>,
}

impl NoticeInfo {
    /// Received: true when the seller's claim of what it held is not what this vault's grants
    /// gave it.
    pub fn claim_differs(&self) -> bool {
        let mut claimed = self.notice.statement().fields.clone();
        claimed.sort();
        claimed.dedup();
        claimed != self.granted
    }
}

/// A breach notice could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NoticeError {
    /// No grant matched: nobody to notify.
    #[error("no customer's data was held under a matching grant since then: nobody to notify")]
    NobodyToNotify,
    /// The notice breaks a rule (empty text, too long, a window in the future).
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Breach notices, sent to customers and received from sellers: `vault.notices()`, `vault.notices_mut()`.
#[derive(Debug)]
pub struct Notices<V> {
    pub(in crate::vault) vault: V,
}

impl<V: Deref<Target = Vault>> Notices<V> {
    pub(in crate::vault) fn new(vault: V) -> Self {
        Self { vault }
    }
}

impl<V: Deref<Target = Vault>> Notices<V> {
    /// Notices this vault sent, newest first.
    pub fn sent(&self) -> Result<Vec<NoticeInfo>, StoreError> {
        let mut out: Vec<NoticeInfo> = list::<OutRecord>(&self.vault, &NOTICES_OUT)?
            .into_iter()
            .filter_map(|r| {
                let notice = Signed::<BreachNotice>::from_stored(&r.notice)?;
                Some(NoticeInfo {
                    peer_name: self.vault.contacts().petname(&notice.statement().customer),
                    notice,
                    delivered: r.delivered,
                    received_at: None,
                    grants: Vec::new(),
                    granted: Vec::new(),
                })
            })
            .collect();
        out.sort_by_key(|n| std::cmp::Reverse(n.notice.statement().issued_at));
        Ok(out)
    }

    /// Notices queued for `customer`, not yet acknowledged.
    pub fn undelivered(&self, customer: &IdentityId) -> Result<Vec<Signed<BreachNotice>>, StoreError> {
        Ok(self
            .sent()?
            .into_iter()
            .filter(|n| !n.delivered && n.notice.statement().customer == *customer)
            .map(|n| n.notice)
            .collect())
    }

    /// Customers with a notice still to deliver, with the ticket they were last reached at.
    pub fn customers(&self) -> Result<Vec<(IdentityId, Option<Ticket>)>, StoreError> {
        let mut out: Vec<(IdentityId, Option<Ticket>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Read once, and only when a notice lacks a ticket: a notice may go to every customer.
        let mut contacts: Option<std::collections::HashMap<IdentityId, Option<String>>> = None;
        for r in list::<OutRecord>(&self.vault, &NOTICES_OUT)? {
            let Some(notice) = Signed::<BreachNotice>::from_stored(&r.notice) else { continue };
            let customer = notice.statement().customer;
            if !r.delivered && seen.insert(customer) {
                let ticket = r.ticket.as_deref().and_then(|t| t.parse().ok());
                let ticket = ticket.or_else(|| {
                    let contacts = match &contacts {
                        Some(c) => c,
                        None => contacts.insert(
                            self.vault
                                .contacts()
                                .list()
                                .ok()?
                                .into_iter()
                                .map(|c| (c.identity, c.ticket))
                                .collect(),
                        ),
                    };
                    contacts.get(&customer)?.as_deref()?.parse().ok()
                });
                out.push((customer, ticket));
            }
        }
        Ok(out)
    }

    /// Every notice received, as entries of the shared log (for a fork's repair).
    pub(super) fn notice_entries(&self) -> Result<Vec<Entry>, StoreError> {
        Ok(list::<InRecord>(&self.vault, &NOTICES_IN)?
            .into_iter()
            .map(|r| Entry::Notice { signed: r.notice, received_at: r.received_at })
            .collect())
    }

    /// Breach notices received, newest first, each with the grants it names and their status.
    pub fn list(&self) -> Result<Vec<NoticeInfo>, StoreError> {
        let mut out = Vec::new();
        for r in list::<InRecord>(&self.vault, &NOTICES_IN)? {
            let Some(notice) = Signed::<BreachNotice>::from_stored(&r.notice) else { continue };
            let n = notice.statement();
            let mut grants = Vec::new();
            let mut granted = Vec::new();
            for id in &n.grants {
                let info = self.vault.grants().get(id)?;
                if let Some(g) = &info
                    && g.grant.statement().audience == n.seller
                {
                    granted.extend(g.grant.statement().fields.iter().cloned());
                }
                grants.push((*id, info.map(|g| g.status)));
            }
            granted.sort();
            granted.dedup();
            out.push(NoticeInfo {
                peer_name: self.vault.contacts().petname(&n.seller),
                notice: notice.clone(),
                delivered: true,
                received_at: Some(r.received_at),
                grants,
                granted,
            });
        }
        out.sort_by_key(|n| std::cmp::Reverse(n.notice.statement().issued_at));
        Ok(out)
    }
}

impl<V: DerefMut<Target = Vault>> Notices<V> {
    /// Signs and queues a breach notice to every customer whose data this vault held under a
    /// grant whose purpose contains `purpose` (any, when `None`; case-insensitive) at any time
    /// since `since`: each names the fields held of that customer and the grants. Returns them.
    pub fn notify(
        &mut self,
        since: i64,
        purpose: Option<&str>,
        text: &str,
    ) -> Result<Vec<Signed<BreachNotice>>, NoticeError> {
        self.notify_with(since, purpose, text, Vec::new())
    }

    /// As [`Notices::notify`], covering besides the consents `recorded` in the seller's database
    /// (a seller with several nodes: each holds the shares of its own customers only, the
    /// database every customer's). A consent held here and recorded there is covered once.
    pub fn notify_with(
        &mut self,
        since: i64,
        purpose: Option<&str>,
        text: &str,
        recorded: Vec<RecordedConsent>,
    ) -> Result<Vec<Signed<BreachNotice>>, NoticeError> {
        let now = self.vault.now();
        let purpose = purpose.map(str::to_lowercase);
        let mut by_customer: BTreeMap<IdentityId, (BreachNotice, Option<Ticket>)> = BTreeMap::new();
        let held = self.vault.held().held_grants()?.into_iter().map(|(grant, ended_at, ticket)| {
            let g = grant.statement();
            RecordedConsent {
                customer: g.issuer,
                grant: g.id,
                fields: g.fields.clone(),
                purpose: g.purpose.clone(),
                issued_at: g.issued_at,
                ended_at,
                ticket,
            }
        });
        let mut seen = std::collections::HashSet::new();
        for g in held.chain(recorded) {
            if !seen.insert((g.customer, g.grant)) {
                continue;
            }
            let held_in_window = g.ended_at.is_none_or(|end| end >= since) && g.issued_at <= now;
            let matches = purpose.as_ref().is_none_or(|p| g.purpose.to_lowercase().contains(p));
            if !held_in_window || !matches {
                continue;
            }
            let (notice, t) = by_customer.entry(g.customer).or_insert_with(|| {
                let notice = BreachNotice {
                    id: NoticeId::random(),
                    seller: self.vault.identity(),
                    customer: g.customer,
                    since,
                    until: now,
                    fields: Vec::new(),
                    grants: Vec::new(),
                    text: text.trim().to_owned(),
                    issued_at: now,
                };
                (notice, None)
            });
            notice.fields.extend(g.fields.iter().cloned());
            notice.grants.push(g.grant);
            if t.is_none() {
                *t = g.ticket;
            }
        }
        if by_customer.is_empty() {
            return Err(NoticeError::NobodyToNotify);
        }
        let mut signed = Vec::new();
        for (notice, ticket) in by_customer.into_values() {
            let mut notice = notice;
            notice.fields.sort();
            notice.fields.dedup();
            notice.grants.sort();
            notice.grants.truncate(crate::notice::MAX_NOTICE_GRANTS);
            signed.push((Signed::sign(notice, self.vault.signer())?, ticket));
        }
        self.vault.write(|v| -> Result<(), StoreError> {
            for (notice, ticket) in &signed {
                let n = notice.statement();
                let record = OutRecord {
                    notice: notice.to_bytes(),
                    ticket: ticket.as_ref().map(ToString::to_string),
                    delivered: false,
                };
                put(v, &NOTICES_OUT, &n.id, &record)?;
                let mut event = AuditEvent::new(now, AuditKind::BreachNotified);
                event.peer = Some(n.customer);
                event.fields = n.fields.iter().map(ToString::to_string).collect();
                event.detail = Some(format!("notice {}: {}", n.id, n.text));
                v.access_log().append(&event)?;
            }
            Ok(())
        })?;
        Ok(signed.into_iter().map(|(n, _)| n).collect())
    }

    /// The customer's vault acknowledged notice `id` (kept or refused: either way, delivered).
    pub fn delivered(&mut self, customer: &IdentityId, id: &NoticeId) -> Result<(), StoreError> {
        self.vault.write(|v| {
            let Some(mut record) = get::<OutRecord>(v, &NOTICES_OUT, id)? else { return Ok(()) };
            let is_theirs = Signed::<BreachNotice>::from_stored(&record.notice)
                .is_some_and(|n| n.statement().customer == *customer);
            if is_theirs && !record.delivered {
                record.delivered = true;
                put(v, &NOTICES_OUT, id, &record)?;
            }
            Ok(())
        })
    }

    /// Takes a notice delivered by `peer` (authenticated by the connection). Kept only when it is
    /// the peer's own, addressed to this vault, and names only grants this vault issued to that
    /// peer; at most `MAX_NOTICES_PER_SELLER` per seller. Returns whether it was kept.
    pub fn receive(&mut self, peer: &IdentityId, signed: &Signed<BreachNotice>) -> Result<bool, StoreError> {
        let n = signed.statement();
        let me = self.vault.identity();
        let now = self.vault.now();
        if n.seller != *peer || n.customer != me || n.issued_at > now + 300 {
            return Ok(false);
        }
        if get::<InRecord>(&self.vault, &NOTICES_IN, &n.id)?.is_some() {
            return Ok(true);
        }
        for id in &n.grants {
            let ours = self.vault.grants().get(id)?.is_some_and(|g| g.grant.statement().audience == *peer);
            if !ours {
                tracing::warn!(notice = %n.id, "refusing a breach notice naming a grant this vault did not issue to its sender");
                return Ok(false);
            }
        }
        let from_peer = list::<InRecord>(&self.vault, &NOTICES_IN)?
            .iter()
            .filter_map(|r| Signed::<BreachNotice>::from_stored(&r.notice))
            .filter(|k| k.statement().seller == *peer)
            .count();
        if from_peer >= MAX_NOTICES_PER_SELLER {
            return Ok(false);
        }
        self.vault.write(|v| {
            put(v, &NOTICES_IN, &n.id, &InRecord { notice: signed.to_bytes(), received_at: now })?;
            // The customer's other devices keep it too (replication.rs).
            v.replication().log_shared(&Entry::Notice { signed: signed.to_bytes(), received_at: now })?;
            let mut event = AuditEvent::new(now, AuditKind::BreachNotice);
            event.peer = Some(*peer);
            event.fields = n.fields.iter().map(ToString::to_string).collect();
            event.detail = Some(format!("breach notice {}: {}", n.id, n.text));
            v.access_log().append(&event)
        })?;
        Ok(true)
    }

    /// Keeps a notice another device of this identity received (it checked it against the
    /// grants then): when it is a seller's signed notice to this identity, within the per-seller
    /// bound. False when it does not check out.
    pub(super) fn merge_notice(&mut self, signed: &[u8], received_at: i64) -> Result<bool, StoreError> {
        let Ok(notice) = Signed::<BreachNotice>::from_bytes(signed) else { return Ok(false) };
        let n = notice.statement();
        if n.customer != self.vault.identity() {
            return Ok(false);
        }
        if get::<InRecord>(&self.vault, &NOTICES_IN, &n.id)?.is_some() {
            return Ok(true);
        }
        // As on the device that took it from the seller: only about this identity's grants to
        // that seller (a grant not known here yet is taken on the other device's word).
        for id in &n.grants {
            if self.vault.grants().get(id)?.is_some_and(|g| g.grant.statement().audience != n.seller) {
                return Ok(false);
            }
        }
        let from_seller = list::<InRecord>(&self.vault, &NOTICES_IN)?
            .iter()
            .filter_map(|r| Signed::<BreachNotice>::from_stored(&r.notice))
            .filter(|k| k.statement().seller == n.seller)
            .count();
        if from_seller >= MAX_NOTICES_PER_SELLER {
            return Ok(true);
        }
        put(&self.vault, &NOTICES_IN, &n.id, &InRecord { notice: signed.to_vec(), received_at })?;
        Ok(true)
    }
}

fn get<T: Serialize + for<'de> Deserialize<'de>>(
    v: &Vault,
    table: &Table,
    id: &NoticeId,
) -> Result<Option<T>, StoreError> {
    TypedTable::<T>::new(*table).get(&v.store, Key::Id(id.as_bytes()))
}

fn put<T: Serialize + for<'de> Deserialize<'de>>(
    v: &Vault,
    table: &Table,
    id: &NoticeId,
    record: &T,
) -> Result<(), StoreError> {
    TypedTable::<T>::new(*table).put(&v.store, Key::Id(id.as_bytes()), record)
}

fn list<T: Serialize + for<'de> Deserialize<'de>>(v: &Vault, table: &Table) -> Result<Vec<T>, StoreError> {
    Ok(TypedTable::<T>::new(*table).list(&v.store)?.into_iter().map(|(_, record)| record).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::vault::NewGrant;

    fn vault(dir: &std::path::Path) -> Vault {
        Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
    }

    fn notice(seller: IdentityId, customer: IdentityId, grants: Vec<GrantId>) -> BreachNotice {
        BreachNotice {
            id: NoticeId::random(),
            seller,
            customer,
            since: 1,
            until: 2,
            fields: vec!["profile.email".parse().unwrap()],
            grants,
            text: "breached".into(),
            issued_at: 2,
        }
    }

    /// A notice is kept only from the seller that signed it, addressed to this vault, about
    /// grants this vault issued to that seller.
    #[test]
    fn forged_and_misaddressed_notices_are_refused() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut alice, shop) = (vault(a.path()), vault(b.path()));
        alice.records_mut().set_profile("email", "a@b.c").unwrap();
        let grant = alice
            .grants_mut()
            .issue(NewGrant {
                audience: shop.identity(),
                fields: vec!["profile.email".parse().unwrap()],
                filter: None,
                purpose: "orders".into(),
                expires_at: None,
                prices: true,
            })
            .unwrap();
        let id = grant.statement().id;
        let mallory = Identity::generate();
        let (me, seller) = (alice.identity(), shop.identity());

        let real = Signed::sign(notice(seller, me, vec![id]), shop.signer()).unwrap();
        // Delivered by someone else than its signer.
        assert!(!alice.notices_mut().receive(&mallory.public(), &real).unwrap());
        // Mallory's own notice about a grant made to the shop.
        let forged = Signed::sign(notice(mallory.public(), me, vec![id]), &mallory).unwrap();
        assert!(!alice.notices_mut().receive(&mallory.public(), &forged).unwrap());
        // Addressed to someone else.
        let other = Signed::sign(notice(seller, mallory.public(), vec![id]), shop.signer()).unwrap();
        assert!(!alice.notices_mut().receive(&seller, &other).unwrap());
        assert!(alice.notices().list().unwrap().is_empty());

        assert!(alice.notices_mut().receive(&seller, &real).unwrap());
        assert!(alice.notices_mut().receive(&seller, &real).unwrap(), "a second delivery is no new notice");
        let kept = alice.notices().list().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].grants, vec![(id, Some(GrantStatus::Active))]);
    }
}
