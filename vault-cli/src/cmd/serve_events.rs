//! `vault serve`'s lines as things happen: one per event of the access log (a request
//! received, a share served, an erasure confirmed, a peer refused...), from this node or any
//! other process on the vault, in the words of `vault audit` (peer text escaped); JSON lines
//! with `--json`, none with `--quiet`.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use vault_sync::VaultHandle;

use super::audit::describe_event;
use crate::time::rfc3339;

/// How often the log is looked at besides the node's own changes (another process's).
const LOOK: Duration = Duration::from_secs(1);
/// At most this many lines per look: a seller's busy minute is printed over a few looks.
const PER_LOOK: usize = 500;

/// Prints the events logged from now on, until aborted.
pub(crate) async fn print(handle: VaultHandle, json: bool) {
    let mut last = handle.with_vault(|v| v.access_log().last_seq()).unwrap_or(0);
    let mut changes = handle.changes();
    loop {
        let _ = tokio::time::timeout(LOOK, changes.changed()).await;
        let lines = handle.with_vault(|v| {
            let events = v.access_log().after(last, PER_LOOK).unwrap_or_default();
            events
                .into_iter()
                .map(|(seq, e)| {
                    let line = if json {
                        let mut value = serde_json::to_value(&e).unwrap_or_default();
                        value["at"] = json!(rfc3339(e.at));
                        value["peer_name"] = json!(e.peer.and_then(|p| v.contacts().petname(&p)));
                        json!({ "event": value }).to_string()
                    } else {
                        describe_event(v, &e)
                    };
                    (seq, line)
                })
                .collect::<Vec<_>>()
        });
        let Some((seq, _)) = lines.last() else { continue };
        last = *seq;
        // JSON lines on standard output (after the ticket), words on standard error beside
        // the node's other messages. A reader gone (a script that took the ticket and closed
        // the pipe) loses the lines, not the node.
        let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        let _ = if json {
            std::io::stdout().lock().write_all(text.as_bytes())
        } else {
            std::io::stderr().lock().write_all(text.as_bytes())
        };
    }
}
