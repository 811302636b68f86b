//! The core of vault, a local-first personal data vault: the document model, its schemas,
//! identities, encryption at rest and storage. No I/O runtime: everything here is synchronous
//! and testable without sockets.
//!
//! A vault is a directory holding one SQLite file. Every user value lives in one Automerge
//! document (`profile`, `purchases`, `preferences`), stored only as XChaCha20-Poly1305
//! ciphertext under a random data key, itself wrapped by a key derived from the passphrase with
//! Argon2id.
//!
//! ```
//! use vault_core::{KdfParams, Passphrase, Price, PurchaseRecord, Vault};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let passphrase = Passphrase::new("correct horse battery staple");
//! let mut vault = Vault::at(dir.path())
//!     .kdf(KdfParams::INSECURE_FOR_TESTS) // use the default outside tests
//!     .create(&passphrase)?;
//! vault.set_profile("email", "ada@example.org")?;
//! let id = vault.add_purchase(&PurchaseRecord {
//!     item: "Tea".into(),
//!     seller: "Acme".into(),
//!     price: Price::parse("4.50", "EUR")?,
//!     date: "2026-11-01".into(),
//!     category: None,
//!     tags: vec!["food".into()],
//!     rating: Some(5),
//!     review: None,
//! })?;
//! // A value that does not fit the schema is refused and nothing is written.
//! assert!(vault.set_profile("email", "not an address").is_err());
//! drop(vault);
//!
//! let vault = Vault::at(dir.path()).unlock(&passphrase)?;
//! assert_eq!(vault.purchase(&id).unwrap().record.item, "Tea");
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod derive;
mod doc;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod grant;
mod identity;
mod key_event;
mod money;
mod notice;
mod pairing;
mod path;
mod primitives;
mod projection;
mod protocol;
mod receipt;
mod request;
mod roster;
mod schema;
mod scope;
mod session;
mod signer;
mod statement;
mod store;
mod vault;

pub use derive::{
    Derivation, KNOWN_DERIVATIONS, MAX_AGE, MAX_BAND_BOUND, MAX_BAND_BOUNDS, MAX_BANDS, MAX_DATE_ANSWERS,
    MAX_PREFIX,
};
pub use doc::DocError;
pub use grant::{ErasureReceipt, Grant, Revocation, SignedGrant};
pub use identity::{
    CertificateError, DeviceCertificate, DeviceId, DeviceKey, Identity, IdentityId, KeyParseError, Ticket,
    TicketError,
};
pub use key_event::{
    KEY_EVENT_LEN, KeyEvent, KeyEventError, KeyLog, MAX_KEY_EVENTS, decode_events, next_key_digest,
};
pub use money::{Price, PriceError, minor_digits};
pub use notice::{BreachNotice, MAX_NOTICE_GRANTS, MAX_NOTICE_TEXT};
pub use pairing::{JoinPackage, PAIR_ALPN, PAIRING_LIFETIME_SECS, PairMessage, PairingCode, PairingError};
pub use path::{DerivedField, FieldPath, PathError, RecordFilter};
pub use primitives::{DecryptError, KdfParams, Passphrase};
pub use projection::project;
pub use protocol::device::{DEVICE_ALPN, DeviceFrameError, DeviceMessage};
pub use protocol::{
    ALPN, Ended, Frame, FrameError, MAX_FRAME, MAX_GRANTS_PER_FRAME, decode, decode_sync_body, encode,
    encode_sync_body, encode_with_length, framing,
};
pub use receipt::{ConsentState, ReceiptNames, consent_receipt};
pub use request::{ConsentRequest, Denial, MAX_REASON_LEN, MAX_REQUEST_DURATION, WiderThanAsked};
pub use roster::{DeviceRoster, MAX_ROSTER_ADDRS, MAX_ROSTER_DEVICES, RemovedDevice, RosterDevice};
pub use schema::{DOCUMENT_SCHEMA, SchemaError};
pub use scope::{MAX_FIELDS, MAX_PURPOSE_LEN};
pub use session::{
    AdmissionStore, REFUSAL_LOG_INTERVAL, RefusalLog, Refused, RefusedWhy, admit_device, admit_peer,
};
pub use session::{
    DeviceAction, DeviceSession, DeviceStore, DeviceTurn, GranteeAction, GranteeSession, GranteeStore,
    IssuerAction, IssuerSession, IssuerStore, MAX_REQUESTS_PER_MINUTE, MAX_SHARES_PER_ISSUER, SYNC_BURST,
    SYNC_MESSAGES_PER_SECOND, ServeStep, ServeStream, SessionError, ShareEvent, ShareNext, ShareSet,
    ShareStream, SyncReport, TokenBucket, share_set,
};
pub use session::{DialCandidate, WrongPeer, check_answer, dial_candidates, offer_audiences, wanted_peers};
pub use signer::{By, Signer};
pub use statement::{
    GrantId, NoticeId, RequestId, Rule, Signed, Statement, StatementError, is_steering_char,
};
pub use store::{DB_FILE, StoreError, UnlockKey};
pub use vault::network::{self, ItemSummary, Mute, Mutes, PriceRange, ReviewBy, SellerSummary};
pub use vault::{
    AccessLog, Approval, AuditEvent, AuditFilter, AuditKind, Clock, Contact, ContactError, Contacts,
    CreateError, DeviceError, DeviceRecord, DeviceSync, Devices, EXPORT_FORMAT, EditError, FeedEntry,
    FeedFilter, GrantError, GrantInfo, GrantStatus, Holding, ImportError, ImportMode, Inbox, Logged,
    MAX_DEVICES, MAX_NOTICES_PER_SELLER, MAX_PENDING_PER_PEER, MAX_REQUESTS_PER_PEER_PER_DAY, MAX_ROSTER_AGE,
    MAX_SHARED_BATCH, MAX_SHARED_HAVE, Merged, MirrorEntry, MirrorShare, MirrorStatus, NewGrant, NewRequest,
    NoticeError, NoticeInfo, OpenError, Outbox, Peer, Purchase, PurchaseRecord, RecoveryError, Refusal,
    Rekey, RekeyError, Rekeyed, ReplicationError, RequestError, RequestInfo, RequestStatus, ServeError,
    Share, ShareError, ShareStatus, SharedHave, StorageStats, Vault, VaultOptions, VerifyReport,
};
