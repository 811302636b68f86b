//! Long output on a terminal goes through a pager, the way git does: `$VAULT_PAGER`, else
//! `$PAGER`, else `less`, with `LESS=FRX` unless `LESS` is set (quit when it fits one screen,
//! keep colours, leave the text on the screen). Never when standard output is not a terminal,
//! and `VAULT_PAGER=cat` (or empty) turns it off.

use std::io::{IsTerminal, Write};
use std::process::{Command, Stdio};

/// Fewer lines than this are printed directly: they fit the smallest usual terminal, and a
/// pager would only cost its start.
const FITS: usize = 24;

/// Shows `text` in the pager when that applies; false when it does not (or the pager could
/// not be started): the caller prints it.
pub(crate) fn page(text: &str) -> bool {
    if !std::io::stdout().is_terminal() || text.lines().nth(FITS - 1).is_none() {
        return false;
    }
    let pager =
        std::env::var("VAULT_PAGER").or_else(|_| std::env::var("PAGER")).unwrap_or_else(|_| "less".into());
    let pager = pager.trim();
    if pager.is_empty() || pager == "cat" {
        return false;
    }
    let mut command = Command::new("sh");
    command.arg("-c").arg(pager).stdin(Stdio::piped());
    if std::env::var_os("LESS").is_none() {
        command.env("LESS", "FRX");
    }
    let Ok(mut child) = command.spawn() else { return false };
    if let Some(mut stdin) = child.stdin.take() {
        // A reader who quits early closes the pipe: not an error.
        let _ = stdin.write_all(text.as_bytes()).and_then(|()| stdin.write_all(b"\n"));
    }
    let _ = child.wait();
    true
}
