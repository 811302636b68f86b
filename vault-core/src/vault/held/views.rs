//! The decoded view of each live share: its values as JSON, sealed beside its chunks, so that
//! reading what is shared (`shared`, `feed`, the mirror) does not load Automerge documents.
//!
//! A view is derived data, built from the copy on its first read and kept; a message that
//! grows a copy updates a view that exists and builds none. Receiving a share (a first sync of
//! ten thousand purchases, say) therefore costs what the sync costs, not also a conversion of
//! the whole copy to JSON that nobody may ever read.

use super::Held;
use super::conform::Conformed;
use super::replica::load_replica;
use super::rows::stored_grant;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::ROOT;
use serde_json::Value;

use super::{ShareError, ShareKey, ShareStatus, VIEWS};
use crate::doc::obj_to_json;
use crate::store::StoreError;
use crate::store::sealed::Key;
use crate::vault::Vault;
use crate::vault::settings::Setting;

impl<V: Deref<Target = Vault>> Held<V> {
    pub(in crate::vault::held) fn view_bytes(&self, id: &ShareKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.vault.store.get(&VIEWS, Key::Id(id.as_bytes()))
    }

    pub(in crate::vault::held) fn view(&self, id: &ShareKey) -> Result<Option<Value>, StoreError> {
        self.view_bytes(id)?
            .map(|b| serde_json::from_slice(&b).map_err(|_| StoreError::damaged(&VIEWS, id)))
            .transpose()
    }

    pub(in crate::vault::held) fn put_view(&self, id: &ShareKey, view: &Value) -> Result<(), StoreError> {
        let body = serde_json::to_vec(view).expect("serializes");
        self.vault.store.put(&VIEWS, Key::Id(id.as_bytes()), &body)?;
        Ok(())
    }

    /// Forgets a view (inside the caller's write): it is built again on its next read. True
    /// when there was one.
    pub(in crate::vault::held) fn drop_view(&self, id: &ShareKey) -> Result<bool, StoreError> {
        self.vault.store.delete(&VIEWS, Key::Id(id.as_bytes()))
    }
}

impl<V: DerefMut<Target = Vault>> Held<V> {
    /// The view of a live share (JSON bytes), built from its copy and kept when it has none;
    /// `None` when the share is not live.
    pub(in crate::vault) fn live_view_bytes(&mut self, id: &ShareKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.conform_old_views()?;
        if let Some(bytes) = self.view_bytes(id)? {
            return Ok(Some(bytes));
        }
        // Built inside a write: the copy read is the one on disk now (another process may be
        // appending to it), and the view kept is of that copy.
        self.vault.write(|v| {
            if let Some(bytes) = v.held().view_bytes(id)? {
                return Ok(Some(bytes));
            }
            let Some(record) = v.held().received_record(id)? else { return Ok(None) };
            if record.status != ShareStatus::Live {
                return Ok(None);
            }
            let view = match load_replica(v, id) {
                // What an issuer sent, read whole for the first time: Automerge validates some
                // columns only when read, and a panic there is a copy that cannot be shown.
                Ok(replica) => match catch_unwind(AssertUnwindSafe(|| obj_to_json(&replica.am, &ROOT))) {
                    Ok(view) => view,
                    Err(_) => {
                        tracing::warn!(share = %id, "a received copy cannot be read; not shown");
                        return Ok(None);
                    }
                },
                Err(ShareError::Store(e)) => return Err(e),
                Err(_) => return Ok(None),
            };
            // Only what the grant names, as the schema allows (conform.rs).
            let grant = stored_grant(&record, id)?;
            let mut conformed = Conformed::new();
            let view = conformed.view(grant.statement(), &view);
            // A new epoch's copy that has not caught up is shown as it is, but not kept: the
            // view kept is of a complete copy.
            if !record.view_pending {
                v.held().put_view(id, &view)?;
                if record.refused != conformed.refused {
                    let mut record = record.clone();
                    record.refused = conformed.refused;
                    v.held().put_received_record(id, &record)?;
                }
            }
            Ok(Some(serde_json::to_vec(&view).expect("serializes")))
        })
    }

    /// Views stored by a vault that did not conform them to their grants (before this one) go,
    /// once: each is built again, conformed, on its next read, and the mirror writes it again.
    fn conform_old_views(&mut self) -> Result<(), StoreError> {
        if self.vault.held.views_conformed.get() {
            return Ok(());
        }
        self.vault.write(|v| {
            if v.settings().get(Setting::ViewsConformed)?.is_none() {
                let mut dropped = 0usize;
                for (id, row) in v.held().received_each()? {
                    if v.held().drop_view(&id)? {
                        dropped += 1;
                        let mut record = row.record.clone();
                        record.rev += 1;
                        v.held().put_received_record(&id, &record)?;
                    }
                }
                if dropped > 0 {
                    v.store.note_erasure();
                    tracing::info!(
                        dropped,
                        "views of received copies built again, checked against their grants"
                    );
                }
                v.settings().put(Setting::ViewsConformed, b"1")?;
            }
            Ok::<(), StoreError>(())
        })?;
        self.vault.held.views_conformed.set(true);
        Ok(())
    }

    /// The values of a live share; `None` when it is not live.
    pub(in crate::vault) fn live_view(&mut self, id: &ShareKey) -> Result<Option<Value>, StoreError> {
        self.live_view_bytes(id)?
            .map(|b| serde_json::from_slice(&b).map_err(|_| StoreError::damaged(&VIEWS, id)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::super::replica::tests::grant;
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::statement::GrantId;
    use crate::vault::Vault;

    /// A view stored by a vault from before views were conformed is not shown as it is: it is
    /// built again (conformed) and the mirror is told to write it again.
    #[test]
    fn views_stored_before_conforming_are_built_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let alice = Identity::generate();
        let g = grant(&alice, v.identity(), GrantId::random());
        v.held_mut().accept(alice.public(), None, &[g], &[], true).unwrap();
        let (id, row) = v.held().received_each().unwrap().remove(0);
        let old = serde_json::json!({"profile": {"email": "a@b.c", "secret": "not granted"}});
        v.write(|v| v.held().put_view(&id, &old)).unwrap();
        let rev = row.record.rev;

        let shown = v.held_mut().live_view(&id).unwrap().unwrap();
        assert!(!shown.to_string().contains("not granted"), "{shown}");
        assert_eq!(
            v.held().received_record(&id).unwrap().unwrap().rev,
            rev + 1,
            "the mirror writes it again"
        );
        // Once: a view stored from now on is kept.
        v.write(|v| v.held().put_view(&id, &serde_json::json!({"profile": {}}))).unwrap();
        let again = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert!(again.held().view(&id).unwrap().is_some());
        drop(again);
        assert_eq!(v.held_mut().live_view(&id).unwrap().unwrap(), serde_json::json!({"profile": {}}));
    }
}
