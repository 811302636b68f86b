//! Who signs this vault's statements.
//!
//! The device that holds the identity key signs with it. A device linked later never receives
//! that key (see `pairing`): it signs with its own device key and attaches the identity's
//! certificate for that device, so a verifier checks two signatures, the identity's over the
//! device and the device's over the statement, and then asks whether that device was removed
//! (see `roster`). Removing a device therefore withdraws everything it could sign from then on,
//! without changing the identity anyone knows the customer by.

use crate::identity::{DeviceCertificate, DeviceKey, Identity, IdentityId};

/// Prefix of the label a device signs a statement under, so that a device signature can never
/// stand for the identity's own signature nor for another use of the device key.
const BY_DEVICE: &[u8] = b"vault/v1/by-device/";

/// A key that can sign statements for an identity.
#[derive(Clone, Copy)]
pub enum Signer<'a> {
    /// The identity key itself.
    Identity(&'a Identity),
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
            Signer::Device { certificate, .. } => certificate.identity(),
        }
    }

    /// Signs `body` under `label`; a device signature comes with the certificate to attach.
    pub(crate) fn sign(&self, label: &[u8], body: &[u8]) -> ([u8; 64], Option<DeviceCertificate>) {
        match self {
            Signer::Identity(i) => (i.sign(label, body), None),
            Signer::Device { key, certificate } => {
                (key.sign(&device_label(label), body), Some(**certificate))
            }
        }
    }
}

fn device_label(label: &[u8]) -> Vec<u8> {
    [BY_DEVICE, label].concat()
}

/// Checks a statement's signature: by `author` itself, or by a device `by` certifies for
/// `author`. Says nothing about whether that device was removed since.
pub(crate) fn verify(
    author: &IdentityId,
    label: &[u8],
    body: &[u8],
    signature: &[u8; 64],
    by: Option<&DeviceCertificate>,
) -> bool {
    match by {
        None => author.verify(label, body, signature),
        Some(cert) => {
            cert.identity() == *author
                && cert.verify(cert.device()).is_ok()
                && cert.device().verify(&device_label(label), body, signature)
        }
    }
}
