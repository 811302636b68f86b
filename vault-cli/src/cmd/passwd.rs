//! `vault passwd`: a new passphrase, and with it a new data key.
//!
//! The passphrase never changes alone. It is changed because it may have leaked, and whoever
//! learnt it may already have unwrapped the data key from a copy of the file; re-wrapping that
//! same key would leave everything written afterwards open to them. So `passwd` is `vault rekey
//! --new-passphrase` (see [`super::rekey`]): every row re-sealed under a new key, wrapped under
//! the new passphrase, in one transaction.

use anyhow::Result;

use crate::app::{App, Outcome};
use crate::cli::PasswdArgs;

pub(crate) fn run(app: &App, args: &PasswdArgs) -> Result<Outcome> {
    super::rekey::run(app, Some(&args.new))
}
