//! [`Market`]: the seller's side of intentions (see `docs/intentions.md`). Intentions received
//! from pseudonyms, the offers this vault made to each, and the acceptances that named a
//! customer. Owns the sealed table `intents_in`.
//!
//! What is kept of a stranger's intention is what it signed and when it arrived, never where
//! it came from: no address, no endpoint other than its pseudonym. A withdrawn intention is
//! dropped, leaving only its pseudonym and last day (so that it is not taken again).

use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::Vault;
use super::audit::{AuditEvent, AuditKind};
use super::intents::ends_at;
use crate::identity::{IdentityId, Ticket};
use crate::intent::{Pseudonym, SignedIntention, Withdrawal};
use crate::money::Price;
use crate::protocol::market::MarketAnswer;
use crate::statement::{Acceptance, Offer, OfferId, Signed, StatementError};
use crate::store::StoreError;
use crate::store::sealed::{INTENTS_IN, Key};
use crate::store::typed::TypedTable;

mod tally;
pub(crate) use tally::MarketTally;

const ROWS: TypedTable<HeldRecord> = TypedTable::new(INTENTS_IN);

/// Live intentions held from strangers, at most: beyond, new ones are answered `Full`.
pub const MAX_HELD_INTENTIONS: usize = 2000;
/// Live intentions held from one topic, at most.
pub const MAX_HELD_PER_TOPIC: usize = 500;
/// Marks of withdrawn intentions kept, at most (beyond, a withdrawn intention is forgotten whole).
pub const MAX_WITHDRAWN_MARKS: usize = 10_000;
/// The furthest last day an intention may name, in days from now.
pub const MAX_INTENTION_DAYS: i64 = 90;

/// Offers this vault makes to one intention, at most.
pub const MAX_OFFERS_MADE: usize = 4;

#[derive(Serialize, Deserialize)]
struct HeldRecord {
    /// Empty once withdrawn.
    intention: Vec<u8>,
    until: i64,
    received_at: i64,
    via: String,
    #[serde(default)]
    offers: Vec<Vec<u8>>,
    #[serde(default)]
    accepted: Option<Vec<u8>>,
    #[serde(default)]
    withdrawn_at: Option<i64>,
}

/// An intention this vault received.
#[derive(Clone, Debug)]
pub struct HeldIntention {
    /// The intention.
    pub signed: SignedIntention,
    /// When it arrived.
    pub received_at: i64,
    /// How: `direct` (dialled to this vault) or `topic NAME`.
    pub via: String,
    /// The offers this vault made to it.
    pub offers: Vec<Signed<Offer>>,
    /// The acceptance of one of them: the customer, named.
    pub accepted: Option<Signed<Acceptance>>,
}

/// An offer could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MarketError {
    /// No live intention here has that pseudonym (or prefix), or more than one does.
    #[error(
        "no live intention here is named {0} (give its first 12 characters or more: vault intent inbox shows them)"
    )]
    Unknown(String),
    /// Already [`MAX_OFFERS_MADE`] offers to it.
    #[error("you made {MAX_OFFERS_MADE} offers to this intention already")]
    TooMany,
    /// The offer breaks a rule.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The seller's intentions: `vault.market()`, `vault.market_mut()`.
#[derive(Debug)]
pub struct Market<V> {
    vault: V,
}

impl<V: Deref<Target = Vault>> Market<V> {
    fn new(vault: V) -> Self {
        Self { vault }
    }

    fn live_rows(&self) -> Result<Vec<(Pseudonym, HeldRecord)>, StoreError> {
        let now = self.vault.now();
        Ok(ROWS
            .list(&self.vault.store)?
            .into_iter()
            .filter(|(_, r)| r.withdrawn_at.is_none() && r.until > now)
            .filter_map(|(k, r)| Some((Pseudonym::from_bytes(k.id().try_into().ok()?).ok()?, r)))
            .collect())
    }

    /// Live intentions (neither withdrawn nor past their last day), newest first.
    pub fn list(&self) -> Result<Vec<HeldIntention>, StoreError> {
        let mut out: Vec<HeldIntention> = self
            .live_rows()?
            .into_iter()
            .filter_map(|(_, r)| {
                Some(HeldIntention {
                    signed: SignedIntention::from_bytes(&r.intention).ok()?,
                    received_at: r.received_at,
                    via: r.via,
                    offers: r.offers.iter().filter_map(|o| Signed::<Offer>::from_stored(o)).collect(),
                    accepted: r.accepted.as_deref().and_then(Signed::<Acceptance>::from_stored),
                })
            })
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.received_at));
        Ok(out)
    }

    /// The live intention named by its pseudonym or a prefix of it (at least 4 characters).
    pub fn find(&self, name: &str) -> Result<HeldIntention, MarketError> {
        let name = name.trim().to_ascii_lowercase();
        let all = self.list()?;
        let mut hits = all.into_iter().filter(|i| {
            name.len() >= super::intents::MIN_PREFIX
                && i.signed.intention.pseudonym.to_string().starts_with(&name)
        });
        match (hits.next(), hits.next()) {
            (Some(one), None) => Ok(one),
            _ => Err(MarketError::Unknown(name)),
        }
    }

    /// The answer to an intention that needs no counting: already held (`Kept`), withdrawn or
    /// out of its days (`Ended`); `None` when it is new and may be taken. One row read.
    pub fn precheck(&self, signed: &SignedIntention) -> Result<Option<MarketAnswer>, StoreError> {
        let now = self.vault.now();
        let until = ends_at(&signed.intention.until);
        if until <= now || until > now + (MAX_INTENTION_DAYS + 1) * 86_400 {
            return Ok(Some(MarketAnswer::Ended));
        }
        let pseudonym = signed.intention.pseudonym;
        Ok(ROWS.get(&self.vault.store, Key::Id(pseudonym.as_bytes()))?.map(|known| {
            if known.withdrawn_at.is_some() || known.until <= now {
                MarketAnswer::Ended
            } else {
                MarketAnswer::Kept
            }
        }))
    }

    /// The live offers this vault made to `pseudonym`'s intention (what its customer fetches).
    pub fn offers_for(&self, pseudonym: &Pseudonym) -> Result<Vec<Signed<Offer>>, StoreError> {
        let now = self.vault.now();
        let Some(r) = ROWS.get(&self.vault.store, Key::Id(pseudonym.as_bytes()))? else {
            return Ok(Vec::new());
        };
        if r.withdrawn_at.is_some() {
            return Ok(Vec::new());
        }
        Ok(r.offers
            .iter()
            .filter_map(|o| Signed::<Offer>::from_stored(o))
            .filter(|o| o.statement().until > now)
            .collect())
    }

    /// Who accepted, per intention (for checks).
    pub fn customer_of(&self, pseudonym: &Pseudonym) -> Result<Option<IdentityId>, StoreError> {
        Ok(ROWS
            .get(&self.vault.store, Key::Id(pseudonym.as_bytes()))?
            .and_then(|r| r.accepted)
            .and_then(|a| Signed::<Acceptance>::from_stored(&a))
            .map(|a| a.statement().customer))
    }
}

impl Market<&mut Vault> {
    /// Takes an intention from a stranger. `via`: `direct`, or `topic NAME`. Kept unless it
    /// is past its last day, names one further than [`MAX_INTENTION_DAYS`], was withdrawn, or
    /// this vault holds its bound of live ones. Call [`Market::precheck`] first to answer
    /// without the cost of counting.
    pub fn receive(&mut self, signed: &SignedIntention, via: &str) -> Result<MarketAnswer, StoreError> {
        if let Some(answer) = self.precheck(signed)? {
            return Ok(answer);
        }
        let now = self.vault.now();
        let pseudonym = signed.intention.pseudonym;
        let until = ends_at(&signed.intention.until);
        let bound = if via == "direct" { MAX_HELD_INTENTIONS } else { MAX_HELD_PER_TOPIC };
        let (live_via, live) = self.counts(|c| (c.live_via(via, now), c.live(now)))?;
        if live_via >= bound || live >= 2 * MAX_HELD_INTENTIONS {
            return Ok(MarketAnswer::Full);
        }
        let record = HeldRecord {
            intention: signed.to_bytes(),
            until,
            received_at: now,
            via: via.to_owned(),
            offers: Vec::new(),
            accepted: None,
            withdrawn_at: None,
        };
        self.vault.write(|v| {
            ROWS.put(&v.store, Key::Id(pseudonym.as_bytes()), &record)?;
            // The pseudonym and the way it came; what is wanted is in the inbox while it lives.
            let mut event = AuditEvent::new(now, AuditKind::IntentionReceived);
            event.detail = Some(format!("intention {pseudonym} ({via})"));
            v.access_log().append(&event)
        })?;
        self.written(&[(None, Some(&record))]);
        Ok(MarketAnswer::Kept)
    }

    /// Makes an offer to a live intention, signed by this vault.
    pub fn offer(
        &mut self,
        name: &str,
        seller_name: &str,
        price: &Price,
        terms: &str,
        until: i64,
        reply_to: Option<&Ticket>,
    ) -> Result<Signed<Offer>, MarketError> {
        let held = self.find(name)?;
        let pseudonym = held.signed.intention.pseudonym;
        if held.offers.len() >= MAX_OFFERS_MADE {
            return Err(MarketError::TooMany);
        }
        let now = self.vault.now();
        let offer = Offer {
            id: OfferId::random(),
            seller: self.vault.identity(),
            name: seller_name.to_owned(),
            intention: pseudonym,
            amount_minor: price.amount_minor,
            currency: price.currency.clone(),
            terms: terms.trim().to_owned(),
            made_at: now,
            until,
            reply_to: reply_to.map(ToString::to_string),
        };
        let signed = Signed::sign(offer, self.vault.signer())?;
        self.vault.write(|v| {
            let key = Key::Id(pseudonym.as_bytes());
            let mut record = ROWS.get(&v.store, key)?.ok_or_else(|| MarketError::Unknown(name.to_owned()))?;
            record.offers.push(signed.to_bytes());
            ROWS.put(&v.store, key, &record)?;
            let mut event = AuditEvent::new(now, AuditKind::OfferMade);
            event.detail = Some(format!("offer {} for intention {pseudonym}", signed.statement().id));
            v.access_log().append(&event)?;
            Ok::<(), MarketError>(())
        })?;
        Ok(signed)
    }

    /// Takes an acceptance delivered over a connection authenticated as `remote` (the
    /// intention's pseudonym; the frame decoder checked the co-signature). Kept when it
    /// accepts a live offer of this vault to that intention.
    pub fn accepted(
        &mut self,
        remote: &Pseudonym,
        signed: &Signed<Acceptance>,
    ) -> Result<MarketAnswer, StoreError> {
        let a = signed.statement();
        let now = self.vault.now();
        if a.intention != *remote || a.seller != self.vault.identity() || a.accepted_at > now + 600 {
            return Ok(MarketAnswer::Refused);
        }
        // The offer exactly as made: not another one signed under the same id.
        let made = self.offers_for(remote)?.into_iter().find(|o| o.statement().id == a.offer);
        if made.is_some_and(|o| crate::statement::digest_of(&o.to_bytes()) != a.offer_digest) {
            return Ok(MarketAnswer::Refused);
        }
        if self.vault.keys().refused_signer(signed)? {
            return Ok(MarketAnswer::Refused);
        }
        let Some(ours) = self.offers_for(remote)?.into_iter().find(|o| o.statement().id == a.offer) else {
            return Ok(MarketAnswer::Unknown);
        };
        let customer = a.customer;
        self.vault.write(|v| {
            let key = Key::Id(remote.as_bytes());
            let Some(mut record) = ROWS.get(&v.store, key)? else { return Ok(MarketAnswer::Unknown) };
            if record.accepted.is_none() {
                record.accepted = Some(signed.to_bytes());
                ROWS.put(&v.store, key, &record)?;
                let mut event = AuditEvent::new(now, AuditKind::OfferAccepted);
                event.peer = Some(customer);
                event.detail = Some(format!("offer {} for intention {remote}", ours.statement().id));
                v.access_log().append(&event)?;
            }
            Ok(MarketAnswer::Kept)
        })
    }

    /// Drops a withdrawn intention, keeping only its pseudonym and last day.
    pub fn withdrawn(&mut self, withdrawal: &Withdrawal) -> Result<MarketAnswer, StoreError> {
        let now = self.vault.now();
        let pseudonym = withdrawal.pseudonym;
        let key = Key::Id(pseudonym.as_bytes());
        // Counted first: a write by another connection from here on drops the counts.
        let marks = self.counts(|c| c.marks())?;
        let done = self.vault.write(|v| {
            let Some(was) = ROWS.get(&v.store, key)? else { return Ok(Err(MarketAnswer::Unknown)) };
            if was.accepted.is_some() {
                // The customer accepted: this is the seller's record of its word, kept.
                return Ok(Err(MarketAnswer::Ended));
            }
            if was.withdrawn_at.is_some() {
                return Ok(Err(MarketAnswer::Kept));
            }
            let is = (marks < MAX_WITHDRAWN_MARKS).then(|| HeldRecord {
                intention: Vec::new(),
                until: was.until,
                received_at: was.received_at,
                via: was.via.clone(),
                offers: Vec::new(),
                accepted: None,
                withdrawn_at: Some(now),
            });
            match &is {
                Some(mark) => ROWS.put(&v.store, key, mark)?,
                None => {
                    ROWS.delete(&v.store, key)?;
                }
            }
            let mut event = AuditEvent::new(now, AuditKind::IntentionWithdrawn);
            event.detail = Some(format!("intention {pseudonym}"));
            v.access_log().append(&event)?;
            Ok::<_, StoreError>(Ok((was, is)))
        })?;
        match done {
            Ok((was, is)) => {
                self.written(&[(Some(&was), is.as_ref())]);
                Ok(MarketAnswer::Kept)
            }
            Err(answer) => Ok(answer),
        }
    }

    /// Forgets one live intention (the seller's choice), with the offers made to it.
    pub fn forget(&mut self, name: &str) -> Result<Pseudonym, MarketError> {
        let pseudonym = self.find(name)?.signed.intention.pseudonym;
        let key = Key::Id(pseudonym.as_bytes());
        let was = self.vault.write(|v| {
            let was = ROWS.get(&v.store, key)?;
            ROWS.delete(&v.store, key)?;
            Ok::<_, MarketError>(was)
        })?;
        self.written(&[(was.as_ref(), None)]);
        Ok(pseudonym)
    }

    /// Forgets intentions past their last day (and the marks of withdrawn ones), unless one
    /// of their offers was accepted: that one is the seller's record of a customer's word.
    pub fn expire(&mut self) -> Result<usize, StoreError> {
        let now = self.vault.now();
        // Counted first: a write by another connection from here on drops the counts.
        self.counts(|_| ())?;
        let gone: Vec<_> = ROWS
            .list(&self.vault.store)?
            .into_iter()
            .filter(|(_, r)| r.until <= now && r.accepted.is_none())
            .collect();
        if gone.is_empty() {
            return Ok(0);
        }
        self.vault.write(|v| {
            for (key, _) in &gone {
                ROWS.delete(&v.store, key.as_key())?;
            }
            Ok::<(), StoreError>(())
        })?;
        let moves: Vec<_> = gone.iter().map(|(_, was)| (Some(was), None)).collect();
        self.written(&moves);
        Ok(gone.len())
    }
}

impl Vault {
    /// Intentions received (the seller's side), to read.
    pub fn market(&self) -> Market<&Self> {
        Market::new(self)
    }

    /// Intentions received (the seller's side), to change.
    pub fn market_mut(&mut self) -> Market<&mut Self> {
        Market::new(self)
    }
}

#[cfg(test)]
mod tests;
