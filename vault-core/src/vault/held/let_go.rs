//! Letting go of a customer another node serves. A seller that runs several nodes keeps each
//! customer's shares on the node that serves it; the seller's database holds every customer's
//! values of record. A node that took a customer in (its first contact came through this
//! node's ticket, or it stood in while the customer's node was down) lets the shares go once
//! the database holds their last revision: what a node keeps follows its share of the
//! customers, not every customer that ever reached it.
//!
//! Letting go is not an erasure: the identity still holds the values (in its database, and on
//! the node that serves the customer), so no receipt is signed and nothing is asked of the
//! database. If the customer reaches this node again, its shares are synced anew, under
//! revisions that never repeat those of the copy let go ([`Held::first_rev`]): the mirror tells
//! what it wrote by revision.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use super::{CHUNKS, Held, RECEIVED, ShareKey, ShareStatus, VIEWS};
use crate::identity::IdentityId;
use crate::statement::GrantId;
use crate::store::StoreError;
use crate::store::sealed::Key;
use crate::vault::Vault;
use crate::vault::settings::Setting;

/// The revision of each share the mirror committed last (in memory: after a restart the mirror
/// compares every share with the database again, and says so here as it does).
#[derive(Default)]
pub(crate) struct Mirrored(std::cell::RefCell<HashMap<ShareKey, u64>>);

/// Revisions of one taking-in of a share: `incarnation << REV_BITS` onwards.
const REV_BITS: u32 = 32;

impl<V: Deref<Target = Vault>> Held<V> {
    /// The first revision of a share taken in now: above every revision of any share taken in
    /// before, this one's let go included (call inside a write transaction).
    pub(in crate::vault::held) fn first_rev(&self) -> Result<u64, StoreError> {
        let settings = self.vault.settings();
        let stored = settings.get(Setting::ReceivedIncarnation)?;
        let last = stored.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()).map_or(0, u64::from_le_bytes);
        // Kept below 2^62: the database holds revisions as signed 64-bit numbers.
        let next = (last + 1).min((1 << (62 - REV_BITS)) - 1);
        settings.put(Setting::ReceivedIncarnation, &next.to_le_bytes())?;
        Ok(next << REV_BITS)
    }

    /// The mirror committed revision `rev` of the share of `grant` from `customer` (or found a
    /// newer copy in the database).
    pub(in crate::vault::held) fn mirror_wrote(
        &self,
        customer: &IdentityId,
        grant: &GrantId,
        rev: u64,
    ) -> Result<(), StoreError> {
        let key = self.share_key(customer, grant)?;
        // A share let go meanwhile is not noted: it is taken in anew under other revisions.
        if self.received_row(&key)?.is_some() {
            self.vault.held.mirrored.0.borrow_mut().insert(key, rev);
        }
        Ok(())
    }

    /// Whether the shares of `issuer` may be let go: a mirror is attached and holds the last
    /// revision of every live one, and nothing of this node's is under way with the issuer (an
    /// erasure the mirror has not committed, a receipt not delivered, an erasure of a grant
    /// never held).
    fn may_let_go(&self, issuer: &IdentityId) -> Result<Vec<ShareKey>, StoreError> {
        if !self.vault.mirror().mirror_attached()? {
            return Ok(Vec::new());
        }
        if self.unheld_issuers().iter().any(|(i, _)| i == issuer) {
            return Ok(Vec::new());
        }
        let mirrored = self.vault.held.mirrored.0.borrow();
        let mut live = Vec::new();
        for (id, row) in self.received_from(issuer)? {
            let record = &row.record;
            if record.erasure_pending || (record.receipt.is_some() && !record.receipt_confirmed) {
                return Ok(Vec::new());
            }
            if record.status != ShareStatus::Live {
                continue;
            }
            if record.view_pending || mirrored.get(&id) != Some(&record.rev) {
                return Ok(Vec::new());
            }
            live.push(id);
        }
        Ok(live)
    }
}

impl<V: DerefMut<Target = Vault>> Held<V> {
    /// Lets go of the live shares of `issuer`, which another node of this identity serves (see
    /// the module docs): only when the mirror holds their last revision and nothing is under way
    /// with the issuer. Returns how many shares were let go (0: kept).
    pub fn let_go(&mut self, issuer: &IdentityId) -> Result<usize, StoreError> {
        if self.may_let_go(issuer)?.is_empty() {
            return Ok(0);
        }
        self.vault.write(|v| {
            // Asked again inside the transaction: nothing changed in between.
            let keys = v.held().may_let_go(issuer)?;
            for key in &keys {
                v.store.delete_group(&CHUNKS, key.as_bytes())?;
                v.store.delete(&VIEWS, Key::Id(key.as_bytes()))?;
                v.held.replicas.remove(key);
                v.held().forget_received_record(key)?;
                v.held.mirrored.0.borrow_mut().remove(key);
            }
            Ok(keys.len())
        })
    }
}

impl<V: Deref<Target = Vault>> Held<V> {
    /// Deletes a received share's record (the caller deleted its replica and view).
    fn forget_received_record(&self, id: &ShareKey) -> Result<(), StoreError> {
        let Some(row) = self.received_row(id)? else { return Ok(()) };
        if row.record.status == ShareStatus::Live
            && self.vault.held.strangers.borrow().is_some()
            && let Ok(grant) = row.grant(id)
            && self.unsolicited(&row.record, grant.statement())?
            && let Some(counts) = self.vault.held.strangers.borrow_mut().as_mut()
        {
            counts.add(grant.statement().issuer, false);
        }
        self.vault.store.delete(&RECEIVED, Key::Id(id.as_bytes()))?;
        self.vault.held.mirror_dirty.borrow_mut().keys.remove(id);
        self.drop_received_row(id);
        self.bump_issuers();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::replica::tests::grant;
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::statement::GrantId;
    use crate::vault::Vault;

    /// A node lets a customer go only once its database holds the last revision of every live
    /// share: no receipt is signed, and the customer's shares are taken in anew if it comes back.
    #[test]
    fn shares_are_let_go_only_once_the_database_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut shop =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let (alice, bob) = (Identity::generate(), Identity::generate());
        let grants: Vec<_> = (0..2).map(|_| grant(&alice, shop.identity(), GrantId::random())).collect();
        shop.held_mut().accept(alice.public(), None, &grants, &[], true).unwrap();
        let bobs = grant(&bob, shop.identity(), GrantId::random());
        shop.held_mut().accept(bob.public(), None, std::slice::from_ref(&bobs), &[], true).unwrap();
        let alice_id = alice.public();

        assert_eq!(shop.held_mut().let_go(&alice_id).unwrap(), 0, "no database: the node is the record");
        shop.mirror_mut().attach("postgres://shop@db/crm").unwrap();
        assert_eq!(shop.held_mut().let_go(&alice_id).unwrap(), 0, "nothing written yet");
        let entries = shop.mirror().entries().unwrap();
        let rev = |g: &GrantId| entries.iter().find(|e| e.grant == *g).unwrap().rev;
        let first = grants[0].statement().id;
        shop.mirror_mut().wrote(&alice_id, &first, rev(&first)).unwrap();
        assert_eq!(shop.held_mut().let_go(&alice_id).unwrap(), 0, "one share not written yet");
        let second = grants[1].statement().id;
        shop.mirror_mut().wrote(&alice_id, &second, rev(&second) + 1).unwrap();
        assert_eq!(shop.held_mut().let_go(&alice_id).unwrap(), 0, "another revision written than held");
        shop.mirror_mut().wrote(&alice_id, &second, rev(&second)).unwrap();

        assert_eq!(shop.held_mut().let_go(&alice_id).unwrap(), 2);
        let left: Vec<_> =
            shop.held_mut().list().unwrap().iter().map(|s| s.grant.statement().issuer).collect();
        assert_eq!(left, vec![bob.public()], "only the other customer's share is left");
        assert!(shop.held().unconfirmed_receipts(None).unwrap().is_empty(), "no receipt: nothing was erased");
        assert!(!shop.held().issuers().unwrap().iter().any(|(i, _)| *i == alice_id));
        // Read back from the file by another process, the same.
        let other = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(other.held().live_from(&alice_id).unwrap(), Vec::<GrantId>::new());

        // The customer reaches this node again: its shares are taken in anew.
        shop.held_mut().accept(alice_id, None, &grants, &[], true).unwrap();
        assert_eq!(shop.held().live_from(&alice_id).unwrap().len(), 2);
        // Under revisions the copy let go never had: what the mirror wrote of it says nothing
        // of this one.
        let again = shop.mirror().entries().unwrap();
        let old_max = entries.iter().map(|e| e.rev).max().unwrap();
        assert!(again.iter().filter(|e| e.customer == alice_id).all(|e| e.rev > old_max + 1));
        shop.mirror_mut().wrote(&alice_id, &first, rev(&first)).unwrap();
        assert_eq!(shop.held_mut().let_go(&alice_id).unwrap(), 0, "what the database holds is asked again");
    }
}

#[cfg(test)]
mod expiry_tests {
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::protocol::Ended;
    use crate::statement::GrantId;
    use crate::vault::Vault;

    /// A customer's grant expired while another node served it: this node, which let it go,
    /// is told "expired" with no grant to show. With a mirror it erases that consent's rows in
    /// the database first, only if the database shows it expired, then signs a receipt naming
    /// the customer; without one, a bare "expired" gets no signature.
    #[test]
    fn a_bare_expiry_is_receipted_only_after_the_database_erased_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut shop =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let alice = Identity::generate();
        let id = GrantId::random();
        let ended = [Ended::Expired(id)];
        let receipts = shop.held_mut().accept(alice.public(), None, &[], &ended, true).unwrap();
        assert!(receipts.is_empty(), "no mirror: a bare expiry names any id, nothing is signed");

        shop.mirror_mut().attach("postgres://shop@db/crm").unwrap();
        let receipts = shop.held_mut().accept(alice.public(), None, &[], &ended, true).unwrap();
        assert!(receipts.is_empty(), "not before the database erased the rows");
        assert_eq!(shop.mirror().unheld_pending(), vec![(alice.public(), id, true)], "to check it expired");
        // The database holds it live and unexpired: nothing erased, no receipt, forgotten.
        shop.mirror_mut().unheld_refused(&alice.public(), &id);
        assert!(shop.mirror().unheld_pending().is_empty());
        let receipts = shop.held_mut().accept(alice.public(), None, &[], &ended, true).unwrap();
        assert!(receipts.is_empty(), "named again: checked again");
        assert!(shop.mirror_mut().unheld_erased(&alice.public(), &id));
        let receipts = shop.held_mut().accept(alice.public(), None, &[], &ended, true).unwrap();
        assert_eq!(receipts.len(), 1);
        let r = receipts[0].statement();
        assert_eq!((r.grant, r.issuer, r.grantee), (id, alice.public(), shop.identity()));
    }
}
