//! This device's keys: its device key, and either the identity key (the first device, or one
//! where the recovery code was entered) or the identity's certificate for this device (a
//! linked device). Also the recovery code: the identity key written out for paper, the way
//! back when the device that held it is lost, and the way to keep it on no device at all.

use zeroize::Zeroizing;

use super::Vault;
use crate::identity::{DeviceCertificate, DeviceKey, Identity, IdentityId};
use crate::signer::Signer;
use crate::store::{Store, StoreError};

/// Prefix of a recovery code; the digit is its format version.
const RECOVERY_PREFIX: &str = "vaultkey1";

/// This device's keys.
pub(super) struct Keys {
    pub(super) identity: Option<Identity>,
    pub(super) device: DeviceKey,
    pub(super) certificate: DeviceCertificate,
}

/// Reads and checks the keys: the certificate must name this device and, when the identity key
/// is here, be that identity's.
pub(super) fn read(store: &Store) -> Result<Keys, StoreError> {
    let device = DeviceKey::from_secret_bytes(&*store.read_secret("device")?);
    let damaged = || StoreError::damaged(&crate::store::sealed::SECRETS, "certificate");
    let (identity, certificate) = match store.read_secret_if_any("identity")? {
        Some(seed) => {
            let identity = Identity::from_secret_bytes(&seed);
            let certificate = identity.certify(device.public());
            (Some(identity), certificate)
        }
        None => {
            let certificate = store.read_certificate()?.ok_or_else(damaged)?;
            certificate.verify(device.public()).map_err(|_| damaged())?;
            (None, certificate)
        }
    };
    Ok(Keys { identity, device, certificate })
}

/// A recovery code could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// Not a recovery code (wrong prefix, not base32, wrong length or checksum).
    #[error("that is not a recovery code (check for a typo: it starts with {RECOVERY_PREFIX})")]
    Malformed,
    /// A valid code, but for another identity.
    #[error("that recovery code is for another identity ({0})")]
    OtherIdentity(IdentityId),
    /// This device does not hold the identity key, so it has no code to show.
    #[error(
        "this device does not hold the identity key; its recovery code is on paper, or on the device that holds it"
    )]
    NotHeld,
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes an identity key as a recovery code: prefix, then base32 of the 32-byte seed and a
/// 4-byte checksum, in groups of four for copying by hand.
fn encode_recovery(identity: &Identity) -> Zeroizing<String> {
    let seed = identity.secret_bytes();
    let mut raw = Zeroizing::new(Vec::with_capacity(36));
    raw.extend_from_slice(&seed[..]);
    raw.extend_from_slice(&blake3::hash(&seed[..]).as_bytes()[..4]);
    let body = Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&raw).to_ascii_lowercase());
    let mut out = Zeroizing::new(String::from(RECOVERY_PREFIX));
    for (i, c) in body.chars().enumerate() {
        if i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Reads a recovery code (case, spaces and dashes do not matter).
fn decode_recovery(code: &str) -> Result<Identity, RecoveryError> {
    let code = code.trim().to_ascii_lowercase();
    let body = code.strip_prefix(RECOVERY_PREFIX).ok_or(RecoveryError::Malformed)?;
    let cleaned: Zeroizing<String> = Zeroizing::new(
        body.chars().filter(|c| !matches!(c, '-' | ' ')).collect::<String>().to_ascii_uppercase(),
    );
    let raw = Zeroizing::new(
        data_encoding::BASE32_NOPAD.decode(cleaned.as_bytes()).map_err(|_| RecoveryError::Malformed)?,
    );
    if raw.len() != 36 || blake3::hash(&raw[..32]).as_bytes()[..4] != raw[32..] {
        return Err(RecoveryError::Malformed);
    }
    let seed = Zeroizing::new(<[u8; 32]>::try_from(&raw[..32]).map_err(|_| RecoveryError::Malformed)?);
    Ok(Identity::from_secret_bytes(&seed))
}

impl Vault {
    /// Signs this vault's statements: the identity key where this device holds it, otherwise
    /// this device's key with its certificate.
    pub fn signer(&self) -> Signer<'_> {
        match &self.identity {
            Some(identity) => Signer::Identity(identity),
            None => Signer::Device { key: &self.device, certificate: &self.certificate },
        }
    }

    /// The identity's signing key, when this device holds it.
    pub fn identity_key(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The identity key as a recovery code, to write down.
    pub fn recovery_code(&self) -> Result<Zeroizing<String>, RecoveryError> {
        self.identity.as_ref().map(encode_recovery).ok_or(RecoveryError::NotHeld)
    }

    /// Takes the identity key from its recovery code onto this device (after the device that
    /// held it was lost, or to add or remove devices from here). The certificate for this
    /// device stays as it is.
    pub fn restore_identity_key(&mut self, code: &str) -> Result<(), RecoveryError> {
        let identity = decode_recovery(code)?;
        if identity.public() != self.identity() {
            return Err(RecoveryError::OtherIdentity(identity.public()));
        }
        let seed = identity.secret_bytes();
        self.write(|v| v.store.write_secret("identity", &seed[..]).map_err(RecoveryError::from))?;
        self.identity = Some(identity);
        Ok(())
    }

    /// Reads this device's keys again (another process may have restored or forgotten the
    /// identity key). The device key never changes.
    pub(super) fn reload_keys(&mut self) -> Result<(), StoreError> {
        let keys = read(&self.store)?;
        self.identity = keys.identity;
        self.certificate = keys.certificate;
        Ok(())
    }

    /// Removes the identity key from this device, keeping the identity's certificate for it:
    /// from then on it signs as a device, and can be removed like any other. Only with the
    /// recovery code typed back (proof it was written down): without it, no device could ever
    /// link or remove another.
    pub fn forget_identity_key(&mut self, code: &str) -> Result<(), RecoveryError> {
        let Some(held) = &self.identity else { return Err(RecoveryError::NotHeld) };
        let typed = decode_recovery(code)?;
        if typed.public() != held.public() {
            return Err(RecoveryError::OtherIdentity(typed.public()));
        }
        let certificate = self.certificate;
        self.write(|v| {
            v.store.write_certificate(&certificate)?;
            v.keep_roster_before_forgetting()?;
            v.store.delete_secret("identity")?;
            Ok::<_, RecoveryError>(())
        })?;
        self.identity = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_roundtrip_and_catch_typos() {
        let identity = Identity::generate();
        let code = encode_recovery(&identity);
        assert!(code.starts_with("vaultkey1-"));
        assert_eq!(decode_recovery(&code).unwrap().public(), identity.public());
        assert_eq!(
            decode_recovery(&code.to_uppercase().replace('-', " ")).unwrap().public(),
            identity.public()
        );
        // One character changed: the checksum catches it.
        let mut typo = code.to_string();
        let last = typo.pop().unwrap();
        typo.push(if last == 'a' { 'b' } else { 'a' });
        assert!(matches!(decode_recovery(&typo), Err(RecoveryError::Malformed)));
        assert!(matches!(decode_recovery("vault1abc"), Err(RecoveryError::Malformed)));
        assert!(matches!(decode_recovery(""), Err(RecoveryError::Malformed)));
    }
}
