//! The document shapes, enforced on every write.
//!
//! The shapes live in one JSON Schema file, `schemas/doc/vault-document.schema.json`, compiled
//! into the binary. Each section (`profile`, one `purchase`, `preferences`) is validated on its
//! own through a small wrapper schema that points at the matching `$defs` entry, so a write
//! validates only what it changes. Errors name the field and the rule, never the value.

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::{Value, json};

/// The document schema, as shipped in `schemas/doc/`.
pub(crate) const DOCUMENT_SCHEMA: &str = include_str!("../../schemas/doc/vault-document.schema.json");

/// A shape that values can be checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Shape {
    /// The whole document (and a JSON export).
    Document,
    /// The `profile` map.
    Profile,
    /// One purchase record.
    Purchase,
    /// The `preferences` map.
    Preferences,
}

impl Shape {
    fn def_name(self) -> Option<&'static str> {
        match self {
            Shape::Document => None,
            Shape::Profile => Some("profile"),
            Shape::Purchase => Some("purchase"),
            Shape::Preferences => Some("preferences"),
        }
    }
}

/// A value does not fit the document's shape. Messages name the field and the rule, never the
/// value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The field is not part of the shape.
    #[error("unknown field \"{0}\"")]
    UnknownField(String),
    /// A required field is missing.
    #[error("missing field \"{0}\"")]
    MissingField(String),
    /// The value breaks a rule of its field.
    #[error("invalid value for \"{field}\": {problem}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// The rule it breaks.
        problem: String,
    },
}

impl SchemaError {
    /// True when the fault is a required field that is missing (no fault in a grant's part of
    /// a record).
    pub(crate) fn is_missing(&self) -> bool {
        matches!(self, SchemaError::MissingField(_))
    }

    /// The rule broken, without the field's path.
    pub(crate) fn problem(&self) -> String {
        match self {
            SchemaError::UnknownField(_) => "not a field of the document".to_owned(),
            SchemaError::MissingField(_) => "missing".to_owned(),
            SchemaError::Invalid { problem, .. } => problem.clone(),
        }
    }

    /// Dotted path of the field concerned.
    pub fn field(&self) -> &str {
        match self {
            SchemaError::UnknownField(f) | SchemaError::MissingField(f) => f,
            SchemaError::Invalid { field, .. } => field,
        }
    }
}

/// The profile's fields, dotted (`email`, `address.city`), as the document schema names them:
/// what `vault profile set` takes.
pub fn profile_fields() -> Vec<String> {
    let defs = &document_schema()["$defs"];
    let mut out = Vec::new();
    let Some(fields) = defs["profile"]["properties"].as_object() else { return out };
    for (name, shape) in fields {
        let nested = shape["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")).map(|d| &defs[d]);
        match nested.and_then(|d| d["properties"].as_object()) {
            Some(inner) => out.extend(inner.keys().map(|k| format!("{name}.{k}"))),
            None => out.push(name.clone()),
        }
    }
    out
}

/// The document schema, parsed.
pub(crate) fn document_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(DOCUMENT_SCHEMA).expect("the shipped document schema is JSON"))
}

/// True when `key` may name a preference.
pub(crate) fn is_valid_preference_key(key: &str) -> bool {
    validate(Shape::Preferences, "preferences", &json!({ key: "" })).is_ok()
}

struct Validators {
    by_shape: HashMap<Shape, jsonschema::Validator>,
    currencies: Vec<String>,
}

fn validators() -> &'static Validators {
    static VALIDATORS: OnceLock<Validators> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let document = document_schema();
        let build = |schema: &Value| {
            jsonschema::options()
                .should_validate_formats(true)
                .build(schema)
                .expect("the shipped document schema compiles")
        };
        let mut by_shape = HashMap::new();
        for shape in [Shape::Document, Shape::Profile, Shape::Purchase, Shape::Preferences] {
            let validator = match shape.def_name() {
                None => build(document),
                Some(def) => build(&json!({
                    "$schema": document["$schema"],
                    "$defs": document["$defs"],
                    "$ref": format!("#/$defs/{def}"),
                })),
            };
            by_shape.insert(shape, validator);
        }
        let currencies = document["$defs"]["currency"]["enum"]
            .as_array()
            .expect("the schema lists currencies")
            .iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        Validators { by_shape, currencies }
    })
}

/// True when `code` is a currency the schema accepts.
pub(crate) fn is_known_currency(code: &str) -> bool {
    validators().currencies.iter().any(|c| c == code)
}

/// Checks `value` against `shape`; `base` is the dotted path of `value` in the document, used
/// to name fields in errors.
pub(crate) fn validate(shape: Shape, base: &str, value: &Value) -> Result<(), SchemaError> {
    // PostgreSQL (a seller's mirror) cannot store U+0000, and no field needs it.
    if let Some(field) = holding_nul(value, base) {
        return Err(SchemaError::Invalid { field, problem: "must not hold U+0000 (NUL)".to_owned() });
    }
    let validator = &validators().by_shape[&shape];
    match validator.iter_errors(value).next() {
        None => Ok(()),
        Some(error) => {
            let mut field = base.to_owned();
            for segment in error.instance_path().as_str().split('/').filter(|s| !s.is_empty()) {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(&segment.replace("~1", "/").replace("~0", "~"));
            }
            Err(describe(error.kind(), field))
        }
    }
}

/// Every fault of `value` against `shape`, each with where it is (keys below `value`): what a
/// received copy is checked with, to leave out only what breaks a rule. A key the shape does not
/// have is one fault per key.
pub(crate) fn faults(shape: Shape, base: &str, value: &Value) -> Vec<(Vec<String>, SchemaError)> {
    let validator = &validators().by_shape[&shape];
    let mut out = Vec::new();
    for error in validator.iter_errors(value) {
        let at: Vec<String> = error
            .instance_path()
            .as_str()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let mut field = base.to_owned();
        for segment in &at {
            field = join(&field, segment);
        }
        if let ValidationErrorKind::AdditionalProperties { unexpected } = error.kind() {
            for key in unexpected {
                let mut at = at.clone();
                at.push(key.clone());
                out.push((at, SchemaError::UnknownField(join(&field, key))));
            }
            continue;
        }
        out.push((at, describe(error.kind(), field)));
    }
    out
}

/// The first field (or key) of `value` holding U+0000.
fn holding_nul(value: &Value, field: &str) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(field.to_owned()),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(join(field, &k.replace('\0', "\\u0000")));
            }
            holding_nul(v, &join(field, k))
        }),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| holding_nul(v, &join(field, &i.to_string())))
        }
        _ => None,
    }
}

fn join(field: &str, name: &str) -> String {
    if field.is_empty() { name.to_owned() } else { format!("{field}.{name}") }
}

fn last_segment(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

fn describe(kind: &ValidationErrorKind, field: String) -> SchemaError {
    let invalid = |problem: String| SchemaError::Invalid { field: field.clone(), problem };
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            SchemaError::UnknownField(join(&field, unexpected.first().map_or("?", String::as_str)))
        }
        ValidationErrorKind::Required { property } => {
            SchemaError::MissingField(join(&field, property.as_str().unwrap_or("?")))
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => format!("{t:?}").to_lowercase(),
                TypeKind::Multiple(_) => "another type".to_owned(),
            };
            let expected = match expected.as_str() {
                "integer" => "a whole number".to_owned(),
                "object" => "a group of fields".to_owned(),
                "array" => "a list".to_owned(),
                other => format!("a {other}"),
            };
            invalid(format!("must be {expected}"))
        }
        ValidationErrorKind::Minimum { limit } => invalid(format!("must be at least {limit}")),
        ValidationErrorKind::Maximum { limit } => invalid(format!("must be at most {limit}")),
        ValidationErrorKind::MinLength { limit: 1 } => invalid("must not be empty".to_owned()),
        ValidationErrorKind::MinLength { limit } => invalid(format!("must be at least {limit} characters")),
        ValidationErrorKind::MaxLength { limit } => invalid(format!("must be at most {limit} characters")),
        ValidationErrorKind::MaxItems { limit } => invalid(format!("must have at most {limit} items")),
        ValidationErrorKind::UniqueItems => invalid("must not repeat an item".to_owned()),
        ValidationErrorKind::Format { format } => invalid(match format.as_str() {
            "date" => "must be a date written YYYY-MM-DD".to_owned(),
            "email" => "must be an email address".to_owned(),
            other => format!("must be a valid {other}"),
        }),
        ValidationErrorKind::Enum { .. } if last_segment(&field) == "currency" => {
            invalid("must be an ISO 4217 currency code such as EUR or USD".to_owned())
        }
        ValidationErrorKind::PropertyNames { .. } => match field.split('.').next() {
            Some("preferences") => invalid(
                "preference keys start with a lowercase letter and use only a-z, 0-9, - and _".to_owned(),
            ),
            Some("purchases") => invalid("purchase ids use only a-z and 0-9".to_owned()),
            _ => invalid("has a badly formed key".to_owned()),
        },
        ValidationErrorKind::Pattern { .. } => invalid(
            match last_segment(&field) {
                "phone" => "must be a phone number (digits, spaces and + ( ) . / -)",
                "country" => "must be a two-letter ISO 3166 country code such as FR",
                "time" => "must be a time of day written HH:MM (00:00 to 23:59)",
                _ if field.contains(".tags") => "tags use lowercase letters, digits, - and _ (at most 40)",
                _ => "is not in the expected form",
            }
            .to_owned(),
        ),
        _ => invalid("does not fit the document schema".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase() -> Value {
        json!({"item": "Tea", "seller": "Acme", "price": {"amount_minor": 450, "currency": "EUR"},
               "date": "2026-11-01", "tags": ["food"], "rating": 4})
    }

    #[test]
    fn a_good_purchase_passes() {
        validate(Shape::Purchase, "purchases", &purchase()).unwrap();
    }

    #[test]
    fn rating_out_of_range_names_the_field_not_the_value() {
        let mut p = purchase();
        p["rating"] = json!(9);
        let err = validate(Shape::Purchase, "purchases.*", &p).unwrap_err();
        assert_eq!(err.field(), "purchases.*.rating");
        assert_eq!(err.to_string(), "invalid value for \"purchases.*.rating\": must be at most 5");
    }

    #[test]
    fn unknown_currency_and_field_are_refused() {
        let mut p = purchase();
        p["price"]["currency"] = json!("XYZ");
        let err = validate(Shape::Purchase, "purchases", &p).unwrap_err();
        assert_eq!(err.field(), "purchases.price.currency");
        let err = validate(Shape::Profile, "profile", &json!({"nickname": "x"})).unwrap_err();
        assert_eq!(err, SchemaError::UnknownField("profile.nickname".into()));
    }

    #[test]
    fn formats_are_checked() {
        let err = validate(Shape::Profile, "profile", &json!({"email": "not-an-email"})).unwrap_err();
        assert_eq!(err.field(), "profile.email");
        let err = validate(Shape::Profile, "profile", &json!({"birthday": "31/12/1990"})).unwrap_err();
        assert_eq!(err.field(), "profile.birthday");
    }

    #[test]
    fn no_field_holds_nul() {
        let err = validate(Shape::Profile, "profile", &json!({"name": "Al\u{0}ice"})).unwrap_err();
        assert_eq!(err.to_string(), "invalid value for \"profile.name\": must not hold U+0000 (NUL)");
        let mut p = purchase();
        p["tags"] = json!(["ok", "b\u{0}d"]);
        assert_eq!(validate(Shape::Purchase, "purchases.*", &p).unwrap_err().field(), "purchases.*.tags.1");
    }

    #[test]
    fn currency_list_comes_from_the_schema() {
        assert!(is_known_currency("EUR"));
        assert!(is_known_currency("JPY"));
        assert!(!is_known_currency("XYZ"));
    }
}
