//! The change log: how the document is stored and kept current. Owns the sealed tables
//! `doc_snapshot` and `doc_changes` (through [`Store::read_snapshot`], [`Store::append_change`]
//! and friends) and their rules:
//!
//! - Each edit is one Automerge commit, persisted as one sealed chunk inside one SQLite
//!   transaction (`BEGIN IMMEDIATE` ... `COMMIT` with synchronous=FULL): when an edit returns
//!   `Ok`, the change is on disk.
//! - Before editing, the log catches up with chunks other processes wrote since it last
//!   looked, so two commands on one vault never lose each other's changes.
//! - A chunk's plaintext is a marker, the list of what the change touched (for projections),
//!   then the Automerge bytes (see [`change_plaintext`]); bare Automerge bytes read as
//!   "touched: unknown".
//! - When chunks pile up (more than half the snapshot's size, at least 64 KiB) they are folded
//!   into a new sealed snapshot.
//!
//! [`ChangeLog`] is a borrowed handle over the store, the document and the counters it keeps;
//! [`Vault`](super::Vault) hands it out and adds the panic guard around edits.

use std::path::PathBuf;

use automerge::ChangeHash;
use serde::Serialize;

use crate::doc::{Allowed, DocError, Touched, VaultDoc};
use crate::schema::SchemaError;
use crate::store::sealed::DOC_CHANGES;
use crate::store::{Store, StoreError};

/// Chunks are folded into the snapshot when they exceed this many bytes...
const COMPACT_MIN_BYTES: u64 = 64 * 1024;
/// ...and also exceed this fraction (1/N) of the snapshot's size.
const COMPACT_SNAPSHOT_DIVISOR: u64 = 2;
/// First byte of a change chunk that carries what the change touched (see [`change_plaintext`]).
const CHUNK_WITH_TOUCHED: u8 = 0x01;

/// A change chunk's plaintext: a marker, what the change touched (for projections; `null`
/// when unknown), then the Automerge bytes.
fn change_plaintext(touched: &Option<Vec<Touched>>, bytes: &[u8]) -> Vec<u8> {
    let list: Option<Vec<String>> = touched.as_ref().map(|t| t.iter().map(Touched::encode).collect());
    let meta = serde_json::to_vec(&list).expect("serializes");
    let mut out = Vec::with_capacity(5 + meta.len() + bytes.len());
    out.push(CHUNK_WITH_TOUCHED);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(bytes);
    out
}

/// Splits a change chunk's plaintext into what it touched (`None`: unknown) and the Automerge
/// bytes. Chunks that are bare Automerge bytes read as "unknown".
fn split_change(plain: &[u8]) -> Option<(Option<Vec<Touched>>, &[u8])> {
    match plain.first() {
        Some(&CHUNK_WITH_TOUCHED) => {
            let len = u32::from_be_bytes(plain.get(1..5)?.try_into().ok()?) as usize;
            let meta = plain.get(5..5 + len)?;
            let list: Option<Vec<String>> = serde_json::from_slice(meta).ok()?;
            let touched = list.map(|l| l.iter().filter_map(|t| Touched::decode(t)).collect());
            Some((touched, &plain[5 + len..]))
        }
        _ => Some((None, plain)),
    }
}

/// The Automerge bytes of change chunk `seq` (dropping the touched list).
fn change_bytes(seq: i64, plain: &[u8]) -> Result<&[u8], StoreError> {
    let (_, bytes) = split_change(plain).ok_or_else(|| StoreError::damaged(&DOC_CHANGES, seq))?;
    Ok(bytes)
}

/// An edit was refused or could not be saved. When this is returned, nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The value does not fit the document schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A field path is malformed (empty segment).
    #[error("invalid field name \"{0}\"")]
    BadField(String),
    /// The storage layer failed.
    #[error("cannot save the change")]
    Store(#[from] StoreError),
    /// The stored document is damaged.
    #[error("the vault document is damaged")]
    Doc(#[from] DocError),
    /// Another device of this identity sent a sync message that does not decode.
    #[error("another device sent a malformed sync message")]
    BadSyncMessage,
}

/// Sizes of the vault file, for benchmarks and `verify`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StorageStats {
    /// Bytes of the database file.
    pub db_bytes: u64,
    /// Bytes of the write-ahead log.
    pub wal_bytes: u64,
    /// Bytes of the sealed snapshot.
    pub snapshot_bytes: u64,
    /// Number of change chunks since the snapshot.
    pub chunk_count: u64,
    /// Bytes of those chunks.
    pub chunk_bytes: u64,
}

/// What the change log knows of the file beyond the document itself.
#[derive(Debug, Default)]
pub(super) struct LogState {
    /// Generation of the snapshot this process has loaded.
    snapshot_generation: i64,
    snapshot_bytes: u64,
    chunk_count: u64,
    chunk_bytes: u64,
}

/// The document as stored: the snapshot and the chunks after it, joined.
pub(super) struct Loaded {
    bytes: Vec<u8>,
    generation: i64,
    last_seq: i64,
    snapshot_bytes: u64,
    chunk_count: u64,
    chunk_bytes: u64,
}

/// Reads the snapshot and its chunks; call inside one transaction (see [`Store::read_tx`]).
pub(super) fn read_document(store: &Store) -> Result<Loaded, StoreError> {
    let snapshot = store.read_snapshot()?;
    let mut loaded = Loaded {
        bytes: snapshot.bytes,
        generation: snapshot.generation,
        last_seq: snapshot.through_seq,
        snapshot_bytes: snapshot.sealed_len,
        chunk_count: 0,
        chunk_bytes: 0,
    };
    for chunk in store.changes_after(loaded.last_seq)? {
        if chunk.seq != loaded.last_seq + 1 {
            return Err(StoreError::Missing {
                table: DOC_CHANGES.name,
                row: format!("{} to {}", loaded.last_seq + 1, chunk.seq - 1),
            });
        }
        loaded.bytes.extend_from_slice(change_bytes(chunk.seq, &chunk.plaintext)?);
        loaded.chunk_count += 1;
        loaded.chunk_bytes += chunk.sealed_len;
        loaded.last_seq = chunk.seq;
    }
    Ok(loaded)
}

/// The change log of one unlocked vault (see the module docs). The document and the number of
/// the last chunk applied live on the vault, which projections read; the log is what moves
/// them forward.
pub(super) struct ChangeLog<'a> {
    pub(super) store: &'a Store,
    pub(super) doc: &'a mut VaultDoc,
    /// Highest change chunk this process has applied.
    pub(super) last_seq: &'a mut i64,
    pub(super) state: &'a mut LogState,
}

impl Loaded {
    /// The document as loaded, and what the change log keeps of it.
    pub(super) fn into_parts(self) -> Result<(VaultDoc, i64, LogState), DocError> {
        let doc = VaultDoc::load(&self.bytes, Allowed::Own)?;
        let state = LogState {
            snapshot_generation: self.generation,
            snapshot_bytes: self.snapshot_bytes,
            chunk_count: self.chunk_count,
            chunk_bytes: self.chunk_bytes,
        };
        Ok((doc, self.last_seq, state))
    }
}

impl ChangeLog<'_> {
    /// Call inside a transaction (read or write), so the snapshot and the chunks read are one
    /// state of the file.
    pub(super) fn catch_up(&mut self) -> Result<bool, EditError> {
        let generation = self.store.snapshot_generation()?;
        let mut changed = false;
        if generation != self.state.snapshot_generation {
            let snapshot = self.store.read_snapshot()?;
            self.doc.load_incremental(&snapshot.bytes, Allowed::Own)?;
            self.state.snapshot_generation = snapshot.generation;
            self.state.snapshot_bytes = snapshot.sealed_len;
            *self.last_seq = (*self.last_seq).max(snapshot.through_seq);
            self.state.chunk_count = 0;
            self.state.chunk_bytes = 0;
            changed = true;
        }
        for chunk in self.store.changes_after(*self.last_seq)? {
            self.doc.load_incremental(change_bytes(chunk.seq, &chunk.plaintext)?, Allowed::Own)?;
            *self.last_seq = chunk.seq;
            self.state.chunk_count += 1;
            self.state.chunk_bytes += chunk.sealed_len;
            changed = true;
        }
        Ok(changed)
    }

    /// Runs `edit` on the document and makes the result durable as one change, in a write
    /// transaction of its own. When `edit` fails, or saving fails, nothing is written and the
    /// in-memory document is rolled back (the caller rolls back the transaction: see
    /// `Vault::edit`).
    pub(super) fn edit<T>(
        &mut self,
        edit: impl FnOnce(&mut VaultDoc) -> Result<T, EditError>,
    ) -> Result<T, EditError> {
        self.store.begin_write()?;
        if self.doc.holds_foreign() {
            // A failed merge whose reload failed too: memory may hold what the file does not.
            self.reload()?;
        }
        self.catch_up()?;
        let before: Vec<ChangeHash> = self.doc.automerge().get_heads();
        self.doc.take_touched();
        let value = match edit(self.doc) {
            Ok(v) => v,
            Err(e) => {
                self.doc.automerge().rollback();
                self.doc.take_touched();
                // rollback() drops pending operations only; what a failed merge or sync message
                // already did to memory is dropped by reloading, so memory never holds what the
                // file does not.
                if self.doc.holds_foreign() || self.doc.automerge().get_heads() != before {
                    self.reload()?;
                }
                return Err(e);
            }
        };
        self.doc.automerge().commit();
        // Compare heads rather than trusting commit(): a merge adds changes without a local
        // commit, and those must be persisted too.
        if self.doc.automerge().get_heads() != before {
            let bytes = self.doc.automerge().save_after(&before);
            let touched = self.doc.take_touched();
            let seq = *self.last_seq + 1;
            let written = self
                .store
                .append_change(seq, &change_plaintext(&touched, &bytes))
                .and_then(|len| self.store.commit().map(|_| len));
            let sealed_len = match written {
                Ok(len) => len,
                Err(e) => {
                    // The change is not durable: drop it from memory too, by reloading.
                    self.store.rollback();
                    self.reload()?;
                    return Err(e.into());
                }
            };
            *self.last_seq = seq;
            self.state.chunk_count += 1;
            self.state.chunk_bytes += sealed_len;
            if self.state.chunk_bytes
                > COMPACT_MIN_BYTES.max(self.state.snapshot_bytes / COMPACT_SNAPSHOT_DIVISOR)
            {
                // The edit is already durable; a failed compaction only leaves chunks behind.
                if let Err(e) = self.compact() {
                    tracing::warn!(error = %e, "compaction failed; will retry on a later write");
                }
            }
        } else {
            self.store.commit()?;
        }
        self.doc.saved();
        Ok(value)
    }

    pub(super) fn reload(&mut self) -> Result<(), EditError> {
        let loaded = self.store.read_tx(|| read_document(self.store))?;
        *self.last_seq = loaded.last_seq;
        self.state.snapshot_generation = loaded.generation;
        *self.doc = VaultDoc::load(&loaded.bytes, Allowed::Own)?;
        Ok(())
    }

    /// Folds all change chunks into a new sealed snapshot and returns freed space to the
    /// file system.
    pub(super) fn compact(&mut self) -> Result<(), StoreError> {
        self.store.begin_write()?;
        let result = (|| {
            self.catch_up().map_err(|e| match e {
                EditError::Store(s) => s,
                EditError::Doc(d) => StoreError::Document(Box::new(d)),
                other => StoreError::Document(Box::new(other)),
            })?;
            let bytes = self.doc.automerge().save();
            let generation = self.state.snapshot_generation + 1;
            let sealed = self.store.write_snapshot(generation, *self.last_seq, &bytes)?;
            self.store.drop_changes_through(*self.last_seq)?;
            self.store.commit()?;
            self.state.snapshot_generation = generation;
            self.state.snapshot_bytes = sealed;
            self.state.chunk_count = 0;
            self.state.chunk_bytes = 0;
            Ok(())
        })();
        if result.is_err() {
            self.store.rollback();
            return result;
        }
        self.store.reclaim_space().map(|_| ())
    }
}

/// What the changes after `seq` touched, from their chunks; `None` when that is unknown
/// (chunks folded into the snapshot, a merge, or chunks from before this was recorded).
pub(super) fn touched_since(
    store: &Store,
    last_seq: i64,
    seq: i64,
) -> Result<Option<Vec<Touched>>, StoreError> {
    let mut expected = seq + 1;
    let mut all: Vec<Touched> = Vec::new();
    for chunk in store.changes_after(seq)? {
        let (s, plain) = (chunk.seq, chunk.plaintext);
        if s != expected {
            return Ok(None);
        }
        expected += 1;
        match split_change(&plain) {
            Some((Some(list), _)) => {
                for t in list {
                    if !all.contains(&t) {
                        all.push(t);
                    }
                }
            }
            _ => return Ok(None),
        }
    }
    if expected - 1 != last_seq {
        return Ok(None);
    }
    Ok(Some(all))
}

/// File sizes and chunk counts.
pub(super) fn stats(store: &Store, state: &LogState) -> StorageStats {
    let len = |suffix: &str| {
        let mut p = store.path().as_os_str().to_owned();
        p.push(suffix);
        std::fs::metadata(PathBuf::from(p)).map(|m| m.len()).unwrap_or(0)
    };
    StorageStats {
        db_bytes: len(""),
        wal_bytes: len("-wal"),
        snapshot_bytes: state.snapshot_bytes,
        chunk_count: state.chunk_count,
        chunk_bytes: state.chunk_bytes,
    }
}

#[cfg(test)]
mod tests {
    use crate::primitives::Passphrase;
    use crate::vault::Vault;
    use crate::vault::new_test_vault;

    #[test]
    fn two_handles_on_one_vault_do_not_lose_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = new_test_vault(dir.path());
        let mut b = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        a.records_mut().set_profile("name", "Ada").unwrap();
        b.records_mut().set_preference("diet", "vegan").unwrap();
        a.records_mut().set_preference("size", "M").unwrap();
        let c = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(c.records().profile()["name"], "Ada");
        assert_eq!(c.records().preferences()["diet"], "vegan");
        assert_eq!(c.records().preferences()["size"], "M");
    }

    #[test]
    fn compaction_keeps_everything_and_shrinks_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = new_test_vault(dir.path());
        for i in 0..50 {
            v.records_mut().set_preference("counter", &i.to_string()).unwrap();
        }
        assert!(v.storage_stats().chunk_count > 0);
        v.compact().unwrap();
        assert_eq!(v.storage_stats().chunk_count, 0);
        v.records_mut().set_profile("name", "Ada").unwrap();
        drop(v);
        let v = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(v.records().preferences()["counter"], "49");
        assert_eq!(v.records().profile()["name"], "Ada");
    }
}
