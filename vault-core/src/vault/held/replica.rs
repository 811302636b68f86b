//! A received share's replica: the grantee's copy of the issuer's projection, stored as
//! sealed Automerge chunks and kept in step by the sync protocol. A message of a newer
//! projection epoch replaces the copy, history included, instead of merging into it.
//!
//! The sync state belongs to the stream that syncs ([`crate::ShareStream`], through
//! [`ShareSync`]), not to the replica: each stream starts from the persisted shared heads, as
//! Automerge requires for every new connection. Every Automerge call fed with the issuer's
//! bytes is isolated here: a panic fails that stream only.

use super::Held;
use std::collections::HashMap;
use std::ops::DerefMut;
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::sync::{Message, State as SyncState, SyncDoc};
use automerge::{AutoCommit, ROOT, ReadDoc};
use serde_json::Value;

use super::conform::{Conformed, RefusedValue, replace_refused};
use super::{CHUNKS, ShareError, ShareKey, ShareStatus};
use crate::doc::{Allowed, PURCHASES, Touched, obj_to_json, touched_between, well_formed};
use crate::grant::Grant;
use crate::identity::{DeviceId, IdentityId};
use crate::protocol::{decode_sync_body, encode_sync_body};
use crate::statement::GrantId;
use crate::store::StoreError;
use crate::store::sealed::Key;
use crate::vault::Vault;

/// A loaded replica.
pub(crate) struct Replica {
    pub(super) am: AutoCommit,
    last_seq: i64,
    epoch: u64,
    /// The issuer's device the copy came from: a copy from another device is another document.
    from: Option<DeviceId>,
}

/// The sync state of one stream syncing a share, with the epoch of the copy it is about and
/// the issuer's device that serves the stream.
#[derive(Debug)]
pub(crate) struct ShareSync {
    epoch: u64,
    state: SyncState,
    from: DeviceId,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replica(..)")
    }
}

/// How many replicas stay loaded. A seller holds a share per customer: keeping every one it
/// ever synced loaded made its memory grow with its customers; a replica not in memory is
/// loaded again from its chunks when next needed. (Two in unit tests, so that every test with
/// more than two shares reloads them.)
const REPLICAS_LOADED: usize = if cfg!(test) { 2 } else { 256 };

/// Replicas this process has loaded, by share: the most recently used [`REPLICAS_LOADED`].
#[derive(Default)]
pub(crate) struct ReplicaCache {
    loaded: HashMap<ShareKey, (Replica, u64)>,
    /// Counts uses: each entry remembers its last.
    clock: u64,
}

impl ReplicaCache {
    pub(crate) fn clear(&mut self) {
        self.loaded.clear();
    }

    pub(super) fn remove(&mut self, id: &ShareKey) {
        self.loaded.remove(id);
    }

    fn get(&self, id: &ShareKey) -> Option<&Replica> {
        self.loaded.get(id).map(|(r, _)| r)
    }

    fn get_mut(&mut self, id: &ShareKey) -> Option<&mut Replica> {
        self.clock += 1;
        let now = self.clock;
        self.loaded.get_mut(id).map(|(r, used)| {
            *used = now;
            r
        })
    }

    fn contains_key(&self, id: &ShareKey) -> bool {
        self.loaded.contains_key(id)
    }

    /// Loads `replica`, first letting go of the least recently used one when full (never the
    /// one being loaded).
    fn insert(&mut self, id: ShareKey, replica: Replica) {
        if self.loaded.len() >= REPLICAS_LOADED
            && let Some(oldest) =
                self.loaded.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone())
        {
            self.loaded.remove(&oldest);
        }
        self.clock += 1;
        self.loaded.insert(id, (replica, self.clock));
    }
}

impl<V: DerefMut<Target = Vault>> Held<V> {
    /// Starts a new stream syncing a share: its sync state restarts from what is persisted
    /// (the shared heads), as Automerge requires for every new connection.
    pub(crate) fn share_sync_state(
        &mut self,
        issuer: &IdentityId,
        from: DeviceId,
        id: &GrantId,
    ) -> Result<ShareSync, ShareError> {
        let key = self.share_key(issuer, id)?;
        let epoch = load_replica(&mut self.vault, &key)?.epoch;
        let record = self.received_record(&key)?.ok_or(ShareError::Unknown(*id))?;
        // The persisted shared heads are those of the device the copy came from.
        let state = match record.from_device {
            Some(d) if d != from => SyncState::new(),
            _ => SyncState::decode(&record.sync_state).unwrap_or_default(),
        };
        Ok(ShareSync { epoch, state, from })
    }

    /// The next sync message this vault (as grantee) sends on a stream syncing a share, if any.
    pub(crate) fn share_sync_generate(
        &mut self,
        issuer: &IdentityId,
        id: &GrantId,
        sync: &mut ShareSync,
    ) -> Result<Option<Vec<u8>>, ShareError> {
        let key = self.share_key(issuer, id)?;
        let replica = load_replica(&mut self.vault, &key)?;
        let epoch = replica.epoch;
        if sync.epoch != epoch {
            // Another stream replaced the copy: a state about the old one means nothing.
            *sync = ShareSync { epoch, state: SyncState::new(), from: sync.from };
        }
        let am = &mut replica.am;
        match catch_unwind(AssertUnwindSafe(|| am.sync().generate_sync_message(&mut sync.state))) {
            Ok(message) => Ok(message.map(|m| encode_sync_body(epoch, &m.encode()))),
            Err(_) => {
                self.vault.held.replicas.remove(&key);
                Err(ShareError::BadMessage)
            }
        }
    }

    /// True when this vault's copy has everything the issuer said it has (their last heads are
    /// ours) and nothing is left to send on this stream: a one-shot sync can stop.
    pub(crate) fn share_in_sync(
        &mut self,
        issuer: &IdentityId,
        id: &GrantId,
        sync: &ShareSync,
    ) -> Result<bool, ShareError> {
        let key = self.share_key(issuer, id)?;
        let replica = load_replica(&mut self.vault, &key)?;
        let heads = replica.am.get_heads();
        Ok(sync.epoch == replica.epoch
            && sync.state.their_heads.as_ref() == Some(&heads)
            && sync.state.have_responded)
    }

    /// Applies a sync message from the issuer, received on the stream whose state is `sync`, and
    /// makes the result durable. Returns true when the copy changed. A message of a newer
    /// projection epoch replaces the copy (its history included) instead of merging into it;
    /// one of an older epoch is ignored. A panic on the issuer's bytes rolls the write back and
    /// fails this message only.
    pub(crate) fn share_sync_receive(
        &mut self,
        issuer: &IdentityId,
        id: &GrantId,
        sync: &mut ShareSync,
        bytes: &[u8],
    ) -> Result<bool, ShareError> {
        let (epoch, bytes) = decode_sync_body(bytes).map_err(|_| ShareError::BadMessage)?;
        let message = crate::doc::sync_message(bytes).ok_or(ShareError::BadMessage)?;
        let received =
            catch_unwind(AssertUnwindSafe(|| self.apply_share_message(issuer, id, sync, epoch, message)));
        received.unwrap_or_else(|_| {
            tracing::warn!("an issuer's sync message made the sync engine panic; failing that stream");
            Err(ShareError::BadMessage)
        })
    }

    fn apply_share_message(
        &mut self,
        issuer: &IdentityId,
        id: &GrantId,
        sync: &mut ShareSync,
        epoch: u64,
        message: Message,
    ) -> Result<bool, ShareError> {
        // The replica changes only through received messages, so the chunks a message carries
        // are exactly what to store: no need to re-encode them.
        let received: Vec<u8> = message.changes.iter().flatten().copied().collect();
        let now = self.vault.now();
        self.vault.write(|v| {
            let key = v.held().share_key(issuer, id)?;
            let id = &key;
            // A copy from another of the issuer's devices is another document: it replaces the
            // one held, whatever its epoch (epochs count per device).
            let from = sync.from;
            let switched =
                v.held().received_record(id)?.and_then(|r| r.from_device).is_some_and(|d| d != from);
            let replica = load_replica(v, id)?;
            if epoch < replica.epoch && !switched {
                return Ok(false);
            }
            if sync.epoch != replica.epoch {
                *sync = ShareSync { epoch: replica.epoch, state: SyncState::new(), from };
            }
            let new_epoch = epoch > replica.epoch || switched;
            if new_epoch {
                *replica = Replica { am: AutoCommit::new(), epoch, from: Some(from), ..*replica };
                *sync = ShareSync { epoch, state: SyncState::new(), from };
                v.store.delete_group(&CHUNKS, id.as_bytes())?;
            }
            let replica = v.held.replicas.get_mut(id).expect("loaded");
            replica.from = Some(from);
            let before = replica.am.get_heads();
            replica
                .am
                .sync()
                .receive_sync_message(&mut sync.state, message)
                .map_err(|_| ShareError::BadMessage)?;
            let grew = replica.am.get_heads() != before;
            let caught_up = sync.state.their_heads.as_ref() == Some(&replica.am.get_heads());
            let sync_state = sync.state.encode();
            let new_bytes = if grew { Some(received) } else { None };
            let seq = replica.last_seq + 1;
            if let Some(bytes) = new_bytes {
                v.store.put(&CHUNKS, Key::Chunk(id.as_bytes(), seq), &bytes)?;
                v.held.replicas.get_mut(id).expect("loaded").last_seq = seq;
            }
            // The row parsed once (rows.rs): no grant is parsed again per message.
            let row = v.held().received_row(id)?.ok_or(ShareError::Unknown(id.grant))?;
            let mut record = row.record.clone();
            let grant = row.grant(id)?;
            // A new epoch's copy fills over a few messages: what is shown (the view) stays the
            // old one until the copy has caught up, then is rebuilt whole from the new copy.
            record.view_pending |= new_epoch;
            let changed = if record.view_pending {
                if caught_up {
                    // The old epoch's view held what was retracted: it goes as an erasure does.
                    // The new one is built on its first read (views.rs).
                    v.held().drop_view(id)?;
                    v.store.note_erasure();
                    record.view_pending = false;
                }
                !record.view_pending
            } else if grew {
                // A view that exists is kept up to date; none is built here (views.rs).
                match v.held().view(id)? {
                    Some(mut view) if !before.is_empty() => {
                        let replica = v.held.replicas.get_mut(id).expect("loaded");
                        let after = replica.am.get_heads();
                        let touched = touched_between(&mut replica.am, &before, &after);
                        update_view(&mut view, &replica.am, &touched, grant.statement(), &mut record.refused);
                        v.held().put_view(id, &view)?;
                    }
                    Some(_) => {
                        v.held().drop_view(id)?;
                    }
                    None => {}
                }
                true
            } else {
                false
            };
            record.sync_state = sync_state;
            record.epoch = epoch;
            record.from_device = Some(from);
            if changed {
                record.updated_at = Some(now);
                record.rev += 1;
                let replica = v.held.replicas.get_mut(id).expect("loaded");
                record.source_op = replica
                    .am
                    .get_heads()
                    .iter()
                    .filter_map(|h| replica.am.get_change_meta_by_hash(h).map(|m| m.max_op))
                    .max()
                    .unwrap_or(0);
            }
            v.held().put_received_record(id, &record)?;
            Ok(changed)
        })
    }

    /// The copy of a live share as a standard Automerge document, its history included: all
    /// that this vault received for the share, as the issuer sent it, unchecked (for inspection
    /// and tests; what is shown, fed and mirrored is the conformed view).
    pub fn copy(&mut self, issuer: &IdentityId, id: &GrantId) -> Result<Vec<u8>, ShareError> {
        let key = self.share_key(issuer, id)?;
        Ok(load_replica(&mut self.vault, &key)?.am.save())
    }
}

/// Brings a decoded view up to date with what changed in its replica, each part changed
/// conformed to `grant` again (conform.rs), its refusals replaced in `refused`.
fn update_view(
    view: &mut Value,
    am: &AutoCommit,
    touched: &[Touched],
    grant: &Grant,
    refused: &mut Vec<RefusedValue>,
) {
    if !view.is_object() {
        *view = Value::Object(Default::default());
    }
    let root = view.as_object_mut().expect("an object");
    for t in touched {
        match t {
            Touched::Section(section) => {
                let mut conformed = Conformed::new();
                let kept = match am.get(ROOT, section.as_str()) {
                    Ok(Some((automerge::Value::Object(_), obj))) => {
                        conformed.section(grant, section, &obj_to_json(am, &obj))
                    }
                    _ => None,
                };
                replace_refused(refused, &[section], conformed.refused);
                match kept {
                    Some(kept) => root.insert(section.clone(), kept),
                    None => root.remove(section),
                };
            }
            Touched::Purchase(pid) => {
                let purchases = match am.get(ROOT, PURCHASES) {
                    Ok(Some((automerge::Value::Object(_), obj))) => obj,
                    _ => {
                        root.remove(PURCHASES);
                        continue;
                    }
                };
                let entry = root.entry(PURCHASES).or_insert_with(|| Value::Object(Default::default()));
                if !entry.is_object() {
                    *entry = Value::Object(Default::default());
                }
                let map = entry.as_object_mut().expect("an object");
                let mut conformed = Conformed::new();
                let kept = match am.get(&purchases, pid.as_str()) {
                    Ok(Some((automerge::Value::Object(_), obj))) => {
                        conformed.purchase(grant, pid, &obj_to_json(am, &obj))
                    }
                    _ => None,
                };
                replace_refused(refused, &[PURCHASES, pid], conformed.refused);
                match kept {
                    Some(kept) => map.insert(pid.clone(), kept),
                    None => map.remove(pid),
                };
            }
        }
    }
}

pub(in crate::vault) fn load_replica<'a>(
    vault: &'a mut Vault,
    id: &ShareKey,
) -> Result<&'a mut Replica, ShareError> {
    let record = vault.held().received_record(id)?.ok_or(ShareError::Unknown(id.grant))?;
    if record.status != ShareStatus::Live {
        return Err(ShareError::Unknown(id.grant));
    }
    if vault.held.replicas.get(id).is_some_and(|r| r.epoch != record.epoch || r.from != record.from_device) {
        // Another handle replaced the copy (a new epoch, or another device's copy): start
        // again from its chunks.
        vault.held.replicas.remove(id);
    }
    let after = vault.held.replicas.get(id).map_or(0, |r| r.last_seq);
    let rows = vault.store.list_group(&CHUNKS, id.as_bytes(), after)?;
    if !vault.held.replicas.contains_key(id) {
        vault.held.replicas.insert(
            id.clone(),
            Replica { am: AutoCommit::new(), last_seq: 0, epoch: record.epoch, from: record.from_device },
        );
    }
    for (key, bytes, _) in rows {
        let seq = key.seq();
        let replica = vault.held.replicas.get_mut(id).expect("inserted above");
        // The chunks hold what an issuer sent: a panic in Automerge is damage, not a crash.
        let loaded = well_formed(&bytes, Allowed::Own)
            && catch_unwind(AssertUnwindSafe(|| replica.am.load_incremental(&bytes)))
                .is_ok_and(|r| r.is_ok());
        if !loaded {
            return Err(StoreError::damaged(&CHUNKS, format!("{id}/{seq}")).into());
        }
        replica.last_seq = seq;
    }
    Ok(vault.held.replicas.get_mut(id).expect("inserted above"))
}

#[cfg(test)]
pub(in crate::vault::held) mod tests {
    use super::super::rows::Record;
    use super::*;
    use crate::grant::Grant;
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::statement::Signed;

    pub(in crate::vault::held) fn grant(
        issuer: &Identity,
        audience: IdentityId,
        id: GrantId,
    ) -> crate::grant::SignedGrant {
        let g = Grant {
            id,
            issuer: issuer.public(),
            audience,
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "test".into(),
            issued_at: 1_800_000_000,
            expires_at: None,
            prices: true,
            request: None,
        };
        Signed::sign(g, issuer).unwrap()
    }

    /// A share stored before shares were keyed by issuer keeps its row and stays its issuer's;
    /// another issuer with the same grant id gets a row of its own.
    #[test]
    fn shares_stored_by_grant_id_alone_still_belong_to_their_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let mut bob = Vault::at(dir.path())
            .kdf(KdfParams::INSECURE_FOR_TESTS)
            .clock(std::sync::Arc::new(|| 1_800_000_100))
            .create(&Passphrase::new("pw"))
            .unwrap();
        let (alice, mallory) = (Identity::generate(), Identity::generate());
        let id = GrantId::random();
        let real = grant(&alice, bob.identity(), id);
        bob.held_mut().accept(alice.public(), None, std::slice::from_ref(&real), &[], true).unwrap();
        // Move the row to the old key, as an older version stored it.
        bob.write(|v| {
            let new = ShareKey::new(&alice.public(), &id);
            let record: Record = v.held().received_record(&new)?.unwrap();
            v.held().delete_received_record(&new)?;
            v.held().put_received_record(&ShareKey::legacy(&id), &record)
        })
        .unwrap();
        assert_eq!(bob.held().share_key(&alice.public(), &id).unwrap(), ShareKey::legacy(&id));
        bob.held_mut().accept(alice.public(), None, &[real], &[], true).unwrap();
        let forged = grant(&mallory, bob.identity(), id);
        bob.held_mut().accept(mallory.public(), None, &[forged], &[], true).unwrap();
        assert_eq!(
            bob.held().share_key(&mallory.public(), &id).unwrap(),
            ShareKey::new(&mallory.public(), &id)
        );
        assert_eq!(bob.held_mut().list().unwrap().len(), 2, "one share each, the old row not duplicated");
        assert_eq!(bob.held().live_from(&alice.public()).unwrap(), vec![id]);
        assert_eq!(bob.held().live_from(&mallory.public()).unwrap(), vec![id]);
        bob.held_mut()
            .share_sync_state(&alice.public(), crate::identity::DeviceKey::generate().public(), &id)
            .unwrap();
    }
}
