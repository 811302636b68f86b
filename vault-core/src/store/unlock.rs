//! Unlocking a vault file: with the passphrase (Argon2id unwraps the data key), or with an
//! [`UnlockKey`] an unlock agent lent, which is checked against the file before it is used.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{BUSY_WAIT, FORMAT, Store, StoreError, UnlockFailure, configure, wrap_ad};
use crate::primitives::{
    KEY_LEN, KdfParams, LABEL_WRAP, LABEL_WRAP_MANIFEST, Passphrase, SymmetricKey, derive_wrapping_key, open,
    seal,
};

/// The plaintext header of a vault file.
struct Header {
    vault_id: [u8; 16],
    params: KdfParams,
    salt: Vec<u8>,
    wrapped: Vec<u8>,
}

/// The vault's data key, with what binds it to one vault file: the vault id and the wrapped
/// key it was unwrapped from. What an unlock agent holds instead of the passphrase. A lent key
/// is refused when the file's wrapped key is no longer the one it came from. Never printed;
/// zeroized on drop.
#[derive(Clone)]
pub struct UnlockKey {
    vault_id: [u8; 16],
    key: SymmetricKey,
    wrapped: Vec<u8>,
}

impl std::fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnlockKey(..)")
    }
}

/// The most a wrapped key may take on the wire (it is 72 bytes).
const WRAPPED_MAX: usize = 256;

impl UnlockKey {
    /// The id of the vault this key opens.
    pub fn vault_id(&self) -> [u8; 16] {
        self.vault_id
    }

    /// True when both are the same key of the same vault file (compared in constant time).
    pub fn same_as(&self, other: &UnlockKey) -> bool {
        let key: bool = self.key.expose().ct_eq(other.key.expose()).into();
        key && self.vault_id == other.vault_id && self.wrapped == other.wrapped
    }

    /// The key as bytes for the agent's socket: vault id, key, wrapped key. Zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(16 + KEY_LEN + self.wrapped.len()));
        out.extend_from_slice(&self.vault_id);
        out.extend_from_slice(self.key.expose());
        out.extend_from_slice(&self.wrapped);
        out
    }

    /// Reads [`UnlockKey::to_bytes`]; `None` when the bytes cannot be one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() <= 16 + KEY_LEN || bytes.len() > 16 + KEY_LEN + WRAPPED_MAX {
            return None;
        }
        let vault_id: [u8; 16] = bytes[..16].try_into().ok()?;
        let key = SymmetricKey::from_bytes(&bytes[16..16 + KEY_LEN])?;
        Some(Self { vault_id, key, wrapped: bytes[16 + KEY_LEN..].to_vec() })
    }
}

fn open_connection(path: &Path) -> Result<Connection, UnlockFailure> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_WAIT)?;
    Ok(conn)
}

fn read_header(conn: &Connection) -> Result<Header, UnlockFailure> {
    let get = |k: &str| -> Result<Option<Vec<u8>>, UnlockFailure> {
        match conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0)).optional() {
            Ok(v) => Ok(v),
            Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.starts_with("no such table") => {
                Err(UnlockFailure::NotAVault)
            }
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => Err(UnlockFailure::NotAVault),
            Err(e) => Err(e.into()),
        }
    };
    let format = get("format")?.ok_or(UnlockFailure::NotAVault)?;
    if format != FORMAT.as_bytes() {
        return Err(UnlockFailure::UnknownFormat(
            String::from_utf8_lossy(&format).chars().take(32).collect(),
        ));
    }
    let damaged = |what: &'static str| UnlockFailure::Store(StoreError::DamagedHeader(what));
    let vault_id: [u8; 16] =
        get("vault_id")?.and_then(|v| v.try_into().ok()).ok_or_else(|| damaged("the vault id"))?;
    let params: KdfParams = get("kdf")?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .ok_or_else(|| damaged("the key-derivation parameters"))?;
    let salt = get("salt")?.ok_or_else(|| damaged("the key salt"))?;
    let wrapped = get("wrapped_key")?.ok_or_else(|| damaged("the wrapped key"))?;
    Ok(Header { vault_id, params, salt, wrapped })
}

impl Store {
    /// Opens and unlocks an existing vault file. Nothing is written before the passphrase has
    /// been checked.
    pub(crate) fn open(path: &Path, passphrase: &Passphrase) -> Result<Self, UnlockFailure> {
        let conn = open_connection(path)?;
        let Header { vault_id, params, salt, wrapped } = read_header(&conn)?;
        let damaged = |what: &'static str| UnlockFailure::Store(StoreError::DamagedHeader(what));
        let kek = derive_wrapping_key(passphrase, &salt, params)
            .map_err(|_| damaged("the key-derivation parameters"))?;
        // A vault wrapped under the manifest label must have a manifest; one wrapped under the
        // old label is from before the manifest and gets one now (trust on first use).
        let (key_bytes, legacy) =
            match open(&kek, &wrap_ad(LABEL_WRAP_MANIFEST, &vault_id, &params), &wrapped) {
                Ok(k) => (Zeroizing::new(k), false),
                Err(_) => (
                    Zeroizing::new(
                        open(&kek, &wrap_ad(LABEL_WRAP, &vault_id, &params), &wrapped)
                            .map_err(|_| UnlockFailure::WrongPassphrase)?,
                    ),
                    true,
                ),
            };
        let key = SymmetricKey::from_bytes(&key_bytes).ok_or(UnlockFailure::WrongPassphrase)?;
        configure(&conn)?;
        let mut store = Self::with_key(conn, vault_id, key, wrapped, path)?;
        store.migrate().map_err(UnlockFailure::Store)?;
        if legacy {
            store.add_manifest(&kek, &params).map_err(UnlockFailure::Store)?;
        }
        store.finish_reclaim();
        Ok(store)
    }

    /// Opens an existing vault file with a key an unlock agent lent. The key is used only if it
    /// came from this file's current wrapped key (a changed passphrase or data key makes it
    /// [`UnlockFailure::StaleKey`]) and opens the sealed manifest, or, when the manifest is
    /// damaged, the secrets (then the damage is returned beside the store, for `verify` to
    /// report and everyone else to refuse). Nothing is written before.
    pub(crate) fn open_with_key(
        path: &Path,
        lent: &UnlockKey,
    ) -> Result<(Self, Option<StoreError>), UnlockFailure> {
        let conn = open_connection(path)?;
        let header = read_header(&conn)?;
        if header.vault_id != lent.vault_id || header.wrapped != lent.wrapped {
            return Err(UnlockFailure::StaleKey);
        }
        configure(&conn)?;
        let mut store = Self::with_key(conn, header.vault_id, lent.key.clone(), header.wrapped, path)?;
        // A key is lent only once the manifest exists, so a missing one is damage.
        let damage = match store.read_manifest() {
            Ok(Some(_)) => None,
            Ok(None) => Some(StoreError::Missing { table: "manifest", row: "1".into() }),
            Err(damage @ StoreError::Unreadable { .. }) => Some(damage),
            Err(e) => return Err(UnlockFailure::Store(e)),
        };
        if damage.is_some() {
            // A wrong key opens nothing; the right one still opens the secrets.
            let (checked, failed) =
                store.check_blobs(&super::sealed::SECRETS).map_err(UnlockFailure::Store)?;
            if checked == 0 || !failed.is_empty() {
                return Err(UnlockFailure::StaleKey);
            }
        }
        store.migrate().map_err(UnlockFailure::Store)?;
        store.finish_reclaim();
        Ok((store, damage))
    }

    /// The data key as an agent may hold it, bound to the wrapped key it came from (refused
    /// when that is no longer the file's: the key changed since this store opened).
    pub(crate) fn unlock_key(&self) -> Result<UnlockKey, StoreError> {
        self.ensure_key_current()?;
        Ok(UnlockKey { vault_id: self.vault_id, key: self.key.clone(), wrapped: self.wrapped.clone() })
    }

    /// Migrates a vault from before the manifest, in one transaction (another process may have
    /// done it first: then nothing is written): re-seals every row under a new data key,
    /// digests the rows, and wraps the new key under the manifest label.
    ///
    /// The new key is what makes the migration final: a copy of the old wrapped key (from a
    /// backup of the file, say) put back in the file would otherwise pass for a vault from
    /// before the manifest and have any tampering with the rows accepted as the new baseline.
    /// With the rows under a new key, the old key opens none of them.
    fn add_manifest(&mut self, kek: &SymmetricKey, params: &KdfParams) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let old_key = self.key.clone();
        let result = (|| {
            let wrapped: Vec<u8> =
                self.conn.query_row("SELECT value FROM meta WHERE key = 'wrapped_key'", [], |r| r.get(0))?;
            if open(kek, &wrap_ad(LABEL_WRAP, &self.vault_id, params), &wrapped).is_err() {
                // Migrated by another process meanwhile: its new key is the one to use.
                let key = open(kek, &wrap_ad(LABEL_WRAP_MANIFEST, &self.vault_id, params), &wrapped)
                    .ok()
                    .and_then(|k| SymmetricKey::from_bytes(&zeroize::Zeroizing::new(k)))
                    .ok_or_else(|| StoreError::DamagedHeader("the wrapped key"))?;
                self.set_key(key);
                self.wrapped = wrapped;
                return Ok(None);
            }
            self.reseal_all(SymmetricKey::random())?;
            self.build_manifest()?;
            let rewrapped =
                seal(kek, &wrap_ad(LABEL_WRAP_MANIFEST, &self.vault_id, params), self.key.expose());
            self.conn.execute("UPDATE meta SET value = ?1 WHERE key = 'wrapped_key'", [&rewrapped])?;
            Ok(Some(rewrapped))
        })();
        let ended = self.conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
        if result.is_err() || ended.is_err() {
            self.set_key(old_key);
        } else {
            if let Ok(Some(rewrapped)) = &result {
                self.wrapped = rewrapped.clone();
            }
            // The rows under the old key leave the log (best effort, as after an erasure).
            let _ = self.checkpoint();
        }
        ended?;
        result.map(|_| ())
    }
}
