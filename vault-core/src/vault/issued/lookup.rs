//! Reading issued grants: all of them, one, those covering a field, those live for an audience.
//!
//! A node asks these on every connection and for every message it serves, so the parsed records
//! are cached while they hold: no other connection has committed (SQLite's `data_version`) and
//! this handle has not written a grant since (`store_grant_record` clears the cache). Statuses
//! are computed afresh on every read (time passes, devices are removed).

use super::Grants;
use super::status::with_status;
use super::{GRANTS, GrantInfo};
use crate::grant::{Grant, SignedGrant};
use crate::identity::IdentityId;
use crate::path::FieldPath;
use crate::statement::GrantId;
use crate::store::StoreError;
use crate::vault::Vault;
use std::ops::Deref;

/// Parsed grant records with the `data_version` they were read at.
pub(crate) type GrantCache = std::cell::RefCell<Option<(i64, Vec<GrantInfo>)>>;

impl<V: Deref<Target = Vault>> Grants<V> {
    /// Every grant this vault issued, newest first.
    pub fn list(&self) -> Result<Vec<GrantInfo>, StoreError> {
        self.list_where(|_| true)
    }

    /// The grants for which `keep` holds, filtered before anything is copied.
    pub(super) fn list_where(&self, keep: impl Fn(&Grant) -> bool) -> Result<Vec<GrantInfo>, StoreError> {
        // Parsed records are cached: a node answers "what is shared with this peer" for every
        // connection on every change. The cache holds while no other connection has committed
        // (SQLite's data_version) and this one has not written a grant since.
        let version = self.vault.store.data_version()?;
        if let Some((cached_version, cached)) = &*self.vault.issued.grant_cache.borrow()
            && *cached_version == version
        {
            let (now, removed) = (self.vault.now(), self.removed_devices()?);
            return Ok(cached
                .iter()
                .filter(|g| keep(g.grant.statement()))
                .cloned()
                .map(|g| with_status(g, now, &removed))
                .collect());
        }
        let ids = self.vault.store.keys(&GRANTS)?;
        let mut out = Vec::with_capacity(ids.len());
        for raw in ids {
            let id = GrantId::from_raw(raw.id()).ok_or_else(|| StoreError::damaged(&GRANTS, "(bad id)"))?;
            if let Some(record) = self.grant_record(&id)? {
                out.push(self.info(&record)?);
            }
        }
        out.sort_by_key(|g| std::cmp::Reverse(g.grant.statement().issued_at));
        let kept = out.iter().filter(|g| keep(g.grant.statement())).cloned().collect();
        *self.vault.issued.grant_cache.borrow_mut() = Some((version, out));
        Ok(kept)
    }

    /// One grant.
    pub fn get(&self, id: &GrantId) -> Result<Option<GrantInfo>, StoreError> {
        // From the parsed grants while they hold (a node asks this for every message it serves).
        let version = self.vault.store.data_version()?;
        let cached = match &*self.vault.issued.grant_cache.borrow() {
            Some((v, grants)) if *v == version => {
                Some(grants.iter().find(|g| g.grant.statement().id == *id).cloned())
            }
            _ => None,
        };
        match cached {
            Some(found) => {
                let (now, removed) = (self.vault.now(), self.removed_devices()?);
                Ok(found.map(|g| with_status(g, now, &removed)))
            }
            None => self.grant_record(id)?.map(|r| self.info(&r)).transpose(),
        }
    }

    /// Live grants whose fields share values with `path` ("who sees this field").
    pub fn covering(&self, path: &FieldPath) -> Result<Vec<GrantInfo>, StoreError> {
        Ok(self.list()?.into_iter().filter(|g| g.is_live() && g.grant.statement().touches(path)).collect())
    }

    /// Live grants to `audience`.
    pub fn live_for(&self, audience: &IdentityId) -> Result<Vec<SignedGrant>, StoreError> {
        Ok(self
            .vault
            .grants()
            .list_where(|g| g.audience == *audience)?
            .into_iter()
            .filter(|g| g.is_live())
            .map(|g| g.grant)
            .collect())
    }
}
