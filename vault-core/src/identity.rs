//! Identities, devices, device certificates and tickets.
//!
//! An [`Identity`] is an ed25519 key: the customer, the seller, the friend. Grants name
//! identities. A [`DeviceKey`] runs the network endpoint (its public half is the iroh node id);
//! the identity signs a [`DeviceCertificate`] for it, so that a second device can be added later
//! without changing any grant. A [`Ticket`] is the copy-paste string that carries identity,
//! device certificate and addresses, so that peers can dial each other.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::primitives::random_array;
use crate::statement::label::DEVICE_CERTIFICATE as LABEL_DEVICE_CERT;

/// Prefix of every ticket string; the digit is the ticket format version.
const TICKET_PREFIX: &str = "vault1";
const TICKET_VERSION: u8 = 1;
/// No ticket carries more addresses than this.
const MAX_TICKET_ADDRS: usize = 16;

/// The public key of an identity: how people refer to each other. Prints as lowercase base32.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityId([u8; 32]);

/// The public key of a device: the iroh node id of the endpoint it runs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId([u8; 32]);

macro_rules! public_key_type {
    ($ty:ident, $what:literal) => {
        impl $ty {
            /// The raw 32 public-key bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Wraps raw public-key bytes, checking that they are a valid ed25519 point.
            pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyParseError> {
                VerifyingKey::from_bytes(&bytes).map_err(|_| KeyParseError::NotAKey)?;
                Ok(Self(bytes))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&BASE32_NOPAD.encode(&self.0).to_ascii_lowercase())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($what, "({})"), self)
            }
        }

        impl FromStr for $ty {
            type Err = KeyParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bytes = BASE32_NOPAD
                    .decode(s.trim().to_ascii_uppercase().as_bytes())
                    .map_err(|_| KeyParseError::NotBase32)?;
                let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyParseError::WrongLength)?;
                Self::from_bytes(bytes)
            }
        }
    };
}

public_key_type!(IdentityId, "IdentityId");
public_key_type!(DeviceId, "DeviceId");

/// A public key string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyParseError {
    /// Not base32.
    #[error("not a base32 string")]
    NotBase32,
    /// Not 32 bytes.
    #[error("not 32 bytes long")]
    WrongLength,
    /// Not a point on the curve.
    #[error("not a valid ed25519 public key")]
    NotAKey,
}

/// A signing key with its secret half. Zeroized on drop (ed25519-dalek's `zeroize` feature);
/// Debug shows the public half only.
macro_rules! secret_key_type {
    ($ty:ident, $public:ident) => {
        impl $ty {
            /// A new random key.
            pub fn generate() -> Self {
                let seed = Zeroizing::new(random_array::<32>());
                Self(SigningKey::from_bytes(&seed))
            }

            /// Rebuilds the key from its 32-byte secret seed.
            pub fn from_secret_bytes(seed: &[u8; 32]) -> Self {
                Self(SigningKey::from_bytes(seed))
            }

            /// The 32-byte secret seed (zeroized when dropped). Only for storage and for handing
            /// the key to the transport.
            pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
                Zeroizing::new(self.0.to_bytes())
            }

            /// The public half.
            pub fn public(&self) -> $public {
                $public(self.0.verifying_key().to_bytes())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({}, ..)"), self.public())
            }
        }
    };
}

/// An identity's signing key.
pub struct Identity(SigningKey);
secret_key_type!(Identity, IdentityId);

/// A device's signing key (the iroh node key).
pub struct DeviceKey(SigningKey);
secret_key_type!(DeviceKey, DeviceId);

/// The public half of a pseudonym: an intention's only name (see `intent.rs`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym([u8; 32]);
public_key_type!(Pseudonym, "Pseudonym");

/// A key made for one intention (or one topic) alone: random, derived from nothing, so that
/// nothing links two of them, or one to the identity or a device.
pub struct PseudonymKey(SigningKey);
secret_key_type!(PseudonymKey, Pseudonym);

impl PseudonymKey {
    /// Signs `message` under a domain-separation label.
    pub(crate) fn sign(&self, label: &[u8], message: &[u8]) -> [u8; 64] {
        self.0.sign(&labelled(label, message)).to_bytes()
    }
}

impl Pseudonym {
    /// Verifies a signature made by [`PseudonymKey::sign`], strictly.
    pub(crate) fn verify(&self, label: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
        verify_labelled(&self.0, label, message, signature)
    }
}

/// `label`, a zero byte, `message`: what a key signs, so that no signature made for one purpose
/// verifies for another.
fn labelled(label: &[u8], message: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(label.len() + 1 + message.len());
    bytes.extend_from_slice(label);
    bytes.push(0);
    bytes.extend_from_slice(message);
    bytes
}

/// Verifies a signature over [`labelled`] bytes strictly (no malleable signatures, no
/// small-order keys).
fn verify_labelled(key: &[u8; 32], label: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(key)
        .is_ok_and(|k| k.verify_strict(&labelled(label, message), &Signature::from_bytes(signature)).is_ok())
}

impl DeviceKey {
    /// Signs `message` under a domain-separation label.
    pub(crate) fn sign(&self, label: &[u8], message: &[u8]) -> [u8; 64] {
        self.0.sign(&labelled(label, message)).to_bytes()
    }
}

impl DeviceId {
    /// Verifies a signature made by [`DeviceKey::sign`].
    pub(crate) fn verify(&self, label: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
        verify_labelled(&self.0, label, message, signature)
    }
}

impl Identity {
    /// Signs `message` under a domain-separation label.
    pub(crate) fn sign(&self, label: &[u8], message: &[u8]) -> [u8; 64] {
        self.0.sign(&labelled(label, message)).to_bytes()
    }

    /// Certifies `device` as one of this identity's devices.
    pub fn certify(&self, device: DeviceId) -> DeviceCertificate {
        let identity = self.public();
        let signature = self.sign(LABEL_DEVICE_CERT, &DeviceCertificate::message(&identity, &device));
        DeviceCertificate { identity, device, signature }
    }
}

impl IdentityId {
    /// Verifies a signature made by [`Identity::sign`], strictly (no malleable signatures, no
    /// small-order keys).
    pub(crate) fn verify(&self, label: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
        verify_labelled(&self.0, label, message, signature)
    }
}

/// A statement, signed by an identity, that a device key acts for it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DeviceCertificate {
    identity: IdentityId,
    device: DeviceId,
    signature: [u8; 64],
}

impl fmt::Debug for DeviceCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCertificate")
            .field("identity", &self.identity)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// A device certificate did not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The identity's signature over the device key is not valid.
    #[error("device certificate signature is not valid")]
    BadSignature,
    /// The certificate is for another device than the one that connected.
    #[error("device certificate is for device {certified}, but the connection is from {actual}")]
    WrongDevice {
        /// The device the certificate names.
        certified: DeviceId,
        /// The device that is actually on the other end.
        actual: DeviceId,
    },
}

impl DeviceCertificate {
    fn message(identity: &IdentityId, device: &DeviceId) -> Vec<u8> {
        [identity.as_bytes().as_slice(), device.as_bytes().as_slice()].concat()
    }

    /// Rebuilds a certificate from its parts; check it with [`DeviceCertificate::verify`].
    pub fn from_parts(identity: IdentityId, device: DeviceId, signature: [u8; 64]) -> Self {
        Self { identity, device, signature }
    }

    /// The certifying identity.
    pub fn identity(&self) -> IdentityId {
        self.identity
    }

    /// The certified device.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The signature bytes.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Checks the signature, and that the certificate names `actual`, the device authenticated
    /// by the transport.
    pub fn verify(&self, actual: DeviceId) -> Result<(), CertificateError> {
        if !self.identity.verify(
            LABEL_DEVICE_CERT,
            &Self::message(&self.identity, &self.device),
            &self.signature,
        ) {
            return Err(CertificateError::BadSignature);
        }
        if self.device != actual {
            return Err(CertificateError::WrongDevice { certified: self.device, actual });
        }
        Ok(())
    }

    /// 128-byte encoding: identity, device, signature.
    pub fn to_bytes(&self) -> [u8; 128] {
        let mut out = [0u8; 128];
        out[..32].copy_from_slice(self.identity.as_bytes());
        out[32..64].copy_from_slice(self.device.as_bytes());
        out[64..].copy_from_slice(&self.signature);
        out
    }

    /// Reads the encoding of [`DeviceCertificate::to_bytes`]; the signature is not checked here.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TicketError> {
        let bytes: &[u8; 128] = bytes.try_into().map_err(|_| TicketError::Truncated)?;
        let identity = IdentityId::from_bytes(bytes[..32].try_into().expect("32 bytes"))
            .map_err(|_| TicketError::BadKey)?;
        let device = DeviceId::from_bytes(bytes[32..64].try_into().expect("32 bytes"))
            .map_err(|_| TicketError::BadKey)?;
        Ok(Self { identity, device, signature: bytes[64..].try_into().expect("64 bytes") })
    }
}

/// What a peer needs to dial a vault: its device certificate (identity and device key) and the
/// addresses it was bound to when the ticket was made.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Ticket {
    certificate: DeviceCertificate,
    addrs: Vec<SocketAddr>,
}

/// A ticket string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// Does not start with the ticket prefix.
    #[error("not a vault ticket (it should start with \"{TICKET_PREFIX}\")")]
    WrongPrefix,
    /// Not base32.
    #[error("ticket is not valid base32")]
    NotBase32,
    /// A version this build does not know.
    #[error("ticket version {0} is not supported")]
    UnknownVersion(u8),
    /// Ends early, or has bytes left over.
    #[error("ticket is truncated or has trailing bytes")]
    Truncated,
    /// A key inside is not a valid public key.
    #[error("ticket holds an invalid public key")]
    BadKey,
    /// An address has an unknown family or there are too many.
    #[error("ticket holds an invalid address list")]
    BadAddress,
    /// The device certificate inside does not verify.
    #[error("ticket's device certificate does not verify")]
    BadCertificate,
}

impl Ticket {
    /// A ticket for `certificate`, reachable at `addrs`.
    /// IPv6 scope ids and flow labels are not carried.
    pub fn new(certificate: DeviceCertificate, addrs: Vec<SocketAddr>) -> Self {
        let addrs =
            addrs.into_iter().take(MAX_TICKET_ADDRS).map(|a| SocketAddr::new(a.ip(), a.port())).collect();
        Self { certificate, addrs }
    }

    /// The identity the ticket is for.
    pub fn identity(&self) -> IdentityId {
        self.certificate.identity
    }

    /// The device to dial.
    pub fn device(&self) -> DeviceId {
        self.certificate.device
    }

    /// The device certificate.
    pub fn certificate(&self) -> &DeviceCertificate {
        &self.certificate
    }

    /// Direct addresses of the device.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The binary form (before base32).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(130 + self.addrs.len() * 19);
        out.push(TICKET_VERSION);
        out.extend_from_slice(&self.certificate.to_bytes());
        encode_addrs(&self.addrs, &mut out);
        out
    }

    /// Reads the binary form and verifies the device certificate.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TicketError> {
        let (&version, rest) = bytes.split_first().ok_or(TicketError::Truncated)?;
        if version != TICKET_VERSION {
            return Err(TicketError::UnknownVersion(version));
        }
        if rest.len() < 129 {
            return Err(TicketError::Truncated);
        }
        let certificate = DeviceCertificate::from_bytes(&rest[..128])?;
        certificate.verify(certificate.device).map_err(|_| TicketError::BadCertificate)?;
        let (addrs, rest) = decode_addrs(&rest[128..])?;
        if !rest.is_empty() {
            return Err(TicketError::Truncated);
        }
        Ok(Self { certificate, addrs })
    }
}

/// Writes a count byte and each address (family byte 4 or 6, IP, big-endian port).
pub(crate) fn encode_addrs(addrs: &[SocketAddr], out: &mut Vec<u8>) {
    out.push(addrs.len().min(MAX_TICKET_ADDRS) as u8);
    for addr in addrs.iter().take(MAX_TICKET_ADDRS) {
        match addr.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&addr.port().to_be_bytes());
    }
}

/// Reads what [`encode_addrs`] wrote; returns the addresses and the bytes after them.
pub(crate) fn decode_addrs(bytes: &[u8]) -> Result<(Vec<SocketAddr>, &[u8]), TicketError> {
    let (&count, mut cursor) = bytes.split_first().ok_or(TicketError::Truncated)?;
    let count = count as usize;
    if count > MAX_TICKET_ADDRS {
        return Err(TicketError::BadAddress);
    }
    let mut addrs = Vec::with_capacity(count);
    for _ in 0..count {
        let (&family, tail) = cursor.split_first().ok_or(TicketError::Truncated)?;
        let ip_len = match family {
            4 => 4,
            6 => 16,
            _ => return Err(TicketError::BadAddress),
        };
        if tail.len() < ip_len + 2 {
            return Err(TicketError::Truncated);
        }
        let ip = if ip_len == 4 {
            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&tail[..4]).expect("4 bytes")))
        } else {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&tail[..16]).expect("16 bytes")))
        };
        let port = u16::from_be_bytes([tail[ip_len], tail[ip_len + 1]]);
        addrs.push(SocketAddr::new(ip, port));
        cursor = &tail[ip_len + 2..];
    }
    Ok((addrs, cursor))
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TICKET_PREFIX)?;
        f.write_str(&BASE32_NOPAD.encode(&self.to_bytes()).to_ascii_lowercase())
    }
}

impl FromStr for Ticket {
    type Err = TicketError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.trim().strip_prefix(TICKET_PREFIX).ok_or(TicketError::WrongPrefix)?;
        let bytes =
            BASE32_NOPAD.decode(body.to_ascii_uppercase().as_bytes()).map_err(|_| TicketError::NotBase32)?;
        Self::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ticket_with(addrs: Vec<SocketAddr>) -> (Identity, Ticket) {
        let identity = Identity::from_secret_bytes(&[1; 32]);
        let device = DeviceKey::from_secret_bytes(&[2; 32]);
        let ticket = Ticket::new(identity.certify(device.public()), addrs);
        (identity, ticket)
    }

    #[test]
    fn debug_never_shows_secret_bytes() {
        let identity = Identity::from_secret_bytes(&[9; 32]);
        let printed = format!("{identity:?}");
        assert!(printed.starts_with("Identity("));
        assert!(!printed.contains(&format!("{:?}", [9u8; 32])));
        let secret_b32 = BASE32_NOPAD.encode(&[9; 32]).to_ascii_lowercase();
        assert!(!printed.contains(&secret_b32));
    }

    #[test]
    fn certificate_checks_signature_and_device() {
        let identity = Identity::generate();
        let device = DeviceKey::generate();
        let other = DeviceKey::generate();
        let cert = identity.certify(device.public());
        assert_eq!(cert.verify(device.public()), Ok(()));
        assert!(matches!(cert.verify(other.public()), Err(CertificateError::WrongDevice { .. })));

        let mut forged = cert.to_bytes();
        forged[64] ^= 1;
        let forged = DeviceCertificate::from_bytes(&forged).unwrap();
        assert_eq!(forged.verify(device.public()), Err(CertificateError::BadSignature));

        // Another identity cannot claim this device.
        let mallory = Identity::generate();
        let claimed = DeviceCertificate::from_parts(mallory.public(), device.public(), *cert.signature());
        assert_eq!(claimed.verify(device.public()), Err(CertificateError::BadSignature));
    }

    /// Known-answer test: the ticket format is a wire format; this string must keep parsing.
    #[test]
    fn ticket_known_answer() {
        let (_, ticket) = ticket_with(vec!["127.0.0.1:4433".parse().unwrap(), "[::1]:9".parse().unwrap()]);
        let text = ticket.to_string();
        let expected = include_str!("../tests/fixtures/ticket-v1.txt").trim();
        assert_eq!(text, expected);
        assert_eq!(expected.parse::<Ticket>().unwrap(), ticket);
    }

    #[test]
    fn bad_tickets_are_refused_with_a_reason() {
        let (_, ticket) = ticket_with(vec!["10.0.0.1:1".parse().unwrap()]);
        let text = ticket.to_string();
        assert_eq!("hello".parse::<Ticket>(), Err(TicketError::WrongPrefix));
        assert_eq!("vault1!!".parse::<Ticket>(), Err(TicketError::NotBase32));
        assert_eq!(Ticket::from_bytes(&[]), Err(TicketError::Truncated));
        assert_eq!(Ticket::from_bytes(&[9]), Err(TicketError::UnknownVersion(9)));
        let bytes = ticket.to_bytes();
        assert_eq!(Ticket::from_bytes(&bytes[..bytes.len() - 1]), Err(TicketError::Truncated));
        let mut forged = bytes.clone();
        forged[100] ^= 0x40;
        assert_eq!(Ticket::from_bytes(&forged), Err(TicketError::BadCertificate));
        assert!(text.parse::<Ticket>().is_ok());
    }

    proptest! {
        #[test]
        fn ticket_roundtrip(addrs in proptest::collection::vec(any::<SocketAddr>(), 0..MAX_TICKET_ADDRS)) {
            let (_, ticket) = ticket_with(addrs);
            prop_assert_eq!(ticket.to_string().parse::<Ticket>().unwrap(), ticket);
        }

        #[test]
        fn ticket_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Ticket::from_bytes(&bytes);
        }

        #[test]
        fn identity_id_roundtrip(seed in any::<[u8; 32]>()) {
            let id = Identity::from_secret_bytes(&seed).public();
            prop_assert_eq!(id.to_string().parse::<IdentityId>().unwrap(), id);
        }
    }
}
