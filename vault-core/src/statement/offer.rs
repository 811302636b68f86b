//! Offers: a seller's signed answer to an intention (`intent.rs`), naming the intention by its
//! pseudonym only: a price, its terms and until when it holds. The seller signs with its
//! identity (or a device of it), so the customer knows who offers; the customer stays a
//! pseudonym until it accepts.

use serde::{Deserialize, Serialize};

use crate::identity::{IdentityId, Pseudonym, Ticket};
use crate::statement::consent_request::check_requester_name;
use crate::statement::{OfferId, Rule, Statement, check_single_line};

/// Longest terms of an offer, in bytes.
pub const MAX_OFFER_TERMS: usize = 500;

/// A seller's offer, answering one intention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// The offer's id.
    pub id: OfferId,
    /// Who offers.
    pub seller: IdentityId,
    /// The name the seller gives itself: its own claim, shown as such unless the customer
    /// knows the seller as a contact.
    pub name: String,
    /// The intention answered, by its pseudonym.
    pub intention: Pseudonym,
    /// The price, in the currency's minor unit.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// What comes with the price, in the seller's words (one line).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub terms: String,
    /// Unix seconds.
    pub made_at: i64,
    /// The offer holds until then (unix seconds).
    pub until: i64,
    /// The seller's ticket: where the customer accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

impl Offer {
    /// The price offered.
    pub fn price(&self) -> crate::money::Price {
        crate::money::Price { amount_minor: self.amount_minor, currency: self.currency.clone() }
    }
}

impl Statement for Offer {
    const LABEL: &'static [u8] = b"vault/v1/offer";
    const KIND: &'static str = "offer";

    fn made_at(&self) -> i64 {
        self.made_at
    }

    fn author(&self) -> IdentityId {
        self.seller
    }

    fn check(&self) -> Result<(), Rule> {
        check_requester_name(&self.name)?;
        if self.amount_minor < 0 || !crate::schema::is_known_currency(&self.currency) {
            return Err(Rule::NoText("price in a known currency"));
        }
        if self.terms.len() > MAX_OFFER_TERMS {
            return Err(Rule::TooLong { what: "terms", max: MAX_OFFER_TERMS });
        }
        check_single_line("terms", &self.terms)?;
        if self.until <= self.made_at {
            return Err(Rule::ExpiresBeforeIssued);
        }
        if let Some(ticket) = &self.reply_to
            && ticket.parse::<Ticket>().map_or(true, |t| t.identity() != self.seller)
        {
            return Err(Rule::NotTheirTicket);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Identity, PseudonymKey};
    use crate::statement::Signed;

    fn offer(shop: &Identity) -> Offer {
        Offer {
            id: OfferId::random(),
            seller: shop.public(),
            name: "Acme".into(),
            intention: PseudonymKey::generate().public(),
            amount_minor: 14_900,
            currency: "EUR".into(),
            terms: "delivery in 3 days".into(),
            made_at: 1_800_000_000,
            until: 1_800_086_400,
            reply_to: None,
        }
    }

    #[test]
    fn offers_are_signed_by_their_seller_and_keep_to_their_rules() {
        let (shop, other) = (Identity::generate(), Identity::generate());
        assert!(Signed::sign(offer(&shop), &other).is_err());
        let signed = Signed::sign(offer(&shop), &shop).unwrap();
        assert_eq!(Signed::<Offer>::from_bytes(&signed.to_bytes()).unwrap(), signed);
        for bad in [
            Offer { terms: "a\u{1b}[2Jb".into(), ..offer(&shop) },
            Offer { terms: "x".repeat(MAX_OFFER_TERMS + 1), ..offer(&shop) },
            Offer { currency: "XYZ".into(), ..offer(&shop) },
            Offer { amount_minor: -1, ..offer(&shop) },
            Offer { until: 1_800_000_000, ..offer(&shop) },
            Offer { name: "Acme (trusted)".into(), ..offer(&shop) },
        ] {
            assert!(Signed::sign(bad, &shop).is_err());
        }
        let theirs = Ticket::new(other.certify(crate::identity::DeviceKey::generate().public()), Vec::new());
        let wrong = Offer { reply_to: Some(theirs.to_string()), ..offer(&shop) };
        assert!(Signed::sign(wrong, &shop).is_err(), "an offer naming another identity's ticket");
    }
}
