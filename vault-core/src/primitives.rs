//! The one module that names the AEAD and the KDF.
//!
//! Everything the vault encrypts goes through [`seal`] and [`open`]: XChaCha20-Poly1305 with a
//! fresh random 192-bit nonce per call (random nonces are safe at this size, unlike age's fixed
//! nonce which relies on one-shot keys), and associated data built by [`associated_data`] that
//! binds a blob to its vault, table and row. The data key is wrapped by a key derived from the
//! passphrase with Argon2id ([`derive_wrapping_key`]).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of every symmetric key, in bytes.
pub(crate) const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes a sealed blob adds to its plaintext.
pub(crate) const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Domain-separation label for blobs stored under the data key.
pub(crate) const LABEL_BLOB: &[u8] = b"vault/v1/blob";
/// Domain-separation label for the wrapped data key.
pub(crate) const LABEL_WRAP: &[u8] = b"vault/v1/wrap";
/// Domain-separation label for the data key wrapped by a vault whose rows are covered by the
/// sealed manifest: once a vault carries it, a missing manifest is damage, not an old vault.
pub(crate) const LABEL_WRAP_MANIFEST: &[u8] = b"vault/v1/wrap+manifest";
/// Context for deriving the key of the row-set digest from the data key.
const CONTEXT_ROW_DIGEST: &str = "vault/v1/row-set digest key";
/// Domain-separation label for one row's element of the row-set digest.
const LABEL_ROW_ELEMENT: &[u8] = b"vault/v1/row";
/// Length of a row-set digest element.
pub(crate) const DIGEST_LEN: usize = 32;

/// A 256-bit symmetric key. Zeroized on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SymmetricKey(Box<[u8; KEY_LEN]>);

impl SymmetricKey {
    pub(crate) fn random() -> Self {
        let mut key = Box::new([0u8; KEY_LEN]);
        fill_random(&mut key[..]);
        Self(key)
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self(Box::new(array)))
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

/// The passphrase that unlocks a vault. Held in a zeroizing buffer and never printed.
pub struct Passphrase(SecretString);

impl Passphrase {
    /// Wraps a passphrase typed by the user.
    pub fn new(passphrase: impl Into<String>) -> Self {
        Self(SecretString::from(passphrase.into()))
    }

    /// True when the passphrase is empty.
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().is_empty()
    }

    /// Runs `f` on the passphrase's text (to estimate its strength, say), which stays inside
    /// this scope.
    pub fn with_text<T>(&self, f: impl FnOnce(&str) -> T) -> T {
        f(self.0.expose_secret())
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Argon2id cost parameters, stored in the vault beside the wrapped key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism.
    pub parallelism: u32,
}

impl KdfParams {
    /// The default for new vaults: 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended
    /// option, with one lane because the derivation runs on one thread). About 0.2-0.3 s on a
    /// laptop core.
    pub const DEFAULT: Self = Self { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 };

    /// A deliberately weak setting for tests and benchmarks only: it makes a brute-force search
    /// of the passphrase cheap. Only in test builds and with the `test-utils` feature.
    #[cfg(any(test, feature = "test-utils"))]
    pub const INSECURE_FOR_TESTS: Self = Self { memory_kib: 64, iterations: 1, parallelism: 1 };

    /// The smallest setting a stored vault may claim; anything below is treated as damage.
    fn is_plausible(&self) -> bool {
        (8..=4 * 1024 * 1024).contains(&self.memory_kib)
            && (1..=64).contains(&self.iterations)
            && (1..=16).contains(&self.parallelism)
    }
}

/// The passphrase could not be turned into a key (bad parameters in the vault file).
#[derive(Debug, thiserror::Error)]
#[error("invalid key-derivation parameters")]
pub(crate) struct KdfError;

/// Derives the key-encryption key from the passphrase.
pub(crate) fn derive_wrapping_key(
    passphrase: &Passphrase,
    salt: &[u8],
    params: KdfParams,
) -> Result<SymmetricKey, KdfError> {
    if !params.is_plausible() {
        return Err(KdfError);
    }
    let argon_params =
        argon2::Params::new(params.memory_kib, params.iterations, params.parallelism, Some(KEY_LEN))
            .map_err(|_| KdfError)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, argon_params);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(passphrase.0.expose_secret().as_bytes(), salt, &mut out[..])
        .map_err(|_| KdfError)?;
    Ok(SymmetricKey(Box::new(*out)))
}

/// Derives the key of the row-set digest from the data key (a separate key, so the digest never
/// shares a key with the AEAD).
pub(crate) fn derive_digest_key(data_key: &SymmetricKey) -> SymmetricKey {
    SymmetricKey(Box::new(blake3::derive_key(CONTEXT_ROW_DIGEST, data_key.expose())))
}

/// The nonce and tag of a sealed blob: unique per seal, so they stand for the blob in the
/// row-set digest without hashing the whole ciphertext. Short blobs give what they have.
pub(crate) fn nonce_and_tag(blob: &[u8]) -> (&[u8], &[u8]) {
    let nonce = &blob[..blob.len().min(NONCE_LEN)];
    let tag = &blob[blob.len().saturating_sub(TAG_LEN)..];
    (nonce, tag)
}

/// Bytes of a sealed blob's tag.
pub(crate) const TAG_BYTES: usize = TAG_LEN;
/// Bytes of a sealed blob's nonce.
pub(crate) const NONCE_BYTES: usize = NONCE_LEN;

/// One row's element of a table's row-set digest: a keyed hash (a PRF) of the table, the row
/// and the nonce and tag of its blob. The digest of a table is the XOR of its rows' elements:
/// without the key nobody can compute an element, so no set of rows other than the one the
/// vault wrote has the digest the vault sealed.
pub(crate) fn row_element(
    key: &SymmetricKey,
    table: &str,
    row: &[u8],
    nonce: &[u8],
    tag: &[u8],
) -> [u8; DIGEST_LEN] {
    let input = associated_data(LABEL_ROW_ELEMENT, &[table.as_bytes(), row, nonce, tag]);
    *blake3::keyed_hash(key.expose(), &input).as_bytes()
}

/// Decryption failed. Every cause (wrong key, tampered or truncated blob, blob moved to
/// another row) looks the same, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("decryption failed")]
pub(crate) struct DecryptError;

/// Builds associated data from a label and length-prefixed parts, so that no two different
/// part lists produce the same bytes.
pub(crate) fn associated_data(label: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(label.len() + parts.iter().map(|p| p.len() + 4).sum::<usize>());
    ad.extend_from_slice(label);
    for part in parts {
        ad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        ad.extend_from_slice(part);
    }
    ad
}

/// Encrypts `plaintext` under `key`: returns nonce || ciphertext || tag.
pub(crate) fn seal(key: &SymmetricKey, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let ciphertext = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: ad })
        .expect("XChaCha20-Poly1305 encrypts any message that fits in memory");
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// Decrypts a blob made by [`seal`] with the same key and associated data.
pub(crate) fn open(key: &SymmetricKey, ad: &[u8], blob: &[u8]) -> Result<Vec<u8>, DecryptError> {
    if blob.len() < SEAL_OVERHEAD {
        return Err(DecryptError);
    }
    let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| DecryptError)?;
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    cipher.decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: ad }).map_err(|_| DecryptError)
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator is available");
}

/// Returns `N` random bytes.
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill_random(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_debug_hides_bytes() {
        let key = SymmetricKey::random();
        assert_eq!(format!("{key:?}"), "SymmetricKey(..)");
        assert_eq!(format!("{:?}", Passphrase::new("hunter2")), "Passphrase(..)");
    }

    #[test]
    fn nonces_differ_between_seals() {
        let key = SymmetricKey::random();
        let a = seal(&key, b"ad", b"same");
        let b = seal(&key, b"ad", b"same");
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_passphrase_gives_different_key() {
        let salt = [7u8; 16];
        let p = KdfParams::INSECURE_FOR_TESTS;
        let a = derive_wrapping_key(&Passphrase::new("right"), &salt, p).unwrap();
        let b = derive_wrapping_key(&Passphrase::new("wrong"), &salt, p).unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn implausible_kdf_params_are_refused() {
        let p = KdfParams { memory_kib: 1, iterations: 0, parallelism: 0 };
        assert!(derive_wrapping_key(&Passphrase::new("x"), &[0; 16], p).is_err());
    }

    #[test]
    fn associated_data_is_unambiguous() {
        assert_ne!(associated_data(b"l", &[b"ab", b"c"]), associated_data(b"l", &[b"a", b"bc"]));
    }

    proptest! {
        #[test]
        fn seal_open_roundtrip(msg in proptest::collection::vec(any::<u8>(), 0..2048),
                               ad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = SymmetricKey::random();
            let blob = seal(&key, &ad, &msg);
            prop_assert_eq!(blob.len(), msg.len() + SEAL_OVERHEAD);
            prop_assert_eq!(open(&key, &ad, &blob).unwrap(), msg);
        }

        #[test]
        fn any_flipped_bit_is_detected(msg in proptest::collection::vec(any::<u8>(), 0..256),
                                       bit in any::<usize>()) {
            let key = SymmetricKey::random();
            let mut blob = seal(&key, b"ad", &msg);
            let bit = bit % (blob.len() * 8);
            blob[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(open(&key, b"ad", &blob), Err(DecryptError));
        }

        #[test]
        fn other_associated_data_is_refused(msg in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = SymmetricKey::random();
            let blob = seal(&key, b"row-1", &msg);
            prop_assert_eq!(open(&key, b"row-2", &blob), Err(DecryptError));
        }

        #[test]
        fn truncated_blobs_are_refused(msg in proptest::collection::vec(any::<u8>(), 0..64), cut in 0usize..100) {
            let key = SymmetricKey::random();
            let blob = seal(&key, b"ad", &msg);
            let cut = cut % blob.len();
            prop_assert_eq!(open(&key, b"ad", &blob[..cut]), Err(DecryptError));
        }
    }
}
