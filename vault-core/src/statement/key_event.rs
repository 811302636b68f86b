//! Key events: how an identity's signing key rotates while its id stays the same (pre-rotation,
//! as KERI does it).
//!
//! The identity id is the *inception* key, forever (tickets, grants and contacts name it). Its
//! key state is a chain of [`KeyEvent`]s: event 0 is signed by the inception key and commits to
//! the digest of the *next* key; event `n > 0` is a rotation, signed by a key whose digest
//! event `n - 1` committed to, naming the digest of the key after it, and chained to event
//! `n - 1` by that event's digest. The next key lives only in the recovery code (on paper), so
//! a thief who holds the current key cannot rotate: no key it holds hashes to the commitment.
//!
//! What a rotation changes for a verifier ([`KeyLog::allows`], the one rule): a statement (or a
//! roster) signed by a key is valid only for times before the next rotation; a statement with a
//! later time, signed by a key rotated away, is refused wherever the rotation has reached.
//! Statements made before a rotation (old grants) keep verifying.
//!
//! Honest limits, said here and in docs/threat-model.md:
//! - Times are the signer's word: a thief holding an old key can backdate a statement to before
//!   the rotation. A rotation bounds what a stolen key signs from then on, not what it can claim
//!   it signed earlier.
//! - Event 0 is not bound into the identity id (the id is a plain public key, and existing ids
//!   cannot change): whoever holds the inception key can sign *another* event 0. The first one a
//!   vault sees wins there (a conflicting chain is refused, [`KeyLog::merge`]), and every device
//!   and peer is handed event 0 at its first session, so the window is the time before a peer
//!   first meets the identity after the upgrade.
//! - A thief who steals the recovery code itself (the next key) and rotates first owns the
//!   identity from then on; protecting the paper is out of scope.
//!
//! Wire form of one event (fixed, 205 bytes; the known-answer line is in
//! `tests/fixtures/key-event-v1.txt`): version `1`, identity (32), sequence (u32 BE), key (32),
//! next-key digest (32), previous-event digest (32; zeros for event 0), time (i64 BE, unix
//! seconds), then the ed25519 signature (64) by `key` over the label `vault/v1/key-event`, a zero
//! byte and the 141 bytes before it.

use std::fmt;

use crate::identity::{Identity, IdentityId};
/// What key events are signed under.
pub(crate) const LABEL: &[u8] = b"vault/v1/key-event";
/// Key-derivation context of a next-key commitment (blake3 `derive_key`).
const NEXT_KEY_CONTEXT: &str = "vault/v1/next-key digest";
/// Key-derivation context of an event digest.
const EVENT_CONTEXT: &str = "vault/v1/key-event digest";
const VERSION: u8 = 1;
/// Length of one encoded event.
pub const KEY_EVENT_LEN: usize = 1 + 32 + 4 + 32 + 32 + 32 + 8 + 64;
const SIGNED_LEN: usize = KEY_EVENT_LEN - 64;
/// Most events one identity's chain may hold (a rotation a day for years).
pub const MAX_KEY_EVENTS: usize = 4096;

/// The commitment to a next key: a digest of its public half.
pub fn next_key_digest(key: &IdentityId) -> [u8; 32] {
    blake3::derive_key(NEXT_KEY_CONTEXT, key.as_bytes())
}

/// One event of an identity's key state (see the module documentation).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEvent {
    identity: IdentityId,
    sequence: u32,
    key: IdentityId,
    next: [u8; 32],
    previous: [u8; 32],
    at: i64,
    signature: [u8; 64],
}

impl fmt::Debug for KeyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEvent")
            .field("identity", &self.identity)
            .field("sequence", &self.sequence)
            .field("key", &self.key)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// A key event, or a chain of them, did not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyEventError {
    /// Not the wire form of an event.
    #[error("malformed key event")]
    Malformed,
    /// The signature does not verify for the key the event names.
    #[error("the key event's signature does not verify")]
    BadSignature,
    /// The event does not follow the one before it (sequence, chain digest, committed key, time,
    /// or event 0 not signed by the identity's own key).
    #[error("key event {0} does not follow the identity's key state")]
    Unchained(u32),
    /// Another chain than the one this vault holds (two events with one sequence number).
    #[error("key event {0} conflicts with the identity's known key state")]
    Conflict(u32),
    /// More events than [`MAX_KEY_EVENTS`].
    #[error("too many key events")]
    TooMany,
}

impl KeyEvent {
    fn signed_bytes(&self) -> [u8; SIGNED_LEN] {
        let mut out = [0u8; SIGNED_LEN];
        out[0] = VERSION;
        out[1..33].copy_from_slice(self.identity.as_bytes());
        out[33..37].copy_from_slice(&self.sequence.to_be_bytes());
        out[37..69].copy_from_slice(self.key.as_bytes());
        out[69..101].copy_from_slice(&self.next);
        out[101..133].copy_from_slice(&self.previous);
        out[133..141].copy_from_slice(&self.at.to_be_bytes());
        out
    }

    fn signed(
        identity: IdentityId,
        sequence: u32,
        key: &Identity,
        next: &IdentityId,
        previous: [u8; 32],
        at: i64,
    ) -> Self {
        let mut event = Self {
            identity,
            sequence,
            key: key.public(),
            next: next_key_digest(next),
            previous,
            at,
            signature: [0; 64],
        };
        event.signature = key.sign(LABEL, &event.signed_bytes());
        event
    }

    /// Event 0: the inception key `identity` commits to `next` at `at`.
    pub fn inception(identity: &Identity, next: &IdentityId, at: i64) -> Self {
        Self::signed(identity.public(), 0, identity, next, [0; 32], at)
    }

    /// The rotation after `last`: `new` (the key `last` committed to) becomes current and
    /// commits to `next`. Check it with [`KeyLog::append`].
    pub fn rotation(last: &KeyEvent, new: &Identity, next: &IdentityId, at: i64) -> Self {
        Self::signed(last.identity, last.sequence.saturating_add(1), new, next, last.digest(), at)
    }

    /// The identity (its inception key).
    pub fn identity(&self) -> IdentityId {
        self.identity
    }

    /// Position in the chain (0: the first commitment).
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// The key current from this event on.
    pub fn key(&self) -> IdentityId {
        self.key
    }

    /// When it was made (unix seconds, the signer's clock).
    pub fn at(&self) -> i64 {
        self.at
    }

    /// True when `key` is the one this event committed to as next.
    pub fn commits_to(&self, key: &IdentityId) -> bool {
        // Digests of public keys: nothing secret to compare in constant time.
        self.next == next_key_digest(key)
    }

    /// The digest the next event chains to.
    pub fn digest(&self) -> [u8; 32] {
        blake3::derive_key(EVENT_CONTEXT, &self.to_bytes())
    }

    /// The wire form (see the module documentation).
    pub fn to_bytes(&self) -> [u8; KEY_EVENT_LEN] {
        let mut out = [0u8; KEY_EVENT_LEN];
        out[..SIGNED_LEN].copy_from_slice(&self.signed_bytes());
        out[SIGNED_LEN..].copy_from_slice(&self.signature);
        out
    }

    /// Reads the wire form and checks the event's own signature (by the key it names). Whether
    /// it follows an identity's chain is [`KeyLog::append`]'s question.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyEventError> {
        let event = Self::parse(bytes)?;
        if !event.key.verify(LABEL, &event.signed_bytes(), &event.signature) {
            return Err(KeyEventError::BadSignature);
        }
        Ok(event)
    }

    /// Reads the wire form *without* checking the signature: only for events this vault checked
    /// before storing them, read back from sealed storage (as `Signed::from_stored`).
    fn parse(bytes: &[u8]) -> Result<Self, KeyEventError> {
        let bytes: &[u8; KEY_EVENT_LEN] = bytes.try_into().map_err(|_| KeyEventError::Malformed)?;
        if bytes[0] != VERSION {
            return Err(KeyEventError::Malformed);
        }
        let key32 = |at: usize| <[u8; 32]>::try_from(&bytes[at..at + 32]).expect("32 bytes");
        let identity = IdentityId::from_bytes(key32(1)).map_err(|_| KeyEventError::Malformed)?;
        let key = IdentityId::from_bytes(key32(37)).map_err(|_| KeyEventError::Malformed)?;
        let event = Self {
            identity,
            sequence: u32::from_be_bytes(bytes[33..37].try_into().expect("4 bytes")),
            key,
            next: key32(69),
            previous: key32(101),
            at: i64::from_be_bytes(bytes[133..141].try_into().expect("8 bytes")),
            signature: bytes[SIGNED_LEN..].try_into().expect("64 bytes"),
        };
        Ok(event)
    }

    /// Whether `self` may follow `last` (or start a chain, when `last` is `None`).
    fn follows(&self, last: Option<&KeyEvent>) -> bool {
        match last {
            None => self.sequence == 0 && self.key == self.identity && self.previous == [0; 32],
            Some(last) => {
                self.identity == last.identity
                    && Some(self.sequence) == last.sequence.checked_add(1)
                    && self.previous == last.digest()
                    && last.commits_to(&self.key)
                    && self.at >= last.at
            }
        }
    }
}

/// An identity's key state: its verified chain of events, oldest first (empty: nothing known,
/// the inception key is current).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyLog {
    events: Vec<KeyEvent>,
}

impl KeyLog {
    /// The events, oldest first.
    pub fn events(&self) -> &[KeyEvent] {
        &self.events
    }

    /// The newest event.
    pub fn last(&self) -> Option<&KeyEvent> {
        self.events.last()
    }

    /// Number of rotations (events after event 0).
    pub fn rotations(&self) -> usize {
        self.events.len().saturating_sub(1)
    }

    /// The key current now: the newest event's, or `identity` when nothing is known.
    pub fn current_key(&self, identity: &IdentityId) -> IdentityId {
        self.last().map_or(*identity, KeyEvent::key)
    }

    /// When the newest rotation was made (`None`: never rotated).
    pub fn rotated_at(&self) -> Option<i64> {
        (self.events.len() > 1).then(|| self.events.last().map(KeyEvent::at)).flatten()
    }

    /// Adds the next event of the chain, checking that it follows.
    pub fn append(&mut self, event: KeyEvent) -> Result<(), KeyEventError> {
        if self.events.len() >= MAX_KEY_EVENTS {
            return Err(KeyEventError::TooMany);
        }
        if !event.follows(self.last()) {
            return Err(KeyEventError::Unchained(event.sequence));
        }
        self.events.push(event);
        Ok(())
    }

    /// Takes in events another party sent for `identity` (a whole chain, or its end): the ones
    /// that extend this chain are appended; one that contradicts an event held here is a
    /// conflict (the first chain seen wins), and nothing after it is taken. Returns how many
    /// were added.
    pub fn merge(&mut self, identity: &IdentityId, theirs: &[KeyEvent]) -> Result<usize, KeyEventError> {
        let mut added = 0;
        for event in theirs {
            if event.identity != *identity {
                return Err(KeyEventError::Unchained(event.sequence));
            }
            match self.events.get(event.sequence as usize) {
                Some(held) if held == event => continue,
                Some(_) => return Err(KeyEventError::Conflict(event.sequence)),
                None => {
                    self.append(event.clone())?;
                    added += 1;
                }
            }
        }
        Ok(added)
    }

    /// The one rule of verification: may `key` sign for `identity` something dated `at`? The
    /// inception key may while nothing rotated it away; each key of the chain may for times
    /// before the rotation that replaced it. A key the chain never named may not.
    pub fn allows(&self, identity: &IdentityId, key: &IdentityId, at: i64) -> bool {
        if self.events.is_empty() {
            return key == identity;
        }
        // A key appears once in a chain (the next one is committed before it is known).
        let Some(i) = self.events.iter().position(|e| e.key == *key) else { return false };
        match self.events.get(i + 1) {
            Some(replaced_by) => at < replaced_by.at,
            None => true,
        }
    }

    /// The whole chain's wire form: events one after another.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.events.iter().flat_map(|e| e.to_bytes()).collect()
    }

    /// Reads and verifies a chain written by [`KeyLog::to_bytes`] for `identity`.
    pub fn from_bytes(identity: &IdentityId, bytes: &[u8]) -> Result<Self, KeyEventError> {
        let events = decode_events(bytes)?;
        let mut log = KeyLog::default();
        log.merge(identity, &events)?;
        Ok(log)
    }

    /// Reads a chain this vault verified before storing it, from sealed storage (which
    /// authenticates it at rest): the chain is checked, the signatures not again. Every grant's
    /// status reads it, so verifying each event each time cost the serving path ~1.5 ms an edit.
    pub(crate) fn from_stored(identity: &IdentityId, bytes: &[u8]) -> Result<Self, KeyEventError> {
        if !bytes.len().is_multiple_of(KEY_EVENT_LEN) || bytes.len() / KEY_EVENT_LEN > MAX_KEY_EVENTS {
            return Err(KeyEventError::Malformed);
        }
        let events = bytes.chunks(KEY_EVENT_LEN).map(KeyEvent::parse).collect::<Result<Vec<_>, _>>()?;
        let mut log = KeyLog::default();
        log.merge(identity, &events)?;
        Ok(log)
    }
}

/// Reads a run of events (each one's signature checked, not the chain).
pub fn decode_events(bytes: &[u8]) -> Result<Vec<KeyEvent>, KeyEventError> {
    if !bytes.len().is_multiple_of(KEY_EVENT_LEN) {
        return Err(KeyEventError::Malformed);
    }
    if bytes.len() / KEY_EVENT_LEN > MAX_KEY_EVENTS {
        return Err(KeyEventError::TooMany);
    }
    bytes.chunks(KEY_EVENT_LEN).map(KeyEvent::from_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> Identity {
        Identity::from_secret_bytes(&[seed; 32])
    }

    /// alice (inception key 3) commits to key 30, rotates to it at 2000 committing to key 31.
    fn chain() -> (KeyEvent, KeyEvent) {
        let e0 = KeyEvent::inception(&key(3), &key(30).public(), 1_000);
        let e1 = KeyEvent::rotation(&e0, &key(30), &key(31).public(), 2_000);
        (e0, e1)
    }

    #[test]
    fn a_rotation_follows_only_with_the_committed_key() {
        let (e0, e1) = chain();
        let mut log = KeyLog::default();
        log.append(e0.clone()).unwrap();
        // The current key (the thief's) cannot rotate: it does not hash to the commitment.
        let by_thief = KeyEvent::rotation(&e0, &key(3), &key(66).public(), 2_000);
        assert_eq!(log.clone().append(by_thief), Err(KeyEventError::Unchained(1)));
        let by_stranger = KeyEvent::rotation(&e0, &key(9), &key(66).public(), 2_000);
        assert_eq!(log.clone().append(by_stranger), Err(KeyEventError::Unchained(1)));
        log.append(e1.clone()).unwrap();
        assert_eq!(log.current_key(&key(3).public()), key(30).public());
        assert_eq!(log.rotated_at(), Some(2_000));
        // Event 0 must be the identity's own.
        let mut other = KeyLog::default();
        assert!(other.append(KeyEvent::inception(&key(9), &key(30).public(), 1)).is_ok());
        assert_eq!(other.events()[0].identity(), key(9).public());
        let mut forged = KeyLog::default();
        assert!(forged.append(e1).is_err());
    }

    #[test]
    fn an_old_key_signs_only_for_times_before_its_rotation() {
        let (e0, e1) = chain();
        let alice = key(3).public();
        let mut log = KeyLog::default();
        assert!(log.allows(&alice, &alice, 5_000), "nothing known: the inception key is current");
        assert!(!log.allows(&alice, &key(30).public(), 5_000));
        log.merge(&alice, &[e0, e1]).unwrap();
        assert!(log.allows(&alice, &alice, 1_999), "before the rotation");
        assert!(!log.allows(&alice, &alice, 2_000), "from the rotation on");
        assert!(log.allows(&alice, &key(30).public(), 2_000));
        assert!(log.allows(&alice, &key(30).public(), 10), "the new key is the identity's");
        assert!(!log.allows(&alice, &key(31).public(), 5_000), "the next key is not current yet");
    }

    #[test]
    fn the_first_chain_seen_wins() {
        let (e0, e1) = chain();
        let alice = key(3).public();
        let mut log = KeyLog::default();
        log.merge(&alice, std::slice::from_ref(&e0)).unwrap();
        // A thief with the inception key signs another event 0, committing to its own key.
        let rival = KeyEvent::inception(&key(3), &key(66).public(), 1_500);
        assert_eq!(log.merge(&alice, &[rival]), Err(KeyEventError::Conflict(0)));
        assert_eq!(log.merge(&alice, &[e0.clone(), e1.clone()]), Ok(1));
        assert_eq!(log.merge(&alice, &[e1]), Ok(0), "idempotent");
        assert_eq!(KeyLog::from_bytes(&alice, &log.to_bytes()).unwrap(), log);
        assert!(KeyLog::from_bytes(&key(4).public(), &log.to_bytes()).is_err());
    }

    #[test]
    fn tampered_events_are_refused() {
        let (e0, _) = chain();
        let bytes = e0.to_bytes();
        for i in [0, 40, 70, 110, 135, 150] {
            let mut bad = bytes;
            bad[i] ^= 1;
            assert!(KeyEvent::from_bytes(&bad).is_err(), "byte {i}");
        }
        assert_eq!(KeyEvent::from_bytes(&bytes[..100]), Err(KeyEventError::Malformed));
    }

    /// Known-answer test: the key-event format is a wire format; these lines must keep parsing.
    #[test]
    fn key_events_known_answer() {
        let (e0, e1) = chain();
        let text = [e0, e1]
            .iter()
            .map(|e| e.to_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
            .collect::<String>();
        let expected = include_str!("../../tests/fixtures/key-event-v1.txt");
        assert_eq!(text, expected, "the key-event encoding changed");
    }

    proptest! {
        #[test]
        fn events_roundtrip(seed in any::<[u8; 32]>(), next in any::<[u8; 32]>(), at in any::<i64>()) {
            let e = KeyEvent::inception(&Identity::from_secret_bytes(&seed), &Identity::from_secret_bytes(&next).public(), at);
            prop_assert_eq!(KeyEvent::from_bytes(&e.to_bytes()).unwrap(), e);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = KeyEvent::from_bytes(&bytes);
            let _ = decode_events(&bytes);
        }
    }
}
