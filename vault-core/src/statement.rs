//! Signed statements: what one vault signs and another verifies. Each kind has one file in this
//! folder; this module holds what they share: the [`Statement`] trait, [`Signed`] (signing,
//! verification, the wire form), the labels that are no kind's own (`label`), the ids that name statements
//! (`ids`), the rules a statement can break (`rules`) and the JSON form of a signed statement
//! (`json`).
//!
//! A statement is serialized once to JSON (its *body*) and signed by its author's identity
//! under a versioned domain-separation label. The signature covers the exact body bytes, which
//! travel and are stored as they are; verification parses the body, checks the author's
//! signature strictly (`verify_strict`: no malleable signatures, no small-order keys) and the
//! statement's own rules. A statement that does not check out is refused wherever it arrives.
//!
//! The kinds: [`Grant`](grant), [`Revocation`](revocation),
//! [`ErasureReceipt`](erasure_receipt), [`ConsentRequest`](consent_request), [`Denial`](denial),
//! [`BreachNotice`](breach_notice), [`DeviceRoster`](device_roster), [`Offer`](offer),
//! [`Acceptance`](acceptance), all JSON bodies signed
//! through [`Signed`]; and two with a fixed binary form of their own: the key events of an
//! identity's key state ([`key_event`]) and the device certificate (in `identity`, next to the
//! tickets that carry it). An intention (`intent.rs`) is signed by a pseudonym, not by an
//! identity or its device, so it is not a [`Signed`] statement: it has a domain tag and a form
//! of its own, and a fuzz target like the kinds here.
//!
//! # Adding a kind
//!
//! The tests in `checklist` fail until the steps they can see are done; the others are on you.
//!
//! 1. A file here, `statement/<kind>.rs`: the type, `impl Statement` with its label
//!    (`vault/v1/<kind>`, never reused; the tests check labels are distinct), its author, time
//!    and rules, unit tests of the rules and a round trip. Below, in this file: its
//!    `pub(crate) mod <kind>;`, its public names (`pub use`; the crate root re-exports this
//!    module whole) and its line in `KINDS`.
//! 2. Its JSON form: [`Signed::to_json`] (the body under the kind's name, the signature in hex)
//!    is what the CLI prints and a mirror keeps; add nothing hand-built.
//! 3. The frame that carries it (`protocol.rs`): a type code, a sample in `protocol/tests.rs`,
//!    and its known-answer line in `tests/fixtures/frames-v1.txt`. `checklist` checks that every
//!    frame code has a line and that every kind travels in one of them; `Frame::statements_carried`
//!    (in `protocol.rs`) says which kinds a frame carries (a new frame does not compile until it
//!    is listed there).
//! 4. A fuzz target `fuzz/fuzz_targets/<kind>.rs` (the statement harness,
//!    `vault_fuzz::statement::<Kind>`), its `[[bin]]` in `fuzz/Cargo.toml`, a seed corpus
//!    `fuzz/corpus/<kind>/` (`examples/fuzz_seeds.rs`) and a row in `fuzz/README.md`.
//! 5. The verify path where it arrives: decoded (and so verified) in the frame decoder, then the
//!    signer checked against the author's key state and removed devices
//!    (`Keys::refused_signer`) before it is kept.
//! 6. Docs: the protocol's frame list (`protocol.rs`), the CLI's JSON schema in
//!    `schemas/cli/` when a command shows it.

mod ids;
mod json;
pub(crate) mod label;
mod rules;

pub(crate) mod acceptance;
pub(crate) mod breach_notice;
pub(crate) mod consent_request;
pub(crate) mod denial;
pub(crate) mod device_roster;
pub(crate) mod erasure_receipt;
pub(crate) mod grant;
pub(crate) mod key_event;
pub(crate) mod offer;
pub(crate) mod revocation;

#[cfg(test)]
mod checklist;

/// Every kind of signed statement: a new kind is added here, beside its `mod` line (the
/// checklist's tests walk this list: statement/checklist.rs).
#[cfg(test)]
const KINDS: &[checklist::Kind] = &[
    checklist::Kind {
        name: "grant",
        ty: "Grant",
        label: <grant::Grant as Statement>::LABEL,
        home: "statement/grant.rs",
    },
    checklist::Kind {
        name: "revocation",
        ty: "Revocation",
        label: <revocation::Revocation as Statement>::LABEL,
        home: "statement/revocation.rs",
    },
    checklist::Kind {
        name: "erasure_receipt",
        ty: "ErasureReceipt",
        label: <erasure_receipt::ErasureReceipt as Statement>::LABEL,
        home: "statement/erasure_receipt.rs",
    },
    checklist::Kind {
        name: "consent_request",
        ty: "ConsentRequest",
        label: <consent_request::ConsentRequest as Statement>::LABEL,
        home: "statement/consent_request.rs",
    },
    checklist::Kind {
        name: "denial",
        ty: "Denial",
        label: <denial::Denial as Statement>::LABEL,
        home: "statement/denial.rs",
    },
    checklist::Kind {
        name: "breach_notice",
        ty: "BreachNotice",
        label: <breach_notice::BreachNotice as Statement>::LABEL,
        home: "statement/breach_notice.rs",
    },
    checklist::Kind {
        name: "device_roster",
        ty: "DeviceRoster",
        label: <device_roster::DeviceRoster as Statement>::LABEL,
        home: "statement/device_roster.rs",
    },
    checklist::Kind {
        name: "key_event",
        ty: "KeyEvent",
        label: key_event::LABEL,
        home: "statement/key_event.rs",
    },
    checklist::Kind {
        name: "offer",
        ty: "Offer",
        label: <offer::Offer as Statement>::LABEL,
        home: "statement/offer.rs",
    },
    checklist::Kind {
        name: "acceptance",
        ty: "Acceptance",
        label: <acceptance::Acceptance as Statement>::LABEL,
        home: "statement/acceptance.rs",
    },
    // With the identities and the tickets that carry it: it names both, and tickets name it.
    checklist::Kind {
        name: "device_certificate",
        ty: "DeviceCertificate",
        label: label::DEVICE_CERTIFICATE,
        home: "identity.rs",
    },
];

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::identity::{DeviceCertificate, DeviceId, IdentityId};
use crate::signer::{self, By, Signer};

pub use ids::{GrantId, NoticeId, OfferId, RequestId};
pub(crate) use rules::check_single_line;
pub use rules::{Rule, StatementError, is_steering_char};

// Each kind's public face (re-exported whole by the crate root).
pub use acceptance::{Acceptance, digest_of};
pub use breach_notice::{BreachNotice, MAX_NOTICE_GRANTS, MAX_NOTICE_TEXT};
pub use consent_request::{
    ConsentRequest, MAX_REQUEST_DURATION, MAX_REQUESTER_NAME, WiderThanAsked, check_requester_name,
};
pub use denial::{Denial, MAX_REASON_LEN};
pub use device_roster::{DeviceRoster, MAX_ROSTER_ADDRS, MAX_ROSTER_DEVICES, RemovedDevice, RosterDevice};
pub use erasure_receipt::ErasureReceipt;
pub use grant::{Grant, SignedGrant};
pub use key_event::{
    KEY_EVENT_LEN, KeyEvent, KeyEventError, KeyLog, MAX_KEY_EVENTS, decode_events, next_key_digest,
};
pub use offer::{MAX_OFFER_TERMS, Offer};
pub use revocation::Revocation;

/// Largest statement body, in bytes.
const MAX_BODY_LEN: usize = 16 * 1024;

/// A kind of signed statement.
pub trait Statement: Serialize + DeserializeOwned + Clone {
    /// Domain-separation label, versioned.
    const LABEL: &'static [u8];
    /// Name used in messages.
    const KIND: &'static str;
    /// Whose signature the statement must carry.
    fn author(&self) -> IdentityId;
    /// When its author made it (unix seconds): the time the key-state rule judges the signing
    /// key by (see `key_event`).
    fn made_at(&self) -> i64;
    /// The statement's own rules, checked on signing and on verification.
    fn check(&self) -> Result<(), Rule>;
}

/// A stored or received statement's parts: body, signature, and what follows it (nothing, the
/// signing key, or the signing device's certificate).
type Parts<'a> = (&'a [u8], [u8; 64], &'a [u8]);

/// A statement with its author's signature over its exact body bytes: the identity's own, or one
/// of its devices' with the identity's certificate for that device (see `signer`).
#[derive(Clone, PartialEq, Eq)]
pub struct Signed<T> {
    body: Vec<u8>,
    signature: [u8; 64],
    by: By,
    statement: T,
}

impl<T: Statement + fmt::Debug> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Signed").field(&self.statement).finish()
    }
}

impl<T: Statement> Signed<T> {
    /// Signs `statement` as its author: with the identity key, or with a device of it.
    pub fn sign<'a>(statement: T, signer: impl Into<Signer<'a>>) -> Result<Self, StatementError> {
        let signer = signer.into();
        if statement.author() != signer.identity() {
            return Err(StatementError::WrongSigner(T::KIND));
        }
        statement.check().map_err(|rule| StatementError::Invalid { kind: T::KIND, rule })?;
        let body = serde_json::to_vec(&statement).map_err(|_| StatementError::Malformed(T::KIND))?;
        let (signature, by) = signer.sign(T::LABEL, &body);
        Ok(Self { body, signature, by, statement })
    }

    /// Verifies a body and the author's own signature, received from anywhere.
    pub fn verify(body: &[u8], signature: &[u8; 64]) -> Result<Self, StatementError> {
        Self::verify_by(body, signature, By::Identity)
    }

    /// Verifies a body and a signature by what `by` says signed: its author's own key, another
    /// key (of its key state, which the accepting vault checks), or a device `by` certifies for
    /// its author.
    pub fn verify_by(body: &[u8], signature: &[u8; 64], by: By) -> Result<Self, StatementError> {
        if body.len() > MAX_BODY_LEN {
            return Err(StatementError::Malformed(T::KIND));
        }
        let statement: T = serde_json::from_slice(body).map_err(|_| StatementError::Malformed(T::KIND))?;
        if !signer::verify(&statement.author(), T::LABEL, body, signature, &by) {
            return Err(StatementError::BadSignature(T::KIND));
        }
        statement.check().map_err(|rule| StatementError::Invalid { kind: T::KIND, rule })?;
        Ok(Self { body: body.to_vec(), signature: *signature, by, statement })
    }

    /// The device that signed, when it was not an identity key. Whoever accepts the
    /// statement checks that this device was not removed.
    pub fn signed_by(&self) -> Option<DeviceId> {
        match &self.by {
            By::Device(cert) => Some(cert.device()),
            _ => None,
        }
    }

    /// What signed it: the identity's own key, a rotated key of it, or a device.
    pub fn by(&self) -> &By {
        &self.by
    }

    /// The statement.
    pub fn statement(&self) -> &T {
        &self.statement
    }

    /// The exact signed bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Self-delimiting encoding for storage and the wire: body length (u32 BE), body, signature,
    /// then what signed when it was not the identity id's own key: the signing key (32 bytes)
    /// after a rotation, or the signing device's certificate (128 bytes). A statement signed by
    /// the identity id's key encodes exactly as before rotations existed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.body.len() + 64 + 128);
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.signature);
        match &self.by {
            By::Identity => {}
            By::Key(key) => out.extend_from_slice(key.as_bytes()),
            By::Device(cert) => out.extend_from_slice(&cert.to_bytes()),
        }
        out
    }

    /// Splits the encoding of [`Signed::to_bytes`] into body, signature and certificate bytes.
    fn split(bytes: &[u8]) -> Option<Parts<'_>> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        if len > MAX_BODY_LEN {
            return None;
        }
        let rest = bytes.get(4..)?;
        match rest.len().checked_sub(len + 64)? {
            0 | 32 | 128 => {}
            _ => return None,
        }
        Some((&rest[..len], rest[len..len + 64].try_into().ok()?, &rest[len + 64..]))
    }

    /// Reads what follows the signature (see [`Signed::to_bytes`]).
    fn read_by(bytes: &[u8]) -> Option<By> {
        Some(match bytes.len() {
            0 => By::Identity,
            32 => By::Key(IdentityId::from_bytes(bytes.try_into().ok()?).ok()?),
            128 => By::Device(Box::new(DeviceCertificate::from_bytes(bytes).ok()?)),
            _ => return None,
        })
    }

    /// Reads the encoding of [`Signed::to_bytes`] *without* verifying the signature. Only for
    /// statements this vault verified before storing them, read back from sealed storage.
    pub(crate) fn from_stored(bytes: &[u8]) -> Option<Self> {
        let (body, signature, by) = Self::split(bytes)?;
        let by = Self::read_by(by)?;
        let statement: T = serde_json::from_slice(body).ok()?;
        Some(Self { body: body.to_vec(), signature, by, statement })
    }

    /// Reads and verifies the encoding of [`Signed::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StatementError> {
        let malformed = || StatementError::Malformed(T::KIND);
        let (body, signature, by) = Self::split(bytes).ok_or_else(malformed)?;
        let by = Self::read_by(by).ok_or_else(malformed)?;
        Self::verify_by(body, &signature, by)
    }
}
