//! The document's rows: the keys (`secrets`), the sealed snapshot and the change chunks since
//! it, read and written through [`sealed`](super::sealed).

use super::sealed::{DOC_CHANGES, DOC_SNAPSHOT, Key, SECRETS};
use super::{Store, StoreError};

/// Row of `secrets` holding the identity's certificate for this device, on a device without the
/// identity key.
const CERTIFICATE: &str = "certificate";

/// The sealed full save of the document.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) generation: i64,
    /// The last change chunk folded into it.
    pub(crate) through_seq: i64,
    pub(crate) bytes: Vec<u8>,
    pub(crate) sealed_len: u64,
}

/// One change chunk's plaintext.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) seq: i64,
    pub(crate) plaintext: Vec<u8>,
    pub(crate) sealed_len: u64,
}

#[cfg(test)]
thread_local! {
    /// Runs once, between reading the snapshot and reading the chunks (tests of concurrent
    /// writers).
    pub(crate) static AFTER_SNAPSHOT_READ: std::cell::RefCell<Option<Box<dyn FnMut()>>> =
        std::cell::RefCell::new(None);
}

impl Store {
    /// Writes the snapshot (replacing the previous one).
    pub(crate) fn write_snapshot(
        &self,
        generation: i64,
        through_seq: i64,
        bytes: &[u8],
    ) -> Result<u64, StoreError> {
        let mut plaintext = Vec::with_capacity(8 + bytes.len());
        plaintext.extend_from_slice(&through_seq.to_be_bytes());
        plaintext.extend_from_slice(bytes);
        self.put(&DOC_SNAPSHOT, Key::Seq(generation), &plaintext)
    }

    /// Reads the snapshot.
    pub(crate) fn read_snapshot(&self) -> Result<Snapshot, StoreError> {
        let (key, plaintext, sealed_len) = self
            .get_with_len(&DOC_SNAPSHOT, Key::Seq(0))?
            .ok_or(StoreError::Missing { table: DOC_SNAPSHOT.name, row: "1".into() })?;
        let Some(head) = plaintext.get(..8) else {
            return Err(StoreError::damaged(&DOC_SNAPSHOT, 1));
        };
        let through_seq = i64::from_be_bytes(head.try_into().expect("8 bytes"));
        #[cfg(test)]
        if let Some(mut hook) = AFTER_SNAPSHOT_READ.with(|h| h.borrow_mut().take()) {
            hook();
        }
        Ok(Snapshot { generation: key.seq(), through_seq, bytes: plaintext[8..].to_vec(), sealed_len })
    }

    /// The generation of the snapshot on disk.
    pub(crate) fn snapshot_generation(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("SELECT generation FROM doc_snapshot WHERE id = 1", [], |r| r.get(0))?)
    }

    /// Appends change chunk `seq`; returns its sealed length.
    pub(crate) fn append_change(&self, seq: i64, plaintext: &[u8]) -> Result<u64, StoreError> {
        self.put(&DOC_CHANGES, Key::Seq(seq), plaintext)
    }

    /// The change chunks after `seq`, in order.
    pub(crate) fn changes_after(&self, seq: i64) -> Result<Vec<Chunk>, StoreError> {
        Ok(self
            .list_after(&DOC_CHANGES, seq)?
            .into_iter()
            .map(|(k, plaintext, sealed_len)| Chunk { seq: k.seq(), plaintext, sealed_len })
            .collect())
    }

    /// Drops the change chunks folded into a snapshot.
    pub(crate) fn drop_changes_through(&self, seq: i64) -> Result<(), StoreError> {
        self.delete_through(&DOC_CHANGES, seq)?;
        Ok(())
    }

    /// Stores a 32-byte secret seed.
    pub(crate) fn write_secret(&self, name: &str, seed: &[u8]) -> Result<(), StoreError> {
        self.put(&SECRETS, Key::Name(name), seed)?;
        Ok(())
    }

    /// Reads a 32-byte secret seed.
    pub(crate) fn read_secret(&self, name: &str) -> Result<zeroize::Zeroizing<[u8; 32]>, StoreError> {
        self.read_secret_if_any(name)?
            .ok_or_else(|| StoreError::Missing { table: SECRETS.name, row: name.to_owned() })
    }

    /// Reads a 32-byte secret seed that may be absent (the identity key on a linked device).
    pub(crate) fn read_secret_if_any(
        &self,
        name: &str,
    ) -> Result<Option<zeroize::Zeroizing<[u8; 32]>>, StoreError> {
        let Some(bytes) = self.get(&SECRETS, Key::Name(name))? else { return Ok(None) };
        let bytes = zeroize::Zeroizing::new(bytes);
        let seed: [u8; 32] = bytes[..].try_into().map_err(|_| StoreError::damaged(&SECRETS, name))?;
        Ok(Some(zeroize::Zeroizing::new(seed)))
    }

    /// Forgets a secret (the identity key, once its recovery code is kept elsewhere).
    pub(crate) fn delete_secret(&self, name: &str) -> Result<(), StoreError> {
        self.delete(&SECRETS, Key::Name(name))?;
        Ok(())
    }

    /// Stores the identity's certificate for this device (on a device without the identity key).
    pub(crate) fn write_certificate(
        &self,
        cert: &crate::identity::DeviceCertificate,
    ) -> Result<(), StoreError> {
        self.put(&SECRETS, Key::Name(CERTIFICATE), &cert.to_bytes())?;
        Ok(())
    }

    /// Reads the certificate [`Store::write_certificate`] stored, if any.
    pub(crate) fn read_certificate(&self) -> Result<Option<crate::identity::DeviceCertificate>, StoreError> {
        let Some(bytes) = self.get(&SECRETS, Key::Name(CERTIFICATE))? else { return Ok(None) };
        crate::identity::DeviceCertificate::from_bytes(&bytes)
            .map(Some)
            .map_err(|_| StoreError::damaged(&SECRETS, CERTIFICATE))
    }
}

#[cfg(test)]
mod tests {
    use super::AFTER_SNAPSHOT_READ;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::vault::Vault;

    /// Another process compacts (and writes again) between the snapshot read and the chunks
    /// read: open and verify still see one consistent state and report no damage.
    #[test]
    fn a_compaction_between_reads_is_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let pw = Passphrase::new("pw");
        let mut a = Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&pw).unwrap();
        for i in 0..5 {
            a.records_mut().set_preference(&format!("k{i}"), "v").unwrap();
        }
        drop(a);
        for check in ["open", "verify"] {
            let mut other = Vault::at(dir.path()).unlock(&pw).unwrap();
            other.records_mut().set_preference("before", check).unwrap();
            AFTER_SNAPSHOT_READ.with(|h| {
                *h.borrow_mut() = Some(Box::new(move || {
                    other.compact().unwrap();
                    other.records_mut().set_preference("after", "compaction").unwrap();
                }))
            });
            if check == "open" {
                let v = Vault::at(dir.path()).unlock(&pw).unwrap();
                assert_eq!(v.records().preferences()["k4"], "v");
                assert_eq!(v.records().preferences()["before"], check);
            } else {
                let report = Vault::at(dir.path()).verify(&pw).unwrap();
                assert!(report.is_ok(), "{:?}", report.problems);
            }
            assert!(AFTER_SNAPSHOT_READ.with(|h| h.borrow().is_none()), "the hook ran");
        }
        let v = Vault::at(dir.path()).unlock(&pw).unwrap();
        assert_eq!(v.records().preferences()["after"], "compaction");
    }
}
