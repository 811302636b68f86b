//! The inbox's limits, checked without decrypting the inbox on every delivery. Owns no table:
//! an in-memory index of `requests_in` (device-local, derived).
//!
//! Identities are free, so per-identity limits alone do not bound the inbox: requests from
//! identities that are not contacts share one bound, [`MAX_PENDING_FROM_STRANGERS`], and a
//! contact's request is still taken while strangers flood. The counts come from an in-memory
//! index of the inbox rows (requester, pending, delivered at), built once and kept exact: it
//! is rebuilt when another process committed to the file (SQLite's `data_version` moved) or
//! when this process answered a request, and extended by each request this process takes.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use super::TABLE;
use crate::identity::IdentityId;
use crate::statement::RequestId;
use crate::store::StoreError;
use crate::vault::Vault;
use crate::vault::requests::{self, RequestStatus};

/// Requests from one peer that may wait for an answer at once.
pub const MAX_PENDING_PER_PEER: usize = 16;
/// Requests one peer may deliver per day (accepted or not counted alike).
pub(crate) const MAX_REQUESTS_PER_PEER_PER_DAY: usize = 32;
/// Requests from identities that are not contacts that may wait for an answer at once.
pub(crate) const MAX_PENDING_FROM_STRANGERS: usize = 256;

/// What the limits need to know of one inbox row.
#[derive(Clone, Copy, Debug)]
pub(super) struct InboxRow {
    pub(super) requester: IdentityId,
    pub(super) pending: bool,
    pub(super) delivered_at: Option<i64>,
}

/// The index of the inbox (see the module docs).
#[derive(Debug, Default)]
pub(super) struct InboxIndex {
    /// The file's `data_version` when the index was exact; `None`: rebuild before use.
    version: Option<i64>,
    /// The version seen by the last check, restored once a request taken after it is noted.
    checked: Option<i64>,
    rows: HashMap<RequestId, InboxRow>,
}

pub(super) type InboxCache = RefCell<InboxIndex>;

/// Whether a new request from `peer` breaks a limit. Call inside the write transaction that
/// takes the request.
pub(super) fn over_limit(vault: &Vault, peer: &IdentityId, now: i64) -> Result<bool, StoreError> {
    let cache = &vault.inbox.index;
    let version = vault.store.data_version()?;
    if cache.borrow().version != Some(version) {
        let rows = rows(vault)?;
        *cache.borrow_mut() = InboxIndex { version: Some(version), checked: None, rows };
    }
    cache.borrow_mut().checked = Some(version);
    let contacts: HashSet<IdentityId> = vault.contacts().list()?.into_iter().map(|c| c.identity).collect();
    let index = cache.borrow();
    let (mut pending, mut today, mut strangers) = (0, 0, 0);
    for row in index.rows.values() {
        if row.requester == *peer {
            pending += usize::from(row.pending);
            today += usize::from(row.delivered_at.is_some_and(|t| t > now - 86_400));
        }
        strangers += usize::from(row.pending && !contacts.contains(&row.requester));
    }
    Ok(pending >= MAX_PENDING_PER_PEER
        || today >= MAX_REQUESTS_PER_PEER_PER_DAY
        || (!contacts.contains(peer) && strangers >= MAX_PENDING_FROM_STRANGERS))
}

/// A request checked by [`over_limit`] was taken and committed.
pub(super) fn noted(vault: &Vault, id: RequestId, row: InboxRow) {
    let mut index = vault.inbox.index.borrow_mut();
    index.version = index.checked.take();
    index.rows.insert(id, row);
}

/// What the limits need of every inbox row.
fn rows(vault: &Vault) -> Result<HashMap<RequestId, InboxRow>, StoreError> {
    let rows = requests::list(vault, TABLE)?.into_iter().map(|(signed, record)| {
        let r = signed.statement();
        let pending = record.status == RequestStatus::Pending;
        (r.id, InboxRow { requester: r.requester, pending, delivered_at: record.delivered_at })
    });
    Ok(rows.collect())
}

/// An inbox row is being written: rebuild the index before its next use (a request taken
/// restores it with [`noted`]).
pub(super) fn touched(vault: &Vault) {
    vault.inbox.index.borrow_mut().version = None;
}

#[cfg(test)]
mod tests {
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::request::ConsentRequest;
    use crate::statement::RequestId;
    use crate::statement::Signed;
    use crate::vault::Vault;

    use super::MAX_PENDING_FROM_STRANGERS;

    fn request(from: &Identity, to: &Vault) -> Signed<ConsentRequest> {
        let request = ConsentRequest {
            id: RequestId::random(),
            requester: from.public(),
            holder: to.identity(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "newsletter".into(),
            duration: Some(86_400),
            prices: false,
            made_at: 0,
            name: None,
            reply_to: None,
        };
        Signed::sign(request, from).unwrap()
    }

    #[test]
    fn strangers_cannot_fill_the_inbox_for_contacts() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let friend = Identity::generate();
        let device = crate::identity::DeviceKey::generate();
        v.contacts_mut()
            .add("friend", &crate::identity::Ticket::new(friend.certify(device.public()), Vec::new()))
            .unwrap();
        let mut accepted = 0;
        for _ in 0..300 {
            let stranger = Identity::generate();
            let r = request(&stranger, &v);
            accepted += usize::from(v.inbox_mut().receive(&stranger.public(), &r).unwrap().is_ok());
        }
        assert_eq!(accepted, MAX_PENDING_FROM_STRANGERS);
        let r = request(&friend, &v);
        assert!(v.inbox_mut().receive(&friend.public(), &r).unwrap().is_ok());
        // Another process's view agrees (the index is exact, not just this process's guess).
        let mut other = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        let late = Identity::generate();
        let (late_request, friend_request) = (request(&late, &other), request(&friend, &other));
        assert!(other.inbox_mut().receive(&late.public(), &late_request).unwrap().is_err());
        assert!(other.inbox_mut().receive(&friend.public(), &friend_request).unwrap().is_ok());
        assert_eq!(v.inbox().list().unwrap().len(), MAX_PENDING_FROM_STRANGERS + 2);
    }
}
