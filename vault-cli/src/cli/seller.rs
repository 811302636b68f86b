//! A seller's own commands: breach notices (and reading them), and the PostgreSQL mirror.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum BreachCommand {
    /// Sign a notice to every customer whose data you held under a matching grant since DATE,
    /// naming the fields you held of theirs; delivered now where possible, else queued
    Notify(BreachNotifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BreachNotifyArgs {
    /// Start of the breach window: a date (2026-11-01) or a duration ago (30d)
    #[arg(long, value_name = "DATE")]
    pub(crate) since: String,
    /// Only grants whose purpose contains this text (case-insensitive)
    #[arg(long)]
    pub(crate) purpose: Option<String>,
    /// What happened, in one line (up to 2,000 bytes)
    #[arg(long)]
    pub(crate) text: String,
    /// Do not use relays or address lookup (local networks and tests)
    #[arg(long)]
    pub(crate) no_relay: bool,
}

#[derive(Debug, Args)]
pub(crate) struct NoticesArgs {
    /// The notices you sent, with their delivery
    #[arg(long)]
    pub(crate) sent: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MirrorCommand {
    /// Attach a PostgreSQL database (postgres://user:password@host:port/db): creates the tables,
    /// then `vault serve` keeps them live; the URL is read from standard input when omitted
    Set {
        /// The connection string [default: read from standard input]
        url: Option<String>,
    },
    /// Where the mirror writes (password hidden) and how it fares
    Show,
    /// Remove every row the mirror wrote, then detach it (held-back receipts are then signed)
    Off,
}
