//! The seller's database mirror: what customers granted this vault, kept live in the seller's
//! own PostgreSQL, so that its order system, CRM and support tools read a database instead of
//! an export that vault cannot see.
//!
//! The promise it keeps: when a grant ends, the values are deleted from PostgreSQL in one
//! committed transaction *before* this vault signs the erasure receipt (vault-core holds the
//! receipt back while a mirror is attached). If the database cannot be reached, nothing is
//! signed: the share shows "erasure pending" and the mirror retries.
//!
//! - url.rs: the connection string, its password never shown;
//! - tls.rs: TLS to the database (`sslmode`, `sslrootcert`);
//! - schema.rs: the tables, created, migrated and checked;
//! - db.rs: the statements that write shares (db/nodes.rs: those several nodes of one seller
//!   need: heartbeats, customers to take over, erasures of consents never held, expiry);
//! - worker.rs: the loop beside the node.

mod db;
mod schema;
mod tls;
mod url;
mod worker;

pub use schema::{NAMESPACE, SCHEMA_VERSION};
pub use url::{MirrorUrl, redact};
pub use worker::{Mirror, check, detach, node, owner, recorded_consents};

/// What went wrong with the mirror. Messages name the problem and where (user, host, port,
/// database), never a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The connection string does not parse.
    #[error("the mirror's address cannot be used: {0}")]
    BadUrl(String),
    /// The server cannot be reached.
    #[error("mirror unreachable: cannot reach PostgreSQL at {target}: {why}")]
    Unreachable {
        /// user@host:port/database
        target: String,
        /// Why, as the system said it.
        why: String,
    },
    /// TLS failed: the server's certificate did not check out, the CA file is unreadable, or
    /// the server offers no TLS where the connection string requires it.
    #[error("the mirror's database at {target} failed TLS: {why}")]
    Tls {
        /// user@host:port/database
        target: String,
        /// What failed.
        why: String,
    },
    /// The server refused the user or password.
    #[error("the mirror's database refused the credentials of user {user} at {target}")]
    Credentials {
        /// The user.
        user: String,
        /// user@host:port/database
        target: String,
    },
    /// The database named does not exist.
    #[error("the mirror's database does not exist: {target}")]
    NoDatabase {
        /// user@host:port/database
        target: String,
    },
    /// The tables are not as vault made them.
    #[error(
        "the mirror's tables were changed by hand ({0}); vault will not write into them: restore them or point the mirror at another database"
    )]
    ChangedByHand(String),
    /// The tables belong to another vault.
    #[error("the mirror's tables belong to another vault ({0}); give each vault its own database")]
    OtherOwner(String),
    /// A newer vault migrated the tables.
    #[error(
        "the mirror's tables are at schema version {0}, newer than this vault understands ({SCHEMA_VERSION})"
    )]
    NewerSchema(i64),
    /// This device's node writes to these tables now (this vault running twice). Other
    /// devices of the same identity may write beside it, each its own node.
    #[error("this vault's node is already writing to this mirror ({target}); one node per device")]
    Busy {
        /// user@host:port/database
        target: String,
    },
    /// A node of a vault version from before several nodes could share a database writes to
    /// these tables now.
    #[error(
        "a node of an older vault version is writing to this mirror ({target}); upgrade it (or stop it) first"
    )]
    OlderNode {
        /// user@host:port/database
        target: String,
    },
    /// `vault mirror off` emptied and detached these tables.
    #[error("the mirror was detached (`vault mirror off`); `vault mirror set` attaches it again")]
    Detached,
    /// The server said no to a statement.
    #[error("the mirror's database failed: {0}")]
    Database(String),
    /// The server refused one consent's data: a value it cannot hold, a constraint, a limit.
    /// Only that consent fails (its row names the problem); the others are written.
    #[error("the mirror's database refused a consent's values: {text}")]
    Refused {
        /// The server's message.
        text: String,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] vault_core::StoreError),
}

impl MirrorError {
    fn connecting(url: &MirrorUrl, e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        match e.code() {
            Some(c)
                if *c == SqlState::INVALID_PASSWORD
                    || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                MirrorError::Credentials { user: url.user().to_owned(), target: url.target() }
            }
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
                MirrorError::NoDatabase { target: url.target() }
            }
            Some(_) => MirrorError::Database(url.scrub(&describe_pg(&e))),
            None if url.tls().mode != tls::SslMode::Disable && tls::tls_failure(&e).is_some() => {
                let why = tls::tls_failure(&e).unwrap_or_default();
                MirrorError::Tls { target: url.target(), why: url.scrub(&why) }
            }
            None => MirrorError::Unreachable { target: url.target(), why: url.scrub(&describe_pg(&e)) },
        }
    }

    /// The same error with anything that could be the password scrubbed from its text.
    pub(crate) fn scrubbed(self, url: &MirrorUrl) -> Self {
        match self {
            MirrorError::Unreachable { target, why } => {
                MirrorError::Unreachable { target, why: url.scrub(&why) }
            }
            MirrorError::Database(text) => MirrorError::Database(url.scrub(&text)),
            MirrorError::Refused { text } => MirrorError::Refused { text: url.scrub(&text) },
            MirrorError::ChangedByHand(text) => MirrorError::ChangedByHand(url.scrub(&text)),
            other => other,
        }
    }

    /// True when trying again later may help (the server is down or busy), false when a person
    /// has to change something first.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            MirrorError::Unreachable { .. }
                | MirrorError::Database(_)
                | MirrorError::Refused { .. }
                | MirrorError::Busy { .. }
                | MirrorError::OlderNode { .. }
        )
    }
}

impl From<tokio_postgres::Error> for MirrorError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.is_closed() || e.as_db_error().is_none() && e.code().is_none() {
            return MirrorError::Unreachable { target: "the mirror's database".into(), why: describe_pg(&e) };
        }
        // Class 22 (data exception), 23 (integrity constraint), 54 (program limit): about the
        // data written, not the connection or the server.
        let class = e.code().map(|c| &c.code()[..2]);
        if matches!(class, Some("22" | "23" | "54")) {
            return MirrorError::Refused { text: describe_pg(&e) };
        }
        MirrorError::Database(describe_pg(&e))
    }
}

/// A PostgreSQL error in one line: the server's message (which never holds the connection
/// string), or the client's with its causes.
pub(crate) fn describe_pg(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
