//! vault-sync carries the vault's sharing protocol ([`vault_core::Frame`]) over iroh.
//!
//! A [`Node`] runs one iroh endpoint under the vault's device key with ALPN `vault/sync/1`.
//! It serves the grants this vault issued to the peers that dial it, keeps the sessions open,
//! and pushes changes made by any process on the vault file within [`NodeConfig::poll`] (default
//! [`POLL_INTERVAL`]). It also
//! keeps live sessions to the issuers of the shares this vault received, reconnecting with
//! exponential backoff. [`sync_once`] dials one peer, exchanges everything and returns.
//!
//! The protocol logic lives in vault-core (sans-IO); this crate only moves bytes.
//!
//! # Limits
//!
//! - a frame's length is checked before anything is allocated: at most 64 KiB for hello,
//!   control frames and the first frame of a grant stream; at most 1 MiB for a grantee's sync
//!   messages (which carry heads and bloom filters, never documents); at most
//!   [`vault_core::MAX_FRAME`] for what an issuer sends;
//! - at most [`MAX_CONCURRENT_STREAMS`] streams open at once per connection (QUIC flow
//!   control), and at most [`MAX_STREAMS_PER_CONNECTION`] over a connection's life;
//! - at most [`MAX_REQUESTS_PER_MINUTE`] control requests per connection;
//! - the peer must complete its hello within [`HANDSHAKE_TIMEOUT`].
//!
//! A peer that breaks a limit or sends a malformed frame loses that connection only; the node
//! keeps serving everyone else.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod endpoint;
mod frame;
mod node;
mod notify;
mod peers;

use std::time::Duration;

pub use client::{SyncReport, sync_once};
pub use endpoint::NodeConfig;
pub use frame::ReadFrameError;
pub use node::Node;

/// How often a node checks the vault file for changes made by other processes, by default
/// (reading SQLite's `data_version` costs a few microseconds).
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Streams a peer may have open at once on one connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 64;
/// Streams a peer may open over one connection's life.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 4096;
/// Control requests (ListShares, Erased) a peer may send per minute on one connection.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 120;
/// Bytes of an issuer's frames this vault holds in memory at once, over all the issuer's
/// streams (a frame waits until it fits).
pub const ISSUER_BYTE_BUDGET: usize = 2 * vault_core::MAX_FRAME;
/// Live shares this vault keeps from one issuer; grants beyond are ignored.
pub const MAX_SHARES_PER_ISSUER: usize = 64;
/// At most one audit row about refused peers per this interval; the row counts the others.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Time allowed for the hello exchange.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Something went wrong on the network side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The endpoint could not bind.
    #[error("cannot start the network endpoint")]
    Bind(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The peer could not be reached.
    #[error("cannot connect to the peer")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The peer broke the protocol or presented a bad certificate.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer is not who the ticket says.
    #[error("the peer's certificate does not match its ticket")]
    WrongPeer,
    /// A stream failed.
    #[error("connection lost")]
    Io(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The vault failed.
    #[error("vault error: {0}")]
    Vault(String),
    /// The peer did not answer in time.
    #[error("the peer did not answer in time")]
    Timeout,
    /// This vault refused to serve the peer.
    #[error("refused to serve the peer")]
    Serve(#[from] vault_core::ServeError),
}

impl SyncError {
    fn io(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        SyncError::Io(Box::new(e))
    }
    fn vault(e: impl std::fmt::Display) -> Self {
        SyncError::Vault(e.to_string())
    }
}

/// Sync messages a grantee may send per second on one grant stream, after a burst of
/// [`SYNC_BURST`]; beyond that the node stops reading the stream until tokens come back.
pub const SYNC_MESSAGES_PER_SECOND: u32 = 50;
/// Sync messages a grantee may send at once on one grant stream.
pub const SYNC_BURST: u32 = 100;

/// Runs peer-driven work on the vault (Automerge fed with a peer's bytes). A panic inside
/// becomes this stream's error: the vault rolled back the write it was making (vault-core's
/// `Vault::write`), the node recovers the lock, and everyone else is served on.
pub(crate) fn isolated<T>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, SyncError>,
) -> Result<T, SyncError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::warn!(what, "a peer's data made the sync engine panic; closing that stream");
        Err(SyncError::Protocol(format!("{what} failed")))
    })
}

/// A token bucket: `rate` tokens per second, at most `burst` saved.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: tokio::time::Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            at: tokio::time::Instant::now(),
        }
    }

    /// Waits until a token is available and takes it.
    pub(crate) async fn take(&mut self) {
        let now = tokio::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.at = tokio::time::Instant::now();
        }
        self.tokens -= 1.0;
    }
}

/// Converts a vault device id into an iroh endpoint id.
pub(crate) fn endpoint_id(device: vault_core::DeviceId) -> iroh::EndpointId {
    iroh::PublicKey::from_bytes(device.as_bytes()).expect("device ids are valid ed25519 keys")
}

/// Converts an iroh endpoint id into a vault device id.
pub(crate) fn device_id(id: iroh::EndpointId) -> Option<vault_core::DeviceId> {
    vault_core::DeviceId::from_bytes(*id.as_bytes()).ok()
}
