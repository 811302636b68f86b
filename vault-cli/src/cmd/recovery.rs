//! `vault device recovery-code|recover|forget-key`: the identity key on paper.

use anyhow::Result;
use serde_json::json;

use crate::app::{App, Outcome, read_secret_line};

/// Prints the recovery code of the identity key this device holds.
pub(crate) fn show(app: &App) -> Result<Outcome> {
    let vault = app.unlock()?;
    let code = vault.recovery_code()?;
    if app.json {
        app.print_json(&json!({ "identity": vault.identity().to_string(), "recovery_code": code.as_str() }))?;
    } else {
        eprintln!(
            "Your recovery code is your identity key: anyone who reads it can sign as you. Write it on \
             paper, keep it away from this device, and never type it anywhere but `vault device recover`."
        );
        app.print(code.as_str())?;
    }
    Ok(Outcome::Done)
}

/// Takes the identity key onto this device from its recovery code.
pub(crate) fn recover(app: &App, given: &str) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let code = read_secret_line("Recovery code: ", given, "recovery code")?;
    vault.restore_identity_key(&code)?;
    if app.json {
        app.print_json(&json!({ "identity": vault.identity().to_string(), "identity_key": true }))?;
    } else {
        app.print(format!(
            "this device now holds the identity key of {}: it can link and remove devices",
            vault.identity()
        ))?;
    }
    Ok(Outcome::Done)
}

/// Removes the identity key from this device once its recovery code is typed back.
pub(crate) fn forget(app: &App) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let code = read_secret_line("Type your recovery code to confirm you have it: ", "", "recovery code")?;
    vault.forget_identity_key(&code)?;
    if app.json {
        app.print_json(&json!({ "identity": vault.identity().to_string(), "identity_key": false }))?;
    } else {
        app.print(
            "the identity key is no longer on this device; to link or remove devices, run \
             `vault device recover` with your recovery code",
        )?;
    }
    Ok(Outcome::Done)
}
