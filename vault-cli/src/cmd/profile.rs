//! `vault profile set|get|unset`

use anyhow::Result;
use serde_json::json;

use crate::app::{App, Outcome};
use crate::cli::ProfileCommand;
use crate::output::{key_values, untrusted};

pub(crate) fn run(app: &App, command: ProfileCommand) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    match command {
        ProfileCommand::Set { field, value } => {
            vault.records_mut().set_profile(&field, &value)?;
            if app.json {
                app.print_json(&json!({ "field": field, "set": true }))?;
            }
            Ok(Outcome::Done)
        }
        ProfileCommand::Get { field: None } => {
            let profile = vault.records().profile();
            if app.json {
                app.print_json(&json!({ "profile": profile }))?;
            } else if profile.as_object().is_some_and(|m| !m.is_empty()) {
                app.print(key_values(&profile))?;
            } else {
                eprintln!("the profile is empty");
            }
            Ok(Outcome::Done)
        }
        ProfileCommand::Get { field: Some(field) } => {
            let value = vault.records().profile_field(&field)?;
            if app.json {
                app.print_json(&json!({ "field": field, "value": value }))?;
            } else {
                match &value {
                    Some(serde_json::Value::String(s)) => app.print(untrusted(s))?,
                    Some(other) => app.print(key_values(other))?,
                    None => eprintln!("profile.{} is not set", untrusted(&field)),
                }
            }
            Ok(if value.is_some() { Outcome::Done } else { Outcome::No })
        }
        ProfileCommand::Unset { field } => {
            let removed = vault.records_mut().unset_profile(&field)?;
            if app.json {
                app.print_json(&json!({ "field": field, "removed": removed }))?;
            } else if !removed {
                eprintln!("profile.{} was not set", untrusted(&field));
            }
            Ok(if removed { Outcome::Done } else { Outcome::No })
        }
    }
}
