//! Narrow entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; never enabled by the
//! workspace's own crates). Everything a fuzz target needs that the public API already offers
//! (frame, statement, certificate and ticket decoders, [`crate::Vault`]) is used directly; this
//! module adds only what is otherwise out of reach.

use automerge::ActorId;

use crate::doc::VaultDoc;
use crate::identity::Identity;
use crate::statement::Statement;
use crate::vault::records::import::Decoded;
use crate::vault::{ImportError, ImportMode};

/// Signs arbitrary body bytes as a statement of kind `T` by `author`, so that a target can take
/// a mutated body past the signature check into the statement's parsing and its own rules.
pub fn sign_body<T: Statement>(author: &Identity, body: &[u8]) -> [u8; 64] {
    author.sign(T::LABEL, body)
}

/// What [`crate::Vault::import`] does with `bytes`, on a fresh in-memory document with a fixed
/// actor (so the outcome depends on `bytes` only): decode and validate, apply, commit, read back.
pub fn import_document(bytes: &[u8]) -> Result<ImportMode, ImportError> {
    let decoded = Decoded::decode(bytes)?;
    let mut doc = VaultDoc::new();
    doc.automerge().set_actor(ActorId::from([7u8; 16]));
    let mode = decoded.apply(&mut doc)?;
    doc.automerge().commit();
    let _ = doc.to_json();
    Ok(mode)
}
