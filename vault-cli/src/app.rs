//! The second step after parsing: resolving the vault directory, the passphrase and the output
//! mode into an unlocked vault and a place to print.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use vault_core::{Passphrase, Vault};
use zeroize::Zeroizing;

use crate::cli::Global;
use crate::errors::{NoNewPassphrase, NoPassphrase};

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

    /// Unlocks the vault with the key the unlock agent lends, or else asks for the passphrase.
    /// On a device removed from its identity, says so first (every command does).
    pub(crate) fn unlock(&self) -> Result<Vault> {
        let vault = self.open()?;
        if let Some(at) = removed_at(&vault) {
            eprintln!(
                "warning: this device was removed from your identity on {} (by your identity key): your other \
                 devices refuse it, and so does everyone you share with once they learn it; it no longer syncs \
                 or serves, and what it signs is void. What it holds stays here until you delete it: 'vault \
                 export' for a copy, then remove {}. To use it again, link it anew ('vault init --join' with a \
                 new directory). If you did not remove it, your identity key may be in other hands: run 'vault \
                 device recover' with your recovery code on a device you hold",
                crate::time::local(at),
                self.dir.display()
            );
        }
        Ok(vault)
    }

    fn open(&self) -> Result<Vault> {
        let options = Vault::at(&self.dir);
        if !options.exists() {
            // Say so before asking for a passphrase that cannot help.
            return Err(vault_core::OpenError::NoVault(self.dir.clone()).into());
        }
        if let Some(key) = self.borrowed_key() {
            match Vault::at(&self.dir).unlock_with_key(&key) {
                Ok(vault) => return Ok(vault),
                // The vault's key changed since the agent was given it (`vault rekey`, `vault
                // passwd`): the agent is told to forget it, and the passphrase is asked for.
                Err(vault_core::OpenError::StaleKey) => match crate::agent::forget(&self.dir) {
                    Ok(_) => eprintln!(
                        "warning: the unlock agent held a key this vault no longer uses (its key changed); \
                         it was told to forget it: run 'vault unlock' again"
                    ),
                    Err(e) => eprintln!(
                        "warning: the unlock agent holds a key this vault no longer uses, and did not forget it \
                         ({e:#}); run 'vault lock'"
                    ),
                },
                Err(e) => return Err(e.into()),
            }
        }
        let passphrase = read_passphrase("Passphrase: ", false)?;
        Ok(options.unlock(&passphrase)?)
    }

    /// The key the unlock agent lends for this vault, if any. An agent that fails its checks
    /// (another user's directory or socket, say) is named in a warning and not used.
    pub(crate) fn borrowed_key(&self) -> Option<vault_core::UnlockKey> {
        match crate::agent::borrow(&self.dir) {
            Ok(key) => key,
            Err(e) => {
                eprintln!("warning: {e:#}");
                None
            }
        }
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

    /// Prints text on standard output (long text on a terminal through the pager, see
    /// [`crate::pager`]).
    pub(crate) fn print(&self, text: impl std::fmt::Display) -> Result<()> {
        // Piped (scripts, and a feed of 100,000 lines into another program): written as it
        // is formatted, with no copy.
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            let text = text.to_string();
            if crate::pager::page(&text) {
                return Ok(());
            }
            writeln!(std::io::stdout().lock(), "{text}")?;
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")?;
        Ok(())
    }
}

/// When this device was removed from its identity, if it learned it was.
pub(crate) fn removed_at(vault: &Vault) -> Option<i64> {
    vault.devices().removed_here().ok().flatten()
}

/// Fails on a device removed from its identity: for what needs the others to take it (serving,
/// syncing), which they refuse.
pub(crate) fn refuse_if_removed(vault: &Vault) -> Result<()> {
    if let Some(at) = removed_at(vault) {
        bail!(
            "this device was removed from your identity on {}: your devices and peers refuse it",
            crate::time::local(at)
        );
    }
    Ok(())
}

/// Reads the passphrase from VAULT_PASSPHRASE, or else from what VAULT_PASSPHRASE_COMMAND
/// prints, or else from the terminal; with none, fails with a clear error rather than waiting
/// on a pipe.
pub(crate) fn read_passphrase(prompt: &str, confirm: bool) -> Result<Passphrase> {
    if let Some(value) = std::env::var_os("VAULT_PASSPHRASE") {
        let value = Zeroizing::new(
            value.into_string().map_err(|_| anyhow::anyhow!("VAULT_PASSPHRASE is not valid UTF-8"))?,
        );
        return Ok(Passphrase::new(value.as_str()));
    }
    if let Some(command) = std::env::var_os("VAULT_PASSPHRASE_COMMAND") {
        return passphrase_from_command(&command);
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

/// Reads a vault's new passphrase as [`read_passphrase`] does, asked twice at a terminal; one
/// that `check` refuses is refused after it is typed once, before it is asked again.
pub(crate) fn read_passphrase_checked(
    prompt: &str,
    check: &dyn Fn(&Passphrase) -> Result<()>,
) -> Result<Passphrase> {
    let from_terminal = std::env::var_os("VAULT_PASSPHRASE").is_none()
        && std::env::var_os("VAULT_PASSPHRASE_COMMAND").is_none()
        && std::io::stdin().is_terminal();
    if !from_terminal {
        return read_passphrase(prompt, true);
    }
    let first = Zeroizing::new(rpassword::prompt_password(prompt).context("cannot read the passphrase")?);
    let passphrase = Passphrase::new(first.as_str());
    if !passphrase.is_empty() {
        check(&passphrase)?;
    }
    let second = Zeroizing::new(
        rpassword::prompt_password("Repeat passphrase: ").context("cannot read the passphrase")?,
    );
    if *first != *second {
        bail!("the two passphrases differ; nothing was created");
    }
    Ok(passphrase)
}

/// Reads a new passphrase (`vault passwd`): from VAULT_NEW_PASSPHRASE in scripts, else asked
/// twice at the terminal. VAULT_PASSPHRASE and VAULT_PASSPHRASE_COMMAND give the current
/// passphrase, never this one.
pub(crate) fn read_new_passphrase() -> Result<Passphrase> {
    if let Some(value) = std::env::var_os("VAULT_NEW_PASSPHRASE") {
        let value = Zeroizing::new(
            value.into_string().map_err(|_| anyhow::anyhow!("VAULT_NEW_PASSPHRASE is not valid UTF-8"))?,
        );
        return Ok(Passphrase::new(value.as_str()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(NoNewPassphrase.into());
    }
    let first =
        Zeroizing::new(rpassword::prompt_password("New passphrase: ").context("cannot read the passphrase")?);
    let second = Zeroizing::new(
        rpassword::prompt_password("Repeat new passphrase: ").context("cannot read the passphrase")?,
    );
    if *first != *second {
        bail!("the two passphrases differ; nothing was changed");
    }
    Ok(Passphrase::new(first.as_str()))
}

/// The most a passphrase command may print.
const COMMAND_OUTPUT_MAX: u64 = 64 * 1024;

/// Runs VAULT_PASSPHRASE_COMMAND with `sh -c` (a password manager's command line, as restic's
/// `--password-command`): its first line of output is the passphrase. The command keeps the
/// terminal (it may ask there) and its standard error; what it prints is never shown, and is
/// wiped from memory once read.
fn passphrase_from_command(command: &std::ffi::OsStr) -> Result<Passphrase> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    if command.is_empty() {
        bail!("VAULT_PASSPHRASE_COMMAND is empty");
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::inherit())
        .stderr(Stdio::inherit())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run VAULT_PASSPHRASE_COMMAND")?;
    // Room for all of it up front: a growing buffer would leave unwiped copies behind.
    let mut out = Zeroizing::new(Vec::with_capacity(COMMAND_OUTPUT_MAX as usize + 1));
    let read = match child.stdout.take() {
        Some(stdout) => stdout.take(COMMAND_OUTPUT_MAX + 1).read_to_end(&mut out).map(|_| ()),
        None => Ok(()),
    };
    let status = child.wait().context("cannot run VAULT_PASSPHRASE_COMMAND")?;
    read.context("cannot read what VAULT_PASSPHRASE_COMMAND printed")?;
    if out.len() as u64 > COMMAND_OUTPUT_MAX {
        bail!(
            "VAULT_PASSPHRASE_COMMAND printed more than {} KiB; no passphrase was read",
            COMMAND_OUTPUT_MAX / 1024
        );
    }
    if !status.success() {
        bail!("VAULT_PASSPHRASE_COMMAND failed ({status}); no passphrase was read");
    }
    let text = std::str::from_utf8(&out)
        .map_err(|_| anyhow::anyhow!("VAULT_PASSPHRASE_COMMAND printed text that is not UTF-8"))?;
    let line = text.split('\n').next().unwrap_or_default().trim_end_matches('\r');
    if line.is_empty() {
        bail!("VAULT_PASSPHRASE_COMMAND printed no passphrase");
    }
    Ok(Passphrase::new(line))
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
