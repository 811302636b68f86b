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
/// A live session to an issuer with no frame either way for this long is closed, by default:
/// the issuer offers again when it has news (see [`crate::notify`]). A seller keeps a
/// connection only to customers who are active, not to every customer it holds.
pub(crate) const IDLE_CLOSE: Duration = Duration::from_secs(60);
/// An idle session's peer is called again after about this long even without news, in case
/// an offer was lost (each peer at its own time, spread over a quarter either way).
pub(crate) const IDLE_REFRESH: Duration = Duration::from_secs(30 * 60);
