//! Consent requests, both ways: the holder's inbox (`requests_in`: pending, approved, denied)
//! and the requester's outbox (`requests_out`: queued until delivered, then waiting for the
//! answer). Both tables are sealed like everything else.
//!
//! A request is approved by issuing a grant that names it, never wider than asked, in the same
//! transaction that marks it answered; a denial is a signed statement the requester receives
//! the next time it connects.

use serde::{Deserialize, Serialize};

use super::Vault;
use super::audit::{AuditEvent, AuditKind};
use super::inbox::InboxRow;
use super::sharing::{GrantError, NewGrant};
use crate::grant::SignedGrant;
use crate::identity::{IdentityId, Ticket};
use crate::path::{FieldPath, RecordFilter};
use crate::request::{ConsentRequest, Denial, WiderThanAsked};
use crate::statement::RequestId;
use crate::statement::{GrantId, Signed, StatementError};
use crate::store::StoreError;
use crate::store::sealed::{Key, Table};

pub(super) use crate::store::sealed::REQUESTS_IN as INBOX;
use crate::store::sealed::REQUESTS_OUT as OUTBOX;
/// Requests from one peer that may wait for an answer at once.
pub const MAX_PENDING_PER_PEER: usize = 16;
/// Requests one peer may deliver per day (accepted or not counted alike).
pub const MAX_REQUESTS_PER_PEER_PER_DAY: usize = 32;
/// How long a denial is repeated to its requester when it connects (seconds).
const DENIAL_NOTICE: i64 = 30 * 86_400;

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestStatus {
    /// Outgoing, not yet delivered to the holder.
    Queued,
    /// Outgoing, the holder's node did not accept it (too many requests).
    NotAccepted,
    /// Waiting for the holder's decision.
    Pending,
    /// Approved: a grant answers it.
    Approved,
    /// Denied by the holder.
    Denied,
}

impl RequestStatus {
    /// A lowercase word for output.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Queued => "queued",
            RequestStatus::NotAccepted => "not-accepted",
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
        }
    }
}

/// A consent request, with where it stands.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// The signed request.
    pub request: Signed<ConsentRequest>,
    /// The other party's petname, when a contact (the requester for incoming requests, the
    /// holder for outgoing ones).
    pub peer_name: Option<String>,
    /// Where it stands.
    pub status: RequestStatus,
    /// When it was received (incoming) or delivered (outgoing), unix seconds.
    pub delivered_at: Option<i64>,
    /// When it was answered, unix seconds.
    pub answered_at: Option<i64>,
    /// The grant that approved it.
    pub grant: Option<GrantId>,
    /// The denial.
    pub denial: Option<Signed<Denial>>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Record {
    request: Vec<u8>,
    pub(super) status: RequestStatus,
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default)]
    pub(super) delivered_at: Option<i64>,
    #[serde(default)]
    answered_at: Option<i64>,
    #[serde(default)]
    grant: Option<GrantId>,
    #[serde(default)]
    denial: Option<Vec<u8>>,
}

/// What the holder's vault has of one requested field, so the holder sees what approving
/// would share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    /// The requested field path.
    pub field: FieldPath,
    /// Whether the vault holds a value there.
    pub held: bool,
    /// For purchase paths, how many records would be shared (after the request's filter).
    pub records: Option<usize>,
}

/// What to ask for.
#[derive(Clone, Debug)]
pub struct NewRequest {
    /// Whose data (the one who decides).
    pub holder: IdentityId,
    /// How to reach them.
    pub ticket: Option<Ticket>,
    /// What.
    pub fields: Vec<FieldPath>,
    /// Which purchase records, when not all.
    pub filter: Option<RecordFilter>,
    /// Why (required).
    pub purpose: String,
    /// For how long (seconds).
    pub duration: Option<i64>,
    /// Whether purchase prices are asked for.
    pub prices: bool,
}

/// How the holder narrows an approval. `None` keeps what was asked.
#[derive(Clone, Debug, Default)]
pub struct Approval {
    /// Fewer or narrower fields.
    pub fields: Option<Vec<FieldPath>>,
    /// Only some purchase records.
    pub filter: Option<RecordFilter>,
    /// Leave prices out.
    pub no_prices: bool,
    /// An earlier expiry (unix seconds).
    pub expires_at: Option<i64>,
}

/// A request could not be made, answered or recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No request with this id.
    #[error("no request with id {0}")]
    Unknown(String),
    /// It was answered before.
    #[error("request {id} was already {}", status.as_str())]
    AlreadyAnswered {
        /// The request.
        id: RequestId,
        /// How it was answered.
        status: RequestStatus,
    },
    /// The approval would grant more than was asked.
    #[error("cannot approve more than was asked: {0}")]
    Wider(#[from] WiderThanAsked),
    /// The requester is a blocked contact.
    #[error("the requester is a blocked contact")]
    Blocked,
    /// The statement does not check out.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// Issuing the grant failed.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a delivered request was not accepted (the requester only learns "not accepted").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not addressed to this vault, or not from the connected peer.
    Misaddressed,
    /// The requester is blocked.
    Blocked,
    /// The requester has too many requests pending or sent too many today.
    TooMany,
}

impl Vault {
    fn request_record(&self, table: Table, id: &RequestId) -> Result<Option<Record>, StoreError> {
        let Some(body) = self.store.get(&table, Key::Id(id.as_bytes()))? else {
            return Ok(None);
        };
        serde_json::from_slice(&body).map(Some).map_err(|_| StoreError::Damaged(format!("{table} row {id}")))
    }

    fn put_request_record(&self, table: Table, id: &RequestId, record: &Record) -> Result<(), StoreError> {
        self.inbox_touched(table);
        let body = serde_json::to_vec(record).expect("serializes");
        self.store.put(&table, Key::Id(id.as_bytes()), &body)?;
        Ok(())
    }

    pub(super) fn request_records(
        &self,
        table: Table,
    ) -> Result<Vec<(Signed<ConsentRequest>, Record)>, StoreError> {
        let rows = self.store.list(&table)?;
        let mut out = Vec::with_capacity(rows.len());
        for (raw, body, _) in rows {
            let name = RequestId::from_raw(raw.id()).map_or_else(|| "?".to_owned(), |id| id.to_string());
            let damaged = || StoreError::Damaged(format!("{table} row {name}"));
            let record: Record = serde_json::from_slice(&body).map_err(|_| damaged())?;
            let signed = Signed::<ConsentRequest>::from_stored(&record.request).ok_or_else(damaged)?;
            out.push((signed, record));
        }
        out.sort_by_key(|(r, _)| std::cmp::Reverse(r.statement().made_at));
        Ok(out)
    }

    fn request_info(&self, signed: Signed<ConsentRequest>, record: Record, incoming: bool) -> RequestInfo {
        let r = signed.statement();
        let peer = if incoming { r.requester } else { r.holder };
        RequestInfo {
            peer_name: self.petname(&peer),
            status: record.status,
            delivered_at: record.delivered_at,
            answered_at: record.answered_at,
            grant: record.grant,
            denial: record.denial.as_deref().and_then(Signed::<Denial>::from_stored),
            request: signed,
        }
    }

    // ---- the requester's side ----

    /// Signs a consent request and queues it for delivery (the node delivers it, or
    /// `sync` with the holder).
    pub fn make_request(&mut self, new: NewRequest) -> Result<Signed<ConsentRequest>, RequestError> {
        let now = self.now();
        let mut fields = new.fields;
        fields.sort();
        fields.dedup();
        let request = ConsentRequest {
            id: RequestId::random(),
            requester: self.identity(),
            holder: new.holder,
            fields,
            filter: new.filter,
            purpose: new.purpose.trim().to_owned(),
            duration: new.duration,
            prices: new.prices,
            made_at: now,
        };
        let signed = Signed::sign(request, &self.identity)?;
        self.write(|v| {
            let r = signed.statement();
            v.put_request_record(
                OUTBOX,
                &r.id,
                &Record {
                    request: signed.to_bytes(),
                    status: RequestStatus::Queued,
                    ticket: new.ticket.as_ref().map(ToString::to_string),
                    delivered_at: None,
                    answered_at: None,
                    grant: None,
                    denial: None,
                },
            )?;
            let mut event = AuditEvent::new(now, AuditKind::RequestSent);
            event.peer = Some(r.holder);
            event.fields = r.fields.iter().map(ToString::to_string).collect();
            event.detail = Some(format!("request {}, purpose: {}", r.id, r.purpose));
            v.log_event(&event)?;
            Ok(signed.clone())
        })
    }

    /// Requests this vault made, newest first.
    pub fn outgoing_requests(&self) -> Result<Vec<RequestInfo>, StoreError> {
        Ok(self
            .request_records(OUTBOX)?
            .into_iter()
            .map(|(signed, record)| self.request_info(signed, record, false))
            .collect())
    }

    /// Requests to `holder` not yet delivered.
    pub fn undelivered_requests(
        &self,
        holder: &IdentityId,
    ) -> Result<Vec<Signed<ConsentRequest>>, StoreError> {
        Ok(self
            .request_records(OUTBOX)?
            .into_iter()
            .filter(|(r, rec)| r.statement().holder == *holder && rec.status == RequestStatus::Queued)
            .map(|(r, _)| r)
            .collect())
    }

    /// Holders this vault waits on (a request queued or pending), with their tickets.
    pub fn request_holders(&self) -> Result<Vec<(IdentityId, Option<Ticket>)>, StoreError> {
        let mut out: Vec<(IdentityId, Option<Ticket>)> = Vec::new();
        for (r, rec) in self.request_records(OUTBOX)? {
            let holder = r.statement().holder;
            if matches!(rec.status, RequestStatus::Queued | RequestStatus::Pending)
                && !out.iter().any(|(h, _)| *h == holder)
            {
                out.push((holder, rec.ticket.as_deref().and_then(|t| t.parse().ok())));
            }
        }
        Ok(out)
    }

    /// Records the holder's answer to a delivery.
    pub fn request_delivered(
        &mut self,
        holder: &IdentityId,
        id: &RequestId,
        accepted: bool,
    ) -> Result<(), StoreError> {
        let now = self.now();
        self.write(|v| {
            let Some(mut record) = v.request_record(OUTBOX, id)? else { return Ok(()) };
            let signed = Signed::<ConsentRequest>::from_stored(&record.request)
                .ok_or_else(|| StoreError::Damaged(format!("{OUTBOX} row {id}")))?;
            if signed.statement().holder != *holder || record.status != RequestStatus::Queued {
                return Ok(());
            }
            record.status = if accepted { RequestStatus::Pending } else { RequestStatus::NotAccepted };
            record.delivered_at = Some(now);
            v.put_request_record(OUTBOX, id, &record)
        })
    }

    /// Notes answers learned from a holder: grants naming one of this vault's requests, and
    /// denials. Call inside a write transaction.
    pub(crate) fn note_answers(
        &mut self,
        holder: &IdentityId,
        grants: &[SignedGrant],
        denials: &[Signed<Denial>],
    ) -> Result<(), StoreError> {
        let now = self.now();
        let me = self.identity();
        // (request, the grant that approved it | the denial)
        let mut answers: Vec<(RequestId, Result<GrantId, &Signed<Denial>>)> = Vec::new();
        for g in grants {
            let g = g.statement();
            if let Some(req) = g.request
                && g.issuer == *holder
                && g.audience == me
            {
                answers.push((req, Ok(g.id)));
            }
        }
        for d in denials {
            let s = d.statement();
            if s.holder == *holder && s.requester == me {
                answers.push((s.request, Err(d)));
            }
        }
        for (id, answer) in answers {
            let (grant, denial) = (answer.ok(), answer.err());
            let Some(mut record) = self.request_record(OUTBOX, &id)? else { continue };
            let Some(signed) = Signed::<ConsentRequest>::from_stored(&record.request) else { continue };
            if signed.statement().holder != *holder
                || matches!(record.status, RequestStatus::Approved | RequestStatus::Denied)
            {
                continue;
            }
            record.status = if grant.is_some() { RequestStatus::Approved } else { RequestStatus::Denied };
            record.grant = grant;
            record.denial = denial.map(Signed::to_bytes);
            record.answered_at = Some(now);
            record.delivered_at.get_or_insert(now);
            self.put_request_record(OUTBOX, &id, &record)?;
            let mut event = AuditEvent::new(now, AuditKind::RequestAnswered);
            event.peer = Some(*holder);
            event.grant = grant;
            event.fields = signed.statement().fields.iter().map(ToString::to_string).collect();
            event.detail = Some(match denial {
                Some(d) => match &d.statement().reason {
                    Some(reason) => format!("request {id} denied: {reason}"),
                    None => format!("request {id} denied"),
                },
                None => format!("request {id} approved"),
            });
            self.log_event(&event)?;
        }
        Ok(())
    }

    /// Takes in denials a holder sent.
    pub fn accept_denials(
        &mut self,
        holder: &IdentityId,
        denials: &[Signed<Denial>],
    ) -> Result<(), StoreError> {
        self.write(|v| v.note_answers(holder, &[], denials))
    }

    // ---- the holder's side ----

    /// Takes in a request delivered by `peer` (the identity its connection proved). Returns
    /// whether it now waits for a decision; a refusal is logged, and the peer is only told
    /// "not accepted". Delivering the same request twice is harmless.
    pub fn receive_request(
        &mut self,
        peer: &IdentityId,
        signed: &Signed<ConsentRequest>,
    ) -> Result<Result<(), Refusal>, StoreError> {
        let now = self.now();
        let me = self.identity();
        let r = signed.statement();
        let taken = self.write(|v| -> Result<Result<Option<RequestId>, Refusal>, StoreError> {
            let refusal = if r.requester != *peer || r.holder != me {
                Some(Refusal::Misaddressed)
            } else if v.is_blocked(peer)? {
                Some(Refusal::Blocked)
            } else if v.request_record(INBOX, &r.id)?.is_some() {
                return Ok(Ok(None));
            } else {
                v.inbox_over_limit(peer, now)?.then_some(Refusal::TooMany)
            };
            if let Some(refusal) = refusal {
                // One line per peer and kind of refusal and hour, so a flood cannot fill the log.
                let key = (*peer, refusal as u8);
                if v.refusals_logged.get(&key).is_none_or(|t| now - t >= 3600) {
                    v.refusals_logged.insert(key, now);
                    let mut event = AuditEvent::new(now, AuditKind::RequestRefused);
                    event.peer = Some(*peer);
                    event.detail = Some(
                        match refusal {
                            Refusal::Misaddressed => "a request not addressed to this vault",
                            Refusal::Blocked => "a request from a blocked contact",
                            Refusal::TooMany => "too many requests from this peer",
                        }
                        .into(),
                    );
                    v.log_event(&event)?;
                }
                return Ok(Err(refusal));
            }
            v.put_request_record(
                INBOX,
                &r.id,
                &Record {
                    request: signed.to_bytes(),
                    status: RequestStatus::Pending,
                    ticket: None,
                    delivered_at: Some(now),
                    answered_at: None,
                    grant: None,
                    denial: None,
                },
            )?;
            let mut event = AuditEvent::new(now, AuditKind::RequestReceived);
            event.peer = Some(*peer);
            event.fields = r.fields.iter().map(ToString::to_string).collect();
            event.detail = Some(format!("request {}, purpose: {}", r.id, r.purpose));
            v.log_event(&event)?;
            Ok(Ok(Some(r.id)))
        })?;
        if let Ok(Some(id)) = taken {
            self.inbox_noted(id, InboxRow { requester: *peer, pending: true, delivered_at: Some(now) });
        }
        Ok(taken.map(|_| ()))
    }

    /// Requests received, newest first (requests from blocked contacts are left out).
    pub fn incoming_requests(&self) -> Result<Vec<RequestInfo>, StoreError> {
        let mut out = Vec::new();
        for (signed, record) in self.request_records(INBOX)? {
            if !self.is_blocked(&signed.statement().requester)? {
                out.push(self.request_info(signed, record, true));
            }
        }
        Ok(out)
    }

    /// What this vault holds of each field a request asks for.
    pub fn holdings(&self, request: &ConsentRequest) -> Vec<Holding> {
        let doc = self.doc.to_json();
        request
            .fields
            .iter()
            .map(|field| {
                let (held, records) = match field {
                    FieldPath::Profile(segments) => {
                        let mut v = &doc[crate::doc::PROFILE];
                        for s in segments {
                            v = &v[s.as_str()];
                        }
                        (!v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()), None)
                    }
                    FieldPath::Preferences(key) => {
                        let prefs = &doc[crate::doc::PREFERENCES];
                        let held = match key {
                            Some(k) => !prefs[k.as_str()].is_null(),
                            None => prefs.as_object().is_some_and(|m| !m.is_empty()),
                        };
                        (held, None)
                    }
                    FieldPath::Purchases(sub) => {
                        let count = doc[crate::doc::PURCHASES].as_object().map_or(0, |m| {
                            m.values()
                                .filter(|r| request.filter.as_ref().is_none_or(|f| f.matches(r)))
                                .filter(|r| sub.as_ref().is_none_or(|s| !r[s.as_str()].is_null()))
                                .count()
                        });
                        (count > 0, Some(count))
                    }
                };
                Holding { field: field.clone(), held, records }
            })
            .collect()
    }

    /// One received request.
    pub fn incoming_request(&self, id: &RequestId) -> Result<Option<RequestInfo>, StoreError> {
        let Some(record) = self.request_record(INBOX, id)? else { return Ok(None) };
        let signed = Signed::<ConsentRequest>::from_stored(&record.request)
            .ok_or_else(|| StoreError::Damaged(format!("{INBOX} row {id}")))?;
        Ok(Some(self.request_info(signed, record, true)))
    }

    fn pending_request(&self, id: &RequestId) -> Result<(Signed<ConsentRequest>, Record), RequestError> {
        let record = self.request_record(INBOX, id)?.ok_or_else(|| RequestError::Unknown(id.to_string()))?;
        let signed = Signed::<ConsentRequest>::from_stored(&record.request)
            .ok_or_else(|| StoreError::Damaged(format!("{INBOX} row {id}")))?;
        if record.status != RequestStatus::Pending {
            return Err(RequestError::AlreadyAnswered { id: *id, status: record.status });
        }
        if self.is_blocked(&signed.statement().requester)? {
            return Err(RequestError::Blocked);
        }
        Ok((signed, record))
    }

    /// Approves a request: issues a grant naming it, exactly as asked or narrower, in one
    /// transaction with the answer and its log line.
    pub fn approve_request(
        &mut self,
        id: &RequestId,
        approval: Approval,
    ) -> Result<SignedGrant, RequestError> {
        let now = self.now();
        self.write(|v| {
            let (signed, mut record) = v.pending_request(id)?;
            let r = signed.statement();
            let fields = approval.fields.unwrap_or_else(|| r.fields.clone());
            let filter = approval.filter.or_else(|| r.filter.clone());
            let prices = r.prices && !approval.no_prices;
            let expires_at = approval.expires_at.or(r.duration.map(|d| now.saturating_add(d)));
            r.permits(&fields, filter.as_ref(), prices, expires_at, now)?;
            let grant = v.issue_grant_locked(
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
            v.put_request_record(INBOX, id, &record)?;
            let mut event = AuditEvent::new(now, AuditKind::RequestApproved);
            event.peer = Some(r.requester);
            event.grant = Some(grant.statement().id);
            event.fields = grant.statement().fields.iter().map(ToString::to_string).collect();
            event.detail = Some(format!("request {id}"));
            v.log_event(&event)?;
            Ok(grant)
        })
    }

    /// Denies a request with a signed denial, delivered when the requester next connects.
    pub fn deny_request(
        &mut self,
        id: &RequestId,
        reason: Option<String>,
    ) -> Result<Signed<Denial>, RequestError> {
        let now = self.now();
        self.write(|v| {
            let (signed, mut record) = v.pending_request(id)?;
            let r = signed.statement();
            let denial = Signed::sign(
                Denial {
                    request: *id,
                    holder: v.identity(),
                    requester: r.requester,
                    reason: reason.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
                    denied_at: now,
                },
                &v.identity,
            )?;
            record.status = RequestStatus::Denied;
            record.denial = Some(denial.to_bytes());
            record.answered_at = Some(now);
            v.put_request_record(INBOX, id, &record)?;
            let mut event = AuditEvent::new(now, AuditKind::RequestDenied);
            event.peer = Some(r.requester);
            event.fields = r.fields.iter().map(ToString::to_string).collect();
            event.detail = Some(format!("request {id}"));
            v.log_event(&event)?;
            Ok(denial)
        })
    }

    /// Denials of `peer`'s requests made in the last 30 days, to tell it when it connects.
    pub fn denials_for(&self, peer: &IdentityId) -> Result<Vec<Signed<Denial>>, StoreError> {
        let now = self.now();
        if self.is_blocked(peer)? {
            return Ok(Vec::new());
        }
        Ok(self
            .request_records(INBOX)?
            .into_iter()
            .filter(|(r, rec)| {
                r.statement().requester == *peer && rec.answered_at.is_some_and(|t| now - t < DENIAL_NOTICE)
            })
            .filter_map(|(_, rec)| rec.denial.as_deref().and_then(Signed::<Denial>::from_stored))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};

    fn vault() -> (tempfile::TempDir, Vault) {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        v.set_profile("email", "ada@example.org").unwrap();
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
        assert_eq!(v.receive_request(&mallory.public(), &r).unwrap(), Err(Refusal::Misaddressed));
        // Addressed to another vault: refused.
        let other = request(&shop, mallory.public(), "delivery");
        assert_eq!(v.receive_request(&shop.public(), &other).unwrap(), Err(Refusal::Misaddressed));
        assert!(v.incoming_requests().unwrap().is_empty());
        // From its signer: stored once, however often it is delivered.
        assert_eq!(v.receive_request(&shop.public(), &r).unwrap(), Ok(()));
        assert_eq!(v.receive_request(&shop.public(), &r).unwrap(), Ok(()));
        assert_eq!(v.incoming_requests().unwrap().len(), 1);
    }

    #[test]
    fn approval_is_atomic_and_happens_once() {
        let (_d, mut v) = vault();
        let shop = Identity::generate();
        let r = request(&shop, v.identity(), "delivery");
        v.receive_request(&shop.public(), &r).unwrap().unwrap();
        let id = r.statement().id;
        let phone: FieldPath = "profile.phone".parse().unwrap();
        let wider = Approval { fields: Some(vec![phone]), ..Approval::default() };
        assert!(matches!(v.approve_request(&id, wider), Err(RequestError::Wider(_))));
        assert!(v.grants().unwrap().is_empty(), "a refused approval grants nothing");
        let grant = v.approve_request(&id, Approval::default()).unwrap();
        assert_eq!(grant.statement().request, Some(id));
        assert_eq!(grant.statement().expires_at, Some(v.now() + 86_400), "the requested duration");
        assert!(matches!(
            v.approve_request(&id, Approval::default()),
            Err(RequestError::AlreadyAnswered { status: RequestStatus::Approved, .. })
        ));
        assert!(matches!(v.deny_request(&id, None), Err(RequestError::AlreadyAnswered { .. })));
        assert_eq!(v.grants().unwrap().len(), 1);
    }

    #[test]
    fn floods_stop_at_the_pending_limit_per_peer() {
        let (_d, mut v) = vault();
        let (shop, friend) = (Identity::generate(), Identity::generate());
        for i in 0..MAX_PENDING_PER_PEER {
            let r = request(&shop, v.identity(), &format!("offer {i}"));
            assert_eq!(v.receive_request(&shop.public(), &r).unwrap(), Ok(()));
        }
        let r = request(&shop, v.identity(), "one more");
        assert_eq!(v.receive_request(&shop.public(), &r).unwrap(), Err(Refusal::TooMany));
        let r = request(&friend, v.identity(), "follow");
        assert_eq!(v.receive_request(&friend.public(), &r).unwrap(), Ok(()), "others are still served");
        // Answering frees a slot.
        let first = v
            .incoming_requests()
            .unwrap()
            .into_iter()
            .find(|i| i.request.statement().requester == shop.public())
            .unwrap();
        v.deny_request(&first.request.statement().id, Some("no".into())).unwrap();
        let r = request(&shop, v.identity(), "again");
        assert_eq!(v.receive_request(&shop.public(), &r).unwrap(), Ok(()));
        assert_eq!(v.denials_for(&shop.public()).unwrap().len(), 1);
        assert!(v.denials_for(&friend.public()).unwrap().is_empty(), "denials go to their requester only");
    }
}
