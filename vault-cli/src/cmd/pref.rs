//! `vault pref set|get|unset`

use anyhow::Result;
use serde_json::json;

use crate::app::{App, Outcome};
use crate::cli::PrefCommand;
use crate::output::{key_values, untrusted};

pub(crate) fn run(app: &App, command: PrefCommand) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    match command {
        PrefCommand::Set { key, value } => {
            vault.records_mut().set_preference(&key, &value)?;
            if app.json {
                app.print_json(&json!({ "key": key, "set": true }))?;
            }
            Ok(Outcome::Done)
        }
        PrefCommand::Get { key: None } => {
            let prefs = vault.records().preferences();
            if app.json {
                app.print_json(&json!({ "preferences": prefs }))?;
            } else if prefs.as_object().is_some_and(|m| !m.is_empty()) {
                app.print(key_values(&prefs))?;
            } else {
                eprintln!("no preferences set");
            }
            Ok(Outcome::Done)
        }
        PrefCommand::Get { key: Some(key) } => {
            let value = vault.records().preferences().get(&key).cloned();
            if app.json {
                app.print_json(&json!({ "key": key, "value": value }))?;
            } else {
                match &value {
                    Some(serde_json::Value::String(s)) => app.print(untrusted(s))?,
                    Some(other) => app.print(untrusted(&other.to_string()))?,
                    None => eprintln!("preference {} is not set", untrusted(&key)),
                }
            }
            Ok(if value.is_some() { Outcome::Done } else { Outcome::No })
        }
        PrefCommand::Unset { key } => {
            let removed = vault.records_mut().unset_preference(&key)?;
            if app.json {
                app.print_json(&json!({ "key": key, "removed": removed }))?;
            } else if !removed {
                eprintln!("preference {} was not set", untrusted(&key));
            }
            Ok(if removed { Outcome::Done } else { Outcome::No })
        }
    }
}
