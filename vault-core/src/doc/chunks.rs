//! A gate in front of Automerge for bytes that come from elsewhere: a peer's sync message, an
//! import file, the vault's own stored chunks.
//!
//! Automerge's storage format is a sequence of chunks, each `magic (4) | checksum (4) | type (1)
//! | length (uLEB128) | body`. Automerge parses whatever chunk types it knows, and two things in
//! them let a few bytes claim a great deal of memory:
//!
//! - the *bundle* (type 3, which nothing in the vault ever writes) expands a run-length-encoded
//!   column into memory while it parses: 139 bytes found by fuzzing ask for a 17 GB allocation,
//!   which aborts the process;
//! - a document chunk's columns, and a compressed change's body, may be deflated, and Automerge
//!   inflates them without a bound (deflate expands up to about a thousandfold).
//!
//! So before Automerge sees foreign bytes, their chunk headers are walked here: only the types
//! the place can legitimately hold pass, and what is deflated is inflated once, counting, into
//! nothing, and refused past [`INFLATED_MAX`]:
//!
//! - sync messages carry what Automerge sends: uncompressed changes (type 1), or the whole
//!   document (type 0) when the peer has nothing yet;
//! - an import file or a paired device's document holds a document chunk, changes, and
//!   compressed changes (type 2), which is what `save`, `save_after` and `save_incremental`
//!   write;
//! - the vault's own chunks (sealed, so written by this vault) get the header walk only.
//!
//! This is a filter on shapes, not a parser: what passes is still parsed by Automerge, under
//! `catch_unwind` (see `guarded` in doc.rs).

use std::io::Read;

use automerge::sync::Message;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;
const COMPRESSED_CHANGE: u8 = 2;
/// The deflate bit of a column's specification.
const DEFLATED: u64 = 0b1000;

/// The most a chunk's deflated parts may inflate to (a vault of 10,000 purchases is a few MB).
pub(crate) const INFLATED_MAX: u64 = 256 << 20;

/// Where bytes come from, which decides the chunk types they may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// The changes of a peer's sync message (changes, or a whole document).
    SyncChanges,
    /// A file or another device's document: a saved document, incremental saves, or both.
    Foreign,
    /// What this vault stored itself (authenticated at rest): the header walk only.
    Own,
}

impl Allowed {
    fn admits(self, kind: u8) -> bool {
        match self {
            Allowed::SyncChanges => matches!(kind, DOCUMENT | CHANGE),
            Allowed::Foreign | Allowed::Own => matches!(kind, DOCUMENT | CHANGE | COMPRESSED_CHANGE),
        }
    }
}

/// True when `bytes` is a whole sequence of chunks of the types `allowed` admits (empty
/// included), with at most one document chunk, whose deflated parts inflate to at most
/// [`INFLATED_MAX`] in all.
pub(crate) fn well_formed(bytes: &[u8], allowed: Allowed) -> bool {
    Gate::new(allowed).admits(bytes)
}

/// What one input (a file, a sync message with all its entries) has used of its limits.
struct Gate {
    allowed: Allowed,
    inflate_budget: u64,
    documents: usize,
}

impl Gate {
    fn new(allowed: Allowed) -> Self {
        Self { allowed, inflate_budget: INFLATED_MAX, documents: 0 }
    }

    fn admits(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let Some(rest) = bytes.strip_prefix(&MAGIC) else { return false };
            // Checksum (4 bytes), then the type.
            let Some((&kind, rest)) = rest.get(4..).and_then(<[u8]>::split_first) else { return false };
            if !self.allowed.admits(kind) {
                return false;
            }
            let Some((length, rest)) = uleb128(rest) else { return false };
            let Some(length) = usize::try_from(length).ok().filter(|n| *n <= rest.len()) else {
                return false;
            };
            let (body, rest) = rest.split_at(length);
            if self.allowed != Allowed::Own {
                // Automerge writes one document per save; each inflates and is kept whole.
                if kind == DOCUMENT {
                    self.documents += 1;
                    if self.documents > 1 {
                        return false;
                    }
                }
                let used = match kind {
                    CHANGE => Some(0),
                    DOCUMENT => document_inflated_len(body, self.inflate_budget),
                    _ => inflated_len(body, self.inflate_budget),
                };
                match used {
                    Some(n) => self.inflate_budget -= n,
                    None => return false,
                }
            }
            bytes = rest;
        }
        true
    }
}

/// Walks a document chunk's body (actors, heads, the change and operation column metadata,
/// then the columns) and inflates its deflated columns, counting: how much they inflate to,
/// or `None` when the body does not hold what its metadata says or inflates past `limit`.
fn document_inflated_len(body: &[u8], limit: u64) -> Option<u64> {
    let mut cursor = Cursor(body);
    for _ in 0..cursor.uleb()? {
        let len = cursor.uleb()?;
        cursor.take(len)?;
    }
    let heads = cursor.uleb()?;
    cursor.take(heads.checked_mul(32)?)?;
    let mut columns = Vec::new();
    for _ in 0..2 {
        for _ in 0..cursor.uleb()? {
            columns.push((cursor.uleb()?, cursor.uleb()?));
        }
    }
    let mut used = 0;
    for (spec, len) in columns {
        let data = cursor.take(len)?;
        if spec & DEFLATED != 0 {
            used += inflated_len(data, limit - used)?;
        }
    }
    Some(used)
}

/// The length `deflated` inflates to, when it is valid deflate and at most `limit`.
fn inflated_len(deflated: &[u8], limit: u64) -> Option<u64> {
    let mut inflater = flate2::bufread::DeflateDecoder::new(deflated).take(limit + 1);
    let n = std::io::copy(&mut inflater, &mut std::io::sink()).ok()?;
    (n <= limit).then_some(n)
}

/// Reads a chunk body front to back; every read fails rather than run past the end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn uleb(&mut self) -> Option<u64> {
        let (value, rest) = uleb128(self.0)?;
        self.0 = rest;
        Some(value)
    }

    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok().filter(|n| *n <= self.0.len())?;
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(taken)
    }
}

/// The most probes, and bits per entry, a bloom filter in a sync message may claim (Automerge
/// writes 7 and 10; it allocates the probes per hash it looks up, from the peer's number).
const BLOOM_MAX: u64 = 64;

/// Decodes a sync message from a peer: `None` when it does not decode, when decoding panics
/// inside Automerge, when its changes hold anything but plain changes or one document, or
/// when a bloom filter in it claims more probes or bits per entry than Automerge would write
/// (a filter claiming four billion probes makes the reply allocate 16 GB).
pub(crate) fn sync_message(bytes: &[u8]) -> Option<Message> {
    let message = std::panic::catch_unwind(|| Message::decode(bytes)).ok()?.ok()?;
    let mut gate = Gate::new(Allowed::SyncChanges);
    let plain = message.changes.iter().all(|c| gate.admits(c));
    let blooms = message.have.iter().all(|h| bloom_is_sane(&h.bloom.to_bytes()));
    (plain && blooms).then_some(message)
}

/// A bloom filter's wire form: empty, or entries, bits per entry and probes (uLEB128), then
/// the bits.
fn bloom_is_sane(bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    let mut cursor = Cursor(bytes);
    let (Some(entries), Some(bits_per_entry), Some(probes)) = (cursor.uleb(), cursor.uleb(), cursor.uleb())
    else {
        return false;
    };
    let bits = cursor.0;
    // No bits to probe is a division by zero in Automerge.
    (1..=BLOOM_MAX).contains(&probes) && bits_per_entry <= BLOOM_MAX && (entries == 0 || !bits.is_empty())
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
        assert!(well_formed(&am.save(), Allowed::Foreign));
        assert!(well_formed(&am.save_after(&[]), Allowed::Foreign));
        let mut both = am.save();
        both.extend(am.save_incremental());
        assert!(well_formed(&both, Allowed::Foreign));
        assert!(well_formed(&[], Allowed::Foreign));
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
        let mut relabelled = saved.clone();
        relabelled[8] = COMPRESSED_CHANGE;
        assert!(!well_formed(&relabelled, Allowed::Foreign), "its body is not deflate");
        let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut deflate, b"some change").unwrap();
        let deflated = deflate.finish().unwrap();
        let mut compressed = MAGIC.to_vec();
        compressed.extend([0, 0, 0, 0, COMPRESSED_CHANGE, deflated.len() as u8]);
        compressed.extend(&deflated);
        assert!(well_formed(&compressed, Allowed::Foreign));
        assert!(!well_formed(&compressed, Allowed::SyncChanges), "Automerge never sends these");
        let mut bundle = saved.clone();
        bundle[8] = 3;
        assert!(!well_formed(&bundle, Allowed::Foreign));
        let mut unknown = saved.clone();
        unknown[8] = 9;
        assert!(!well_formed(&unknown, Allowed::Foreign));
        assert!(!well_formed(&saved[..saved.len() - 1], Allowed::Foreign), "truncated");
        let mut trailing = saved.clone();
        trailing.push(0);
        assert!(!well_formed(&trailing, Allowed::Foreign), "trailing bytes");
        assert!(!well_formed(&[0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1, 0xff, 0xff], Allowed::Foreign));
        // A length of more than 64 bits.
        let mut long = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1];
        long.extend([0xff; 10]);
        long.push(0x01);
        assert!(!well_formed(&long, Allowed::Foreign));
        assert_eq!(
            uleb128(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Some((u64::MAX, &[][..]))
        );
        assert_eq!(uleb128(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]), None);
    }

    #[test]
    fn a_bloom_filter_claiming_absurd_probes_is_refused() {
        use automerge::sync::BloomFilter;
        let mut am = doc();
        let mut state = State::new();
        let mut message = am.sync().generate_sync_message(&mut state).unwrap();
        assert!(sync_message(&message.clone().encode()).is_some());
        let mut with = |bloom: &[u8]| {
            message.have = vec![automerge::sync::Have {
                last_sync: Vec::new(),
                bloom: BloomFilter::try_from(bloom).unwrap(),
            }];
            sync_message(&message.clone().encode()).is_some()
        };
        // One entry, 8 bits, then the probes; one byte of bits.
        assert!(with(&[1, 8, 7, 0xaa]), "what Automerge writes");
        assert!(!with(&[1, 8, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xaa]), "four billion probes");
        assert!(!with(&[1, 8, 0, 0xaa]), "no probes");
        let mut wide = vec![1, 0x80, 0x01, 7];
        wide.extend([0xaa; 16]);
        assert!(!with(&wide), "128 bits per entry");
        assert!(!with(&[1, 0, 7]), "entries, but no bits to probe");
    }

    #[test]
    fn one_document_per_input_and_one_inflation_budget_across_a_message() {
        let mut am = AutoCommit::new();
        am.put(ROOT, "a", "x".repeat(3 << 20)).unwrap();
        let saved = am.save();
        let mut twice = saved.clone();
        twice.extend(&saved);
        assert!(!well_formed(&twice, Allowed::Foreign), "two documents in one file");
        assert!(!well_formed(&twice, Allowed::SyncChanges));
        assert!(well_formed(&twice, Allowed::Own), "the vault's own bytes: header walk only");
        // A message whose entries each carry a document: one budget, one document for all.
        let mut state = State::new();
        let mut message = am.sync().generate_sync_message(&mut state).unwrap();
        message.changes = vec![saved.clone(), saved.clone()].into();
        assert!(sync_message(&message.clone().encode()).is_none());
        message.changes = vec![saved].into();
        assert!(sync_message(&message.encode()).is_some());
    }

    /// The body of the first chunk of `bytes`.
    fn first_body(bytes: &[u8]) -> &[u8] {
        let (len, rest) = uleb128(&bytes[9..]).unwrap();
        &rest[..len as usize]
    }

    #[test]
    fn deflated_columns_are_counted_against_the_limit() {
        let mut am = AutoCommit::new();
        am.put(ROOT, "a", "x".repeat(3 << 20)).unwrap();
        let saved = am.save();
        assert_eq!(saved[8], DOCUMENT);
        assert!(saved.len() < 1 << 20, "the column is deflated: {} bytes", saved.len());
        let body = first_body(&saved);
        assert!(document_inflated_len(body, INFLATED_MAX).is_some_and(|n| n >= 3 << 20));
        assert_eq!(document_inflated_len(body, 1 << 20), None, "3 MiB inflated against a 1 MiB limit");
        assert_eq!(document_inflated_len(&body[..body.len() / 2], INFLATED_MAX), None, "truncated");
        assert!(well_formed(&saved, Allowed::SyncChanges));

        // A compressed change's body: a small deflate stream of many zeros.
        let mut bomb = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut bomb, &vec![0; 4 << 20]).unwrap();
        let bomb = bomb.finish().unwrap();
        assert!(bomb.len() < 8 << 10);
        assert_eq!(inflated_len(&bomb, INFLATED_MAX), Some(4 << 20));
        assert_eq!(inflated_len(&bomb, 1 << 20), None);
        assert_eq!(inflated_len(b"not deflate at all", INFLATED_MAX), None);
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
        assert!(!well_formed(found, Allowed::Foreign));
        assert!(matches!(
            crate::doc::VaultDoc::load(found, Allowed::Foreign),
            Err(crate::doc::DocError::NotAutomerge(None))
        ));
    }
}
