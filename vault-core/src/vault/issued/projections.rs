//! Projections of issued grants: stored as sealed Automerge chunks, each recording the
//! main-document heads it reflects and its *epoch*, and kept up to date from what edits touched.
//!
//! A projection's history reaches its grantee. When an update retracts a value (a removal, a
//! record that stops matching, an overwrite) and the grantee is not known to hold everything up
//! to that point, the projection restarts as a new epoch: a fresh document built from current
//! values, which the grantee takes in place of its copy. So no value retracted before the
//! grantee synced is ever in anything it receives, history included; a grantee in sync gets
//! the retraction as a delta.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use automerge::{AutoCommit, ChangeHash};

use super::GrantError;
use crate::doc::{PREFERENCES, PROFILE, PURCHASES, Touched};
use crate::grant::Grant;
use crate::path::FieldPath;
use crate::path::derive::counting_day;
use crate::projection::{Projection, is_dated};
use crate::statement::GrantId;
use crate::store::StoreError;
use crate::store::sealed::Key;
use crate::vault::Vault;

use crate::store::sealed::PROJECTION_CHUNKS as CHUNKS;
/// Projection chunks are folded into one when there are more than this many.
const COMPACT_PROJECTION_AFTER: i64 = 64;

/// A loaded projection with the main-document heads it reflects.
pub(crate) struct ProjectionState {
    pub(super) projection: Projection,
    /// The main document's change sequence number this projection reflects.
    pub(super) as_of_seq: i64,
    pub(super) as_of: Vec<ChangeHash>,
    pub(super) last_seq: i64,
    pub(super) chunks: i64,
    /// Starts at 0; a new epoch is a fresh document built from current values, which its
    /// grantee takes in place of its copy (see [`Projections::update`]).
    pub(super) epoch: u64,
    /// The day the projection's ages (`over(N)`) were counted on ([`counting_day`]), when this
    /// process knows it: on another day (the month has turned) they are computed again.
    pub(super) day: Option<jiff::civil::Date>,
}

impl std::fmt::Debug for ProjectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionState").field("last_seq", &self.last_seq).finish_non_exhaustive()
    }
}

/// Projections loaded by this process, by grant.
pub(crate) type ProjectionCache = HashMap<GrantId, ProjectionState>;

/// First byte of a chunk that names its epoch. Chunks written before epochs existed start with
/// their sequence number's high byte, 0, and belong to epoch 0.
const CHUNK_WITH_EPOCH: u8 = 1;

fn encode_chunk(epoch: u64, as_of_seq: i64, as_of: &[ChangeHash], bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + as_of.len() * 32 + bytes.len());
    out.push(CHUNK_WITH_EPOCH);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&as_of_seq.to_be_bytes());
    out.extend_from_slice(&(as_of.len() as u16).to_be_bytes());
    for h in as_of {
        out.extend_from_slice(&h.0);
    }
    out.extend_from_slice(bytes);
    out
}

fn decode_chunk(plain: &[u8]) -> Option<(u64, i64, Vec<ChangeHash>, &[u8])> {
    let (epoch, plain) = match plain.first()? {
        &CHUNK_WITH_EPOCH => (u64::from_be_bytes(plain.get(1..9)?.try_into().ok()?), &plain[9..]),
        _ => (0, plain),
    };
    let as_of_seq = i64::from_be_bytes(plain.get(..8)?.try_into().ok()?);
    let plain = &plain[8..];
    let n = u16::from_be_bytes(plain.get(..2)?.try_into().ok()?) as usize;
    let heads_end = 2 + n * 32;
    let heads = plain
        .get(2..heads_end)?
        .chunks(32)
        .map(|c| ChangeHash(c.try_into().expect("32-byte chunks")))
        .collect();
    Some((epoch, as_of_seq, heads, &plain[heads_end..]))
}

/// The sections holding a grant's dated values.
fn dated_sections(grant: &Grant) -> Vec<&'static str> {
    let mut out = Vec::new();
    for field in &grant.fields {
        if let Some((source, derivation)) = field.derived()
            && derivation.is_dated()
        {
            let section = match source {
                FieldPath::Profile(_) => PROFILE,
                FieldPath::Preferences(_) => PREFERENCES,
                _ => PURCHASES,
            };
            if !out.contains(&section) {
                out.push(section);
            }
        }
    }
    out
}

/// What each grant shares, kept as its own Automerge document (the projection): `vault.projections()`, `vault.projections_mut()`.
#[derive(Debug)]
pub struct Projections<V> {
    pub(in crate::vault) vault: V,
}

impl<V: Deref<Target = Vault>> Projections<V> {
    pub(in crate::vault) fn new(vault: V) -> Self {
        Self { vault }
    }
}

impl<V: Deref<Target = Vault>> Projections<V> {
    pub(super) fn append_projection_chunk(
        &self,
        id: &GrantId,
        seq: i64,
        epoch: u64,
        as_of_seq: i64,
        as_of: &[ChangeHash],
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let chunk = encode_chunk(epoch, as_of_seq, as_of, bytes);
        self.vault.store.put(&CHUNKS, Key::Chunk(id.as_bytes(), seq), &chunk)?;
        Ok(())
    }
}

impl<V: DerefMut<Target = Vault>> Projections<V> {
    pub(super) fn drop_projection(&mut self, id: &GrantId) -> Result<(), StoreError> {
        self.vault.store.delete_group(&CHUNKS, id.as_bytes())?;
        self.vault.issued.projections.remove(id);
        // Nothing more is served: what serving streams knew of the grantee's copies goes too.
        self.vault.serving_mut().forget_serve_states(id)
    }

    /// Replaces a grant's projection with a fresh document built from current values, as
    /// epoch `epoch`: its history (and whatever it retracted) is gone, and the sync state of the
    /// old epoch with it.
    fn new_epoch(
        &mut self,
        grant: &Grant,
        epoch: u64,
        seq: i64,
        as_of_seq: i64,
        as_of: &[ChangeHash],
    ) -> Result<(), StoreError> {
        let mut projection = Projection::build(grant, &self.vault.doc, self.vault.now());
        self.append_projection_chunk(
            &grant.id,
            seq,
            epoch,
            as_of_seq,
            as_of,
            &projection.automerge().save(),
        )?;
        self.vault.store.delete_group_before(&CHUNKS, grant.id.as_bytes(), seq)?;
        // The old epoch held what was retracted: it goes as an erasure does.
        self.vault.store.note_erasure();
        self.vault.serving_mut().serve_states_new_epoch(&grant.id, epoch)?;
        let day = Some(counting_day(self.vault.now()));
        self.vault.issued.projections.insert(
            grant.id,
            ProjectionState {
                projection,
                as_of_seq,
                as_of: as_of.to_vec(),
                last_seq: seq,
                chunks: 1,
                epoch,
                day,
            },
        );
        Ok(())
    }

    /// Brings the projections of all live grants (or only `only`) up to date with the main
    /// document, in one transaction. Returns the grants whose projection changed.
    pub fn update(&mut self, only: Option<&[GrantId]>) -> Result<Vec<GrantId>, GrantError> {
        let live: Vec<Grant> = self
            .vault
            .grants()
            .list()?
            .into_iter()
            .filter(|g| g.is_live() && only.is_none_or(|o| o.contains(&g.grant.statement().id)))
            .map(|g| g.grant.statement().clone())
            .collect();
        if live.is_empty() {
            return Ok(Vec::new());
        }
        self.vault.write(|v| {
            v.catch_up().map_err(GrantError::catch_up)?;
            let heads = v.doc.automerge().get_heads();
            let now_seq = v.last_seq;
            let now = v.now();
            let day = counting_day(now);
            let mut changed = Vec::new();
            // What changed since a projection's sequence number: read from the change chunks
            // (proportional to the edits), or diffed when that is unknown. Shared by every
            // grant that reflects the same point.
            let mut touched_cache: HashMap<i64, Vec<Touched>> = HashMap::new();
            for grant in &live {
                let Some(state) = load_projection(v, &grant.id)? else {
                    // A grant another device issued, waiting for the document it was issued
                    // at: built once that arrived.
                    if v.grants_mut().build_waiting_projection(grant)? {
                        changed.push(grant.id);
                    }
                    continue;
                };
                // A value computed on another date (`over(N)`) is computed again, edit or not.
                let redate = is_dated(grant) && state.day != Some(day);
                let edited = !(state.as_of_seq == now_seq && state.as_of == heads);
                if !edited && !redate {
                    continue;
                }
                let (as_of_seq, as_of) = (state.as_of_seq, state.as_of.clone());
                let mut touched = match touched_cache.get(&as_of_seq) {
                    _ if !edited => Vec::new(),
                    Some(t) => t.clone(),
                    None => {
                        let t = match v.touched_since(as_of_seq)? {
                            Some(t) => t,
                            None => v.doc.touched_between(&as_of, &heads),
                        };
                        touched_cache.insert(as_of_seq, t.clone());
                        t
                    }
                };
                if redate {
                    touched.extend(dated_sections(grant).into_iter().map(|s| Touched::Section(s.to_owned())));
                }
                let state = v.issued.projections.get_mut(&grant.id).expect("loaded above");
                let before = state.projection.automerge().get_heads();
                let applied = state.projection.apply(grant, &v.doc, &touched, now);
                state.as_of = heads.clone();
                state.as_of_seq = now_seq;
                state.day = Some(day);
                if !applied.changed {
                    continue;
                }
                let (epoch, last_seq, chunks) = (state.epoch, state.last_seq, state.chunks);
                // A retracted value must never reach a grantee that had not seen it, not even
                // in history: unless the grantee is known to hold everything up to `before`,
                // the projection restarts as a new epoch built from current values.
                if applied.retracted && !v.serving().grantee_holds(&grant.id, epoch, &before)? {
                    v.projections_mut().new_epoch(grant, epoch + 1, last_seq + 1, now_seq, &heads)?;
                    changed.push(grant.id);
                    continue;
                }
                let state = v.issued.projections.get_mut(&grant.id).expect("loaded above");
                let (seq, compact) = (last_seq + 1, chunks >= COMPACT_PROJECTION_AFTER);
                let bytes = if compact {
                    state.projection.automerge().save()
                } else {
                    state.projection.automerge().save_after(&before)
                };
                v.projections().append_projection_chunk(&grant.id, seq, epoch, now_seq, &heads, &bytes)?;
                if compact {
                    v.store.delete_group_before(&CHUNKS, grant.id.as_bytes(), seq)?;
                }
                let state = v.issued.projections.get_mut(&grant.id).expect("loaded above");
                state.last_seq = seq;
                state.chunks = if compact { 1 } else { state.chunks + 1 };
                changed.push(grant.id);
            }
            Ok(changed)
        })
    }

    /// Brings up to date the projections whose ages (`over(N)`) were counted on another day
    /// than the current one (ages are counted on the first of the month: the serving node calls
    /// this as time passes, so that an answer turns true as the month turns, without an edit).
    /// Returns the grants whose projection changed; with none to recompute, nothing is read or
    /// written.
    pub fn update_dated(&mut self) -> Result<Vec<GrantId>, GrantError> {
        let day = counting_day(self.vault.now());
        let dated: Vec<GrantId> = self
            .vault
            .grants()
            .list_where(is_dated)?
            .into_iter()
            .filter(|g| g.is_live())
            .map(|g| g.grant.statement().id)
            .collect();
        let mut stale = Vec::new();
        for id in dated {
            // Read only (a projection this device does not hold is not written for every tick).
            if load_projection(&mut self.vault, &id)?.is_some_and(|s| s.day != Some(day)) {
                stale.push(id);
            }
        }
        if stale.is_empty() {
            return Ok(Vec::new());
        }
        self.update(Some(&stale))
    }

    /// The current values of a grant's projection (what its audience holds once synced).
    pub fn values(&mut self, id: &GrantId) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(load_projection(&mut self.vault, id)?.map(|s| s.projection.to_json()))
    }

    /// The epoch of a grant's projection, loading it first: a new epoch found in storage drops
    /// the sync state of the old one before anything is generated or received.
    pub(super) fn epoch(&mut self, id: &GrantId) -> Result<u64, StoreError> {
        Ok(load_projection(&mut self.vault, id)?.map_or(0, |s| s.epoch))
    }
}

impl<'a> Projections<&'a mut Vault> {
    /// The projection document of a live grant, for the sync protocol.
    pub fn doc(self, id: &GrantId) -> Result<Option<&'a mut AutoCommit>, StoreError> {
        Ok(load_projection(self.vault, id)?.map(|s| s.projection.automerge()))
    }
}

/// Loads (or catches up) the projection of a grant from its stored chunks.
pub(in crate::vault) fn load_projection<'a>(
    vault: &'a mut Vault,
    id: &GrantId,
) -> Result<Option<&'a mut ProjectionState>, StoreError> {
    let after = vault.issued.projections.get(id).map_or(0, |p| p.last_seq);
    let rows = vault.store.list_group(&CHUNKS, id.as_bytes(), after)?;
    let damaged = |seq: i64| StoreError::damaged(&CHUNKS, format!("{id}/{seq}"));
    for (key, plain, _) in rows {
        let seq = key.seq();
        let (epoch, as_of_seq, as_of, bytes) = decode_chunk(&plain).ok_or_else(|| damaged(seq))?;
        match vault.issued.projections.get_mut(id) {
            Some(state) if state.epoch == epoch => {
                state.projection.automerge().load_incremental(bytes).map_err(|_| damaged(seq))?;
                state.as_of_seq = as_of_seq;
                state.as_of = as_of;
                state.last_seq = seq;
                state.chunks += 1;
            }
            _ => {
                // First load, or another handle started a new epoch: the chunk is a whole
                // document (serving streams drop their state of the old epoch).
                let am = AutoCommit::load(bytes).map_err(|_| damaged(seq))?;
                vault.issued.projections.insert(
                    *id,
                    ProjectionState {
                        projection: Projection::from_automerge(am),
                        as_of_seq,
                        as_of,
                        last_seq: seq,
                        chunks: 1,
                        epoch,
                        day: None,
                    },
                );
            }
        }
    }
    Ok(vault.issued.projections.get_mut(id))
}
