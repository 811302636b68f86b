//! The async runtime the commands that touch the network start (serving, syncing, pairing,
//! the database mirror).

use anyhow::{Context, Result};

/// A multi-threaded tokio runtime with I/O and timers.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}
