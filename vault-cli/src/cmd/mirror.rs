//! `vault mirror set|show|off`: the seller's PostgreSQL mirror of what is shared with it.

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use serde_json::json;
use vault_core::{ShareStatus, Vault};
use vault_mirror::MirrorUrl;

use crate::app::{App, Outcome};
use crate::cli::MirrorCommand;
use crate::runtime::runtime;
use crate::time::local;

pub(crate) fn run(app: &App, command: MirrorCommand) -> Result<Outcome> {
    match command {
        MirrorCommand::Set { url } => set(app, url),
        MirrorCommand::Show => show(app),
        MirrorCommand::Off => off(app),
    }
}

/// Parses a connection string given on the command line or, when absent or `-`, on standard
/// input (where it stays out of the process list and the shell history).
pub(crate) fn read_url(given: Option<String>) -> Result<MirrorUrl> {
    let raw = match given.filter(|u| u != "-") {
        Some(u) => u,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the mirror's URL from standard input")?;
            line
        }
    };
    Ok(MirrorUrl::parse(&raw)?)
}

/// Refuses to replace an attached mirror by another: the first one's rows would be left behind
/// with nobody to erase them.
pub(crate) fn refuse_another(vault: &Vault, url: &MirrorUrl) -> Result<()> {
    if let Some(current) = vault.mirror().url()?
        && current != url.expose()
    {
        bail!(
            "another mirror is attached ({}): run 'vault mirror off' first, which removes its rows",
            vault_mirror::redact(&current)
        );
    }
    Ok(())
}

/// Checks the database (connects, creates or migrates the tables) and attaches it.
pub(crate) fn attach(vault: &mut Vault, url: &MirrorUrl) -> Result<u64> {
    refuse_another(vault, url)?;
    let (owner, node) = (vault_mirror::owner(vault), vault_mirror::node(vault));
    let held = runtime()?.block_on(vault_mirror::check(url, &owner, &node))?;
    vault.mirror_mut().attach(url.expose())?;
    Ok(held)
}

fn set(app: &App, url: Option<String>) -> Result<Outcome> {
    let url = read_url(url)?;
    let mut vault = app.unlock()?;
    let held = attach(&mut vault, &url)?;
    if app.json {
        app.print_json(&json!({ "mirror": url.redacted(), "consents": held }))?;
    } else {
        app.print(format!(
            "mirror attached: {} (tables in schema \"{}\", version {})\n`vault serve` keeps them live; erasure receipts now wait until the rows are deleted there",
            url.redacted(),
            vault_mirror::NAMESPACE,
            vault_mirror::SCHEMA_VERSION
        ))?;
    }
    Ok(Outcome::Done)
}

fn show(app: &App) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let Some(raw) = vault.mirror().url()? else {
        if app.json {
            app.print_json(&json!({ "mirror": null }))?;
        } else {
            eprintln!("no mirror attached: `vault mirror set` attaches one");
        }
        return Ok(Outcome::No);
    };
    let shown = vault_mirror::redact(&raw);
    let tls = MirrorUrl::parse(&raw).map(|u| u.tls_summary()).unwrap_or_default();
    let status = vault.mirror().status()?;
    let shares = vault.held_mut().list()?;
    let live = shares.iter().filter(|s| s.status == ShareStatus::Live).count();
    let pending = shares.iter().filter(|s| s.erasure_pending).count();
    if app.json {
        app.print_json(&json!({
            "mirror": shown,
            "tls": tls,
            "ok": status.as_ref().map(|s| s.ok),
            "detail": status.as_ref().map(|s| s.detail.clone()),
            "live": live,
            "erasures_pending": pending,
        }))?;
    } else {
        let health = match &status {
            // The detail can quote the database, which can quote what a customer sent.
            Some(s) if s.ok => format!("ok ({}, {})", crate::output::untrusted(&s.detail), local(s.at)),
            Some(s) => format!("FAILING since {}: {}", local(s.at), crate::output::untrusted(&s.detail)),
            None => "not run yet: `vault serve` runs it".to_owned(),
        };
        app.print(format!(
            "mirror: {shown}\ntls: {tls}\nstatus: {health}\nlive shares: {live}\nerasures pending: {pending}"
        ))?;
    }
    Ok(Outcome::Done)
}

fn off(app: &App) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let Some(raw) = vault.mirror().url()? else {
        bail!("no mirror attached");
    };
    let url = MirrorUrl::parse(&raw)?;
    let (owner, node) = (vault_mirror::owner(&vault), vault_mirror::node(&vault));
    // Everything it wrote goes first; only then are held-back receipts signed.
    let removed = runtime()?.block_on(vault_mirror::detach(&url, &owner, &node))?;
    vault.mirror_mut().detach()?;
    app.print(format!(
        "mirror detached: {removed} consent rows and their values removed from {}",
        url.redacted()
    ))?;
    Ok(Outcome::Done)
}
