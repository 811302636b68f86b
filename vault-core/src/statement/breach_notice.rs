//! Breach notices: a seller's signed word to a customer that data it held of theirs may have
//! been breached, naming the window, the fields it held under which grants, and what happened.
//! The customer's vault checks the notice against its own grants before showing it.

use serde::{Deserialize, Serialize};

use crate::identity::IdentityId;
use crate::path::FieldPath;
use crate::scope::MAX_FIELDS;
use crate::statement::{GrantId, NoticeId, Rule, Statement, check_single_line};

/// Longest notice text, in bytes.
pub const MAX_NOTICE_TEXT: usize = 2000;
/// Most grants one notice names.
pub const MAX_NOTICE_GRANTS: usize = 64;

/// A breach notice, signed by the seller that held the data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreachNotice {
    /// The notice's id.
    pub id: NoticeId,
    /// Who held the data and says so.
    pub seller: IdentityId,
    /// Whose data it was.
    pub customer: IdentityId,
    /// The window of the breach: from (unix seconds)...
    pub since: i64,
    /// ...to (unix seconds; when the notice was made, unless the seller knows better).
    pub until: i64,
    /// The fields the seller held of this customer's under the grants named.
    pub fields: Vec<FieldPath>,
    /// The customer's grants under which the seller held them in that window.
    pub grants: Vec<GrantId>,
    /// What happened, in the seller's words.
    pub text: String,
    /// Unix seconds.
    pub issued_at: i64,
}

impl Statement for BreachNotice {
    const LABEL: &'static [u8] = b"vault/v1/breach-notice";
    const KIND: &'static str = "breach notice";

    fn made_at(&self) -> i64 {
        self.issued_at
    }

    fn author(&self) -> IdentityId {
        self.seller
    }

    fn check(&self) -> Result<(), Rule> {
        if self.seller == self.customer {
            return Err(Rule::SameIdentity("seller and customer"));
        }
        if self.fields.is_empty() {
            return Err(Rule::NoField { verb: "names" });
        }
        if self.fields.len() > MAX_FIELDS {
            return Err(Rule::TooManyFields { verb: "names", max: MAX_FIELDS });
        }
        let mut grants = self.grants.clone();
        grants.sort();
        grants.dedup();
        if self.grants.is_empty() || grants.len() != self.grants.len() || grants.len() > MAX_NOTICE_GRANTS {
            return Err(Rule::BadList { what: "grants", max: MAX_NOTICE_GRANTS });
        }
        if self.since > self.until || self.until > self.issued_at + 86_400 {
            return Err(Rule::BadWindow);
        }
        let text = self.text.trim();
        if text.is_empty() {
            return Err(Rule::NoText("notice text"));
        }
        if self.text.len() > MAX_NOTICE_TEXT {
            return Err(Rule::TooLong { what: "notice text", max: MAX_NOTICE_TEXT });
        }
        check_single_line("notice text", &self.text)
    }
}
