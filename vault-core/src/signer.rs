//! Who signs this vault's statements.
//!
//! The device that holds the identity key signs with it. A device linked later never receives
//! that key (see `pairing`): it signs with its own device key and attaches the identity's
//! certificate for that device, so a verifier checks two signatures, the identity's over the
//! device and the device's over the statement, and then asks whether that device was removed
//! (see `roster`). Removing a device therefore withdraws everything it could sign from then on,
//! without changing the identity anyone knows the customer by.
//!
//! After the identity key rotated (see `key_event`), the device that holds the current key signs
//! with it, and the signed form names that key ([`By::Key`]), since it is no longer the identity
//! id. Whether a key or a device may sign for an identity *at the statement's time* is decided
//! in one place, [`allowed`], from the identity's key state the verifying vault holds: the
//! signature checks here are stateless (they run where frames are decoded), the key-state check
//! runs where a statement is accepted (`Vault::refused_signer`).

use crate::identity::{DeviceCertificate, DeviceKey, Identity, IdentityId};
use crate::statement::key_event::KeyLog;
use crate::statement::label::BY_DEVICE;

/// A key that can sign statements for an identity.
#[derive(Clone, Copy)]
pub enum Signer<'a> {
    /// The identity key itself (the inception key, never rotated).
    Identity(&'a Identity),
    /// The identity's current key after a rotation: not the identity id, so the signed form
    /// names it.
    Rotated {
        /// The current key.
        key: &'a Identity,
        /// The identity it signs for (its inception key).
        identity: IdentityId,
    },
    /// A device of the identity, with the identity's certificate for it.
    Device {
        /// The device's key.
        key: &'a DeviceKey,
        /// The identity's certificate for `key`.
        certificate: &'a DeviceCertificate,
    },
}

impl std::fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Identity(i) => write!(f, "Signer::Identity({})", i.public()),
            Signer::Rotated { key, identity } => write!(f, "Signer::Rotated({identity}, {})", key.public()),
            Signer::Device { certificate, .. } => write!(f, "Signer::Device({})", certificate.device()),
        }
    }
}

impl<'a> From<&'a Identity> for Signer<'a> {
    fn from(identity: &'a Identity) -> Self {
        Signer::Identity(identity)
    }
}

impl Signer<'_> {
    /// The identity signed for.
    pub fn identity(&self) -> IdentityId {
        match self {
            Signer::Identity(i) => i.public(),
            Signer::Rotated { identity, .. } => *identity,
            Signer::Device { certificate, .. } => certificate.identity(),
        }
    }

    /// Signs `body` under `label`; says what signed, to attach.
    pub(crate) fn sign(&self, label: &[u8], body: &[u8]) -> ([u8; 64], By) {
        match self {
            Signer::Identity(i) => (i.sign(label, body), By::Identity),
            Signer::Rotated { key, .. } => (key.sign(label, body), By::Key(key.public())),
            Signer::Device { key, certificate } => {
                (key.sign(&device_label(label), body), By::Device(Box::new(**certificate)))
            }
        }
    }
}

/// What signed a statement, as its signed form says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum By {
    /// The identity id's own key (the inception key).
    Identity,
    /// A key of the identity's key state other than the inception key.
    Key(IdentityId),
    /// A device, with the identity's certificate for it (made by the inception key: certificates
    /// name no key, see docs/devices.md).
    Device(Box<DeviceCertificate>),
}

fn device_label(label: &[u8]) -> Vec<u8> {
    [BY_DEVICE, label].concat()
}

/// Checks a statement's signature: by `author` itself, by the key `by` names, or by a device `by`
/// certifies for `author`. Says nothing about whether that key may sign for `author` (that is
/// [`allowed`]), nor whether that device was removed since.
pub(crate) fn verify(author: &IdentityId, label: &[u8], body: &[u8], signature: &[u8; 64], by: &By) -> bool {
    match by {
        By::Identity => author.verify(label, body, signature),
        // A key that is the identity id goes as `By::Identity`: one signed form per signer.
        By::Key(key) => key != author && key.verify(label, body, signature),
        By::Device(cert) => {
            cert.identity() == *author
                && cert.verify(cert.device()).is_ok()
                && cert.device().verify(&device_label(label), body, signature)
        }
    }
}

/// The key-state rule, in one place: may what signed (`by`) sign for `author` something dated
/// `at`, by `log`, the key state the verifying vault holds for `author`? A key only for times
/// before the rotation that replaced it ([`KeyLog::allows`]). A device's certificate is made by
/// the inception key; once that key was rotated away, a device is taken only when
/// `device_vouched`: the identity's newest roster, signed after the rotation by a key it allows,
/// lists it active (the rotation re-signs the roster, so the customer's own devices stay, and a
/// device a thief certified with the old key is in no such roster).
pub(crate) fn allowed(by: &By, author: &IdentityId, at: i64, log: &KeyLog, device_vouched: bool) -> bool {
    match by {
        By::Identity => log.allows(author, author, at),
        By::Key(key) => log.allows(author, key, at),
        By::Device(_) => log.rotated_at().is_none() || device_vouched,
    }
}
