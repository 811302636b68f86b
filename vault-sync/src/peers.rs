//! What the node's tasks know about peers, in memory only: which sessions listen for shares,
//! what each audience was told, offers waiting to be dialed back, and when a refusal was last
//! logged. NodeTasks by the serving side ([`crate::node`]) and the notifier ([`crate::notify`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub(crate) use vault_core::ShareSet;
use vault_core::{IdentityId, RefusalLog, Ticket};

/// Offers from issuers waiting to be dialed back, at most.
pub(crate) const MAX_OFFERS: usize = 64;
/// How long an offer is kept when its issuer cannot be reached back.
const OFFER_LIFETIME: Duration = Duration::from_secs(600);

/// Per-peer session facts the node's tasks share (in memory only: after a restart every
/// audience with shares is offered them once more, which is harmless).
#[derive(Debug, Default)]
pub(crate) struct PeerBook {
    /// Sessions of each peer that asked for its shares (and so are told of changes live).
    listening: HashMap<IdentityId, usize>,
    /// What each audience was last told, by a `Shares` answer or an acknowledged offer.
    told: HashMap<IdentityId, ShareSet>,
    /// When refusals are written to the access log.
    pub(crate) refusals: RefusalLog,
    /// Issuers that offered shares to this vault, with the ticket to dial them back, whether a
    /// session waiting out its backoff has yet to be woken by the offer, and when it came.
    offers: HashMap<IdentityId, (Ticket, bool, Instant)>,
}

impl PeerBook {
    /// A session of `peer` now listens for shares (until [`Self::stop_listening`]).
    pub(crate) fn start_listening(&mut self, peer: IdentityId) {
        *self.listening.entry(peer).or_default() += 1;
    }

    /// A session of `peer` that listened ended.
    pub(crate) fn stop_listening(&mut self, peer: &IdentityId) {
        if let Some(n) = self.listening.get_mut(peer) {
            *n -= 1;
            if *n == 0 {
                self.listening.remove(peer);
            }
        }
    }

    /// `peer` was told `set`.
    pub(crate) fn told(&mut self, peer: IdentityId, set: ShareSet) {
        self.told.insert(peer, set);
    }

    /// Notes an offer from `issuer`; false when too many offers already wait.
    pub(crate) fn note_offer(&mut self, issuer: IdentityId, ticket: Ticket) -> bool {
        // An offer whose issuer could not be reached for a while makes room for others.
        self.offers.retain(|_, (_, _, at)| at.elapsed() < OFFER_LIFETIME);
        if self.offers.len() >= MAX_OFFERS && !self.offers.contains_key(&issuer) {
            return false;
        }
        self.offers.insert(issuer, (ticket, true, Instant::now()));
        true
    }

    /// True once per offer from `issuer`: wakes a session to it that waits out its backoff.
    pub(crate) fn take_fresh_offer(&mut self, issuer: &IdentityId) -> bool {
        self.offers.get_mut(issuer).is_some_and(|(_, fresh, _)| std::mem::replace(fresh, false))
    }

    /// The issuers that offered shares, with their tickets.
    pub(crate) fn offers(&self) -> Vec<(IdentityId, Ticket)> {
        let live = self.offers.iter().filter(|(_, (_, _, at))| at.elapsed() < OFFER_LIFETIME);
        live.map(|(i, (t, _, _))| (*i, t.clone())).collect()
    }

    /// The ticket of `issuer`'s live offer, if it made one.
    pub(crate) fn offer_of(&self, issuer: &IdentityId) -> Option<Ticket> {
        self.offers.get(issuer).filter(|(_, _, at)| at.elapsed() < OFFER_LIFETIME).map(|(t, _, _)| t.clone())
    }

    /// The offer of `issuer` was answered (its shares were listed).
    pub(crate) fn offer_done(&mut self, issuer: &IdentityId) {
        self.offers.remove(issuer);
    }

    /// Whether `audience` must be told `now`: it gained a live or an ended grant since it was
    /// last told, and no session of it listens.
    pub(crate) fn needs_offer(&self, audience: &IdentityId, now: &ShareSet) -> bool {
        if self.listening.contains_key(audience) {
            return false;
        }
        match self.told.get(audience) {
            Some((live, ended)) => !now.0.is_subset(live) || !now.1.is_subset(ended),
            None => !now.0.is_empty() || !now.1.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use vault_core::GrantId;

    use super::*;

    fn id(n: u8) -> GrantId {
        GrantId::from_raw(&[n; 10]).unwrap()
    }

    #[test]
    fn offers_only_what_the_audience_was_not_told() {
        let peer = vault_core::Identity::from_secret_bytes(&[1; 32]).public();
        let mut book = PeerBook::default();
        let nothing: ShareSet = Default::default();
        assert!(!book.needs_offer(&peer, &nothing));
        let one: ShareSet = ([id(1)].into(), BTreeSet::new());
        assert!(book.needs_offer(&peer, &one));
        book.told(peer, one.clone());
        assert!(!book.needs_offer(&peer, &one));
        // A revocation is news; an erasure confirmed (the ended set shrinking) is not.
        let revoked: ShareSet = (BTreeSet::new(), [id(1)].into());
        assert!(book.needs_offer(&peer, &revoked));
        book.told(peer, revoked);
        assert!(!book.needs_offer(&peer, &nothing));
        // A listening session is told by its own session.
        book.start_listening(peer);
        assert!(!book.needs_offer(&peer, &([id(2)].into(), BTreeSet::new())));
        book.stop_listening(&peer);
        assert!(book.needs_offer(&peer, &([id(2)].into(), BTreeSet::new())));
    }

    #[test]
    fn waiting_offers_are_bounded() {
        let mut book = PeerBook::default();
        let device = vault_core::DeviceKey::from_secret_bytes(&[9; 32]);
        for n in 0..=MAX_OFFERS {
            let issuer = vault_core::Identity::from_secret_bytes(&[n as u8 + 10; 32]);
            let ticket = Ticket::new(issuer.certify(device.public()), Vec::new());
            assert_eq!(book.note_offer(issuer.public(), ticket), n < MAX_OFFERS);
        }
        assert_eq!(book.offers().len(), MAX_OFFERS);
    }
}
