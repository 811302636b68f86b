//! Derived fields: a value computed from a field, shared instead of the field.
//!
//! A grant or a request may name `SOURCE:DERIVATION` where it would name a field path:
//! `profile.birthday:over(18)`. The issuer computes the value from its current document and
//! ships only that; the source never leaves the device, in the projection's values or its
//! history. The set is small and typed by the document schema (the source's type must be the
//! derivation's input):
//!
//! | derivation | input | output | example |
//! |---|---|---|---|
//! | `over(N)`, N in 1..=150 | a date | true/false: at least N years before the first of this month (an age of N or more, counted by whole months) | `profile.birthday:over(18)` |
//! | `year` | a date | the year, a whole number | `profile.birthday:year` |
//! | `country` | an address | its two-letter country code | `profile.address:country` |
//! | `prefix(N)`, N in 1..=4 | the postcode or the phone number | the first N characters | `profile.address.postcode:prefix(2)` |
//! | `band(B1,...,Bk)`, 1 to 8 whole bounds in major units, each 1..=10^9 and at least 1.5 times the one before | a price | `under 10 EUR`, `10 to 50 EUR`, `100 EUR or more` | `purchases.*.price:band(10,50,100)` |
//!
//! Rules that keep the source at home:
//! - **Missing or unreadable source**: no value at all (the key is absent), never a guess such
//!   as `false`.
//! - **`prefix(N)` of a text of fewer than N + 2 characters** would be all of it, or all but
//!   one character: no value. Only the postcode and the phone number take a prefix.
//! - **`over(N)` is counted by whole months**: against the first day of the current month
//!   (of the issuer's clock, read twelve hours behind UTC so that no time zone is ahead of it),
//!   each time the projection is brought up to date, and the serving node re-checks it as the
//!   month turns. The answer turns true at the start of the month after the N-th birthday
//!   (on it, for a birthday on the first), never before it; a grantee who watches it change
//!   learns the birth month and year, not the day.
//! - **Answers about one field are few**, in one statement and among all the grants one
//!   audience was ever given (checked when granting: what a revoked grant told is still known):
//!   at most [`MAX_DATE_ANSWERS`] of `year` and distinct `over(N)` about one date, and one
//!   `band(...)` of one price. Asking `over(18)`, `over(19)`, ... would otherwise pin the age
//!   down, and many narrow bands the price.
//! - **Prices**: a band is a price; a grant must include prices to name one.
//!
//! In a projection the value sits where the source would, under the key
//! `LAST_SEGMENT:DERIVATION` (`profile["birthday:over(18)"]`,
//! `purchases[ID]["price:band(10,50,100)"]`), so its dotted path is the grant's path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use super::FieldPath;
use crate::money::minor_digits;
use crate::schema::document_schema;

/// Most answers about one date field (`year` and distinct `over(N)`), in one statement or
/// among all the grants one audience was given.
pub(crate) const MAX_DATE_ANSWERS: usize = 2;
/// Most distinct `band(...)` of one price field, in one statement or among all the grants one
/// audience was given.
pub(crate) const MAX_BANDS: usize = 1;
/// Largest N of `over(N)`, in years.
pub(crate) const MAX_AGE: u16 = 150;
/// Largest N of `prefix(N)`, in characters.
pub(crate) const MAX_PREFIX: u8 = 4;
/// Most bounds of `band(...)`.
pub(crate) const MAX_BAND_BOUNDS: usize = 8;
/// Largest bound of `band(...)`, in major units of the price's currency.
pub(crate) const MAX_BAND_BOUND: u64 = 1_000_000_000;

/// The derivations, as `vault` names them in messages.
pub(crate) const KNOWN_DERIVATIONS: &str = "over(N), year, country, prefix(N) and band(B1,B2,...)";

/// A value computed from a field, named after the field's path and a colon
/// (`profile.birthday:over(18)`); only the value is shared, never the field.
///
/// - `over(N)`, N from 1 to 150, of a date: whether it is at least N whole years before the
///   first day of the issuer's current month (an age of N or more, counted by whole months);
///   recomputed as the month turns.
/// - `year` of a date: its year.
/// - `country` of an address: its two-letter country code.
/// - `prefix(N)`, N from 1 to 4, of the postcode or the phone number: its first N characters
///   (nothing when the text has fewer than N + 2 characters).
/// - `band(B1,...,Bk)`, 1 to 8 whole bounds from 1 to 10^9 in the currency's major unit, each
///   at least 1.5 times the one before, of a price: `under B1 CUR`, `Bi to Bi+1 CUR` (lower
///   bound included) or `Bk CUR or more`; only in a grant that includes prices.
///
/// A missing or unreadable source gives no value at all. The input type is checked against the
/// document schema when the path is read ([`crate::FieldPath`]'s parser).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Derivation {
    /// Whether a date is at least N years before the issuer's current date.
    Over(u16),
    /// The year of a date.
    Year,
    /// The country code of an address.
    Country,
    /// The first N characters of a text.
    Prefix(u8),
    /// Which band a price falls in; the bounds in major units, increasing.
    Band(Vec<u64>),
}

/// The type a derivation reads, from the document schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    Date,
    Address,
    Text,
    Price,
}

impl Input {
    fn name(self) -> &'static str {
        match self {
            Input::Date => "a date",
            Input::Address => "an address",
            Input::Text => "text",
            Input::Price => "a price",
        }
    }
}

/// Why a derivation could not be read or does not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DeriveError {
    /// No derivation by that name.
    Unknown(String),
    /// A known derivation with bad arguments; the text says which rule.
    Bad(&'static str),
    /// The source is not of the derivation's input type.
    WrongType { needs: &'static str, found: &'static str },
}

impl Derivation {
    /// Reads a derivation as written after the colon (`over(18)`, `band(10,50)`).
    /// Only the form vault prints is read (no spaces, no leading zeros): a signed statement has
    /// one way to say each thing.
    pub(crate) fn parse(s: &str) -> Result<Self, DeriveError> {
        let parsed = Self::parse_loose(s)?;
        if parsed.to_string() != s {
            return Err(DeriveError::Bad(
                "write a derivation without spaces or leading zeros: over(18), band(10,50)",
            ));
        }
        Ok(parsed)
    }

    fn parse_loose(s: &str) -> Result<Self, DeriveError> {
        let s = s.trim();
        let (name, args) = match s.split_once('(') {
            Some((name, rest)) => {
                let Some(args) = rest.strip_suffix(')') else {
                    return Err(DeriveError::Bad(
                        "a derivation's arguments are written in parentheses: over(18)",
                    ));
                };
                (name.trim(), Some(args))
            }
            None => (s, None),
        };
        let numbers = |args: &str| -> Option<Vec<u64>> {
            args.split(',')
                .map(|a| {
                    let a = a.trim();
                    (!a.is_empty() && a.len() <= 10 && a.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| a.parse().ok())
                        .flatten()
                })
                .collect()
        };
        match (name, args) {
            ("over", Some(args)) => match numbers(args).as_deref() {
                Some(&[n]) if (1..=u64::from(MAX_AGE)).contains(&n) => Ok(Derivation::Over(n as u16)),
                _ => Err(DeriveError::Bad("over(N) takes one whole number of years from 1 to 150")),
            },
            ("prefix", Some(args)) => match numbers(args).as_deref() {
                Some(&[n]) if (1..=u64::from(MAX_PREFIX)).contains(&n) => Ok(Derivation::Prefix(n as u8)),
                _ => Err(DeriveError::Bad("prefix(N) takes one whole number of characters from 1 to 4")),
            },
            ("band", Some(args)) => match numbers(args) {
                Some(bounds)
                    if (1..=MAX_BAND_BOUNDS).contains(&bounds.len())
                        && bounds.iter().all(|b| (1..=MAX_BAND_BOUND).contains(b))
                        && bounds.windows(2).all(|w| w[1] * 2 >= w[0] * 3) =>
                {
                    Ok(Derivation::Band(bounds))
                }
                _ => Err(DeriveError::Bad(
                    "band(B1,B2,...) takes 1 to 8 whole amounts in major units, from 1 to 1000000000, each at least 1.5 times the one before",
                )),
            },
            ("year", None) => Ok(Derivation::Year),
            ("country", None) => Ok(Derivation::Country),
            ("year" | "country", Some(_)) => Err(DeriveError::Bad("year and country take no arguments")),
            ("over" | "prefix" | "band", None) => Err(DeriveError::Bad(
                "over, prefix and band need their numbers: over(18), prefix(2), band(10,50)",
            )),
            (other, _) => Err(DeriveError::Unknown(other.chars().take(40).collect())),
        }
    }
}

impl fmt::Display for Derivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Derivation::Over(n) => write!(f, "over({n})"),
            Derivation::Year => f.write_str("year"),
            Derivation::Country => f.write_str("country"),
            Derivation::Prefix(n) => write!(f, "prefix({n})"),
            Derivation::Band(bounds) => {
                let list: Vec<String> = bounds.iter().map(u64::to_string).collect();
                write!(f, "band({})", list.join(","))
            }
        }
    }
}

impl Derivation {
    fn input(&self) -> Input {
        match self {
            Derivation::Over(_) | Derivation::Year => Input::Date,
            Derivation::Country => Input::Address,
            Derivation::Prefix(_) => Input::Text,
            Derivation::Band(_) => Input::Price,
        }
    }

    /// True when the value depends on the date as well as on the source (`over(N)`).
    pub fn is_dated(&self) -> bool {
        matches!(self, Derivation::Over(_))
    }

    /// Checks that `source` (a plain path) has this derivation's input type.
    pub(crate) fn check_source(&self, source: &FieldPath) -> Result<(), DeriveError> {
        let needs = self.input();
        match source_type(source) {
            Ok(Input::Text) if needs == Input::Text && !takes_a_prefix(source) => {
                Err(DeriveError::Bad("prefix(N) applies to profile.address.postcode and profile.phone only"))
            }
            Ok(found) if found == needs => Ok(()),
            Ok(found) => Err(DeriveError::WrongType { needs: needs.name(), found: found.name() }),
            Err(found) => Err(DeriveError::WrongType { needs: needs.name(), found }),
        }
    }

    /// The value derived from `source`, ages counted on `day` ([`counting_day`]); `None` when the
    /// source is missing, unreadable, or would be shipped whole.
    pub(crate) fn compute(&self, source: &Value, day: jiff::civil::Date) -> Option<Value> {
        match self {
            Derivation::Over(n) => {
                let born: jiff::civil::Date = source.as_str()?.parse().ok()?;
                Some(Value::Bool(age(born, day) >= i32::from(*n)))
            }
            Derivation::Year => {
                let date: jiff::civil::Date = source.as_str()?.parse().ok()?;
                Some(Value::from(date.year()))
            }
            Derivation::Country => {
                let country = source.as_object()?.get("country")?.as_str()?;
                let well_formed = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
                well_formed.then(|| Value::String(country.to_owned()))
            }
            Derivation::Prefix(n) => {
                let text = source.as_str()?.trim();
                let n = usize::from(*n);
                (text.chars().count() >= n + 2).then(|| Value::String(text.chars().take(n).collect()))
            }
            Derivation::Band(bounds) => {
                let amount = source.get("amount_minor")?.as_i64()?;
                let currency = source.get("currency")?.as_str()?;
                if amount < 0 || currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                    return None;
                }
                let scale = 10i128.pow(minor_digits(currency));
                let band =
                    bounds.iter().take_while(|b| i128::from(**b) * scale <= i128::from(amount)).count();
                let label = match (band.checked_sub(1).map(|i| bounds[i]), bounds.get(band)) {
                    (None, Some(hi)) => format!("under {hi} {currency}"),
                    (Some(lo), Some(hi)) => format!("{lo} to {hi} {currency}"),
                    (Some(lo), None) => format!("{lo} {currency} or more"),
                    (None, None) => return None,
                };
                Some(Value::String(label))
            }
        }
    }

    /// What the derived value says, in plain words, for the consent screen: what is shared
    /// and what is not (`whether you are over 18 (not your birthday)`).
    pub(crate) fn plain_words(&self, source: &FieldPath) -> String {
        let noun = noun(source);
        let birthday = matches!(source, FieldPath::Profile(s) if s == &["birthday"]);
        match self {
            Derivation::Over(n) if birthday => format!(
                "whether you are {n} or older, counted by whole months (not your birthday; it turns true at the start of the month after your {n}th birthday, and the recipient sees the month)"
            ),
            Derivation::Over(n) => format!(
                "whether {noun} is at least {n} years before the first of this month (not the date; the recipient sees the month it changes)"
            ),
            Derivation::Year if birthday => "your birth year (not the full date)".to_owned(),
            Derivation::Year => format!("the year of {noun} (not the full date)"),
            Derivation::Country => "your country (not your address)".to_owned(),
            Derivation::Prefix(1) => format!("the first character of {noun} (not all of it)"),
            Derivation::Prefix(n) => format!("the first {n} characters of {noun} (not all of it)"),
            Derivation::Band(bounds) => match (bounds.first(), bounds.last()) {
                (Some(first), Some(last)) => {
                    let mut bands = vec![format!("under {first}")];
                    bands.extend(bounds.windows(2).map(|w| format!("{} to {}", w[0], w[1])));
                    bands.push(format!("{last} or more"));
                    format!(
                        "the price band of each purchase, in its currency: {} (not the exact price)",
                        bands.join(", ")
                    )
                }
                _ => "the price band of each purchase, in its currency (not the exact price)".to_owned(),
            },
        }
    }
}

/// Whole years from `born` to `today` (a birthday on 29 February counts from 1 March in other
/// years).
fn age(born: jiff::civil::Date, today: jiff::civil::Date) -> i32 {
    let years = i32::from(today.year()) - i32::from(born.year());
    if (today.month(), today.day()) < (born.month(), born.day()) { years - 1 } else { years }
}

/// The date ages are counted on at `now` (unix seconds, the issuer's clock): the first day of
/// the month, of the date twelve hours behind UTC (no time zone is further behind, so the
/// month has turned everywhere first). A clock out of range counts on the earliest date, where
/// every age is "no".
pub(crate) fn counting_day(now: i64) -> jiff::civil::Date {
    let date = jiff::Timestamp::from_second(now.saturating_sub(12 * 3600))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    date.first_of_month()
}

/// True for the fields a prefix may be taken of: codes whose first characters say a region,
/// not a person.
fn takes_a_prefix(source: &FieldPath) -> bool {
    matches!(source, FieldPath::Profile(s) if s == &["address", "postcode"] || s == &["phone"])
}

/// How a field is named on the consent screen.
fn noun(source: &FieldPath) -> String {
    match source {
        FieldPath::Profile(s) => match s.last() {
            Some(last) => format!("your {last}"),
            None => "your profile".to_owned(),
        },
        FieldPath::Preferences(Some(key)) => format!("your preference \"{key}\""),
        FieldPath::Purchases(Some(field)) => format!("the {field} of each purchase"),
        _ => "it".to_owned(),
    }
}

/// The schema type of a plain path: a derivation input, or what it is instead.
fn source_type(source: &FieldPath) -> Result<Input, &'static str> {
    let defs = &document_schema()["$defs"];
    let node = match source {
        FieldPath::Profile(segments) if !segments.is_empty() => {
            let mut node = &defs["profile"];
            for s in segments {
                node = &resolve(node, defs)["properties"][s.as_str()];
            }
            node.clone()
        }
        FieldPath::Preferences(Some(_)) => defs["preferences"]["additionalProperties"].clone(),
        FieldPath::Purchases(Some(field)) => defs["purchase"]["properties"][field.as_str()].clone(),
        _ => return Err("a group of fields"),
    };
    match node.get("$ref").and_then(Value::as_str) {
        Some("#/$defs/address") => return Ok(Input::Address),
        Some("#/$defs/price") => return Ok(Input::Price),
        _ => {}
    }
    let node = resolve(&node, defs);
    match (node["type"].as_str(), node["format"].as_str()) {
        (Some("string"), Some("date")) => Ok(Input::Date),
        (Some("string"), _) => Ok(Input::Text),
        (Some("integer" | "number"), _) => Err("a number"),
        (Some("array"), _) => Err("a list"),
        _ => Err("a group of fields"),
    }
}

/// Follows a local `$ref` once.
fn resolve<'a>(node: &'a Value, defs: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(def) => &defs[def],
        None => node,
    }
}

/// A field that a set of field paths would tell too much about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TooRevealing {
    /// The source field.
    pub(crate) field: String,
    /// What there would be too many of, in words.
    pub(crate) what: &'static str,
}

/// The first field that `fields` (one statement, or all the grants of one audience) would
/// answer too much about: more than [`MAX_DATE_ANSWERS`] of `year` and distinct `over(N)`
/// about one date, or more than [`MAX_BANDS`] distinct bands of one price.
pub(crate) fn too_revealing<'a>(fields: impl IntoIterator<Item = &'a FieldPath>) -> Option<TooRevealing> {
    let mut dates: BTreeMap<&FieldPath, BTreeSet<&Derivation>> = BTreeMap::new();
    let mut bands: BTreeMap<&FieldPath, BTreeSet<&Derivation>> = BTreeMap::new();
    for field in fields {
        match field.derived() {
            Some((source, d @ (Derivation::Over(_) | Derivation::Year))) => {
                dates.entry(source).or_default().insert(d);
            }
            Some((source, d @ Derivation::Band(_))) => {
                bands.entry(source).or_default().insert(d);
            }
            _ => {}
        }
    }
    let over = |map: BTreeMap<&FieldPath, BTreeSet<&Derivation>>, max: usize| {
        map.into_iter().find(|(_, set)| set.len() > max).map(|(source, _)| source.to_string())
    };
    if let Some(field) = over(dates, MAX_DATE_ANSWERS) {
        return Some(TooRevealing {
            field,
            what: "more than 2 answers about one date (its year and ages over(N))",
        });
    }
    over(bands, MAX_BANDS).map(|field| TooRevealing { field, what: "more than one price band of one price" })
}

#[cfg(test)]
mod tests;
