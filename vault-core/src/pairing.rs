//! Linking a new device to an identity: the one-time pairing code, the proof and the
//! confirmation digits both sides derive from it, and the package the existing device hands
//! over. Sans-IO: vault-sync moves the bytes.
//!
//! The code carries the inviting device's id and addresses and a 256-bit secret, and lives only
//! in the memory of the `vault device add` process that printed it (zeroized on drop). The
//! joiner authenticates the inviter through QUIC: the code pins the inviter's device id. The
//! inviter authenticates the joiner by a proof keyed by the secret over both device ids, so a
//! proof seen on one connection is worthless on another, and a guess is one try against 2^256.
//! Both sides then show six digits derived from the secret and both ids, and the inviter's user
//! confirms that they match before anything is handed over: someone who read the code and
//! raced the real device to it shows other digits.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use zeroize::Zeroizing;

use crate::identity::{DeviceCertificate, DeviceId, decode_addrs, encode_addrs};
use crate::primitives::random_array;
use crate::protocol::framing;
use crate::vault::DeviceRecord;

/// The ALPN of pairing connections.
pub const PAIR_ALPN: &[u8] = b"vault/pair/1";
/// How long a pairing code is valid, in seconds.
pub const PAIRING_LIFETIME_SECS: i64 = 600;
/// Clock difference between two devices tolerated when the joiner checks a code's expiry (the
/// inviter, which waits at most [`PAIRING_LIFETIME_SECS`], is the one that enforces it).
const CLOCK_SKEW_SECS: i64 = 300;

const CODE_PREFIX: &str = "vaultpair1";
const CODE_VERSION: u8 = 1;
const PACKAGE_VERSION: u8 = 2;

/// A pairing code or message could not be used.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairingError {
    /// Not a pairing code at all.
    #[error("not a pairing code (a pairing code starts with \"{CODE_PREFIX}\")")]
    WrongPrefix,
    /// The code does not decode.
    #[error("the pairing code is damaged (mistyped or cut short)")]
    Malformed,
    /// The code's time is over.
    #[error("the pairing code expired; run `vault device add NAME` on the other device again")]
    Expired,
    /// A pairing message does not decode.
    #[error("malformed pairing message")]
    BadMessage,
}

/// A one-time pairing code (see the module documentation). Its `Debug` shows no secret.
pub struct PairingCode {
    inviter: DeviceId,
    addrs: Vec<SocketAddr>,
    expires_at: i64,
    secret: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairingCode")
            .field("inviter", &self.inviter)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl PairingCode {
    /// A fresh code for the inviting device, reachable at `addrs`, valid from `now`.
    pub fn new(inviter: DeviceId, addrs: Vec<SocketAddr>, now: i64) -> Self {
        Self {
            inviter,
            addrs,
            expires_at: now + PAIRING_LIFETIME_SECS,
            secret: Zeroizing::new(random_array()),
        }
    }

    /// The inviting device.
    pub fn inviter(&self) -> DeviceId {
        self.inviter
    }

    /// Where the inviting device listens.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// When the code stops being valid (unix seconds).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// The joiner's check: refuses a code whose time is clearly over.
    pub fn check_fresh(&self, now: i64) -> Result<(), PairingError> {
        if now > self.expires_at + CLOCK_SKEW_SECS { Err(PairingError::Expired) } else { Ok(()) }
    }

    fn keyed(&self, label: &[u8], joiner: &DeviceId) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.secret);
        h.update(label);
        h.update(self.inviter.as_bytes());
        h.update(joiner.as_bytes());
        *h.finalize().as_bytes()
    }

    /// The joiner's proof that it holds the code, bound to both devices.
    pub fn proof(&self, joiner: &DeviceId) -> [u8; 32] {
        self.keyed(b"vault pairing proof v1", joiner)
    }

    /// Checks a joiner's proof (in constant time).
    pub fn verify_proof(&self, joiner: &DeviceId, proof: &[u8; 32]) -> bool {
        blake3::Hash::from(self.proof(joiner)) == blake3::Hash::from(*proof)
    }

    /// The six digits both devices show, for the inviter's user to compare.
    pub fn confirmation(&self, joiner: &DeviceId) -> String {
        let h = self.keyed(b"vault pairing confirmation v1", joiner);
        let n = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 1_000_000;
        format!("{:03} {:03}", n / 1000, n % 1000)
    }
}

impl fmt::Display for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Zeroizing::new(vec![CODE_VERSION]);
        bytes.extend_from_slice(self.inviter.as_bytes());
        bytes.extend_from_slice(&self.expires_at.to_be_bytes());
        bytes.extend_from_slice(&self.secret[..]);
        encode_addrs(&self.addrs, &mut bytes);
        f.write_str(CODE_PREFIX)?;
        f.write_str(&BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
    }
}

impl FromStr for PairingCode {
    type Err = PairingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.trim().strip_prefix(CODE_PREFIX).ok_or(PairingError::WrongPrefix)?;
        let bytes = Zeroizing::new(
            BASE32_NOPAD.decode(body.to_ascii_uppercase().as_bytes()).map_err(|_| PairingError::Malformed)?,
        );
        let (&version, rest) = bytes.split_first().ok_or(PairingError::Malformed)?;
        if version != CODE_VERSION || rest.len() < 32 + 8 + 32 {
            return Err(PairingError::Malformed);
        }
        let inviter = DeviceId::from_bytes(rest[..32].try_into().expect("32 bytes"))
            .map_err(|_| PairingError::Malformed)?;
        let expires_at = i64::from_be_bytes(rest[32..40].try_into().expect("8 bytes"));
        let secret = Zeroizing::new(<[u8; 32]>::try_from(&rest[40..72]).expect("32 bytes"));
        let (addrs, tail) = decode_addrs(&rest[72..]).map_err(|_| PairingError::Malformed)?;
        if !tail.is_empty() {
            return Err(PairingError::Malformed);
        }
        Ok(Self { inviter, addrs, expires_at, secret })
    }
}

/// What the inviting device hands the new one once its user confirmed: the identity's
/// certificate for the new device (never the identity key), the new device's name, the devices
/// of the identity, and the document.
pub struct JoinPackage {
    /// The identity's certificate for the new device.
    pub certificate: DeviceCertificate,
    /// The name the inviter's user gave the new device.
    pub name: String,
    /// Every device of the identity the inviter knows, the new one included.
    pub devices: Vec<DeviceRecord>,
    /// The customer's document (`Automerge::save`).
    pub document: Vec<u8>,
}

impl fmt::Debug for JoinPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinPackage")
            .field("identity", &self.certificate.identity())
            .field("name", &self.name)
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

/// One message of a pairing connection.
#[derive(Debug)]
pub enum PairMessage {
    /// Joiner to inviter: the proof of the code.
    Join([u8; 32]),
    /// Inviter to joiner: the proof was wrong; the code is void.
    Refused,
    /// Inviter to joiner: its user did not confirm.
    Declined,
    /// Inviter to joiner: welcome, with the package.
    Welcome(Box<JoinPackage>),
    /// Joiner to inviter: the new vault is made.
    Joined,
}

impl PairMessage {
    /// The message's bytes (a tag byte, then the body); secrets inside are zeroized on drop.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        match self {
            Self::Join(proof) => {
                out.push(1);
                out.extend_from_slice(proof);
            }
            Self::Refused => out.push(2),
            Self::Declined => out.push(3),
            Self::Welcome(p) => {
                out.extend_from_slice(&[4, PACKAGE_VERSION]);
                out.extend_from_slice(&p.certificate.to_bytes());
                let name = p.name.as_bytes();
                out.push(name.len().min(255) as u8);
                out.extend_from_slice(&name[..name.len().min(255)]);
                let devices = serde_json::to_vec(&p.devices).expect("serializes");
                out.extend_from_slice(&(devices.len() as u32).to_be_bytes());
                out.extend_from_slice(&devices);
                out.extend_from_slice(&p.document);
            }
            Self::Joined => out.push(5),
        }
        out
    }

    /// The message with its length prefix, ready for the wire (see [`framing`]); zeroized on
    /// drop like the message.
    pub fn to_frame(&self) -> Zeroizing<Vec<u8>> {
        let body = self.encode();
        let mut out = Zeroizing::new(Vec::with_capacity(framing::LENGTH_LEN + body.len()));
        framing::put_frame(&mut out, &body);
        out
    }

    /// Reads a message.
    pub fn decode(bytes: &[u8]) -> Result<Self, PairingError> {
        let bad = PairingError::BadMessage;
        let (&tag, body) = bytes.split_first().ok_or(PairingError::BadMessage)?;
        match (tag, body.len()) {
            (1, 32) => Ok(Self::Join(body.try_into().expect("32 bytes"))),
            (2, 0) => Ok(Self::Refused),
            (3, 0) => Ok(Self::Declined),
            (5, 0) => Ok(Self::Joined),
            (4, _) => decode_package(body).map(|p| Self::Welcome(Box::new(p))).ok_or(bad),
            _ => Err(bad),
        }
    }
}

fn decode_package(body: &[u8]) -> Option<JoinPackage> {
    let (&version, rest) = body.split_first()?;
    if version != PACKAGE_VERSION || rest.len() < 129 {
        return None;
    }
    let certificate = DeviceCertificate::from_bytes(&rest[..128]).ok()?;
    let name_len = rest[128] as usize;
    let rest = &rest[129..];
    let name = std::str::from_utf8(rest.get(..name_len)?).ok()?.to_owned();
    let rest = &rest[name_len..];
    let devices_len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let rest = &rest[4..];
    let devices = serde_json::from_slice(rest.get(..devices_len)?).ok()?;
    let document = rest[devices_len..].to_vec();
    Some(JoinPackage { certificate, name, devices, document })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DeviceKey;

    fn code() -> PairingCode {
        PairingCode::new(DeviceKey::generate().public(), vec!["127.0.0.1:4433".parse().unwrap()], 1_000)
    }

    #[test]
    fn a_code_round_trips_through_its_text() {
        let c = code();
        let back: PairingCode = c.to_string().parse().unwrap();
        let joiner = DeviceKey::generate().public();
        assert_eq!(back.inviter(), c.inviter());
        assert_eq!(back.addrs(), c.addrs());
        assert_eq!(back.expires_at(), 1_000 + PAIRING_LIFETIME_SECS);
        assert!(c.verify_proof(&joiner, &back.proof(&joiner)));
        assert_eq!(c.confirmation(&joiner), back.confirmation(&joiner));
    }

    #[test]
    fn a_proof_is_bound_to_the_code_and_to_both_devices() {
        let (c, other) = (code(), code());
        let (joiner, thief) = (DeviceKey::generate().public(), DeviceKey::generate().public());
        let proof = c.proof(&joiner);
        assert!(c.verify_proof(&joiner, &proof));
        assert!(!c.verify_proof(&thief, &proof), "replayed by another device");
        assert!(!other.verify_proof(&joiner, &proof), "made for another code");
        assert_ne!(c.confirmation(&joiner), c.confirmation(&thief));
    }

    #[test]
    fn bad_codes_are_refused_with_a_reason_and_no_secret_in_debug() {
        assert_eq!("vault1abc".parse::<PairingCode>().unwrap_err(), PairingError::WrongPrefix);
        let text = code().to_string();
        assert_eq!(text[..text.len() - 3].parse::<PairingCode>().unwrap_err(), PairingError::Malformed);
        assert_eq!(
            code().check_fresh(1_000 + PAIRING_LIFETIME_SECS + CLOCK_SKEW_SECS + 1),
            Err(PairingError::Expired)
        );
        let c = code();
        let secret_b32 = BASE32_NOPAD.encode(&c.secret[..]).to_ascii_lowercase();
        assert!(!format!("{c:?}").contains(&secret_b32[..10]));
    }

    #[test]
    fn a_welcome_round_trips_and_garbage_does_not_decode() {
        let certificate = crate::identity::Identity::generate().certify(DeviceKey::generate().public());
        let package = JoinPackage {
            certificate,
            name: "home-box".into(),
            devices: Vec::new(),
            document: vec![1, 2, 3],
        };
        let bytes = PairMessage::Welcome(Box::new(package)).encode();
        let PairMessage::Welcome(back) = PairMessage::decode(&bytes).unwrap() else { panic!("a welcome") };
        assert_eq!(
            (back.certificate, back.name.as_str(), back.document.as_slice()),
            (certificate, "home-box", &[1u8, 2, 3][..])
        );
        for junk in [&[][..], &[1, 2][..], &[4, 1, 0][..], &[9][..]] {
            assert!(PairMessage::decode(junk).is_err());
        }
    }
}
