//! Erasures of grants this vault never held, with a mirror attached. A seller that runs several
//! nodes shares one database: a customer's revocation may reach a node that never held the
//! grant (the customer's node died, or this vault was restored from a backup) while the
//! database holds its rows. Such a node erases the rows first (the mirror does, and lists the
//! consent as erased for good), and only then signs the receipt.
//!
//! Kept in memory: after a restart the issuer names the ended grant again, and erasing again is
//! harmless. Bounded, so that no issuer can make this vault keep any number of them.

use std::collections::HashMap;

use super::Held;
use crate::grant::ErasureReceipt;
use crate::identity::{IdentityId, Ticket};
use crate::statement::{GrantId, Signed};
use crate::vault::Vault;

/// At most this many erasures of grants never held are kept at once.
const MAX_UNHELD: usize = 4096;
/// At most this many per issuer: one peer cannot take the room of the others.
const MAX_UNHELD_PER_ISSUER: usize = 64;

/// One erasure of a grant never held.
#[derive(Clone)]
struct Unheld {
    /// The mirror committed the erasure: the receipt, signed then.
    erased: Option<Signed<ErasureReceipt>>,
    /// The ticket the issuer was reached at.
    ticket: Option<Ticket>,
    /// Asked by a bare "expired" (no signed revocation): erased only once the database shows
    /// the consent past its expiry.
    expiry: bool,
}

/// The erasures of grants never held, by (issuer, grant).
#[derive(Default)]
pub(crate) struct UnheldErasures(std::cell::RefCell<HashMap<(IdentityId, GrantId), Unheld>>);

impl<V: std::ops::Deref<Target = Vault>> Held<V> {
    /// Whether the receipt for `grant`, never held, may be signed now: no mirror may hold its
    /// rows, or the mirror erased them. When not, the erasure is noted for the mirror.
    pub(in crate::vault::held) fn may_sign_unheld(
        &self,
        mirrored: bool,
        issuer: IdentityId,
        grant: GrantId,
        ticket: Option<&Ticket>,
        expiry: bool,
    ) -> bool {
        if !mirrored {
            return true;
        }
        let mut all = self.vault.held.unheld.0.borrow_mut();
        match all.get(&(issuer, grant)) {
            Some(u) => u.erased.is_some(),
            None => {
                let theirs = all.keys().filter(|(i, _)| *i == issuer).count();
                if all.len() < MAX_UNHELD && theirs < MAX_UNHELD_PER_ISSUER {
                    all.insert((issuer, grant), Unheld { erased: None, ticket: ticket.cloned(), expiry });
                    drop(all);
                    self.bump_issuers();
                }
                false
            }
        }
    }

    /// The issuer's whole list no longer names these grants as ended: its receipts arrived.
    pub(in crate::vault::held) fn unheld_confirmed(&self, issuer: &IdentityId, still_ended: &[GrantId]) {
        let mut all = self.vault.held.unheld.0.borrow_mut();
        let before = all.len();
        all.retain(|(i, g), _| i != issuer || still_ended.contains(g));
        if all.len() != before {
            drop(all);
            self.bump_issuers();
        }
    }

    /// Receipts for grants never held whose rows the mirror erased (of `issuer`, or all).
    pub(in crate::vault::held) fn unheld_receipts(
        &self,
        issuer: Option<IdentityId>,
    ) -> Vec<Signed<ErasureReceipt>> {
        let all = self.vault.held.unheld.0.borrow();
        all.iter()
            .filter(|((i, _), _)| issuer.is_none_or(|want| *i == want))
            .filter_map(|(_, u)| u.erased.clone())
            .collect()
    }

    /// Issuers with an erasure of a grant never held under way, with their tickets: a node
    /// keeps a session with them until their receipts are delivered.
    pub(in crate::vault::held) fn unheld_issuers(&self) -> Vec<(IdentityId, Option<Ticket>)> {
        let all = self.vault.held.unheld.0.borrow();
        all.iter().map(|((i, _), u)| (*i, u.ticket.clone())).collect()
    }

    /// Erasures of grants never held that wait for the mirror: (customer, grant).
    /// Erasures of grants never held that wait for the mirror: (customer, grant, asked by a
    /// bare expiry).
    pub(crate) fn unheld_pending(&self) -> Vec<(IdentityId, GrantId, bool)> {
        let all = self.vault.held.unheld.0.borrow();
        all.iter().filter(|(_, u)| u.erased.is_none()).map(|((c, g), u)| (*c, *g, u.expiry)).collect()
    }

    /// The mirror found the consent of a bare expiry still live there: no erasure, no receipt
    /// (asked again when the issuer names it again).
    pub(crate) fn unheld_refused(&self, customer: &IdentityId, grant: &GrantId) {
        let removed = self.vault.held.unheld.0.borrow_mut().remove(&(*customer, *grant)).is_some();
        if removed {
            self.bump_issuers();
        }
    }

    /// The mirror committed the erasure of `grant`'s rows: its receipt may be signed.
    pub(crate) fn unheld_erased(&self, customer: &IdentityId, grant: &GrantId) -> bool {
        let now = self.vault.now();
        let mut all = self.vault.held.unheld.0.borrow_mut();
        match all.get_mut(&(*customer, *grant)) {
            Some(u) if u.erased.is_none() => {
                u.erased = Some(self.erasure_receipt(*customer, *grant, now));
                true
            }
            _ => false,
        }
    }
}
