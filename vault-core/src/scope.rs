//! The scope of a grant or a consent request: which fields, which records, for what purpose.
//! Grants and requests follow the same rules, checked here once for both.

use crate::path::derive::too_revealing;
use crate::path::{FieldPath, RecordFilter};
use crate::statement::{Rule, check_single_line};

/// Longest purpose text, in bytes.
pub(crate) const MAX_PURPOSE_LEN: usize = 500;
/// Most field paths in one grant or request.
pub(crate) const MAX_FIELDS: usize = 64;

/// Checks the parts a grant and a request share: at least one field and at most
/// [`MAX_FIELDS`], a purpose that is present, at most [`MAX_PURPOSE_LEN`] bytes and one line,
/// a record filter only beside a purchases field, and few answers about one field (at most
/// [`crate::MAX_DATE_ANSWERS`] of `year` and `over(N)` of a date, [`crate::MAX_BANDS`] band of
/// a price). A price band needs `prices`. `verb` says what the statement does with
/// its fields ("covers", "asks for") in the messages.
pub(crate) fn check_scope(
    verb: &'static str,
    fields: &[FieldPath],
    filter: Option<&RecordFilter>,
    purpose: &str,
    prices: bool,
) -> Result<(), Rule> {
    if fields.is_empty() {
        return Err(Rule::NoField { verb });
    }
    if fields.len() > MAX_FIELDS {
        return Err(Rule::TooManyFields { verb, max: MAX_FIELDS });
    }
    if purpose.trim().is_empty() {
        return Err(Rule::NoPurpose);
    }
    if purpose.len() > MAX_PURPOSE_LEN {
        return Err(Rule::TooLong { what: "purpose", max: MAX_PURPOSE_LEN });
    }
    check_single_line("purpose", purpose)?;
    if let Some(too_many) = too_revealing(fields) {
        return Err(Rule::TooRevealing { what: too_many.what });
    }
    // A band is a price: without prices it would ship an empty record per purchase while the
    // consent screen speaks of bands.
    if !prices
        && fields.iter().any(|f| matches!(f.derived(), Some((_, crate::path::derive::Derivation::Band(_)))))
    {
        return Err(Rule::BandWithoutPrices);
    }
    if let Some(filter) = filter {
        check_single_line("record filter", &filter.to_string())?;
        if !fields.iter().any(FieldPath::is_purchases) {
            return Err(Rule::FilterWithoutPurchases);
        }
    }
    Ok(())
}
