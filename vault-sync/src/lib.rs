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
//! [`vault_core::ServeStream`], [`vault_core::GranteeSession`], [`vault_core::ShareStream`],
//! and [`vault_core::DeviceSession`] between the devices of one identity, ALPN
//! `vault/device/1`) decide what to send; who is let in and who is dialed is decided there too
//! ([`vault_core::admit_peer`], [`vault_core::admit_device`], [`vault_core::dial_candidates`],
//! [`vault_core::wanted_peers`]). This crate accepts and dials, reads frames (framed and bounded
//! as [`vault_core::framing`] says), feeds them in, writes what the machines return and runs
//! their timers.
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
mod error;
mod frame;
mod keep;
mod limits;
mod market;
#[cfg(test)]
mod market_tests;
mod node;
mod notify;
mod pairing;
mod peers;
mod placement;
mod reach;
mod served;
mod topics;

pub use client::sync_once;
pub use endpoint::{NodeConfig, on_relays_unreachable};
pub use error::SyncError;
pub use frame::ReadFrameError;
pub use limits::{HANDSHAKE_TIMEOUT, MAX_CONCURRENT_STREAMS, MAX_STREAMS_PER_CONNECTION, POLL_INTERVAL};
pub use market::market_call;
pub use node::{Node, VaultHandle};
pub use pairing::{Invitation, Joining, PairError, join};
pub use reach::PeerReach;
pub use topics::topic_call;
pub use vault_core::framing::{HANDSHAKE_BYTE_BUDGET, ISSUER_BYTE_BUDGET, NODE_BYTE_BUDGET};
pub use vault_core::{
    DEVICE_ALPN, MAX_REQUESTS_PER_MINUTE, MAX_SHARES_PER_ISSUER, REFUSAL_LOG_INTERVAL, SYNC_BURST,
    SYNC_MESSAGES_PER_SECOND, SyncReport,
};
