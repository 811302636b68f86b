//! The signing labels that are no statement kind's own: every kind names its versioned
//! domain-separation label in its file (`Statement::LABEL`), so that a signature made for one
//! kind never verifies as another (a test checks they are distinct). The signed
//! message is the label, one zero byte, then the body (`identity`). A label is never reused
//! nor changed: statements already signed under it must keep verifying.

/// A device certificate ([`crate::DeviceCertificate`]): its own fixed binary form.
pub(crate) const DEVICE_CERTIFICATE: &[u8] = b"vault/v1/device-cert";

/// Prefix of the label a device signs a statement under (this prefix, then the kind's label),
/// so that a device signature can never stand for the identity's own signature nor for another
/// use of the device key (see `signer`).
pub(crate) const BY_DEVICE: &[u8] = b"vault/v1/by-device/";
