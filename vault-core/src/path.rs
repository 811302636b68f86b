//! Field paths and record filters: what a grant covers.
//!
//! Paths are absolute and checked against the document schema:
//! `profile` (the whole profile), `profile.email`, `profile.address` (a subtree),
//! `profile.address.city`, `preferences`, `preferences.diet`, `purchases` (every record, every
//! field), `purchases.*.item` (one field of every record). A filter narrows records:
//! `purchases[tag=books]`, `purchases[seller=Acme]`, `purchases[category=groceries]`.
//!
//! A path may end in a derivation, `SOURCE:DERIVATION` (`profile.birthday:over(18)`): the value
//! computed from the source instead of the source itself (see [`crate::path::derive`]). A path
//! without one reads, prints and signs exactly as before derivations existed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) mod derive;

use crate::schema::{document_schema, is_valid_preference_key};
use derive::{Derivation, DeriveError, KNOWN_DERIVATIONS};

/// A path could not be read or names nothing in the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path names no field of the document.
    #[error("unknown field path \"{0}\"")]
    Unknown(String),
    /// A filter that is not `purchases[KEY=VALUE]` with a known key.
    #[error(
        "invalid record filter \"{0}\": expected purchases[tag=VALUE], purchases[seller=VALUE] or purchases[category=VALUE]"
    )]
    BadFilter(String),
    /// A derivation that does not exist.
    #[error("unknown derivation \"{name}\" in \"{path}\": known derivations are {KNOWN_DERIVATIONS}")]
    UnknownDerivation {
        /// The path as given.
        path: String,
        /// The derivation's name as given.
        name: String,
    },
    /// A known derivation with bad arguments.
    #[error("invalid derivation in \"{path}\": {rule}")]
    BadDerivation {
        /// The path as given.
        path: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A derivation applied to a field of another type.
    #[error(
        "cannot apply \"{derivation}\" to \"{source_path}\": it needs {needs}, and \"{source_path}\" is {found}"
    )]
    WrongType {
        /// The source path.
        source_path: String,
        /// The derivation, as written back.
        derivation: String,
        /// The input type it needs.
        needs: &'static str,
        /// What the source is.
        found: &'static str,
    },
}

/// An absolute path into the document.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FieldPath {
    /// `profile` or `profile.a.b`: the segments below `profile` (empty: the whole profile).
    Profile(Vec<String>),
    /// `preferences` or `preferences.KEY`.
    Preferences(Option<String>),
    /// `purchases` (every field) or `purchases.*.FIELD`.
    Purchases(Option<String>),
    /// `SOURCE:DERIVATION`: a value computed from a field instead of the field.
    Derived(DerivedField),
}

/// A derived field: a plain source path and a derivation whose input type is the source's
/// (checked against the document schema when read; only [`FieldPath`]'s parser makes one).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DerivedField {
    source: Box<FieldPath>,
    derivation: Derivation,
}

impl DerivedField {
    /// The field the value is computed from (a plain path).
    pub fn source(&self) -> &FieldPath {
        &self.source
    }

    /// How the value is computed.
    pub fn derivation(&self) -> &Derivation {
        &self.derivation
    }

    /// The key the value has in a projection, beside where the source would be:
    /// `birthday:over(18)`, `price:band(10,50)`.
    pub(crate) fn key(&self) -> String {
        let last = match &*self.source {
            FieldPath::Profile(s) => s.last().map_or("profile", String::as_str),
            FieldPath::Preferences(k) => k.as_deref().unwrap_or("preferences"),
            FieldPath::Purchases(f) => f.as_deref().unwrap_or("purchases"),
            FieldPath::Derived(_) => "",
        };
        format!("{last}:{}", self.derivation)
    }

    /// What the value says, in plain words (`whether you are over 18 (not your birthday)`).
    pub fn plain_words(&self) -> String {
        self.derivation.plain_words(&self.source)
    }
}

fn schema_object_fields(def: &str) -> Vec<String> {
    document_schema()["$defs"][def]["properties"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

impl FromStr for FieldPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((source, derivation)) = s.split_once(':') else { return plain_path(s) };
        let given = || s.trim().chars().take(80).collect::<String>();
        let source = plain_path(source.trim())?;
        let derivation = Derivation::parse(derivation).map_err(|e| match e {
            DeriveError::Unknown(name) => PathError::UnknownDerivation { path: given(), name },
            DeriveError::Bad(rule) => PathError::BadDerivation { path: given(), rule },
            DeriveError::WrongType { .. } => PathError::Unknown(given()),
        })?;
        derivation.check_source(&source).map_err(|e| match e {
            DeriveError::WrongType { needs, found } => PathError::WrongType {
                source_path: source.to_string(),
                derivation: derivation.to_string(),
                needs,
                found,
            },
            DeriveError::Bad(rule) => PathError::BadDerivation { path: given(), rule },
            DeriveError::Unknown(_) => PathError::Unknown(given()),
        })?;
        let parsed = FieldPath::Derived(DerivedField { source: Box::new(source), derivation });
        // One way to write each derived path: a signed statement says it in vault's own words.
        if parsed.to_string() != s {
            return Err(PathError::BadDerivation {
                path: given(),
                rule: "write a derived path without spaces, as in profile.birthday:over(18)",
            });
        }
        Ok(parsed)
    }
}

/// A path without a derivation.
fn plain_path(s: &str) -> Result<FieldPath, PathError> {
    {
        let unknown = || PathError::Unknown(s.chars().take(80).collect());
        let segments: Vec<&str> = s.trim().split('.').collect();
        match segments.as_slice() {
            ["profile"] => Ok(FieldPath::Profile(Vec::new())),
            ["profile", field] if schema_object_fields("profile").iter().any(|f| f == field) => {
                Ok(FieldPath::Profile(vec![field.to_string()]))
            }
            ["profile", "address", field] if schema_object_fields("address").iter().any(|f| f == field) => {
                Ok(FieldPath::Profile(vec!["address".into(), field.to_string()]))
            }
            ["preferences"] => Ok(FieldPath::Preferences(None)),
            ["preferences", key] if is_valid_preference_key(key) => {
                Ok(FieldPath::Preferences(Some(key.to_string())))
            }
            ["purchases"] => Ok(FieldPath::Purchases(None)),
            ["purchases", "*", field] if schema_object_fields("purchase").iter().any(|f| f == field) => {
                Ok(FieldPath::Purchases(Some(field.to_string())))
            }
            _ => Err(unknown()),
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldPath::Profile(segments) if segments.is_empty() => f.write_str("profile"),
            FieldPath::Profile(segments) => write!(f, "profile.{}", segments.join(".")),
            FieldPath::Preferences(None) => f.write_str("preferences"),
            FieldPath::Preferences(Some(key)) => write!(f, "preferences.{key}"),
            FieldPath::Purchases(None) => f.write_str("purchases"),
            FieldPath::Purchases(Some(field)) => write!(f, "purchases.*.{field}"),
            FieldPath::Derived(d) => write!(f, "{}:{}", d.source, d.derivation),
        }
    }
}

impl TryFrom<String> for FieldPath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<FieldPath> for String {
    fn from(p: FieldPath) -> String {
        p.to_string()
    }
}

impl FieldPath {
    /// True when this path covers `other` (equal, or an ancestor of it). A plain path covers
    /// every derivation of what it covers (a derived value is narrower than its source); a
    /// derived path covers only itself.
    pub fn covers(&self, other: &FieldPath) -> bool {
        match (self, other) {
            (FieldPath::Derived(a), FieldPath::Derived(b)) => a == b,
            (FieldPath::Derived(_), _) => false,
            (_, FieldPath::Derived(b)) => self.covers(&b.source),
            (FieldPath::Profile(a), FieldPath::Profile(b)) => b.starts_with(a),
            (FieldPath::Preferences(None), FieldPath::Preferences(_)) => true,
            (FieldPath::Preferences(a), FieldPath::Preferences(b)) => a == b,
            (FieldPath::Purchases(None), FieldPath::Purchases(_)) => true,
            (FieldPath::Purchases(a), FieldPath::Purchases(b)) => a == b,
            _ => false,
        }
    }

    /// The plain path a value comes from: the source of a derived path, else the path itself.
    pub fn source(&self) -> &FieldPath {
        match self {
            FieldPath::Derived(d) => &d.source,
            plain => plain,
        }
    }

    /// The source and derivation of a derived path.
    pub fn derived(&self) -> Option<(&FieldPath, &Derivation)> {
        match self {
            FieldPath::Derived(d) => Some((&d.source, &d.derivation)),
            _ => None,
        }
    }

    /// True when this path names purchase fields (plain or derived).
    pub fn is_purchases(&self) -> bool {
        matches!(self.source(), FieldPath::Purchases(_))
    }

    /// True when this path and `other` share any value (one covers the other).
    pub fn overlaps(&self, other: &FieldPath) -> bool {
        self.covers(other) || other.covers(self)
    }
}

/// Which purchase records a grant covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordFilter {
    key: FilterKey,
    value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum FilterKey {
    Tag,
    Seller,
    Category,
}

impl RecordFilter {
    /// True when the record holds the field this filter reads (so that [`RecordFilter::matches`]
    /// can tell): a grant need not share the field its filter reads.
    pub(crate) fn can_tell(&self, record: &Value) -> bool {
        let field = match self.key {
            FilterKey::Tag => "tags",
            FilterKey::Seller => "seller",
            FilterKey::Category => "category",
        };
        record.get(field).is_some()
    }

    /// True when the purchase record (JSON) matches.
    pub fn matches(&self, record: &Value) -> bool {
        match self.key {
            FilterKey::Tag => record["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(&self.value))),
            FilterKey::Seller => {
                record["seller"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(&self.value))
            }
            FilterKey::Category => {
                record["category"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(&self.value))
            }
        }
    }
}

impl FromStr for RecordFilter {
    type Err = PathError;

    /// Reads `purchases[tag=books]`, or the short form `tag=books`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PathError::BadFilter(s.chars().take(80).collect());
        let s = s.trim();
        let inner = match s.strip_prefix("purchases[") {
            Some(rest) => rest.strip_suffix(']').ok_or_else(bad)?,
            None => s,
        };
        let (key, value) = inner.split_once('=').ok_or_else(bad)?;
        let key = match key.trim() {
            "tag" => FilterKey::Tag,
            "seller" => FilterKey::Seller,
            "category" => FilterKey::Category,
            _ => return Err(bad()),
        };
        let value = value.trim();
        if value.is_empty() || value.len() > 200 || value.contains([']', '[']) {
            return Err(bad());
        }
        Ok(Self { key, value: value.to_owned() })
    }
}

impl fmt::Display for RecordFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match self.key {
            FilterKey::Tag => "tag",
            FilterKey::Seller => "seller",
            FilterKey::Category => "category",
        };
        write!(f, "purchases[{key}={}]", self.value)
    }
}

impl TryFrom<String> for RecordFilter {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RecordFilter> for String {
    fn from(f: RecordFilter) -> String {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_parse_and_print_back() {
        for p in [
            "profile",
            "profile.email",
            "profile.address",
            "profile.address.city",
            "preferences",
            "preferences.diet",
            "purchases",
            "purchases.*.item",
            "purchases.*.price",
        ] {
            assert_eq!(p.parse::<FieldPath>().unwrap().to_string(), p);
        }
    }

    #[test]
    fn unknown_paths_are_refused_by_name() {
        for p in [
            "profile.emial",
            "profile.address.planet",
            "purchases.*.cost",
            "purchases.item",
            "secrets",
            "",
            "preferences.Bad Key",
        ] {
            let err = p.parse::<FieldPath>().unwrap_err();
            assert_eq!(err, PathError::Unknown(p.into()));
        }
        assert_eq!(
            "profile.emial".parse::<FieldPath>().unwrap_err().to_string(),
            "unknown field path \"profile.emial\""
        );
    }

    #[test]
    fn coverage() {
        let p = |s: &str| s.parse::<FieldPath>().unwrap();
        assert!(p("profile").covers(&p("profile.email")));
        assert!(p("profile.address").covers(&p("profile.address.city")));
        assert!(!p("profile.address.city").covers(&p("profile.address")));
        assert!(p("profile.address.city").overlaps(&p("profile.address")));
        assert!(p("purchases").covers(&p("purchases.*.item")));
        assert!(!p("purchases.*.item").covers(&p("purchases.*.price")));
        assert!(!p("profile").covers(&p("preferences.diet")));
    }

    #[test]
    fn derived_paths_parse_print_back_and_serialize_as_strings() {
        for p in [
            "profile.birthday:over(18)",
            "profile.birthday:year",
            "profile.address:country",
            "profile.address.postcode:prefix(2)",
            "purchases.*.price:band(10,50,100)",
            "purchases.*.date:year",
            "profile.phone:prefix(1)",
        ] {
            let path: FieldPath = p.parse().unwrap();
            assert_eq!(path.to_string(), p);
            assert_eq!(serde_json::to_string(&path).unwrap(), format!("\"{p}\""));
            assert!(path.derived().is_some());
        }
        // Paths without a derivation serialize exactly as before: signed statements made
        // before derivations existed keep verifying.
        let plain: FieldPath = "profile.address.city".parse().unwrap();
        assert_eq!(serde_json::to_string(&plain).unwrap(), "\"profile.address.city\"");
        assert_eq!(plain.source(), &plain);
        let d: FieldPath = "purchases.*.price:band(10,50)".parse().unwrap();
        assert!(d.is_purchases());
        assert_eq!(d.source().to_string(), "purchases.*.price");
    }

    #[test]
    fn printed_paths_fit_the_schemas_field_path_pattern() {
        let pattern = document_schema()["$defs"]["field_path"]["pattern"].as_str().unwrap();
        let schema = serde_json::json!({ "type": "string", "pattern": pattern });
        let validator = jsonschema::validator_for(&schema).unwrap();
        for p in [
            "profile",
            "profile.address.city",
            "preferences.shoe-size",
            "purchases.*.item",
            "profile.birthday:over(150)",
            "profile.address:country",
            "profile.address.postcode:prefix(4)",
            "purchases.*.price:band(1,2,3,5,8,12,18,1000000000)",
        ] {
            let printed = p.parse::<FieldPath>().unwrap().to_string();
            assert!(validator.is_valid(&serde_json::json!(printed)), "{printed}");
        }
        for bad in ["profile.birthday:age", "profile.birthday:over(0)", "profile.address.city:prefix(5)"] {
            assert!(!validator.is_valid(&serde_json::json!(bad)), "{bad}");
        }
    }

    #[test]
    fn bad_derivations_are_refused_by_name() {
        let err = |p: &str| p.parse::<FieldPath>().unwrap_err().to_string();
        assert_eq!(
            err("profile.birthday:age(18)"),
            "unknown derivation \"age\" in \"profile.birthday:age(18)\": known derivations are over(N), \
             year, country, prefix(N) and band(B1,B2,...)"
        );
        assert_eq!(
            err("profile.email:over(18)"),
            "cannot apply \"over(18)\" to \"profile.email\": it needs a date, and \"profile.email\" is text"
        );
        assert_eq!(
            err("profile.birthday:over(0)"),
            "invalid derivation in \"profile.birthday:over(0)\": over(N) takes one whole number of years from 1 to 150"
        );
        assert_eq!(err("profile.emial:year"), "unknown field path \"profile.emial\"");
        assert!(
            err("purchases.*.rating:band(1,2)")
                .contains("it needs a price, and \"purchases.*.rating\" is a number")
        );
        assert!(err("profile:country").contains("is a group of fields"));
        assert!(err("profile.birthday:year:over(18)").starts_with("unknown derivation \"year:over\""));
        assert!(err("profile.birthday:").starts_with("unknown derivation \"\""));
    }

    #[test]
    fn a_derived_value_is_narrower_than_its_source() {
        let p = |s: &str| s.parse::<FieldPath>().unwrap();
        let over18 = p("profile.birthday:over(18)");
        assert!(p("profile.birthday").covers(&over18));
        assert!(p("profile").covers(&over18));
        assert!(over18.covers(&over18));
        assert!(!over18.covers(&p("profile.birthday")), "the source is wider");
        assert!(!over18.covers(&p("profile.birthday:over(21)")));
        assert!(!over18.covers(&p("profile.birthday:year")));
        assert!(!p("profile.email").covers(&over18));
        assert!(p("profile.address").covers(&p("profile.address.postcode:prefix(2)")));
        assert!(p("profile.address").covers(&p("profile.address:country")));
        assert!(p("purchases").covers(&p("purchases.*.price:band(10)")));
        assert!(p("profile.birthday").overlaps(&over18), "who gets something of my birthday?");
    }

    #[test]
    fn filters() {
        let f: RecordFilter = "purchases[tag=books]".parse().unwrap();
        assert_eq!(f, "tag=books".parse().unwrap());
        assert!(f.matches(&serde_json::json!({"tags": ["books", "sf"]})));
        assert!(!f.matches(&serde_json::json!({"tags": ["food"]})));
        let s: RecordFilter = "purchases[seller=Acme]".parse().unwrap();
        assert!(s.matches(&serde_json::json!({"seller": "acme"})));
        for bad in ["purchases[price=3]", "purchases[tag=]", "purchases[tag=books", "books"] {
            assert!(bad.parse::<RecordFilter>().is_err(), "{bad}");
        }
    }
}
