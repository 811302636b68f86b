//! `vault rekey` and `vault passwd`.

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct RekeyArgs {
    /// Change the passphrase too, as `vault passwd` does
    #[arg(long)]
    pub(crate) new_passphrase: bool,
    /// With --new-passphrase: make a strong one (about 125 bits) instead of asking for one, and
    /// print it once
    #[arg(long, requires = "new_passphrase", conflicts_with = "weak_passphrase_ok")]
    pub(crate) generate_passphrase: bool,
    /// With --new-passphrase: accept one the strength estimate calls weak (refused otherwise)
    #[arg(long, requires = "new_passphrase")]
    pub(crate) weak_passphrase_ok: bool,
}

impl RekeyArgs {
    /// How the new passphrase is chosen, when it changes.
    pub(crate) fn change(&self) -> Option<NewPassphraseArgs> {
        self.new_passphrase.then_some(NewPassphraseArgs {
            generate_passphrase: self.generate_passphrase,
            weak_passphrase_ok: self.weak_passphrase_ok,
        })
    }
}

#[derive(Debug, Args)]
pub(crate) struct PasswdArgs {
    #[command(flatten)]
    pub(crate) new: NewPassphraseArgs,
}

/// How the new passphrase is chosen. Without these it is read from VAULT_NEW_PASSPHRASE (for
/// scripts), else asked twice at the terminal.
#[derive(Debug, Args)]
pub(crate) struct NewPassphraseArgs {
    /// Make a strong new passphrase (about 125 bits) instead of asking for one, and print it
    /// once: write it down or put it in your password manager
    #[arg(long, conflicts_with = "weak_passphrase_ok")]
    pub(crate) generate_passphrase: bool,
    /// Accept a new passphrase the strength estimate calls weak (refused otherwise)
    #[arg(long)]
    pub(crate) weak_passphrase_ok: bool,
}
