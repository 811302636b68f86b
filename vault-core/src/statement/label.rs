//! The signing labels, in one place: one versioned domain-separation label per kind of signed
//! statement, so that a signature made for one kind never verifies as another. The signed
//! message is the label, one zero byte, then the body (`identity`). A label is never reused
//! nor changed: statements already signed under it must keep verifying.

/// A grant ([`crate::Grant`]).
pub(crate) const GRANT: &[u8] = b"vault/v1/grant";
/// A revocation ([`crate::Revocation`]).
pub(crate) const REVOCATION: &[u8] = b"vault/v1/revocation";
/// An erasure receipt ([`crate::ErasureReceipt`]).
pub(crate) const ERASURE_RECEIPT: &[u8] = b"vault/v1/erasure-receipt";
/// A consent request ([`crate::ConsentRequest`]).
pub(crate) const CONSENT_REQUEST: &[u8] = b"vault/v1/consent-request";
/// A denial ([`crate::Denial`]).
pub(crate) const DENIAL: &[u8] = b"vault/v1/denial";
/// A breach notice ([`crate::BreachNotice`]).
pub(crate) const BREACH_NOTICE: &[u8] = b"vault/v1/breach-notice";
/// A device roster ([`crate::DeviceRoster`]).
pub(crate) const DEVICE_ROSTER: &[u8] = b"vault/v1/device-roster";
/// A key event ([`crate::KeyEvent`]): its own fixed binary form, not a JSON body.
pub(crate) const KEY_EVENT: &[u8] = b"vault/v1/key-event";
/// A device certificate ([`crate::DeviceCertificate`]): its own fixed binary form.
pub(crate) const DEVICE_CERTIFICATE: &[u8] = b"vault/v1/device-cert";

/// Prefix of the label a device signs a statement under (this prefix, then the kind's label),
/// so that a device signature can never stand for the identity's own signature nor for another
/// use of the device key (see `signer`).
pub(crate) const BY_DEVICE: &[u8] = b"vault/v1/by-device/";
