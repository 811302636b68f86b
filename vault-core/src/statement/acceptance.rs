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
        if let Some(Ok(ticket)) = self.reply_to.as_deref().map(str::parse::<Ticket>)
            && ticket.identity() != self.customer
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

    #[test]
    fn acceptances_are_signed_by_the_customer() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let acceptance = Acceptance {
            offer: OfferId::random(),
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
