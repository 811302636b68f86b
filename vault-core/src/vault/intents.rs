//! [`Intents`]: the customer's side of intentions (see `docs/intentions.md`). Each intention
//! is kept with the pseudonym key made for it alone, where it was sent, the offers fetched for
//! it, and whether it was accepted or withdrawn. Owns the sealed table `intents_out`.
//!
//! Nothing here names the identity until [`Intents::accept`]: that is the one statement that
//! joins the identity to a pseudonym, and it goes to one seller.

use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::Vault;
use super::audit::{AuditEvent, AuditKind};
use crate::identity::{IdentityId, Ticket};
use crate::intent::{
    IntentError, IntentionDraft, Pseudonym, PseudonymKey, SignedIntention, Withdrawal, cosign_acceptance,
};
use crate::protocol::market::MarketAnswer;
use crate::signal::Topic;
use crate::statement::{Acceptance, Offer, OfferId, Signed, StatementError, digest_of};
use crate::store::StoreError;
use crate::store::sealed::{INTENTS_OUT, Key};
use crate::store::typed::TypedTable;

const ROWS: TypedTable<MineRecord> = TypedTable::new(INTENTS_OUT);

/// Offers kept per intention, at most (a flood is not news).
pub const MAX_OFFERS_PER_INTENTION: usize = 32;
/// The shortest prefix of a pseudonym that names an intention (what lists show): 60 bits, too
/// many to grind a collision with someone else's.
pub const MIN_PREFIX: usize = 12;

/// Offers kept from one seller per intention.
pub const MAX_OFFERS_PER_SELLER: usize = 4;

#[derive(Serialize, Deserialize)]
struct MineRecord {
    key: [u8; 32],
    intention: Vec<u8>,
    made_at: i64,
    #[serde(default)]
    sent: Vec<SentRecord>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    topic_via: Vec<String>,
    #[serde(default)]
    offers: Vec<(Vec<u8>, i64)>,
    #[serde(default)]
    accepted: Option<OfferId>,
    /// An acceptance signed but not yet taken by its seller: its signed form and the
    /// pseudonym's co-signature, sent again as they are until the seller answers.
    #[serde(default)]
    pending: Option<(Vec<u8>, Vec<u8>)>,
    #[serde(default)]
    withdrawn_at: Option<i64>,
}

#[derive(Clone, Serialize, Deserialize)]
struct SentRecord {
    seller: IdentityId,
    ticket: String,
    kept: bool,
}

/// One of this customer's intentions.
#[derive(Clone, Debug)]
pub struct MyIntention {
    /// The intention as sent.
    pub signed: SignedIntention,
    /// When it was made (unix seconds).
    pub made_at: i64,
    /// The sellers it was sent to, with whether each kept it.
    pub sent_to: Vec<(IdentityId, bool)>,
    /// The public topic it went to, if any.
    pub topic: Option<String>,
    /// The offers fetched for it, with when.
    pub offers: Vec<(Signed<Offer>, i64)>,
    /// The offer accepted.
    pub accepted: Option<OfferId>,
    /// When it was withdrawn.
    pub withdrawn_at: Option<i64>,
    /// Past its last day.
    pub expired: bool,
}

impl MyIntention {
    /// Its pseudonym.
    pub fn pseudonym(&self) -> Pseudonym {
        self.signed.intention.pseudonym
    }

    /// Still open: neither withdrawn, accepted nor past its last day.
    pub fn is_open(&self) -> bool {
        self.withdrawn_at.is_none() && self.accepted.is_none() && !self.expired
    }
}

/// What [`Intents::accept`] makes: the acceptance, the pseudonym's co-signature over it, and
/// where the seller is reached (the offer's ticket, or the seller's contact).
pub type Accepted = (Signed<Acceptance>, [u8; 64], Option<Ticket>);

/// Something about an intention could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntentsError {
    /// No intention of this vault has that pseudonym (or prefix), or more than one does.
    #[error(
        "no intention of yours is named {0} (give its first 12 characters or more: vault intent list shows them)"
    )]
    Unknown(String),
    /// No offer fetched for this intention has that id.
    #[error("no offer {0} was fetched for this intention (vault intent offers shows them)")]
    UnknownOffer(String),
    /// It is withdrawn, accepted or past its last day.
    #[error("this intention is {0}: nothing more can be done with it")]
    Closed(&'static str),
    /// The offer expired.
    #[error("this offer expired")]
    OfferExpired,
    /// The intention's content.
    #[error(transparent)]
    Intent(#[from] IntentError),
    /// The acceptance could not be signed.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The customer's intentions: `vault.intents()`, `vault.intents_mut()`.
#[derive(Debug)]
pub struct Intents<V> {
    vault: V,
}

/// The unix second at which an intention's last day (`YYYY-MM-DD`, UTC) ends.
pub fn ends_at(until: &str) -> i64 {
    jiff::civil::Date::strptime("%Y-%m-%d", until)
        .ok()
        .and_then(|d| d.tomorrow().ok())
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map_or(0, |z| z.timestamp().as_second())
}

impl<V: Deref<Target = Vault>> Intents<V> {
    fn new(vault: V) -> Self {
        Self { vault }
    }

    fn decode(&self, record: MineRecord) -> Option<MyIntention> {
        let signed = SignedIntention::from_bytes(&record.intention).ok()?;
        let now = self.vault.now();
        let offers = record
            .offers
            .iter()
            .filter_map(|(bytes, at)| Some((Signed::<Offer>::from_stored(bytes)?, *at)))
            .collect();
        Some(MyIntention {
            expired: ends_at(&signed.intention.until) <= now,
            signed,
            made_at: record.made_at,
            sent_to: record.sent.iter().map(|s| (s.seller, s.kept)).collect(),
            topic: record.topic,
            offers,
            accepted: record.accepted,
            withdrawn_at: record.withdrawn_at,
        })
    }

    /// This customer's intentions, newest first.
    pub fn list(&self) -> Result<Vec<MyIntention>, StoreError> {
        let mut out: Vec<MyIntention> =
            ROWS.list(&self.vault.store)?.into_iter().filter_map(|(_, r)| self.decode(r)).collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.made_at));
        Ok(out)
    }

    /// The intention named by its pseudonym or a prefix of it (at least 4 characters).
    pub fn find(&self, name: &str) -> Result<MyIntention, IntentsError> {
        let name = name.trim().to_ascii_lowercase();
        let all = self.list()?;
        let mut hits = all
            .into_iter()
            .filter(|i| name.len() >= MIN_PREFIX && i.pseudonym().to_string().starts_with(&name));
        match (hits.next(), hits.next()) {
            (Some(one), None) => Ok(one),
            _ => Err(IntentsError::Unknown(name)),
        }
    }

    /// The key an intention's pseudonym signs and dials with.
    pub fn key(&self, pseudonym: &Pseudonym) -> Result<Option<PseudonymKey>, StoreError> {
        Ok(ROWS
            .get(&self.vault.store, Key::Id(pseudonym.as_bytes()))?
            .map(|r| PseudonymKey::from_secret_bytes(&r.key)))
    }

    /// The topic it went to, with the members to enter it by.
    pub fn topic_of(&self, pseudonym: &Pseudonym) -> Result<Option<(Topic, Vec<Ticket>)>, StoreError> {
        let Some(record) = ROWS.get(&self.vault.store, Key::Id(pseudonym.as_bytes()))? else {
            return Ok(None);
        };
        let Some(topic) = record.topic.as_deref().and_then(|t| t.parse().ok()) else { return Ok(None) };
        Ok(Some((topic, record.topic_via.iter().filter_map(|t| t.parse().ok()).collect())))
    }

    /// The tickets of the sellers it was sent to.
    pub fn sent_tickets(&self, pseudonym: &Pseudonym) -> Result<Vec<Ticket>, StoreError> {
        let Some(record) = ROWS.get(&self.vault.store, Key::Id(pseudonym.as_bytes()))? else {
            return Ok(Vec::new());
        };
        Ok(record.sent.iter().filter_map(|s| s.ticket.parse().ok()).collect())
    }
}

impl Intents<&mut Vault> {
    fn update<T>(
        &mut self,
        pseudonym: &Pseudonym,
        f: impl FnOnce(&mut MineRecord, &Vault) -> Result<T, IntentsError>,
    ) -> Result<T, IntentsError> {
        self.vault.write(|v| {
            let key = Key::Id(pseudonym.as_bytes());
            let mut record =
                ROWS.get(&v.store, key)?.ok_or_else(|| IntentsError::Unknown(pseudonym.to_string()))?;
            let out = f(&mut record, v)?;
            ROWS.put(&v.store, key, &record)?;
            Ok(out)
        })
    }

    /// Makes an intention under a fresh pseudonym and keeps it with its key. `topic`: the
    /// public topic it is meant for, if any.
    pub fn state(
        &mut self,
        draft: &IntentionDraft,
        topic: Option<(&Topic, &[Ticket])>,
    ) -> Result<SignedIntention, IntentsError> {
        let (key, signed) = draft.make()?;
        let now = self.vault.now();
        self.vault.write(|v| {
            let record = MineRecord {
                key: *key.secret_bytes(),
                intention: signed.to_bytes(),
                made_at: now,
                sent: Vec::new(),
                topic: topic.map(|(t, _)| t.to_string()),
                topic_via: topic
                    .map(|(_, via)| via.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
                offers: Vec::new(),
                accepted: None,
                pending: None,
                withdrawn_at: None,
            };
            ROWS.put(&v.store, Key::Id(signed.intention.pseudonym.as_bytes()), &record)?;
            let mut event = AuditEvent::new(now, AuditKind::IntentionStated);
            event.detail =
                Some(format!("intention {}: {}", signed.intention.pseudonym, signed.intention.what));
            v.access_log().append(&event)?;
            Ok(signed.clone())
        })
    }

    /// Notes that the intention was delivered to `seller` (reached at `ticket`), and what it said.
    pub fn sent(
        &mut self,
        pseudonym: &Pseudonym,
        ticket: &Ticket,
        answer: MarketAnswer,
    ) -> Result<(), IntentsError> {
        let now = self.vault.now();
        self.update(pseudonym, |r, v| {
            let seller = ticket.identity();
            r.sent.retain(|s| s.seller != seller);
            let kept = answer == MarketAnswer::Kept;
            r.sent.push(SentRecord { seller, ticket: ticket.to_string(), kept });
            let mut event = AuditEvent::new(now, AuditKind::IntentionSent);
            event.peer = Some(seller);
            event.detail = Some(format!("intention {pseudonym}: {answer:?}").to_lowercase());
            v.access_log().append(&event)?;
            Ok(())
        })
    }

    /// Keeps the offers fetched for an intention: only those made to its pseudonym, not expired,
    /// at most [`MAX_OFFERS_PER_SELLER`] per seller and [`MAX_OFFERS_PER_INTENTION`] in all.
    /// Returns how many were new.
    pub fn take_offers(
        &mut self,
        pseudonym: &Pseudonym,
        offers: &[Signed<Offer>],
    ) -> Result<usize, IntentsError> {
        let now = self.vault.now();
        self.update(pseudonym, |r, v| {
            let mut new = 0;
            for offer in offers {
                let o = offer.statement();
                let known: Vec<Signed<Offer>> =
                    r.offers.iter().filter_map(|(b, _)| Signed::<Offer>::from_stored(b)).collect();
                let from_seller = known.iter().filter(|k| k.statement().seller == o.seller).count();
                if o.intention != *pseudonym
                    || o.until <= now
                    || o.made_at > now + 600
                    || known.iter().any(|k| k.statement().id == o.id)
                    || from_seller >= MAX_OFFERS_PER_SELLER
                    || known.len() >= MAX_OFFERS_PER_INTENTION
                    || v.keys().refused_signer(offer)?
                {
                    continue;
                }
                r.offers.push((offer.to_bytes(), now));
                new += 1;
                let mut event = AuditEvent::new(now, AuditKind::OfferReceived);
                event.peer = Some(o.seller);
                event.detail = Some(format!("offer {} for intention {pseudonym}", o.id));
                v.access_log().append(&event)?;
            }
            Ok(new)
        })
    }

    /// Accepts an offer, step one: signs the acceptance with this identity and co-signs it with
    /// the intention's pseudonym, and keeps both as pending (nothing is closed yet). Asked again
    /// for the same offer, returns the same pending acceptance; for another, refuses while one
    /// is pending. Returns what goes to that seller, and where it is reached.
    pub fn accept(
        &mut self,
        pseudonym: &Pseudonym,
        offer: &str,
        reply_to: Option<Ticket>,
    ) -> Result<Accepted, IntentsError> {
        let now = self.vault.now();
        let me = self.vault.identity();
        let mine = self.find(&pseudonym.to_string())?;
        // Said first, whatever offer was named (checked again inside the write below).
        if mine.withdrawn_at.is_some() {
            return Err(IntentsError::Closed("withdrawn"));
        }
        if mine.accepted.is_some() {
            return Err(IntentsError::Closed("accepted"));
        }
        let chosen = mine
            .offers
            .iter()
            .map(|(o, _)| o)
            .find(|o| o.statement().id.to_string() == offer.trim().to_ascii_lowercase())
            .ok_or_else(|| IntentsError::UnknownOffer(offer.to_owned()))?
            .clone();
        let o = chosen.statement().clone();
        let seller_ticket = o.reply_to.as_deref().and_then(|t| t.parse::<Ticket>().ok());
        let seller_ticket =
            seller_ticket.or_else(|| self.vault.contacts().resolve(&o.seller.to_string()).ok()?.ticket);
        let key = self.key(pseudonym)?.ok_or_else(|| IntentsError::Unknown(pseudonym.to_string()))?;
        let signer_ok = Signed::sign(
            Acceptance {
                offer: o.id,
                offer_digest: digest_of(&chosen.to_bytes()),
                intention: *pseudonym,
                customer: me,
                seller: o.seller,
                reply_to: reply_to.map(|t| t.to_string()),
                accepted_at: now,
            },
            self.vault.signer(),
        )?;
        // Everything is decided inside the write, so that two accepts at once cannot both go out.
        let pending = self.update(pseudonym, |r, _| {
            if let Some((bytes, cosign)) = &r.pending {
                let same = Signed::<Acceptance>::from_stored(bytes).filter(|a| a.statement().offer == o.id);
                return match (same, <[u8; 64]>::try_from(cosign.as_slice())) {
                    (Some(a), Ok(c)) => Ok((a, c)),
                    _ => Err(IntentsError::Closed(
                        "being accepted (another offer): run accept for that one again",
                    )),
                };
            }
            if r.withdrawn_at.is_some() {
                return Err(IntentsError::Closed("withdrawn"));
            }
            if r.accepted.is_some() {
                return Err(IntentsError::Closed("accepted"));
            }
            if mine.expired {
                return Err(IntentsError::Closed("past its last day"));
            }
            if o.until <= now {
                return Err(IntentsError::OfferExpired);
            }
            let cosign = cosign_acceptance(&key, signer_ok.body());
            r.pending = Some((signer_ok.to_bytes(), cosign.to_vec()));
            Ok((signer_ok.clone(), cosign))
        })?;
        Ok((pending.0, pending.1, seller_ticket))
    }

    /// Accepts an offer, step two: what the seller answered. Kept: the intention is accepted.
    /// Anything else: the pending acceptance is dropped, and another offer may be accepted.
    /// Either way the seller has seen the acceptance, so the log says who was told.
    pub fn accept_answered(
        &mut self,
        pseudonym: &Pseudonym,
        answer: MarketAnswer,
    ) -> Result<(), IntentsError> {
        let now = self.vault.now();
        self.update(pseudonym, |r, v| {
            let Some((bytes, _)) = r.pending.take() else { return Ok(()) };
            let Some(a) = Signed::<Acceptance>::from_stored(&bytes) else { return Ok(()) };
            let a = a.statement();
            let mut event = AuditEvent::new(now, AuditKind::OfferAccepted);
            event.peer = Some(a.seller);
            if answer == MarketAnswer::Kept {
                r.accepted = Some(a.offer);
                event.detail = Some(format!("offer {} for intention {pseudonym}: your identity told to this seller", a.offer));
            } else {
                event.detail = Some(format!(
                    "offer {} for intention {pseudonym}: not taken by the seller ({answer:?}), which has seen who you are",
                    a.offer
                ));
            }
            v.access_log().append(&event)?;
            Ok(())
        })
    }

    /// Withdraws an intention: signed by its pseudonym, for every seller it reached.
    pub fn withdraw(&mut self, pseudonym: &Pseudonym) -> Result<Withdrawal, IntentsError> {
        let now = self.vault.now();
        let key = self.key(pseudonym)?.ok_or_else(|| IntentsError::Unknown(pseudonym.to_string()))?;
        self.update(pseudonym, |r, v| {
            if r.accepted.is_some() || r.pending.is_some() {
                // The seller knows who accepted; withdrawing would not make it forget.
                return Err(IntentsError::Closed("accepted"));
            }
            if r.withdrawn_at.is_none() {
                r.withdrawn_at = Some(now);
                let mut event = AuditEvent::new(now, AuditKind::IntentionWithdrawn);
                event.detail = Some(format!("intention {pseudonym}"));
                v.access_log().append(&event)?;
            }
            Ok(())
        })?;
        Ok(Withdrawal::sign(&key, now))
    }
}

impl Vault {
    /// This customer's intentions, to read.
    pub fn intents(&self) -> Intents<&Self> {
        Intents::new(self)
    }

    /// This customer's intentions, to change.
    pub fn intents_mut(&mut self) -> Intents<&mut Self> {
        Intents::new(self)
    }
}
