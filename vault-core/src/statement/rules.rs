//! What can go wrong with a statement: its errors, the rules a statement can break, and the
//! single-line check that text another person wrote must pass.

/// A statement could not be made or did not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// The bytes are not a statement of this kind.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The signature does not verify for the stated author.
    #[error("the {0}'s signature does not verify")]
    BadSignature(&'static str),
    /// The statement breaks one of its rules.
    #[error("invalid {kind}: {rule}")]
    Invalid {
        /// The kind of statement.
        kind: &'static str,
        /// The rule it breaks.
        rule: Rule,
    },
    /// The signing key is not the statement's author.
    #[error("the {0} must be signed by its author")]
    WrongSigner(&'static str),
    /// Not an id of this kind.
    #[error("invalid {kind} id \"{value}\"")]
    BadId {
        /// What the id names.
        kind: &'static str,
        /// The text given.
        value: String,
    },
}

/// True for characters that can steer a terminal or reorder what it shows: control characters
/// (C0, DEL, C1: newline, escape, ...), the bidirectional overrides and isolates, and the line
/// and paragraph separators. Text another person wrote must hold none of them where a single
/// line is meant, and printers show them as visible escapes.
pub fn is_steering_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// A rule of a statement that a statement broke. Messages never echo the statement's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rule {
    /// It names no field.
    #[error("it {verb} no field")]
    NoField {
        /// What the statement does with its fields ("covers", "asks for").
        verb: &'static str,
    },
    /// It names more than `MAX_FIELDS` fields.
    #[error("it {verb} more than {max} fields")]
    TooManyFields {
        /// What the statement does with its fields.
        verb: &'static str,
        /// The limit.
        max: usize,
    },
    /// The purpose is empty.
    #[error("the purpose is required")]
    NoPurpose,
    /// The ticket a request gives as the way back is not one of the requester's devices.
    #[error("the ticket it gives is not the requester's")]
    NotTheirTicket,
    /// A name holds a character that could make it pass for something else: a quote, a
    /// bracket, or an invisible one.
    #[error("the {what} contains U+{code_point:04X}: quotes, brackets and invisible characters are refused")]
    UnfitCharacter {
        /// Which text.
        what: &'static str,
        /// The first such character.
        code_point: u32,
    },
    /// A text begins or ends with white space.
    #[error("the {what} begins or ends with a space")]
    Untrimmed {
        /// Which text.
        what: &'static str,
    },
    /// A text that must say something is blank.
    #[error("the {what} is empty")]
    Empty {
        /// Which text.
        what: &'static str,
    },
    /// A text is longer than its limit.
    #[error("the {what} is longer than {max} bytes")]
    TooLong {
        /// Which text ("purpose", "reason").
        what: &'static str,
        /// The limit, in bytes.
        max: usize,
    },
    /// A single-line text holds a [steering](is_steering_char) character.
    #[error("the {what} contains a control character (U+{code_point:04X})")]
    SteeringCharacter {
        /// Which text ("purpose", "reason", "record filter").
        what: &'static str,
        /// The first such character.
        code_point: u32,
    },
    /// A price band without prices (a band is a price).
    #[error("a price band is a price: it needs prices included (no --no-prices)")]
    BandWithoutPrices,
    /// Too many answers about one field (dates: `year` and `over(N)`; prices: bands): together
    /// they would narrow the value down.
    #[error("it names {what}")]
    TooRevealing {
        /// What there are too many of, in words.
        what: &'static str,
    },
    /// A record filter without a purchases field to apply to.
    #[error("a record filter needs a purchases field")]
    FilterWithoutPurchases,
    /// Both parties are one identity.
    #[error("{0} are the same identity")]
    SameIdentity(&'static str),
    /// A grant that expires before it is issued.
    #[error("it expires before it is issued")]
    ExpiresBeforeIssued,
    /// A requested duration out of range.
    #[error("the duration must be between one second and ten years")]
    DurationOutOfRange,
    /// A receipt dated before the grant it answers.
    #[error("it is dated before the grant was issued")]
    DatedBeforeGrant,
    /// A statement dated too far in the future.
    #[error("it is dated in the future")]
    DatedInFuture,
    /// A window that ends before it starts, or ends in the future.
    #[error("its window ends before it starts, or after it was made")]
    BadWindow,
    /// A required text is empty.
    #[error("the {0} is required")]
    NoText(&'static str),
    /// A list that names one item twice, or more items than its limit.
    #[error("it lists {what} twice or more than {max} of them")]
    BadList {
        /// What is listed.
        what: &'static str,
        /// The limit.
        max: usize,
    },
}

/// Refuses a single-line text that holds a [steering](is_steering_char) character, naming the
/// first one by its code point.
pub(crate) fn check_single_line(what: &'static str, text: &str) -> Result<(), Rule> {
    match text.chars().find(|c| is_steering_char(*c)) {
        Some(c) => Err(Rule::SteeringCharacter { what, code_point: u32::from(c) }),
        None => Ok(()),
    }
}
