//! `vault verify`

use anyhow::Result;
use serde_json::json;
use vault_core::Vault;

use crate::app::{App, Outcome, read_passphrase};
use crate::output::untrusted;

pub(crate) fn run(app: &App) -> Result<Outcome> {
    let options = Vault::at(&app.dir);
    if !options.exists() {
        return Err(vault_core::OpenError::NoVault(app.dir.clone()).into());
    }
    let lent = match app.borrowed_key() {
        Some(key) => match Vault::at(&app.dir).verify_with_key(&key) {
            Err(vault_core::OpenError::StaleKey) => {
                eprintln!(
                    "warning: the unlock agent holds a key this vault no longer uses; run 'vault lock'"
                );
                None
            }
            other => Some(other?),
        },
        None => None,
    };
    let report = match lent {
        Some(report) => report,
        None => options.verify(&read_passphrase("Passphrase: ", false)?)?,
    };
    if app.json {
        app.print_json(&json!({
            "ok": report.is_ok(),
            "blobs_checked": report.blobs_checked,
            "problems": report.problems,
        }))?;
    } else if report.is_ok() {
        app.print(format!("ok: {} encrypted blobs checked, document intact", report.blobs_checked))?;
    } else {
        for problem in &report.problems {
            app.print(format!("damaged: {}", untrusted(problem)))?;
        }
        app.print(format!("{} problem(s) found; nothing was modified", report.problems.len()))?;
    }
    Ok(if report.is_ok() { Outcome::Done } else { Outcome::No })
}
