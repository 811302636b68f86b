//! `vault device add|list|rm` (the joining side, `vault init --join CODE`, is in init.rs).

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use vault_core::{DeviceRecord, PAIRING_LIFETIME_SECS};
use vault_sync::{Invitation, NodeConfig};

use crate::app::{App, Outcome};
use crate::cli::DeviceCommand;
use crate::cmd::id::render_qr;
use crate::output::untrusted;
use crate::runtime::runtime;
use crate::time::local;

pub(crate) fn run(app: &App, command: DeviceCommand) -> Result<Outcome> {
    match command {
        DeviceCommand::Add { name, qr, no_relay } => add(app, &name, qr, no_relay),
        DeviceCommand::List => list(app),
        DeviceCommand::RecoveryCode => super::recovery::show(app),
        DeviceCommand::Recover { code } => super::recovery::recover(app, &code),
        DeviceCommand::ForgetKey => super::recovery::forget(app),
        DeviceCommand::Rm { name } => {
            let mut vault = app.unlock()?;
            let removed = vault.devices_mut().remove(&name)?;
            if app.json {
                app.print_json(
                    &json!({ "name": removed.name, "device": removed.id.to_string(), "removed": true }),
                )?;
            } else {
                let others = if vault.identity_key().is_some() {
                    "by your other devices and the people you share with at their next sync with this one"
                } else {
                    "by this device only: this device does not hold your identity key, so remove it on \
                     the device that does (or run `vault device recover` here first) for your other \
                     devices and the people you share with to refuse it"
                };
                app.print(format!(
                    "removed {} ({}): refused {others}. What it already holds cannot be recalled.",
                    untrusted(&removed.name),
                    removed.id
                ))?;
            }
            Ok(Outcome::Done)
        }
    }
}

fn add(app: &App, name: &str, qr: bool, no_relay: bool) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    vault.devices_mut().check_new_name(name)?;
    let config = NodeConfig { relay: !no_relay, subscribe: false, ..NodeConfig::default() };
    let shown = name.to_owned();
    let joined = runtime()?.block_on(async {
        let invitation = Invitation::open(&config, vault.now()).await?;
        let code = invitation.code().to_string();
        if app.json {
            // One line first, so that scripts can read the code while the command waits.
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", json!({ "code": code, "expires_at": invitation.code().expires_at() }))?;
            out.flush()?;
        } else {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{code}")?;
            if qr {
                writeln!(out, "{}", render_qr(&code)?)?;
            }
            out.flush()?;
            eprintln!(
                "On the new device run: vault init --join CODE (valid {} minutes). Waiting for it...",
                PAIRING_LIFETIME_SECS / 60
            );
        }
        let confirm = move |digits: &str| ask_confirmation(&shown, digits);
        let welcome = |joiner| vault.devices_mut().invite(joiner, name).map_err(|e| e.to_string());
        let lifetime = Duration::from_secs(PAIRING_LIFETIME_SECS as u64);
        Ok::<_, anyhow::Error>(invitation.complete(lifetime, confirm, welcome).await?)
    })?;
    if app.json {
        app.print_json(&json!({ "name": name, "device": joined.to_string(), "joined": true }))?;
    } else {
        app.print(format!("{name} joined ({joined}); run `vault serve` on both to keep them in sync"))?;
    }
    Ok(Outcome::Done)
}

/// Asks this device's user to type the six digits the new device shows (not a yes/no: a
/// hurried yes must not let in a device that raced the real one to the code). Anything else,
/// or no answer, declines.
fn ask_confirmation(name: &str, digits: &str) -> bool {
    eprint!("A device asks to join as {name}. Type the six digits it shows (anything else declines): ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    let typed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    let expected: String = digits.chars().filter(|c| !c.is_whitespace()).collect();
    typed == expected
}

fn list(app: &App) -> Result<Outcome> {
    let vault = app.unlock()?;
    let this = vault.device_key().public();
    let devices = vault.devices().list()?;
    if app.json {
        let list: Vec<_> = devices
            .iter()
            .map(|d| {
                json!({
                    "name": d.name,
                    "device": d.id.to_string(),
                    "added_at": (d.added_at > 0).then_some(d.added_at),
                    "last_seen": d.last_seen,
                    "removed_at": d.removed_at,
                    "this": d.id == this,
                })
            })
            .collect();
        app.print_json(&json!({ "devices": list }))?;
        return Ok(Outcome::Done);
    }
    let mut text = String::new();
    for d in &devices {
        text.push_str(&describe(d, d.id == this));
        text.push('\n');
    }
    app.print(text.trim_end())?;
    if vault.keys().recovery_code_pending()? {
        eprintln!(
            "hint: your recovery code has not been written down yet (a code from before key rotation \
             can no longer recover your identity): run `vault device recovery-code`"
        );
    }
    Ok(Outcome::Done)
}

fn describe(d: &DeviceRecord, this: bool) -> String {
    let added = if d.added_at > 0 { local(d.added_at) } else { "-".into() };
    let seen = match (this, d.last_seen) {
        (true, _) => "this device".to_owned(),
        (false, Some(t)) => format!("last seen {}", local(t)),
        (false, None) => "not seen yet".to_owned(),
    };
    let state = match d.removed_at {
        Some(t) => format!("  REMOVED {}", local(t)),
        None => String::new(),
    };
    format!("{:<16} {}  added {added}  {seen}{state}", untrusted(&d.name), d.id)
}
