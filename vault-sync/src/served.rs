//! Group commit of what the node serves (see `vault_core`'s served log): each sync message that
//! carries data waits until its access-log record is durable, and one task commits every record
//! waiting at once, after the streams woken with the first had their turn. A thousand grantees updated at once cost a
//! few commits, not a thousand, and nothing leaves the node unlogged.

use std::sync::Arc;
use std::time::Duration;

use vault_core::{Logged, Vault};

use crate::endpoint::NodeTasks;

/// How long a stream waits for its record's commit before giving up (and not sending).
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// Commits waiting records whenever a stream asks, until the node stops.
pub(crate) async fn commit_served(shared: Arc<NodeTasks>) {
    loop {
        shared.served_flush.notified().await;
        // Let every stream the same change woke take its turn first (they are ready to run):
        // one commit then takes all their records, and a lone update waits no timer.
        tokio::task::yield_now().await;
        let settled = {
            let mut vault = shared.vault();
            // A panic here must not stop the node's serving: its records count as failed.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                vault.serving_mut().flush_served()
            })) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "logging served messages failed; they are not sent"),
                Err(_) => tracing::error!("logging served messages panicked; they are not sent"),
            }
            vault.serving().served_settled()
        };
        shared.served_settled.send_replace(settled);
    }
}

/// The record a step just queued: the newest waiting record, if the step added one.
pub(crate) fn queued_by(vault: &Vault, before: Option<u64>) -> Option<u64> {
    vault.serving().served_unlogged().filter(|seq| Some(*seq) != before)
}

/// Waits until record `seq` is settled; true when it is durable (the message may be sent).
pub(crate) async fn logged(shared: &NodeTasks, seq: u64) -> bool {
    let mut settled = shared.served_settled.subscribe();
    shared.served_flush.notify_one();
    // Fails closed: a record not settled in time is not sent.
    match tokio::time::timeout(SETTLE_WITHIN, settled.wait_for(|s| *s >= seq)).await {
        Ok(Ok(_)) => {}
        _ => return false,
    }
    shared.vault().serving().served_outcome(seq) == Logged::Durable
}
