//! A gate in front of Automerge for bytes that come from elsewhere: a peer's sync message, an
//! import file, the vault's own stored chunks.
//!
//! Automerge's storage format is a sequence of chunks, each `magic (4) | checksum (4) | type (1)
//! | length (uLEB128) | body`. Automerge parses whatever chunk types it knows, and one of them, the
//! *bundle* (type 3, which nothing in the vault ever writes), expands a run-length-encoded column
//! into memory while it parses: 139 bytes found by fuzzing ask for a 17 GB allocation, which
//! aborts the process. So before Automerge sees foreign bytes, their chunk headers are walked
//! here and only the types the context can legitimately hold pass:
//!
//! - sync messages carry what Automerge sends: uncompressed changes (type 1), or the whole
//!   document (type 0) when the peer has nothing yet;
//! - stored or imported documents hold a document chunk (type 0), changes, and compressed
//!   changes (type 2), which is what `save`, `save_after` and `save_incremental` write.
//!
//! This is a filter on shapes, not a parser: what passes is still parsed by Automerge, under
//! `catch_unwind` (see `guarded` in doc.rs). A document chunk's columns may be deflated, and
//! Automerge inflates them without a bound: that amplification (at most about a thousandfold
//! of the frame) is not filtered here (README, threat model).

use automerge::sync::Message;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;
const COMPRESSED_CHANGE: u8 = 2;

/// Which chunk types a context may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// The changes of a sync message (changes, or a whole document).
    SyncChanges,
    /// A saved document, incremental saves, or both concatenated.
    Stored,
}

impl Allowed {
    fn admits(self, kind: u8) -> bool {
        match self {
            Allowed::SyncChanges => matches!(kind, DOCUMENT | CHANGE),
            Allowed::Stored => matches!(kind, DOCUMENT | CHANGE | COMPRESSED_CHANGE),
        }
    }
}

/// True when `bytes` is a whole sequence of chunks of the types `allowed` admits (empty
/// included).
pub(crate) fn well_formed(mut bytes: &[u8], allowed: Allowed) -> bool {
    while !bytes.is_empty() {
        let Some(rest) = bytes.strip_prefix(&MAGIC) else { return false };
        // Checksum (4 bytes), then the type.
        let Some((&kind, rest)) = rest.get(4..).and_then(<[u8]>::split_first) else { return false };
        if !allowed.admits(kind) {
            return false;
        }
        let Some((length, rest)) = uleb128(rest) else { return false };
        let Some(rest) = usize::try_from(length).ok().and_then(|n| rest.get(n..)) else { return false };
        bytes = rest;
    }
    true
}

/// Decodes a sync message from a peer: `None` when it does not decode, when decoding panics
/// inside Automerge, or when its changes hold anything but plain changes or a document.
pub(crate) fn sync_message(bytes: &[u8]) -> Option<Message> {
    let message = std::panic::catch_unwind(|| Message::decode(bytes)).ok()?.ok()?;
    let plain = message.changes.iter().all(|c| well_formed(c, Allowed::SyncChanges));
    plain.then_some(message)
}

/// An unsigned LEB128 number of at most 64 bits, and what follows it.
fn uleb128(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && part > 1 {
            return None;
        }
        value |= part << shift;
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use automerge::sync::{State, SyncDoc};
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    use super::*;

    fn doc() -> AutoCommit {
        let mut am = AutoCommit::new();
        am.put(ROOT, "a", "x".repeat(2000)).unwrap();
        am.commit();
        am.put(ROOT, "b", 1).unwrap();
        am.commit();
        am
    }

    #[test]
    fn what_automerge_writes_passes() {
        let mut am = doc();
        assert!(well_formed(&am.save(), Allowed::Stored));
        assert!(well_formed(&am.save_after(&[]), Allowed::Stored));
        let mut both = am.save();
        both.extend(am.save_incremental());
        assert!(well_formed(&both, Allowed::Stored));
        assert!(well_formed(&[], Allowed::Stored));
        let mut state = State::new();
        let first = am.sync().generate_sync_message(&mut state).unwrap().encode();
        let mut peer = AutoCommit::new();
        let mut peer_state = State::new();
        peer.sync().receive_sync_message(&mut peer_state, Message::decode(&first).unwrap()).unwrap();
        let reply = peer.sync().generate_sync_message(&mut peer_state).unwrap();
        am.sync().receive_sync_message(&mut state, reply).unwrap();
        let with_changes = am.sync().generate_sync_message(&mut state).unwrap();
        assert!(!with_changes.changes.is_empty());
        assert!(sync_message(&with_changes.encode()).is_some());
    }

    #[test]
    fn bundles_compressed_changes_in_sync_and_broken_headers_are_refused() {
        let mut am = doc();
        let saved = am.save();
        let mut compressed = saved.clone();
        compressed[8] = 2;
        assert!(well_formed(&compressed, Allowed::Stored));
        assert!(!well_formed(&compressed, Allowed::SyncChanges), "Automerge never sends these");
        let mut bundle = saved.clone();
        bundle[8] = 3;
        assert!(!well_formed(&bundle, Allowed::Stored));
        let mut unknown = saved.clone();
        unknown[8] = 9;
        assert!(!well_formed(&unknown, Allowed::Stored));
        assert!(!well_formed(&saved[..saved.len() - 1], Allowed::Stored), "truncated");
        let mut trailing = saved.clone();
        trailing.push(0);
        assert!(!well_formed(&trailing, Allowed::Stored), "trailing bytes");
        assert!(!well_formed(&[0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1, 0xff, 0xff], Allowed::Stored));
        // A length of more than 64 bits.
        let mut long = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1];
        long.extend([0xff; 10]);
        long.push(0x01);
        assert!(!well_formed(&long, Allowed::Stored));
        assert_eq!(
            uleb128(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Some((u64::MAX, &[][..]))
        );
        assert_eq!(uleb128(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]), None);
    }

    #[test]
    fn the_fuzzers_bundle_is_refused_before_automerge_sees_it() {
        // Found by fuzz target import_automerge: parsing this bundle, Automerge asks for 17 GB.
        let found: &[u8] = &[
            0x85, 0x6f, 0x4a, 0x83, 0x31, 0x00, 0x01, 0xcc, 0x03, 0x7b, 0x03, 0x21, 0x7f, 0x00, 0x04, 0x01,
            0x7e, 0x04, 0x01, 0x85, 0x6d, 0x4a, 0x2a, 0x83, 0xaf, 0xab, 0xc7, 0x04, 0x01, 0x7f, 0x00, 0x03,
            0x01, 0x05, 0x32, 0x00, 0xd4, 0xc2, 0x00, 0x00, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x01, 0x01, 0x01, 0x01, 0x01, 0x0c, 0x01,
            0x01, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
            0x01, 0x01, 0xff, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfc, 0xfe, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
            0x06, 0x01, 0x01, 0x01, 0x0f, 0x01, 0x01, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
            0x01, 0x7a, 0x01, 0x23, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0b, 0x00, 0x01, 0x01,
            0xff, 0xff, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(found[8], 3, "a bundle chunk");
        assert!(!well_formed(found, Allowed::Stored));
        assert!(matches!(crate::doc::VaultDoc::load(found), Err(crate::doc::DocError::NotAutomerge(None))));
    }
}
