//! What a seller's database mirror (the `vault-mirror` crate) reads of received shares, and the
//! one rule it lives by here: while a mirror is attached, a withdrawn share's erasure receipt is
//! signed only after the mirror has committed the deletion of its rows
//! ([`Mirror::erased`]). The mirror's address (credentials included) is kept sealed in
//! the vault, like every other secret.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::ops::{Deref, DerefMut};

use super::{RECEIVED, ShareKey, ShareStatus};
use crate::grant::SignedGrant;
use crate::identity::{DeviceId, IdentityId, Ticket};
use crate::statement::GrantId;
use crate::store::StoreError;
use crate::vault::Vault;
use crate::vault::audit::{AuditEvent, AuditKind};
use crate::vault::settings::Setting;

/// Where a received share stands, in brief: enough for a mirror to tell what changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorEntry {
    /// The customer (the grant's issuer).
    pub customer: IdentityId,
    /// The grant.
    pub grant: GrantId,
    /// Bumped whenever the share's values or status change.
    pub rev: u64,
    /// The customer's petname here, if a contact.
    pub customer_name: Option<String>,
    /// Withdrawn, its receipt waiting for the mirror to erase.
    pub erasure_pending: bool,
}

/// A received share as a mirror writes it.
#[derive(Clone, Debug)]
pub struct MirrorShare {
    /// The signed grant: the consent receipt.
    pub grant: SignedGrant,
    /// The customer's petname here, if a contact.
    pub customer_name: Option<String>,
    /// Live, revoked or expired.
    pub status: ShareStatus,
    /// The values held: `None` once withdrawn.
    pub values: Option<Value>,
    /// When the last update arrived (unix seconds).
    pub updated_at: Option<i64>,
    /// When it was withdrawn (unix seconds).
    pub ended_at: Option<i64>,
    /// The revision this is.
    pub rev: u64,
    /// Withdrawn, its receipt waiting for the mirror to erase.
    pub erasure_pending: bool,
    /// Values of the copy left out: outside the grant, or refused by the document schema.
    pub refused: Vec<super::RefusedValue>,
    /// The ticket the customer was last reached at.
    pub ticket: Option<Ticket>,
    /// Which copy the values are: `None` until something was received.
    pub source: Option<MirrorSource>,
}

/// Which copy of a customer's shared data a share's values are: copies from the same source
/// are ordered (a later operation is a newer copy); copies from different sources are not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorSource {
    /// The customer's device that served the copy.
    pub device: DeviceId,
    /// That device's projection epoch.
    pub epoch: u64,
    /// The highest operation counter among the copy's heads.
    pub op: u64,
}

/// What changed for a mirror since it last asked ([`Mirror::changes`]).
#[derive(Debug)]
pub(crate) struct Dirty {
    /// Shares whose revision, status or pending erasure changed.
    pub(in crate::vault::held) keys: std::collections::HashSet<ShareKey>,
    /// Every share may have changed (nothing is known yet, another process wrote, a write
    /// failed, a petname changed).
    pub(in crate::vault::held) all: bool,
    /// The contacts table's mark when the mirror last asked: a petname is part of what it shows.
    contacts: Option<crate::store::WriteMark>,
}

impl Default for Dirty {
    fn default() -> Self {
        Self { keys: Default::default(), all: true, contacts: None }
    }
}

/// The mirror's last word on its health, for `vault shared` and `vault mirror show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorStatus {
    /// True when the last attempt to write reached the database.
    pub ok: bool,
    /// What happened (never holding credentials: the mirror redacts them).
    pub detail: String,
    /// When (unix seconds).
    pub at: i64,
}

/// The seller's database mirror of what this vault holds: `vault.mirror()`, `vault.mirror_mut()`.
#[derive(Debug)]
pub struct Mirror<V> {
    pub(in crate::vault) vault: V,
}

impl<V: Deref<Target = Vault>> Mirror<V> {
    pub(in crate::vault) fn new(vault: V) -> Self {
        Self { vault }
    }
}

impl<V: Deref<Target = Vault>> Mirror<V> {
    /// True when a mirror is attached: erasure receipts wait for it.
    pub(in crate::vault) fn mirror_attached(&self) -> Result<bool, StoreError> {
        Ok(self.vault.settings().get(Setting::MirrorUrl)?.is_some())
    }

    /// The mirror's address as set (with its credentials: handle with care, show it redacted).
    pub fn url(&self) -> Result<Option<String>, StoreError> {
        Ok(self.vault.settings().get(Setting::MirrorUrl)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// The mirror's health as last recorded.
    pub fn status(&self) -> Result<Option<MirrorStatus>, StoreError> {
        Ok(self.vault.settings().get(Setting::MirrorStatus)?.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// The shares whose mirrored form changed since the last call, in brief: every share when
    /// `all` (a mirror that just connected), or when what changed is not known (the first call,
    /// another process wrote, a petname changed). A mirror that fails to write what it was
    /// given asks again with `all`.
    pub fn changes(&self, all: bool) -> Result<Vec<MirrorEntry>, StoreError> {
        // Notices another process's writes (they mark every share).
        let _ = self.vault.held().received_rows()?;
        let contacts = self.vault.store.table_mark(&crate::store::sealed::CONTACTS)?;
        let dirty = {
            let mut dirty = self.vault.held.mirror_dirty.borrow_mut();
            let names_changed = dirty.contacts != Some(contacts);
            dirty.contacts = Some(contacts);
            let every = std::mem::take(&mut dirty.all) || all || names_changed;
            let keys = std::mem::take(&mut dirty.keys);
            if every { None } else { Some(keys) }
        };
        let Some(keys) = dirty else { return self.entries() };
        let mut out = Vec::with_capacity(keys.len());
        for id in keys {
            let Some(row) = self.vault.held().received_row(&id)? else { continue };
            let customer = row.grant(&id)?.statement().issuer;
            out.push(MirrorEntry {
                customer,
                grant: id.grant,
                rev: row.record.rev,
                customer_name: self.vault.contacts().petname(&customer),
                erasure_pending: row.record.erasure_pending,
            });
        }
        Ok(out)
    }

    /// Erasures of grants this vault never held that wait for the mirror: (customer, grant,
    /// asked by a bare expiry, to be erased only if the database shows it expired).
    pub fn unheld_pending(&self) -> Vec<(IdentityId, GrantId, bool)> {
        self.vault.held().unheld_pending()
    }

    /// Every received share, live or withdrawn, in brief.
    pub fn entries(&self) -> Result<Vec<MirrorEntry>, StoreError> {
        // Petnames read once: a seller has one contact list and many shares.
        let names: std::collections::HashMap<IdentityId, String> =
            self.vault.contacts().list()?.into_iter().map(|c| (c.identity, c.name)).collect();
        let mut out = Vec::new();
        for (id, row) in self.vault.held().received_each()? {
            let record = &row.record;
            let customer = row.grant(&id)?.statement().issuer;
            out.push(MirrorEntry {
                customer,
                grant: id.grant,
                rev: record.rev,
                customer_name: names.get(&customer).cloned(),
                erasure_pending: record.erasure_pending,
            });
        }
        Ok(out)
    }
}

impl<V: DerefMut<Target = Vault>> Mirror<V> {
    /// Attaches a mirror: from now on, receipts wait for it to erase.
    pub fn attach(&mut self, url: &str) -> Result<(), StoreError> {
        self.vault.write(|v| v.settings().put(Setting::MirrorUrl, url.as_bytes()))
    }

    /// Detaches the mirror. The caller has removed every row it wrote (the mirror holds nothing
    /// now), so the receipts it held back are signed.
    pub fn detach(&mut self) -> Result<(), StoreError> {
        self.vault.write(|v| {
            v.settings().delete(Setting::MirrorUrl)?;
            v.settings().delete(Setting::MirrorStatus)?;
            for (id, row) in v.held().received_each()? {
                if row.record.erasure_pending {
                    v.mirror_mut().confirm_mirror_erasure(&id)?;
                }
            }
            Ok(())
        })
    }

    /// The mirror committed the erasure of the rows of `grant`, which this vault never held:
    /// its receipt may be signed (unheld.rs). True when one was waiting.
    pub fn unheld_erased(&mut self, customer: &IdentityId, grant: &GrantId) -> bool {
        self.vault.held().unheld_erased(customer, grant)
    }

    /// The mirror found the consent a bare expiry named still live and unexpired in the
    /// database: nothing erased, no receipt.
    pub fn unheld_refused(&mut self, customer: &IdentityId, grant: &GrantId) {
        self.vault.held().unheld_refused(customer, grant)
    }

    /// The mirror committed revision `rev` of this share (or the database holds a newer copy):
    /// a node that does not serve the customer may let the share go ([`super::Held::let_go`]).
    pub fn wrote(&mut self, customer: &IdentityId, grant: &GrantId, rev: u64) -> Result<(), StoreError> {
        self.vault.held().mirror_wrote(customer, grant, rev)
    }

    /// Records the mirror's health.
    pub fn set_status(&mut self, ok: bool, detail: &str) -> Result<(), StoreError> {
        let status = MirrorStatus { ok, detail: detail.to_owned(), at: self.vault.now() };
        if self.status()?.is_some_and(|s| s.ok == status.ok && s.detail == status.detail) {
            return Ok(());
        }
        let body = serde_json::to_vec(&status).expect("serializes");
        self.vault.write(|v| v.settings().put(Setting::MirrorStatus, &body))
    }

    /// One received share as a mirror writes it (`None`: no such share).
    pub fn share(
        &mut self,
        customer: &IdentityId,
        grant: &GrantId,
    ) -> Result<Option<MirrorShare>, StoreError> {
        let key = self.vault.held().share_key(customer, grant)?;
        let Some(record) = self.vault.held().received_record(&key)? else { return Ok(None) };
        let signed =
            SignedGrant::from_stored(&record.grant).ok_or_else(|| StoreError::damaged(&RECEIVED, &key))?;
        let values = match record.status {
            ShareStatus::Live => self.vault.held_mut().live_view(&key)?,
            _ => None,
        };
        // Building the view (on its first read) names what it refused; a copy erased has none.
        let refused = match values {
            Some(_) => self.vault.held().received_record(&key)?.map(|r| r.refused).unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(Some(MirrorShare {
            grant: signed,
            customer_name: self.vault.contacts().petname(customer),
            status: record.status,
            values,
            updated_at: record.updated_at,
            ended_at: record.ended_at,
            rev: record.rev,
            erasure_pending: record.erasure_pending,
            refused,
            ticket: record.ticket.as_deref().and_then(|t| t.parse().ok()),
            // A new epoch's copy still filling: the view shows the old one, of no known version.
            source: record
                .from_device
                .filter(|_| !record.view_pending && record.source_op != 0)
                .map(|device| MirrorSource { device, epoch: record.epoch, op: record.source_op }),
        }))
    }

    /// The mirror committed the deletion of this share's rows: sign the erasure receipt it held
    /// back. Returns true when a receipt was signed (false: nothing was pending).
    pub fn erased(&mut self, customer: &IdentityId, grant: &GrantId) -> Result<bool, StoreError> {
        self.vault.write(|v| {
            let key = v.held().share_key(customer, grant)?;
            if !v.held().received_record(&key)?.is_some_and(|r| r.erasure_pending) {
                return Ok(false);
            }
            v.mirror_mut().confirm_mirror_erasure(&key)?;
            Ok(true)
        })
    }

    fn confirm_mirror_erasure(&mut self, key: &ShareKey) -> Result<(), StoreError> {
        let Some(mut record) = self.vault.held().received_record(key)? else { return Ok(()) };
        let grant =
            SignedGrant::from_stored(&record.grant).ok_or_else(|| StoreError::damaged(&RECEIVED, key))?;
        let issuer = grant.statement().issuer;
        let now = self.vault.now();
        record.receipt = Some(self.vault.held().erasure_receipt(issuer, key.grant, now).to_bytes());
        record.erasure_pending = false;
        self.vault.held().put_received_record(key, &record)?;
        let mut event = AuditEvent::new(now, AuditKind::ShareErased);
        event.peer = Some(issuer);
        event.grant = Some(key.grant);
        event.detail = Some("erased from the mirror; erasure receipt signed".into());
        self.vault.access_log().append(&event)
    }
}

#[cfg(test)]
mod tests {
    use super::super::replica::tests::grant;
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::statement::GrantId;
    use crate::vault::Vault;

    /// A mirror is told only the shares that changed since it last asked: a seller's edit costs
    /// what it touches, not a walk of every customer. What it cannot know (another process
    /// wrote) is every share.
    #[test]
    fn the_mirror_is_told_what_changed_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let alice = Identity::generate();
        let grants: Vec<_> = (0..3).map(|_| grant(&alice, v.identity(), GrantId::random())).collect();
        v.held_mut().accept(alice.public(), None, &grants, &[], true).unwrap();
        assert_eq!(v.mirror().changes(false).unwrap().len(), 3, "first: every share");
        assert!(v.mirror().changes(false).unwrap().is_empty(), "nothing changed since");
        assert_eq!(v.mirror().changes(true).unwrap().len(), 3, "a mirror that reconnects asks for all");

        let (id, row) = v.held().received_each().unwrap().remove(1);
        let mut record = row.record.clone();
        record.rev += 1;
        v.write(|v| v.held().put_received_record(&id, &record)).unwrap();
        let changed = v.mirror().changes(false).unwrap();
        assert_eq!((changed.len(), changed[0].grant, changed[0].rev), (1, id.grant, record.rev));
        // Stored again unchanged (a sync state saved): nothing for the mirror.
        v.write(|v| v.held().put_received_record(&id, &record)).unwrap();
        assert!(v.mirror().changes(false).unwrap().is_empty());

        // Another process writes: which share changed is not known here.
        let mut other = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        let fourth = grant(&alice, other.identity(), GrantId::random());
        other.held_mut().accept(alice.public(), None, &[fourth], &[], true).unwrap();
        assert_eq!(v.mirror().changes(false).unwrap().len(), 4);
        // A petname is part of what a mirror shows.
        let ticket = crate::identity::Ticket::new(
            alice.certify(crate::identity::DeviceKey::generate().public()),
            Vec::new(),
        );
        v.contacts_mut().add("alice", &ticket).unwrap();
        let all = v.mirror().changes(false).unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|e| e.customer_name.as_deref() == Some("alice")));
    }
}
