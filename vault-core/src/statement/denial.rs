//! Denials: the holder's signed "no" to a consent request, delivered to the requester next to
//! its shares (a `Denied` frame). A reason is optional; when given, it is one line of text.

use serde::{Deserialize, Serialize};

use crate::identity::IdentityId;
use crate::statement::{RequestId, Rule, Statement, check_single_line};

/// Longest reason given with a denial, in bytes.
pub const MAX_REASON_LEN: usize = 500;

/// The holder's signed "no" to a consent request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Denial {
    /// The request denied.
    pub request: RequestId,
    /// Who denies (the request's holder).
    pub holder: IdentityId,
    /// Who asked.
    pub requester: IdentityId,
    /// Why, if the holder says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix seconds.
    pub denied_at: i64,
}

impl Statement for Denial {
    const LABEL: &'static [u8] = b"vault/v1/denial";
    const KIND: &'static str = "denial";

    fn made_at(&self) -> i64 {
        self.denied_at
    }

    fn author(&self) -> IdentityId {
        self.holder
    }

    fn check(&self) -> Result<(), Rule> {
        if self.reason.as_ref().is_some_and(|r| r.len() > MAX_REASON_LEN) {
            return Err(Rule::TooLong { what: "reason", max: MAX_REASON_LEN });
        }
        if let Some(reason) = &self.reason {
            check_single_line("reason", reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::statement::Signed;

    #[test]
    fn denials_are_signed_by_the_holder() {
        let (shop, alice) = (Identity::generate(), Identity::generate());
        let denial = Denial {
            request: RequestId::random(),
            holder: alice.public(),
            requester: shop.public(),
            reason: Some("not needed".into()),
            denied_at: 1_800_000_000,
        };
        assert!(Signed::sign(denial.clone(), &shop).is_err());
        let signed = Signed::sign(denial, &alice).unwrap();
        assert_eq!(Signed::<Denial>::from_bytes(&signed.to_bytes()).unwrap(), signed);
    }
}
