//! [`Inbox`]: consent requests made to this vault. Owns the sealed table `requests_in`
//! (customer state) and its rules: a request is taken only from its signer and for this
//! vault, never from a blocked contact, and within the limits of inbox/limits.rs (per peer,
//! and one shared bound for strangers). A request is approved by issuing a grant that names
//! it, never wider than asked, in the same transaction that marks it answered; a denial is a
//! signed statement the requester receives the next time it connects.

use std::collections::HashMap;
use std::ops::Deref;

use super::Vault;
use super::audit::{AuditEvent, AuditKind};
use super::issued::NewGrant;
use super::requests::{self, Approval, Holding, Record, RequestError, RequestInfo, RequestStatus};
use crate::grant::SignedGrant;
use crate::identity::{IdentityId, Ticket};
use crate::path::FieldPath;
use crate::request::{ConsentRequest, Denial};
use crate::statement::{RequestId, Signed};
use crate::store::StoreError;

mod limits;

pub use limits::MAX_PENDING_PER_PEER;

use crate::store::sealed::REQUESTS_IN as TABLE;

/// How long a denial is repeated to its requester when it connects (seconds).
const DENIAL_NOTICE: i64 = 30 * 86_400;

/// Why a delivered request was not accepted (the requester only learns "not accepted").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not addressed to this vault, or not from the connected peer.
    Misaddressed,
    /// The requester is blocked.
    Blocked,
    /// The requester has too many requests pending or sent too many today.
    TooMany,
    /// Signed by a device the requester's identity removed.
    RemovedDevice,
    /// Signed by a key the requester's key state replaced before the request's date, or by a
    /// device no recent roster of the requester vouches for (see `MAX_ROSTER_AGE`).
    SignerNotVouched,
}

/// What the inbox remembers between deliveries, in memory (device-local, derived).
#[derive(Debug, Default)]
pub(super) struct InboxState {
    /// When a refused request was last logged, per peer and kind (keeps floods out of the log).
    refusals_logged: HashMap<(IdentityId, u8), i64>,
    /// What the limits need, without decrypting the inbox (see inbox/limits.rs).
    index: limits::InboxCache,
}

impl InboxState {
    /// Forgets the limits' index: rows changed without this process's knowledge (merged from
    /// another device), so it is rebuilt on next use.
    pub(super) fn forget_index(&self) {
        *self.index.borrow_mut() = Default::default();
    }
}

/// The requests made to a vault: `vault.inbox()` to read, `vault.inbox_mut()` to take
/// requests in and answer them.
#[derive(Debug)]
pub struct Inbox<V> {
    vault: V,
}

impl<V: Deref<Target = Vault>> Inbox<V> {
    pub(super) fn new(vault: V) -> Self {
        Self { vault }
    }

    /// Requests received, newest first (requests from blocked contacts are left out).
    pub fn list(&self) -> Result<Vec<RequestInfo>, StoreError> {
        let mut out = Vec::new();
        for (signed, record) in requests::list(&self.vault, TABLE)? {
            if !self.vault.contacts().is_blocked(&signed.statement().requester)? {
                out.push(requests::info(&self.vault, signed, record, true));
            }
        }
        Ok(out)
    }

    /// One received request.
    pub fn get(&self, id: &RequestId) -> Result<Option<RequestInfo>, StoreError> {
        Ok(requests::get_signed(&self.vault, TABLE, id)?
            .map(|(signed, record)| requests::info(&self.vault, signed, record, true)))
    }

    /// The way back to whoever sent request `id`: the ticket the request gives, with the
    /// addresses its delivery came from (the connection's, validated by the transport) added;
    /// or that connection's alone for a request that gives none. `None` when neither is known.
    pub fn reply_to(&self, id: &RequestId) -> Result<Option<Ticket>, StoreError> {
        let Some((signed, record)) = requests::get_signed(&self.vault, TABLE, id)? else { return Ok(None) };
        let requester = signed.statement().requester;
        let theirs = |t: &Option<String>| -> Option<Ticket> {
            t.as_deref().and_then(|t| t.parse::<Ticket>().ok()).filter(|t| t.identity() == requester)
        };
        let given = theirs(&signed.statement().reply_to);
        let seen = theirs(&record.ticket);
        Ok(match (given, seen) {
            // The addresses the transport validated first (a ticket keeps a bounded number).
            (Some(given), Some(seen)) if seen.device() == given.device() => {
                let mut addrs = seen.addrs().to_vec();
                addrs.extend(given.addrs().iter().filter(|a| !seen.addrs().contains(a)));
                Some(Ticket::new(*given.certificate(), addrs))
            }
            (Some(given), _) => Some(given),
            (None, seen) => seen,
        })
    }

    /// What this vault holds of each field a request asks for.
    pub fn holdings(&self, request: &ConsentRequest) -> Vec<Holding> {
        let doc = self.vault.doc.to_json();
        let day = crate::path::derive::counting_day(self.vault.now());
        request
            .fields
            .iter()
            .map(|field| {
                // A derived field is held when its source gives a value (a postcode too short
                // for its prefix gives none).
                let gives =
                    |v: &serde_json::Value| field.derived().is_none_or(|(_, d)| d.compute(v, day).is_some());
                let (held, records) = match field.source() {
                    FieldPath::Derived(_) => (false, None),
                    FieldPath::Profile(segments) => {
                        let mut v = &doc[crate::doc::PROFILE];
                        for s in segments {
                            v = &v[s.as_str()];
                        }
                        (!v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()) && gives(v), None)
                    }
                    FieldPath::Preferences(key) => {
                        let prefs = &doc[crate::doc::PREFERENCES];
                        let held = match key {
                            Some(k) => !prefs[k.as_str()].is_null() && gives(&prefs[k.as_str()]),
                            None => prefs.as_object().is_some_and(|m| !m.is_empty()),
                        };
                        (held, None)
                    }
                    FieldPath::Purchases(sub) => {
                        let count = doc[crate::doc::PURCHASES].as_object().map_or(0, |m| {
                            m.values()
                                .filter(|r| request.filter.as_ref().is_none_or(|f| f.matches(r)))
                                .filter(|r| {
                                    sub.as_ref()
                                        .is_none_or(|s| !r[s.as_str()].is_null() && gives(&r[s.as_str()]))
                                })
                                .count()
                        });
                        (count > 0, Some(count))
                    }
                };
                Holding { field: field.clone(), held, records }
            })
            .collect()
    }

    /// Denials of `peer`'s requests made in the last 30 days, to tell it when it connects.
    pub fn denials_for(&self, peer: &IdentityId) -> Result<Vec<Signed<Denial>>, StoreError> {
        let now = self.vault.now();
        if self.vault.contacts().is_blocked(peer)? {
            return Ok(Vec::new());
        }
        Ok(requests::list(&self.vault, TABLE)?
            .into_iter()
            .filter(|(r, rec)| {
                r.statement().requester == *peer && rec.answered_at.is_some_and(|t| now - t < DENIAL_NOTICE)
            })
            .filter_map(|(_, rec)| rec.denial.as_deref().and_then(Signed::<Denial>::from_stored))
            .collect())
    }

    /// A request still waiting for an answer, from a requester who is not blocked.
    fn pending(&self, id: &RequestId) -> Result<(Signed<ConsentRequest>, Record), RequestError> {
        let (signed, record) = requests::get_signed(&self.vault, TABLE, id)?
            .ok_or_else(|| RequestError::Unknown(id.to_string()))?;
        if record.status != RequestStatus::Pending {
            return Err(RequestError::AlreadyAnswered { id: *id, status: record.status });
        }
        if self.vault.contacts().is_blocked(&signed.statement().requester)? {
            return Err(RequestError::Blocked);
        }
        Ok((signed, record))
    }

    /// Writes an inbox row; the limits' index is rebuilt before its next use.
    fn put(&self, id: &RequestId, record: &Record) -> Result<(), StoreError> {
        limits::touched(&self.vault);
        requests::put(&self.vault, TABLE, id, record)
    }
}

impl Inbox<&mut Vault> {
    /// Takes in a request delivered by `peer` (the identity its connection proved). Returns
    /// whether it now waits for a decision; a refusal is logged, and the peer is only told
    /// "not accepted". Delivering the same request twice is harmless.
    pub fn receive(
        &mut self,
        peer: &IdentityId,
        signed: &Signed<ConsentRequest>,
    ) -> Result<Result<(), Refusal>, StoreError> {
        self.receive_from(peer, signed, None)
    }

    /// [`Inbox::receive`], keeping `reply_to` (the way back to the device that delivered it,
    /// as the connection showed it) for `vault contact add --from-request`.
    pub fn receive_from(
        &mut self,
        peer: &IdentityId,
        signed: &Signed<ConsentRequest>,
        reply_to: Option<&Ticket>,
    ) -> Result<Result<(), Refusal>, StoreError> {
        let reply_to = reply_to.filter(|t| t.identity() == *peer).map(ToString::to_string);
        let now = self.vault.now();
        let me = self.vault.identity();
        let r = signed.statement();
        let taken = self.vault.write(|v| -> Result<Result<Option<RequestId>, Refusal>, StoreError> {
            let refusal = if r.requester != *peer || r.holder != me {
                Some(Refusal::Misaddressed)
            } else if v.contacts().is_blocked(peer)? {
                Some(Refusal::Blocked)
            } else if let Some(device) = signed.signed_by()
                && v.devices().is_removed_device(peer, &device)?
            {
                Some(Refusal::RemovedDevice)
            } else if v.keys().refused_signer(signed)? {
                Some(Refusal::SignerNotVouched)
            } else if requests::get(v, TABLE, &r.id)?.is_some() {
                return Ok(Ok(None));
            } else {
                limits::over_limit(v, peer, now)?.then_some(Refusal::TooMany)
            };
            if let Some(refusal) = refusal {
                v.inbox_mut().log_refusal(peer, refusal, now)?;
                return Ok(Err(refusal));
            }
            v.inbox()
                .put(&r.id, &Record::new(signed, RequestStatus::Pending, reply_to.clone(), Some(now)))?;
            let mut event = AuditEvent::new(now, AuditKind::RequestReceived);
            event.peer = Some(*peer);
            event.fields = r.fields.iter().map(ToString::to_string).collect();
            event.detail = Some(format!("request {}, purpose: {}", r.id, r.purpose));
            v.access_log().append(&event)?;
            Ok(Ok(Some(r.id)))
        })?;
        if let Ok(Some(id)) = taken {
            limits::noted(
                self.vault,
                id,
                limits::InboxRow { requester: *peer, pending: true, delivered_at: Some(now) },
            );
        }
        Ok(taken.map(|_| ()))
    }

    /// Logs a refused delivery: one line per peer and kind of refusal and hour, so a flood
    /// cannot fill the log. Call inside the write transaction of the delivery.
    fn log_refusal(&mut self, peer: &IdentityId, refusal: Refusal, now: i64) -> Result<(), StoreError> {
        let key = (*peer, refusal as u8);
        let logged = &mut self.vault.inbox.refusals_logged;
        if logged.get(&key).is_some_and(|t| now - t < 3600) {
            return Ok(());
        }
        logged.insert(key, now);
        let mut event = AuditEvent::new(now, AuditKind::RequestRefused);
        event.peer = Some(*peer);
        event.detail = Some(
            match refusal {
                Refusal::Misaddressed => "a request not addressed to this vault",
                Refusal::Blocked => "a request from a blocked contact",
                Refusal::TooMany => "too many requests from this peer",
                Refusal::RemovedDevice => "a request signed by a device its identity removed",
                Refusal::SignerNotVouched => {
                    "a request signed by a key its identity rotated away, or by a device no recent roster vouches for"
                }
            }
            .into(),
        );
        self.vault.access_log().append(&event)
    }

    /// Approves a request: issues a grant naming it, exactly as asked or narrower, in one
    /// transaction with the answer and its log line.
    pub fn approve(&mut self, id: &RequestId, approval: Approval) -> Result<SignedGrant, RequestError> {
        let now = self.vault.now();
        self.vault.write(|v| {
            let (signed, mut record) = v.inbox().pending(id)?;
            let r = signed.statement();
            let fields = approval.fields.unwrap_or_else(|| r.fields.clone());
            let filter = approval.filter.or_else(|| r.filter.clone());
            let prices = r.prices && !approval.no_prices;
            let expires_at = approval.expires_at.or(r.duration.map(|d| now.saturating_add(d)));
            r.permits(&fields, filter.as_ref(), prices, expires_at, now)?;
            let grant = v.grants_mut().issue_locked(
                NewGrant {
                    audience: r.requester,
                    fields,
                    filter,
                    purpose: r.purpose.clone(),
                    expires_at,
                    prices,
                },
                Some(r.id),
            )?;
            record.status = RequestStatus::Approved;
            record.grant = Some(grant.statement().id);
            record.answered_at = Some(now);
            v.inbox().put(id, &record)?;
            let mut event = AuditEvent::new(now, AuditKind::RequestApproved);
            event.peer = Some(r.requester);
            event.grant = Some(grant.statement().id);
            event.fields = grant.statement().fields.iter().map(ToString::to_string).collect();
            event.detail = Some(format!("request {id}"));
            v.access_log().append(&event)?;
            Ok(grant)
        })
    }

    /// Denies a request with a signed denial, delivered when the requester next connects.
    pub fn deny(&mut self, id: &RequestId, reason: Option<String>) -> Result<Signed<Denial>, RequestError> {
        let now = self.vault.now();
        self.vault.write(|v| {
            let (signed, mut record) = v.inbox().pending(id)?;
            let r = signed.statement();
            let denial = Signed::sign(
                Denial {
                    request: *id,
                    holder: v.identity(),
                    requester: r.requester,
                    reason: reason.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
                    denied_at: now,
                },
                v.signer(),
            )?;
            record.status = RequestStatus::Denied;
            record.denial = Some(denial.to_bytes());
            record.answered_at = Some(now);
            v.inbox().put(id, &record)?;
            let mut event = AuditEvent::new(now, AuditKind::RequestDenied);
            event.peer = Some(r.requester);
            event.fields = r.fields.iter().map(ToString::to_string).collect();
            event.detail = Some(format!("request {id}"));
            v.access_log().append(&event)?;
            Ok(denial)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::vault::MAX_PENDING_PER_PEER;

    fn vault() -> (tempfile::TempDir, Vault) {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        v.records_mut().set_profile("email", "ada@example.org").unwrap();
        (dir, v)
    }

    fn request(from: &Identity, to: IdentityId, purpose: &str) -> Signed<ConsentRequest> {
        Signed::sign(
            ConsentRequest {
                id: RequestId::random(),
                requester: from.public(),
                holder: to,
                fields: vec!["profile.email".parse().unwrap()],
                filter: None,
                purpose: purpose.into(),
                duration: Some(86_400),
                prices: false,
                made_at: 0,
                name: None,
                reply_to: None,
            },
            from,
        )
        .unwrap()
    }

    #[test]
    fn a_request_is_taken_only_from_its_signer_and_for_this_vault() {
        let (_d, mut v) = vault();
        let (shop, mallory) = (Identity::generate(), Identity::generate());
        let r = request(&shop, v.identity(), "delivery");
        // Relayed by someone else: refused, nothing stored.
        assert_eq!(v.inbox_mut().receive(&mallory.public(), &r).unwrap(), Err(Refusal::Misaddressed));
        // Addressed to another vault: refused.
        let other = request(&shop, mallory.public(), "delivery");
        assert_eq!(v.inbox_mut().receive(&shop.public(), &other).unwrap(), Err(Refusal::Misaddressed));
        assert!(v.inbox().list().unwrap().is_empty());
        // From its signer: stored once, however often it is delivered.
        assert_eq!(v.inbox_mut().receive(&shop.public(), &r).unwrap(), Ok(()));
        assert_eq!(v.inbox_mut().receive(&shop.public(), &r).unwrap(), Ok(()));
        assert_eq!(v.inbox().list().unwrap().len(), 1);
    }

    #[test]
    fn approval_is_atomic_and_happens_once() {
        let (_d, mut v) = vault();
        let shop = Identity::generate();
        let r = request(&shop, v.identity(), "delivery");
        v.inbox_mut().receive(&shop.public(), &r).unwrap().unwrap();
        let id = r.statement().id;
        let phone: FieldPath = "profile.phone".parse().unwrap();
        let wider = Approval { fields: Some(vec![phone]), ..Approval::default() };
        assert!(matches!(v.inbox_mut().approve(&id, wider), Err(RequestError::Wider(_))));
        assert!(v.grants().list().unwrap().is_empty(), "a refused approval grants nothing");
        let before = v.now();
        let grant = v.inbox_mut().approve(&id, Approval::default()).unwrap();
        let after = v.now();
        assert_eq!(grant.statement().request, Some(id));
        // The requested duration from the moment of approval (the clock may tick meanwhile).
        let expires = grant.statement().expires_at.unwrap();
        assert!((before + 86_400..=after + 86_400).contains(&expires), "the requested duration");
        assert!(matches!(
            v.inbox_mut().approve(&id, Approval::default()),
            Err(RequestError::AlreadyAnswered { status: RequestStatus::Approved, .. })
        ));
        assert!(matches!(v.inbox_mut().deny(&id, None), Err(RequestError::AlreadyAnswered { .. })));
        assert_eq!(v.grants().list().unwrap().len(), 1);
    }

    #[test]
    fn floods_stop_at_the_pending_limit_per_peer() {
        let (_d, mut v) = vault();
        let (shop, friend) = (Identity::generate(), Identity::generate());
        for i in 0..MAX_PENDING_PER_PEER {
            let r = request(&shop, v.identity(), &format!("offer {i}"));
            assert_eq!(v.inbox_mut().receive(&shop.public(), &r).unwrap(), Ok(()));
        }
        let r = request(&shop, v.identity(), "one more");
        assert_eq!(v.inbox_mut().receive(&shop.public(), &r).unwrap(), Err(Refusal::TooMany));
        let r = request(&friend, v.identity(), "follow");
        assert_eq!(v.inbox_mut().receive(&friend.public(), &r).unwrap(), Ok(()), "others are still served");
        // Answering frees a slot.
        let first = v
            .inbox()
            .list()
            .unwrap()
            .into_iter()
            .find(|i| i.request.statement().requester == shop.public())
            .unwrap();
        v.inbox_mut().deny(&first.request.statement().id, Some("no".into())).unwrap();
        let r = request(&shop, v.identity(), "again");
        assert_eq!(v.inbox_mut().receive(&shop.public(), &r).unwrap(), Ok(()));
        assert_eq!(v.inbox().denials_for(&shop.public()).unwrap().len(), 1);
        assert!(
            v.inbox().denials_for(&friend.public()).unwrap().is_empty(),
            "denials go to their requester only"
        );
    }
}
