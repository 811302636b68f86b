//! [`Outbox`]: the consent requests this vault made. Owns the sealed table `requests_out`
//! (customer state): a request is queued until delivered to its holder, then waits for the
//! answer, which arrives as a grant naming it or as a signed denial.

use std::ops::Deref;

use super::Vault;
use super::audit::{AuditEvent, AuditKind};
use super::requests::{self, NewRequest, Record, RequestError, RequestInfo, RequestStatus};
use crate::grant::SignedGrant;
use crate::identity::{IdentityId, Ticket};
use crate::request::{ConsentRequest, Denial};
use crate::statement::{GrantId, RequestId, Signed};
use crate::store::StoreError;

use crate::store::sealed::REQUESTS_OUT as TABLE;

/// The requests a vault made: `vault.outbox()` to read, `vault.outbox_mut()` to make requests
/// and record what became of them.
#[derive(Debug)]
pub struct Outbox<V> {
    vault: V,
}

impl<V: Deref<Target = Vault>> Outbox<V> {
    pub(super) fn new(vault: V) -> Self {
        Self { vault }
    }

    /// Requests this vault made, newest first.
    pub fn list(&self) -> Result<Vec<RequestInfo>, StoreError> {
        Ok(requests::list(&self.vault, TABLE)?
            .into_iter()
            .map(|(signed, record)| requests::info(&self.vault, signed, record, false))
            .collect())
    }

    /// Requests to `holder` not yet delivered.
    pub fn undelivered(&self, holder: &IdentityId) -> Result<Vec<Signed<ConsentRequest>>, StoreError> {
        Ok(requests::list(&self.vault, TABLE)?
            .into_iter()
            .filter(|(r, rec)| r.statement().holder == *holder && rec.status == RequestStatus::Queued)
            .map(|(r, _)| r)
            .collect())
    }

    /// Holders with a request not yet delivered.
    pub fn queued_holders(&self) -> Result<std::collections::HashSet<IdentityId>, StoreError> {
        Ok(requests::list(&self.vault, TABLE)?
            .into_iter()
            .filter(|(_, rec)| rec.status == RequestStatus::Queued)
            .map(|(r, _)| r.statement().holder)
            .collect())
    }

    /// Holders this vault waits on (a request queued or pending), with their tickets.
    pub fn holders(&self) -> Result<Vec<(IdentityId, Option<Ticket>)>, StoreError> {
        let mut out: Vec<(IdentityId, Option<Ticket>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (r, rec) in requests::list(&self.vault, TABLE)? {
            let holder = r.statement().holder;
            if matches!(rec.status, RequestStatus::Queued | RequestStatus::Pending) && seen.insert(holder) {
                out.push((holder, rec.ticket.as_deref().and_then(|t| t.parse().ok())));
            }
        }
        Ok(out)
    }
}

impl Outbox<&mut Vault> {
    /// Signs a consent request and queues it for delivery (the node delivers it, or
    /// `sync` with the holder).
    pub fn make(&mut self, new: NewRequest) -> Result<Signed<ConsentRequest>, RequestError> {
        let now = self.vault.now();
        let mut fields = new.fields;
        fields.sort();
        fields.dedup();
        let request = ConsentRequest {
            id: crate::statement::RequestId::random(),
            requester: self.vault.identity(),
            holder: new.holder,
            fields,
            filter: new.filter,
            purpose: new.purpose.trim().to_owned(),
            duration: new.duration,
            prices: new.prices,
            made_at: now,
            name: new.name,
            reply_to: new.reply_to.as_ref().map(ToString::to_string),
        };
        let signed = Signed::sign(request, self.vault.signer())?;
        self.vault.write(|v| {
            let r = signed.statement();
            let ticket = new.ticket.as_ref().map(ToString::to_string);
            requests::put(v, TABLE, &r.id, &Record::new(&signed, RequestStatus::Queued, ticket, None))?;
            let mut event = AuditEvent::new(now, AuditKind::RequestSent);
            event.peer = Some(r.holder);
            event.fields = r.fields.iter().map(ToString::to_string).collect();
            event.detail = Some(format!("request {}, purpose: {}", r.id, r.purpose));
            v.access_log().append(&event)?;
            Ok(signed.clone())
        })
    }

    /// Records the holder's answer to a delivery.
    pub fn delivered(
        &mut self,
        holder: &IdentityId,
        id: &RequestId,
        accepted: bool,
    ) -> Result<(), StoreError> {
        let now = self.vault.now();
        self.vault.write(|v| {
            let Some((signed, mut record)) = requests::get_signed(v, TABLE, id)? else { return Ok(()) };
            if signed.statement().holder != *holder || record.status != RequestStatus::Queued {
                return Ok(());
            }
            record.status = if accepted { RequestStatus::Pending } else { RequestStatus::NotAccepted };
            record.delivered_at = Some(now);
            requests::put(v, TABLE, id, &record)
        })
    }

    /// Takes in denials a holder sent.
    pub fn accept_denials(
        &mut self,
        holder: &IdentityId,
        denials: &[Signed<Denial>],
    ) -> Result<(), StoreError> {
        self.vault.write(|v| v.outbox_mut().note_answers(holder, &[], denials))
    }

    /// Notes answers learned from a holder: grants naming one of this vault's requests, and
    /// denials. Call inside a write transaction.
    pub(crate) fn note_answers(
        &mut self,
        holder: &IdentityId,
        grants: &[SignedGrant],
        denials: &[Signed<Denial>],
    ) -> Result<(), StoreError> {
        let v: &Vault = self.vault;
        let now = v.now();
        let me = v.identity();
        // (request, the grant that approved it | the denial)
        let mut answers: Vec<(RequestId, Result<GrantId, &Signed<Denial>>)> = Vec::new();
        for signed in grants {
            if v.keys().refused_signer(signed)? {
                continue;
            }
            let g = signed.statement();
            if let Some(req) = g.request
                && g.issuer == *holder
                && g.audience == me
            {
                answers.push((req, Ok(g.id)));
            }
        }
        for d in denials {
            if v.keys().refused_signer(d)? {
                continue;
            }
            let s = d.statement();
            if s.holder == *holder && s.requester == me {
                answers.push((s.request, Err(d)));
            }
        }
        for (id, answer) in answers {
            let (grant, denial) = (answer.ok(), answer.err());
            let Some(mut record) = requests::get(v, TABLE, &id)? else { continue };
            let Some(signed) = record.signed() else { continue };
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
            requests::put(v, TABLE, &id, &record)?;
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
            v.access_log().append(&event)?;
        }
        Ok(())
    }
}
