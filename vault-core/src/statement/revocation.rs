//! Revocations: the issuer's signed word that one of its grants no longer holds. It reaches the
//! grantee in an `Ended` frame (at once when connected, else at its next connection), and the
//! grantee answers with an [`ErasureReceipt`](super::erasure_receipt).

use serde::{Deserialize, Serialize};

use crate::identity::IdentityId;
use crate::statement::{GrantId, Rule, Statement};

/// The issuer's signed statement that a grant no longer holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The revoked grant.
    pub grant: GrantId,
    /// Its issuer.
    pub issuer: IdentityId,
    /// Unix seconds.
    pub revoked_at: i64,
}

impl Statement for Revocation {
    const LABEL: &'static [u8] = b"vault/v1/revocation";
    const KIND: &'static str = "revocation";

    fn made_at(&self) -> i64 {
        self.revoked_at
    }

    fn author(&self) -> IdentityId {
        self.issuer
    }

    fn check(&self) -> Result<(), Rule> {
        Ok(())
    }
}
