//! `vault rekey` (and `vault passwd`, which is `rekey --new-passphrase`): a new data key.
//!
//! The key an unlock agent lent, or one read from the memory of a stolen unlocked device, opens
//! every row written under it, later ones included. A rekey draws a new data key and re-seals
//! every row under it in one transaction (see `vault_core::Rekey`), so such a copy opens nothing
//! written afterwards. What it already read, or a copy of the file taken before, stays readable
//! with the old key: a rekey protects the future, not the past.
//!
//! The current passphrase is always asked for (VAULT_PASSPHRASE and VAULT_PASSPHRASE_COMMAND
//! work as everywhere), never borrowed from the agent: the new key is wrapped under a
//! passphrase. A new one comes from VAULT_NEW_PASSPHRASE, a prompt (twice), or
//! `--generate-passphrase`, and must pass the same strength check as `vault init`'s.
//!
//! **A running node is refused, not made safe.** `vault serve` holds the data key it opened
//! with and writes with it; after a rekey those writes would be refused (the store checks that
//! the file's key is still its own before each write) and its reads would fail. So `rekey`
//! takes the vault's node lock for its whole run and says "stop `vault serve` first" while a
//! node holds it. A node that starts meanwhile waits for the lock, then runs unmarked: if it
//! unlocked before the rekey committed, its writes are refused rather than lost.
//!
//! Afterwards the unlock agent (if one lends the key) is told to forget it, as `vault lock`
//! does: it holds a key the vault no longer uses. An agent this command could not reach (another
//! session's runtime directory, say) lends a key every command refuses as stale; the first
//! command that meets it tells it to forget the key and asks for the passphrase.

use anyhow::{Context, Result, bail};
use serde_json::json;
use vault_core::{Passphrase, Vault};

use crate::app::{App, Outcome, read_new_passphrase, read_passphrase};
use crate::cli::NewPassphraseArgs;
use crate::errors::NodeRunning;

use super::init::{Strength, generate};

pub(crate) fn run(app: &App, change: Option<&NewPassphraseArgs>) -> Result<Outcome> {
    let options = Vault::at(&app.dir);
    if !options.exists() {
        return Err(vault_core::OpenError::NoVault(app.dir.clone()).into());
    }
    // Held until the end: no node runs, and none starts marked, while the key changes.
    let Some(_no_node) =
        super::status::exclude_node(&app.dir).context("cannot take the vault's node lock")?
    else {
        return Err(NodeRunning.into());
    };
    let passphrase = read_passphrase("Passphrase: ", false)?;
    let rekey = options.rekey(&passphrase)?;
    let new = match change {
        Some(args) => Some(new_passphrase(app, args, &passphrase)?),
        None => None,
    };
    let spinner = app.spinner("re-sealing every row under a new key");
    let done = rekey.run(new.as_ref().map_or(&passphrase, |(p, _, _)| p));
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let done = done?;
    // The agent holds the old key: every command would refuse it now.
    let agent = match crate::agent::forget(&app.dir) {
        Ok(info) => info,
        Err(e) => {
            eprintln!("warning: the unlock agent did not forget the old key ({e:#}); run 'vault lock'");
            None
        }
    };
    if app.json {
        let mut out = json!({
            "rows": done.rows,
            "passphrase_changed": new.is_some(),
            "agent_locked": agent.map(|a| if a.node { "node" } else { "agent" }),
            "log_emptied": done.log_emptied,
        });
        if let Some((_, strength, generated)) = &new {
            out["passphrase_strength"] =
                json!({ "score": strength.score, "guesses_log10": strength.guesses_log10 });
            if let Some(text) = generated {
                out["generated_passphrase"] = json!(text.as_str());
            }
        }
        app.print_json(&out)?;
        return Ok(Outcome::Done);
    }
    let mut text =
        format!("a new data key: {} rows re-sealed; keys lent before no longer open this vault", done.rows);
    if new.is_some() {
        text.push_str(
            "\nthe passphrase changed: the old one no longer opens this vault (copies of the file made before still open with it)",
        );
    }
    match agent {
        Some(a) if a.node => text.push_str("\nthe running node stopped lending the old key"),
        Some(_) => text.push_str("\nthe unlock agent forgot the old key; 'vault unlock' unlocks again"),
        None => {}
    }
    if !done.log_emptied {
        text.push_str(
            "\nnote: another process was reading the vault: pages sealed under the old key may stay in the file and its log until the next command on this vault reclaims them",
        );
    }
    app.print(text)?;
    Ok(Outcome::Done)
}

/// The new passphrase, its strength, and its text when generated (printed here, before the
/// vault changes: a passphrase nobody saw would lose the vault).
fn new_passphrase(
    app: &App,
    args: &NewPassphraseArgs,
    current: &Passphrase,
) -> Result<(Passphrase, Strength, Option<zeroize::Zeroizing<String>>)> {
    if args.generate_passphrase {
        let text = generate()?;
        let passphrase = Passphrase::new(text.as_str());
        if app.json {
            // The JSON document comes after the change; a passphrase nobody saw would lose the
            // data, so it goes to standard error first (and the JSON repeats it).
            use std::io::Write as _;
            let mut err = std::io::stderr().lock();
            writeln!(err, "new passphrase: {}", text.as_str())
                .and_then(|()| err.flush())
                .context("cannot show the generated passphrase; nothing was changed")?;
        } else {
            app.print(format!(
                "new passphrase: {}\n(shown once: write it down or put it in your password manager)\n",
                text.as_str()
            ))?;
            std::io::Write::flush(&mut std::io::stdout())
                .context("cannot show the generated passphrase; nothing was changed")?;
        }
        let strength = Strength::of(&passphrase);
        return Ok((passphrase, strength, Some(text)));
    }
    let passphrase = read_new_passphrase()?;
    if passphrase.is_empty() {
        return Err(vault_core::RekeyError::EmptyPassphrase.into());
    }
    if passphrase.with_text(|new| current.with_text(|old| new == old)) {
        bail!(
            "the new passphrase is the current one; nothing was changed ('vault rekey' gives a new data key under the same passphrase)"
        );
    }
    let strength = Strength::of(&passphrase);
    if strength.weak() && !args.weak_passphrase_ok {
        bail!(
            "the new passphrase is weak: {}; nothing was changed (choose a longer one, pass --generate-passphrase, or --weak-passphrase-ok)",
            strength.describe()
        );
    }
    if strength.weak() {
        eprintln!("warning: the new passphrase is weak: {}", strength.describe());
    }
    Ok((passphrase, strength, None))
}
