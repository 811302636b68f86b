//! Acceptances: a customer's signed "yes" to one offer. It is the moment the customer's
//! identity meets the pseudonym of its intention: the identity signs it (this statement), and
//! the intention's pseudonym signs the same body (`intent::cosign_acceptance`), so the seller
//! holds proof that both are one customer's, and nobody else (another seller included) learns
//! it.

use serde::{Deserialize, Serialize};

use crate::identity::{IdentityId, Pseudonym, Ticket};
use crate::statement::{OfferId, Rule, Statement};

/// A customer's acceptance of an offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    /// The offer accepted.
    pub offer: OfferId,
    /// The BLAKE3 hash of the accepted offer's signed form (`Signed::to_bytes`), in hex: the
    /// offer exactly as the customer saw it, so that a seller cannot claim another one signed
    /// under the same id.
    pub offer_digest: String,
    /// The intention it answered, by its pseudonym.
    pub intention: Pseudonym,
    /// Who accepts: the customer, named for the first time.
    pub customer: IdentityId,
    /// The seller whose offer it is.
    pub seller: IdentityId,
    /// The customer's ticket, so that the seller can ask for consent the usual way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Unix seconds.
    pub accepted_at: i64,
}

impl Statement for Acceptance {
    const LABEL: &'static [u8] = b"vault/v1/acceptance";
    const KIND: &'static str = "acceptance";

    fn made_at(&self) -> i64 {
        self.accepted_at
    }

    fn author(&self) -> IdentityId {
        self.customer
    }

    fn check(&self) -> Result<(), Rule> {
        if self.customer == self.seller {
            return Err(Rule::SameIdentity("customer and seller"));
        }
        if self.offer_digest.len() != 64
            || !self.offer_digest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(Rule::NoText("offer digest"));
        }
        if let Some(ticket) = &self.reply_to
            && ticket.parse::<Ticket>().map_or(true, |t| t.identity() != self.customer)
        {
            return Err(Rule::NotTheirTicket);
        }
        Ok(())
    }
}

/// The digest an acceptance names an offer by: BLAKE3 of its signed form, in hex.
pub fn digest_of(offer_bytes: &[u8]) -> String {
    blake3::hash(offer_bytes).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Identity, PseudonymKey};
    use crate::statement::Signed;

    #[test]
    fn acceptances_are_signed_by_the_customer() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let acceptance = Acceptance {
            offer: OfferId::random(),
            offer_digest: digest_of(b"an offer"),
            intention: PseudonymKey::generate().public(),
            customer: alice.public(),
            seller: shop.public(),
            reply_to: None,
            accepted_at: 1_800_000_000,
        };
        assert!(Signed::sign(acceptance.clone(), &shop).is_err());
        let signed = Signed::sign(acceptance.clone(), &alice).unwrap();
        assert_eq!(Signed::<Acceptance>::from_bytes(&signed.to_bytes()).unwrap(), signed);
        let to_self = Acceptance { seller: alice.public(), ..acceptance };
        assert!(Signed::sign(to_self, &alice).is_err());
    }
}
