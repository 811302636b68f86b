//! A received copy, checked before it is kept, shown or mirrored: only what its grant names,
//! only values the document schema accepts. The copy is the issuer's own bytes, and an issuer
//! may run any software: a key outside the grant, a dotted key that would read as a nested
//! path, a number where the schema says text, a string holding U+0000 (which the seller's
//! PostgreSQL cannot store) are each left out of the view, and named (path and rule, never the
//! value) in the share's list of refused values, so that the seller sees what was refused and
//! why. Conforming is idempotent: a view already conformed passes through unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::doc::{PREFERENCES, PROFILE, PURCHASES};
use crate::grant::Grant;
use crate::path::FieldPath;
use crate::path::derive::Derivation;
use crate::schema::{self, Shape};
use crate::statement::is_steering_char;

/// Refusals kept per share, at most (a hostile issuer can make any number).
pub(crate) const MAX_REFUSED: usize = 64;

/// A value of a received copy that was left out, and why (never the value itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedValue {
    /// Where it was, dotted; keys the issuer chose are shown with control characters escaped.
    pub path: String,
    /// The rule it breaks.
    pub why: String,
}

/// The parts of a copy a grant allows, and what was refused.
pub(in crate::vault::held) struct Conformed {
    pub(in crate::vault::held) refused: Vec<RefusedValue>,
}

impl Conformed {
    pub(in crate::vault::held) fn new() -> Self {
        Self { refused: Vec::new() }
    }

    fn refuse(&mut self, path: &[&str], why: impl Into<String>) {
        if self.refused.len() < MAX_REFUSED {
            self.refused.push(RefusedValue { path: shown(path), why: why.into() });
        }
    }

    /// One top-level entry of a copy (`profile`, `preferences`, `purchases` or anything else
    /// an issuer sent), conformed: `None` when nothing of it may be kept.
    pub(in crate::vault::held) fn section(
        &mut self,
        grant: &Grant,
        name: &str,
        value: &Value,
    ) -> Option<Value> {
        let kept = self.walk(grant, &[name], value)?;
        match name {
            PROFILE => self.schema(Shape::Profile, &[name], kept),
            PREFERENCES => {
                // A bad key is refused alone (the schema would name only the whole map).
                let Value::Object(mut map) = kept else {
                    return self.schema(Shape::Preferences, &[name], kept);
                };
                let bad: Vec<String> =
                    map.keys().filter(|k| !crate::schema::is_valid_preference_key(k)).cloned().collect();
                for key in bad {
                    map.remove(&key);
                    self.refuse(&[name, &key], "not a preference key");
                }
                self.schema(Shape::Preferences, &[name], Value::Object(map))
            }
            PURCHASES => {
                let Value::Object(records) = kept else { return None };
                let mut out = Map::new();
                for (id, record) in records {
                    if !is_purchase_id(&id) {
                        self.refuse(&[PURCHASES, &id], "not a purchase id (a-z and 0-9, 4 to 32 characters)");
                        continue;
                    }
                    if let Some(record) = self.record(grant, &id, record) {
                        out.insert(id, record);
                    }
                }
                Some(Value::Object(out))
            }
            _ => None,
        }
    }

    /// One purchase record (`purchases.<id>`), conformed.
    pub(in crate::vault::held) fn purchase(
        &mut self,
        grant: &Grant,
        id: &str,
        value: &Value,
    ) -> Option<Value> {
        let kept = self.walk(grant, &[PURCHASES, id], value)?;
        self.record(grant, id, kept)
    }

    /// One purchase record kept by the walk: what the grant's price and filter rules allow, as
    /// the schema allows.
    fn record(&mut self, grant: &Grant, id: &str, mut record: Value) -> Option<Value> {
        if let Some(filter) = &grant.filter
            && filter.can_tell(&record)
            && !filter.matches(&record)
        {
            self.refuse(&[PURCHASES, id], "outside the grant's record filter");
            return None;
        }
        if !grant.prices && record.get("price").is_some() {
            if let Some(map) = record.as_object_mut() {
                map.remove("price");
            }
            self.refuse(&[PURCHASES, id, "price"], "the grant does not include prices");
        }
        let mut record = self.schema(Shape::Purchase, &[PURCHASES, id], record)?;
        // Whole numbers as the vault reads them: 450.0 fits the schema's "integer", not an i64.
        for (at, whole) in [(&["price", "amount_minor"][..], true), (&["rating"][..], false)] {
            let leaf = at.iter().try_fold(&record, |v, k| v.get(*k));
            if leaf.is_some_and(|v| if whole { !v.is_i64() } else { !v.is_u64() }) {
                let mut full = vec![PURCHASES, id];
                full.extend_from_slice(&at[..1]);
                self.refuse(&full, "must be a whole number");
                if let Some(map) = record.as_object_mut() {
                    map.remove(at[0]);
                }
            }
        }
        Some(record)
    }

    /// A whole copy (its JSON view), conformed.
    pub(in crate::vault::held) fn view(&mut self, grant: &Grant, view: &Value) -> Value {
        let mut out = Map::new();
        if let Value::Object(sections) = view {
            for (name, value) in sections {
                if let Some(kept) = self.section(grant, name, value) {
                    out.insert(name.clone(), kept);
                }
            }
        } else {
            self.refuse(&[], "the copy is not a document");
        }
        Value::Object(out)
    }

    /// Keeps what the grant covers: a node the grant names is kept whole (checked against the
    /// schema after), a node above what it names is walked into, anything else is refused.
    fn walk(&mut self, grant: &Grant, path: &[&str], value: &Value) -> Option<Value> {
        let purchase_record = path.len() == 2 && path[0] == PURCHASES;
        if purchase_record && !is_purchase_id(path[1]) {
            self.refuse(path, "not a purchase id (a-z and 0-9, 4 to 32 characters)");
            return None;
        }
        let named = if purchase_record { None } else { field_path(path) };
        if !purchase_record {
            let Some(field) = &named else {
                self.refuse(path, "not a field of the document");
                return None;
            };
            if grant.fields.iter().any(|g| g.covers(field)) {
                return match field.derived() {
                    Some((_, derivation)) => match derived_problem(derivation, value) {
                        None => Some(value.clone()),
                        Some(why) => {
                            self.refuse(path, why);
                            None
                        }
                    },
                    None => Some(value.clone()),
                };
            }
        }
        let Value::Object(map) = value else {
            self.refuse(path, "not in the grant");
            return None;
        };
        let mut out = Map::new();
        for (key, child) in map {
            let mut child_path = path.to_vec();
            child_path.push(key);
            if let Some(kept) = self.walk(grant, &child_path, child) {
                out.insert(key.clone(), kept);
            }
        }
        Some(Value::Object(out))
    }

    /// Moves the derived entries (`birthday:over(18)`) of a map and its sub-maps into `out`,
    /// keyed by their path below the map, when they are derived paths of the document with a
    /// value of their derivation's type; others are refused. (The walk kept them: the grant
    /// covers them.)
    fn take_derived(&mut self, path: &[&str], map: &mut Map<String, Value>, out: &mut Map<String, Value>) {
        let derived: Vec<String> = map.keys().filter(|k| k.contains(':')).cloned().collect();
        for key in derived {
            let Some(value) = map.remove(&key) else { continue };
            let mut at = path.to_vec();
            at.push(&key);
            let problem = match field_path(&at) {
                Some(field) => match field.derived() {
                    Some((_, derivation)) => derived_problem(derivation, &value),
                    None => Some("not a field of the document"),
                },
                None => Some("not a field of the document"),
            };
            match problem {
                None => {
                    out.insert(key, value);
                }
                Some(why) => self.refuse(&at, why),
            }
        }
        for (key, child) in map.iter_mut() {
            if let Value::Object(inner) = child {
                let mut at = path.to_vec();
                at.push(key);
                let mut sub = Map::new();
                self.take_derived(&at, inner, &mut sub);
                if !sub.is_empty() {
                    out.insert(key.clone(), Value::Object(sub));
                }
            }
        }
    }

    /// Checks a section or a record against its shape, leaving out what breaks a rule. The
    /// derived values (checked already) are set aside while the plain ones are checked; a
    /// missing required field is no fault (a grant shares part of a record).
    fn schema(&mut self, shape: Shape, path: &[&str], value: Value) -> Option<Value> {
        let Value::Object(mut map) = value else {
            self.refuse(path, "not a group of fields");
            return None;
        };
        let mut derived = Map::new();
        self.take_derived(path, &mut map, &mut derived);
        let mut value = Value::Object(map);
        let base = path.join(".");
        // Each pass removes what the last found: a few passes at most.
        for _ in 0..4 {
            let faults = schema::faults(shape, &base, &value);
            // A missing field is no fault at a record's root (a grant shares part of it), but it
            // is inside a value (a price without its currency).
            let mut faults: Vec<_> =
                faults.into_iter().filter(|(at, e)| !(e.is_missing() && at.is_empty())).collect();
            if faults.is_empty() {
                break;
            }
            // The last list items first: removing one moves those after it.
            faults.sort_by(|(a, _), (b, _)| by_position(b, a));
            faults.dedup_by(|(a, _), (b, _)| a == b);
            for (at, error) in faults {
                let mut full: Vec<&str> = path.to_vec();
                full.extend(at.iter().map(String::as_str));
                self.refuse(&full, error.problem());
                remove(&mut value, &at);
            }
        }
        if !schema::faults(shape, &base, &value).iter().all(|(at, e)| e.is_missing() && at.is_empty()) {
            self.refuse(path, "does not fit the document schema");
            return None;
        }
        // The document never holds U+0000 (the customer's own vault refuses it on every write).
        strip_nul(self, path, &mut value);
        let Value::Object(mut map) = value else { return None };
        merge(&mut map, derived);
        Some(Value::Object(map))
    }
}

/// The field path a node of a copy stands at (`purchases.<id>.price` reads as
/// `purchases.*.price`), or `None` when the document has no such field. A key holding a dot
/// is never a field: it would read as a nested path.
fn field_path(path: &[&str]) -> Option<FieldPath> {
    if path.iter().any(|s| s.contains('.') || s.is_empty()) {
        return None;
    }
    let mut segments = path.to_vec();
    if segments.len() >= 3 && segments[0] == PURCHASES {
        segments[1] = "*";
    }
    segments.join(".").parse().ok()
}

fn is_purchase_id(id: &str) -> bool {
    (4..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// What is wrong with a derived value, if anything: its type must be the derivation's output.
fn derived_problem(derivation: &Derivation, value: &Value) -> Option<&'static str> {
    let text = |max: usize| match value.as_str() {
        Some(s) if s.chars().count() <= max && !s.chars().any(|c| c.is_control() || is_steering_char(c)) => {
            None
        }
        _ => Some("must be a short line of text"),
    };
    match derivation {
        Derivation::Over(_) => (!value.is_boolean()).then_some("must be true or false"),
        Derivation::Year => (!value.is_i64()).then_some("must be a whole number"),
        Derivation::Country => match value.as_str() {
            Some(s) if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) => None,
            _ => Some("must be a two-letter country code"),
        },
        Derivation::Prefix(n) => text(usize::from(*n)),
        Derivation::Band(_) => text(64),
    }
}

/// Orders paths with list positions compared as numbers.
fn by_position(a: &[String], b: &[String]) -> std::cmp::Ordering {
    let key = |s: &String| (s.parse::<usize>().ok(), s.clone());
    a.iter().map(key).cmp(b.iter().map(key))
}

/// Puts the entries of `from` into `into`, merging the maps both hold.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Object(inner)), Value::Object(more)) => merge(inner, more),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// Removes the node at `at` (an empty path: everything).
fn remove(value: &mut Value, at: &[String]) {
    let Some((last, parents)) = at.split_last() else {
        *value = Value::Object(Map::new());
        return;
    };
    let mut node = value;
    for key in parents {
        node = match node {
            Value::Object(map) => match map.get_mut(key) {
                Some(child) => child,
                None => return,
            },
            Value::Array(items) => match key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(child) => child,
                None => return,
            },
            _ => return,
        };
    }
    match node {
        Value::Object(map) => {
            map.remove(last);
        }
        Value::Array(items) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < items.len()) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// Leaves out every string (and every key) holding U+0000.
fn strip_nul(c: &mut Conformed, path: &[&str], value: &mut Value) {
    match value {
        Value::Object(map) => {
            let bad: Vec<String> = map
                .iter()
                .filter(|(k, v)| k.contains('\0') || v.as_str().is_some_and(|s| s.contains('\0')))
                .map(|(k, _)| k.clone())
                .collect();
            for key in bad {
                map.remove(&key);
                let mut at = path.to_vec();
                at.push(&key);
                c.refuse(&at, "holds U+0000 (NUL)");
            }
            for (key, child) in map.iter_mut() {
                let mut at = path.to_vec();
                at.push(key);
                strip_nul(c, &at, child);
            }
        }
        Value::Array(items) => {
            let before = items.len();
            items.retain(|v| !v.as_str().is_some_and(|s| s.contains('\0')));
            if items.len() != before {
                c.refuse(path, "an item holds U+0000 (NUL)");
            }
            for item in items.iter_mut() {
                strip_nul(c, path, item);
            }
        }
        _ => {}
    }
}

/// A path as shown: at most 40 characters of each key, control characters escaped, so that a
/// key an issuer chose cannot steer a terminal.
fn shown(path: &[&str]) -> String {
    let mut out = String::new();
    for (i, segment) in path.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        for (n, c) in segment.chars().enumerate() {
            if n == 40 {
                out.push('…');
                break;
            }
            if c.is_control() || is_steering_char(c) || c == '.' {
                out.extend(c.escape_unicode());
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// The refusals of a copy whose part at `part` (a section, or `purchases.<id>`) is conformed
/// again: those under it go, the new ones are added.
pub(in crate::vault::held) fn replace_refused(
    kept: &mut Vec<RefusedValue>,
    part: &[&str],
    new: Vec<RefusedValue>,
) {
    let prefix = shown(part);
    let dotted = format!("{prefix}.");
    kept.retain(|r| r.path != prefix && !r.path.starts_with(&dotted));
    for r in new {
        if kept.len() < MAX_REFUSED {
            kept.push(r);
        }
    }
}

#[cfg(test)]
mod tests;
