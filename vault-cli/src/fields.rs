//! Field paths on the command line: read from `--fields`, and said in plain words on the
//! consent screen when they name a derived value.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use vault_core::FieldPath;

/// Reads `--fields` values. clap splits them at every comma, and a price band's bounds are
/// comma-separated too (`purchases.*.price:band(10,50)`): pieces are joined back while a
/// parenthesis is open. Spaces around pieces are dropped (`a, b`); empty pieces are skipped; at
/// least one path is required.
pub(crate) fn parse_fields(args: &[String]) -> Result<Vec<FieldPath>> {
    let mut joined: Vec<String> = Vec::new();
    let mut open = false;
    for piece in args.iter().map(|p| p.trim()) {
        match joined.last_mut() {
            Some(last) if open => {
                last.push(',');
                last.push_str(piece);
            }
            _ => joined.push(piece.to_owned()),
        }
        let last = joined.last().map(String::as_str).unwrap_or_default();
        open = last.matches('(').count() > last.matches(')').count();
    }
    let fields: Vec<FieldPath> =
        joined.iter().filter(|f| !f.trim().is_empty()).map(|f| f.parse()).collect::<Result<_, _>>()?;
    if fields.is_empty() {
        bail!("no field given: name at least one field path, such as profile.email");
    }
    Ok(fields)
}

/// What a derived field shares, in plain words; `None` for a plain field.
pub(crate) fn derived_words(field: &FieldPath) -> Option<String> {
    match field {
        FieldPath::Derived(d) => Some(d.plain_words()),
        _ => None,
    }
}

/// Fields that tell more together than each alone: several values derived from one field
/// (`profile.birthday:year` beside `profile.birthday:over(18)` narrows the age down), among
/// the asked `fields` and those the requester was `given` before (in any grant, ended ones
/// too: what they told is still known), said on the consent screen.
pub(crate) fn together_notes(fields: &[FieldPath], given: &[FieldPath]) -> Vec<String> {
    let mut by_source: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for f in fields.iter().filter(|f| f.derived().is_some()) {
        by_source.entry(f.source().to_string()).or_default().0.push(f.to_string());
    }
    for f in given.iter().filter(|f| f.derived().is_some()) {
        if let Some((asked, before)) = by_source.get_mut(&f.source().to_string()) {
            let f = f.to_string();
            if !asked.contains(&f) && !before.contains(&f) {
                before.push(f);
            }
        }
    }
    by_source
        .into_iter()
        .filter(|(_, (asked, before))| asked.len() + before.len() > 1)
        .map(|(source, (asked, before))| {
            let mut all = asked;
            let earlier = before.len();
            all.extend(before);
            let told = if earlier > 0 { " (with what they were given before)" } else { "" };
            format!("together, {} tell more of {source} than each alone{told}", all.join(" and "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_band_survives_the_comma_split() {
        let fields =
            parse_fields(&args(&["profile.email", " purchases.*.price:band(10", " 50", "100)", "purchases"]))
                .unwrap();
        let printed: Vec<String> = fields.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["profile.email", "purchases.*.price:band(10,50,100)", "purchases"]);
        assert!(parse_fields(&args(&["purchases.*.price:band(10", "50"])).is_err(), "never closed");
        assert!(parse_fields(&args(&["", " "])).is_err());
    }

    #[test]
    fn several_values_of_one_field_are_noted() {
        let fields =
            parse_fields(&args(&["profile.birthday:year", "profile.birthday:over(18)", "profile.email"]))
                .unwrap();
        assert_eq!(
            together_notes(&fields, &[]),
            [
                "together, profile.birthday:year and profile.birthday:over(18) tell more of profile.birthday than each alone"
            ]
        );
        assert_eq!(derived_words(&fields[2]), None);
        // What the requester was given before counts too.
        let asked = parse_fields(&args(&["profile.birthday:over(18)"])).unwrap();
        let given = parse_fields(&args(&["profile.birthday:year", "profile.email"])).unwrap();
        assert_eq!(
            together_notes(&asked, &given),
            [
                "together, profile.birthday:over(18) and profile.birthday:year tell more of profile.birthday than each alone (with what they were given before)"
            ]
        );
        assert!(together_notes(&asked, &asked).is_empty(), "the same answer again tells nothing new");
    }
}
