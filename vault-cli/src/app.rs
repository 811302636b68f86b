//! The second step after parsing: resolving the vault directory, the passphrase and the output
//! mode into an unlocked vault and a place to print.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use vault_core::{Passphrase, Vault};
use zeroize::Zeroizing;

use crate::cli::Global;
use crate::errors::NoPassphrase;

/// What a command concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Done: exit 0.
    Done,
    /// A valid "no": exit 1.
    No,
}

/// Resolved global options.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) dir: PathBuf,
    pub(crate) json: bool,
}

impl App {
    pub(crate) fn new(global: &Global) -> Result<Self> {
        let dir = match &global.vault {
            Some(dir) => dir.clone(),
            None => dirs::data_dir()
                .context("cannot find the platform's data directory; pass --vault DIR")?
                .join("vault"),
        };
        Ok(Self { dir, json: global.json })
    }

    /// Unlocks the vault, asking for the passphrase.
    pub(crate) fn unlock(&self) -> Result<Vault> {
        let options = Vault::at(&self.dir);
        if !options.exists() {
            // Say so before asking for a passphrase that cannot help.
            return Err(vault_core::OpenError::NoVault(self.dir.clone()).into());
        }
        let passphrase = read_passphrase("Passphrase: ", false)?;
        Ok(options.unlock(&passphrase)?)
    }

    /// A spinner on standard error for long work, only on a terminal and never with --json.
    pub(crate) fn spinner(&self, message: &'static str) -> Option<indicatif::ProgressBar> {
        if self.json || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        Some(bar)
    }

    /// Prints a JSON document on standard output.
    pub(crate) fn print_json(&self, value: &serde_json::Value) -> Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
        Ok(())
    }

    /// Prints text on standard output.
    pub(crate) fn print(&self, text: impl std::fmt::Display) -> Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")?;
        Ok(())
    }
}

/// Reads the passphrase from VAULT_PASSPHRASE, or else from the terminal; with neither, fails
/// with a clear error rather than waiting on a pipe.
pub(crate) fn read_passphrase(prompt: &str, confirm: bool) -> Result<Passphrase> {
    if let Some(value) = std::env::var_os("VAULT_PASSPHRASE") {
        let value = Zeroizing::new(
            value.into_string().map_err(|_| anyhow::anyhow!("VAULT_PASSPHRASE is not valid UTF-8"))?,
        );
        return Ok(Passphrase::new(value.as_str()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(NoPassphrase.into());
    }
    let first = Zeroizing::new(rpassword::prompt_password(prompt).context("cannot read the passphrase")?);
    if confirm {
        let second = Zeroizing::new(
            rpassword::prompt_password("Repeat passphrase: ").context("cannot read the passphrase")?,
        );
        if *first != *second {
            bail!("the two passphrases differ; nothing was created");
        }
    }
    Ok(Passphrase::new(first.as_str()))
}

/// Reads a one-line secret (a pairing or recovery code) that was not `given` on the command
/// line: at a hidden prompt on a terminal, otherwise (or with `-`) one line of standard input.
/// Either way it stays out of the process list and the shell history.
pub(crate) fn read_secret_line(prompt: &str, given: &str, what: &str) -> Result<Zeroizing<String>> {
    Ok(match given {
        "" if std::io::stdin().is_terminal() => Zeroizing::new(
            rpassword::prompt_password(prompt).with_context(|| format!("cannot read the {what}"))?,
        ),
        "" | "-" => {
            let mut line = Zeroizing::new(String::new());
            std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)
                .with_context(|| format!("cannot read the {what}"))?;
            line
        }
        _ => Zeroizing::new(given.to_owned()),
    })
}
