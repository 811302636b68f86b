//! Erasure receipts: the grantee's signed word that it erased its copy of a grant's data, once
//! per device of the grantee that held one. The issuer keeps them as the proof of erasure.

use serde::{Deserialize, Serialize};

use crate::identity::{DeviceId, IdentityId};
use crate::statement::grant::Grant;
use crate::statement::{GrantId, Rule, Signed, Statement, StatementError};

/// The grantee's signed statement that it erased its copy of a grant's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureReceipt {
    /// The grant whose data was erased.
    pub grant: GrantId,
    /// The grant's issuer (to whom the receipt is addressed).
    pub issuer: IdentityId,
    /// Who erased (the grant's audience).
    pub grantee: IdentityId,
    /// Unix seconds.
    pub erased_at: i64,
    /// The grantee's device that erased its copy (absent in receipts made before receipts
    /// named devices): each device of the grantee that held a copy confirms for itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
}

impl Statement for ErasureReceipt {
    const LABEL: &'static [u8] = b"vault/v1/erasure-receipt";
    const KIND: &'static str = "erasure receipt";

    fn made_at(&self) -> i64 {
        self.erased_at
    }

    fn author(&self) -> IdentityId {
        self.grantee
    }

    fn check(&self) -> Result<(), Rule> {
        Ok(())
    }
}

/// How far ahead of the recording vault's clock a grantee may date its erasure receipt, in
/// seconds (clocks of two machines differ).
pub(crate) const MAX_RECEIPT_CLOCK_SKEW: i64 = 600;

/// The grantee's device a receipt speaks for: the one it names, else the device that signed
/// it (`None`: an identity-signed receipt from before receipts named devices).
pub(crate) fn erased_on(receipt: &Signed<ErasureReceipt>) -> Option<DeviceId> {
    receipt.statement().device.or_else(|| receipt.signed_by())
}

impl ErasureReceipt {
    /// Checks the receipt's date against the grant it answers and the recording vault's clock
    /// (`now`, unix seconds): a receipt dated before the grant was issued, or in the future by
    /// more than ten minutes of clock skew, is refused. (The statement alone cannot know either
    /// bound, so [`Statement::check`] does not do this; the vault that records it does.)
    pub fn check_dated(&self, grant: &Grant, now: i64) -> Result<(), StatementError> {
        // Both bounds allow for the skew between the grantee's clock and ours.
        let rule = if self.erased_at < grant.issued_at.saturating_sub(MAX_RECEIPT_CLOCK_SKEW) {
            Rule::DatedBeforeGrant
        } else if self.erased_at > now.saturating_add(MAX_RECEIPT_CLOCK_SKEW) {
            Rule::DatedInFuture
        } else {
            return Ok(());
        };
        Err(StatementError::Invalid { kind: Self::KIND, rule })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn grant(issuer: &Identity, audience: &Identity) -> Grant {
        Grant {
            id: GrantId::random(),
            issuer: issuer.public(),
            audience: audience.public(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            issued_at: 1_800_000_000,
            expires_at: Some(1_800_000_000 + 90 * 86_400),
            prices: true,
            request: None,
        }
    }

    #[test]
    fn erasure_receipts_are_dated_between_the_grant_and_now() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let g = grant(&alice, &shop);
        let now = g.issued_at + 86_400;
        let receipt = |erased_at| ErasureReceipt {
            grant: g.id,
            issuer: alice.public(),
            grantee: shop.public(),
            erased_at,
            device: None,
        };
        assert_eq!(receipt(now).check_dated(&g, now), Ok(()));
        assert_eq!(receipt(g.issued_at).check_dated(&g, now), Ok(()));
        assert_eq!(receipt(now + MAX_RECEIPT_CLOCK_SKEW).check_dated(&g, now), Ok(()), "clock skew");
        let future = receipt(now + MAX_RECEIPT_CLOCK_SKEW + 1).check_dated(&g, now).unwrap_err();
        assert_eq!(future.to_string(), "invalid erasure receipt: it is dated in the future");
        assert!(receipt(i64::MAX).check_dated(&g, now).is_err());
        assert!(receipt(i64::MAX).check_dated(&g, i64::MAX).is_ok(), "no overflow");
        assert!(receipt(g.issued_at - MAX_RECEIPT_CLOCK_SKEW).check_dated(&g, now).is_ok(), "clock skew");
        let early = receipt(g.issued_at - MAX_RECEIPT_CLOCK_SKEW - 1).check_dated(&g, now).unwrap_err();
        assert_eq!(early.to_string(), "invalid erasure receipt: it is dated before the grant was issued");
    }
}
