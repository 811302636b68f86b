//! vault-sync carries the vault's sharing protocol ([`vault_core::Frame`]) over iroh.
//!
//! A [`Node`] runs one iroh endpoint under the vault's device key with ALPN `vault/sync/1`.
//! It serves the grants this vault issued to the peers that dial it, keeps the sessions open,
//! and pushes changes made by any process on the vault file within [`NodeConfig::poll`] (default
//! [`POLL_INTERVAL`]). It also
//! keeps live sessions to the issuers of the shares this vault received, reconnecting with
//! exponential backoff. [`sync_once`] dials one peer, exchanges everything and returns.
//!
//! The protocol logic lives in vault-core: its session machines ([`vault_core::IssuerSession`],
//! [`vault_core::ServeStream`], [`vault_core::GranteeSession`], [`vault_core::ShareStream`])
//! decide what to send; this crate reads frames, feeds them in, writes what they return and
//! runs their timers.
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
//! - at most [`ISSUER_BYTE_BUDGET`] bytes of one issuer's frames held at once, at most
//!   [`NODE_BYTE_BUDGET`] bytes of frames in flight over the whole node, and at most
//!   [`HANDSHAKE_BYTE_BUDGET`] bytes of hellos from peers not yet authenticated;
//! - the peer must complete its hello within [`HANDSHAKE_TIMEOUT`].
//!
//! A peer that breaks a limit or sends a malformed frame loses that connection only; the node
//! keeps serving everyone else.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod devices;
mod endpoint;
mod frame;
mod node;
mod notify;
mod pairing;
mod peers;
mod served;

use std::time::Duration;

pub use client::sync_once;
pub use endpoint::NodeConfig;
pub use frame::ReadFrameError;
pub use node::{Node, VaultHandle};
pub use pairing::{Invitation, PairError, join};
pub use vault_core::framing::{HANDSHAKE_BYTE_BUDGET, ISSUER_BYTE_BUDGET, NODE_BYTE_BUDGET};
pub use vault_core::{
    DEVICE_ALPN, MAX_REQUESTS_PER_MINUTE, MAX_SHARES_PER_ISSUER, REFUSAL_LOG_INTERVAL, SYNC_BURST,
    SYNC_MESSAGES_PER_SECOND, SyncReport,
};

/// How often a node checks the vault file for changes made by other processes, by default
/// (reading SQLite's `data_version` costs a few microseconds).
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Streams a peer may have open at once on one connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 64;
/// Streams a peer may open over one connection's life.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 4096;
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
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer's certificate does not verify for the device that connected.
    #[error("the peer's certificate does not verify")]
    Certificate(#[source] vault_core::CertificateError),
    /// The peer is not who the ticket says.
    #[error("the peer's certificate does not match its ticket")]
    WrongPeer,
    /// The peer's device was removed from its identity (its identity key said so).
    #[error("the peer's device was removed from its identity")]
    RemovedDevice,
    /// A stream failed.
    #[error("connection lost")]
    Io(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The peer did not answer in time.
    #[error("the peer did not answer in time")]
    Timeout,
    /// This vault refused to serve the peer.
    #[error("refused to serve the peer")]
    Serve(#[from] vault_core::ServeError),
    /// A session step failed (the peer broke the protocol, or the vault failed under it).
    #[error("the session failed")]
    Session(#[from] vault_core::SessionError),
    /// The vault's storage failed.
    #[error("the vault's storage failed")]
    Store(#[from] vault_core::StoreError),
    /// Issued grants or their projections could not be updated.
    #[error("the grants issued could not be updated")]
    Grant(#[from] vault_core::GrantError),
    /// The vault could not catch up with changes made by other processes.
    #[error("the vault could not catch up with other processes")]
    Edit(#[from] vault_core::EditError),
}

impl SyncError {
    fn io(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        SyncError::Io(Box::new(e))
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
