//! Diagnostics on standard error (`VAULT_LOG`). Log lines can carry text that came from a peer
//! (an error a remote endpoint sent, a close reason, a value in a refused frame), so every line
//! goes through [`untrusted`] before it reaches the terminal, and lines have no colours (their
//! escape sequences would be indistinguishable from a peer's).

use std::io::{self, Write};

use crate::output::untrusted;

/// What is logged when neither `VAULT_LOG` nor `RUST_LOG` says: vault's own warnings, none of
/// its libraries' (the network stack warns every few seconds on a machine offline, which says
/// nothing a user can act on; the commands say what failed themselves).
const DEFAULT_FILTER: &str =
    "off,vault=warn,vault_cli=warn,vault_core=warn,vault_sync=warn,vault_mirror=warn";

/// Starts logging at the level `VAULT_LOG` (or `RUST_LOG`) names; by default, vault's own
/// warnings.
pub(crate) fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VAULT_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| InertStderr).with_ansi(false).init();
}

/// Standard error, with each written line made inert.
struct InertStderr;

impl Write for InertStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().lock().write_all(inert_line(buf).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// One formatted log line (the formatter writes whole lines), with every steering character
/// shown as a visible escape except the line's own final newline.
fn inert_line(buf: &[u8]) -> String {
    let text = String::from_utf8_lossy(buf);
    let (body, end) = match text.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (&text[..], ""),
    };
    format!("{}{end}", untrusted(body))
}

#[cfg(test)]
mod tests {
    use super::inert_line;

    #[test]
    fn a_peers_text_in_a_log_line_cannot_steer_the_terminal() {
        let line = b"DEBUG closing: peer said \x1b[2J\x1b[8mfake\nWARN forged line\xe2\x80\xae\n";
        assert_eq!(
            inert_line(line),
            "DEBUG closing: peer said \\e[2J\\e[8mfake\\nWARN forged line\\u{202e}\n"
        );
        assert_eq!(inert_line(b"plain\n"), "plain\n");
    }
}
