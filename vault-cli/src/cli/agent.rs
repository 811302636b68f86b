//! `vault unlock`, `vault lock` and the agent process `vault unlock` starts.

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct UnlockArgs {
    /// How long commands may use the vault without the passphrase (30m, 8h; at most 7d)
    #[arg(long = "for", value_name = "DURATION", default_value = "15m")]
    pub(crate) duration: String,
}

/// The background agent `vault unlock` starts; reads the key on standard input.
#[derive(Debug, Args)]
pub(crate) struct AgentRunArgs {
    /// Lend the key until this time (Unix seconds)
    #[arg(long)]
    pub(crate) until: i64,
}
