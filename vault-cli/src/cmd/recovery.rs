//! `vault device recovery-code|recover|forget-key`: the identity key on paper.

use anyhow::Result;
use serde_json::json;

use crate::app::{App, Outcome, read_secret_line};

const CODE_WARNING: &str = "Your recovery code holds your identity's next key: whoever types it into \
     `vault device recover` replaces your identity key, and the old key signs nothing new wherever \
     the change reaches. It is shown once and this device keeps no copy: write it on paper, keep it \
     away from your devices, and never type it anywhere but `vault device recover`.";

/// Prints the recovery code (the identity's next key) once, and removes it from this device.
pub(crate) fn show(app: &App) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let code = vault.keys_mut().recovery_code()?;
    if app.json {
        app.print_json(&json!({ "identity": vault.identity().to_string(), "recovery_code": code.as_str() }))?;
    } else {
        eprintln!("{CODE_WARNING}");
        app.print(code.as_str())?;
    }
    Ok(Outcome::Done)
}

/// Rotates the identity key with its recovery code (or, with a code made before key events,
/// takes the current key onto this device), and prints the new code.
pub(crate) fn recover(app: &App, given: &str) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let code = read_secret_line("Recovery code: ", given, "recovery code")?;
    let new_code = vault.keys_mut().restore_identity_key(&code)?;
    if app.json {
        app.print_json(&json!({
            "identity": vault.identity().to_string(),
            "identity_key": true,
            "rotated": new_code.is_some(),
            "recovery_code": new_code.as_ref().map(|c| c.as_str()),
        }))?;
        return Ok(Outcome::Done);
    }
    match &new_code {
        Some(new_code) => {
            eprintln!(
                "The identity key of {} was rotated: this device holds the new one, and the old key \
                 signs nothing new for you once your devices and peers learn of it (run `vault serve` \
                 or `vault sync`). Your old recovery code is used up; here is the new one.\n{CODE_WARNING}",
                vault.identity()
            );
            app.print(new_code.as_str())?;
        }
        None => app.print(format!(
            "this device now holds the identity key of {}: it can link and remove devices \
             (this code is from before key rotation: it cannot rotate the key)",
            vault.identity()
        ))?,
    }
    Ok(Outcome::Done)
}

/// Removes the identity key from this device once its recovery code is typed back.
pub(crate) fn forget(app: &App) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let code = read_secret_line("Type your recovery code to confirm you have it: ", "", "recovery code")?;
    vault.keys_mut().forget_identity_key(&code)?;
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
