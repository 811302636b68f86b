//! What can go wrong on the network side.

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
    /// A session's peer did not answer what the session sent it (its share list, or the
    /// acknowledgement of a request or notice: `owed`).
    #[error("the peer did not answer what it was sent")]
    NoAnswer {
        /// Whether a request or notice it was sent went unacknowledged.
        owed: bool,
    },
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
    pub(crate) fn io(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        SyncError::Io(Box::new(e))
    }
}
