//! The transport's own limits and timings: streams per connection, the hello's deadline, how
//! often the vault file is polled. (What a peer may send, and how much is buffered, is
//! vault-core's `framing`.)

use std::time::Duration;

/// How often a node checks the vault file for changes made by other processes, by default
/// (reading SQLite's `data_version` costs a few microseconds).
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Streams a peer may have open at once on one connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 64;
/// Streams a peer may open over one connection's life.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 4096;
/// Time allowed for the hello exchange.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
