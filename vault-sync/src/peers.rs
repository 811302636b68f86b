//! What the node's tasks know about peers, in memory only: which sessions listen for shares,
//! what each audience was told, offers waiting to be dialed back, and when a refusal was last
//! logged. NodeTasks by the serving side ([`crate::node`]) and the notifier ([`crate::notify`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

pub(crate) use vault_core::ShareSet;
use vault_core::{IdentityId, RefusalLog, Ticket};

/// Offers from issuers waiting to be dialed back, at most.
pub(crate) const MAX_OFFERS: usize = 64;
/// How long an offer is kept when its issuer cannot be reached back.
const OFFER_LIFETIME: Duration = Duration::from_secs(600);

/// How long after the `n`th acknowledged offer of the same news it is offered again (no session
/// of the audience having listened since): a minute, doubling, at most half an hour.
pub(crate) fn reoffer_after(n: u32) -> Duration {
    (Duration::from_secs(60) * 2u32.saturating_pow(n.min(5))).min(Duration::from_secs(30 * 60))
}

/// The last offer an audience acknowledged (see [`PeerBook`]'s `acked`).
#[derive(Debug)]
struct Acked {
    set: ShareSet,
    behind: Option<u64>,
    at: Instant,
    /// How many times in a row the same news was acknowledged before.
    again: u32,
    /// A session of the audience listened since: the news reached it.
    delivered: bool,
}

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
    /// When each removed device of this identity that called was last told of its removal
    /// (at most [`vault_core::MAX_DEVICES`] entries: an identity lists no more).
    pub(crate) told_removed: HashMap<vault_core::DeviceId, Instant>,
    /// Issuers that offered shares to this vault, with the ticket to dial them back, whether a
    /// session waiting out its backoff has yet to be woken by the offer, and when it came.
    offers: HashMap<IdentityId, (Ticket, bool, Instant)>,
    /// Which of `offers` came from issuers this vault held nothing from (bounded).
    strangers_offering: HashSet<IdentityId>,
    /// The last offer each audience acknowledged: what it was offered (shares, the
    /// [`vault_core::AudienceNews::behind`] fingerprint), when, and how many times in a row the
    /// same. An acknowledged offer is a promise to dial back, not a delivery: the same news is
    /// offered again after [`reoffer_after`] unless a session of the audience listened (a
    /// grantee that failed to dial back must not be left out for good), and no sooner (a device
    /// that never catches up must not make the node offer over and over).
    acked: HashMap<IdentityId, Acked>,
    /// Issuers whose idle session must be dialed again for this vault's own sake (a request or
    /// a notice queued for them, a receipt to deliver).
    woken: HashSet<IdentityId>,
    /// Issuers whose session went idle (waiting for news, see [`crate::client`]).
    idle: HashSet<IdentityId>,
    /// What wakes the task keeping each issuer's session: an offer from it, or [`Self::wake`].
    /// One per issuer, so that one customer's offer wakes one task, not every customer's.
    waiters: HashMap<IdentityId, Arc<Notify>>,
}

impl PeerBook {
    /// A session of `peer` now listens for shares (until [`Self::stop_listening`]).
    pub(crate) fn start_listening(&mut self, peer: IdentityId) {
        *self.listening.entry(peer).or_default() += 1;
        if let Some(acked) = self.acked.get_mut(&peer) {
            acked.delivered = true;
        }
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

    /// A listening session of `peer` told it `set`.
    pub(crate) fn told(&mut self, peer: IdentityId, set: ShareSet) {
        self.told.insert(peer, set);
    }

    /// `peer` acknowledged an offer of `set`, with what it was `behind` on.
    pub(crate) fn offer_acked(&mut self, peer: IdentityId, set: ShareSet, behind: Option<u64>) {
        let again = match self.acked.get(&peer) {
            Some(a) if a.set == set && a.behind == behind => a.again + 1,
            _ => 0,
        };
        self.acked.insert(peer, Acked { set, behind, at: Instant::now(), again, delivered: false });
    }

    /// `issuer`'s idle session has something of this vault's to carry: dial it again.
    pub(crate) fn wake(&mut self, issuer: IdentityId) {
        if let Some(waiter) = self.waiters.get(&issuer) {
            self.woken.insert(issuer);
            waiter.notify_one();
        }
    }

    /// True once per [`Self::wake`] of `issuer`.
    pub(crate) fn take_woken(&mut self, issuer: &IdentityId) -> bool {
        self.woken.remove(issuer)
    }

    /// Notes an offer from `issuer`: whether it was taken (false when too many offers already
    /// wait), and whether a task keeping `issuer`'s session was there to be woken. An issuer this
    /// vault already `follows` (it holds shares from it: one entry each, and its offers are how
    /// its edits reach an idle session) is never refused for want of room, so strangers' offers
    /// cannot hold up customers' news.
    pub(crate) fn note_offer(&mut self, issuer: IdentityId, ticket: Ticket, follows: bool) -> (bool, bool) {
        // An offer whose issuer could not be reached for a while makes room for others.
        self.offers.retain(|_, (_, _, at)| at.elapsed() < OFFER_LIFETIME);
        if !follows {
            self.strangers_offering.retain(|i| self.offers.contains_key(i));
            if self.strangers_offering.len() >= MAX_OFFERS && !self.offers.contains_key(&issuer) {
                return (false, false);
            }
            self.strangers_offering.insert(issuer);
        }
        self.offers.insert(issuer, (ticket, true, Instant::now()));
        match self.waiters.get(&issuer) {
            Some(waiter) => {
                waiter.notify_one();
                (true, true)
            }
            None => (true, false),
        }
    }

    /// What wakes the task keeping `issuer`'s session (made on first use).
    pub(crate) fn waiter(&mut self, issuer: IdentityId) -> Arc<Notify> {
        self.waiters.entry(issuer).or_default().clone()
    }

    /// The task keeping `issuer`'s session ended.
    pub(crate) fn forget(&mut self, issuer: &IdentityId) {
        self.waiters.remove(issuer);
        self.woken.remove(issuer);
        self.idle.remove(issuer);
    }

    /// Whether `issuer`'s session is idle (or not idle any more).
    pub(crate) fn set_idle(&mut self, issuer: IdentityId, idle: bool) {
        if idle {
            self.idle.insert(issuer);
        } else {
            self.idle.remove(&issuer);
        }
    }

    /// How many sessions are idle.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.len()
    }

    /// Whether `issuer`'s session is idle.
    pub(crate) fn is_idle(&self, issuer: &IdentityId) -> bool {
        self.idle.contains(issuer)
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

    /// Whether `audience` must be told: no session of it listens, and it gained a live or an
    /// ended grant since it was last told, or its devices are `behind` on values at a version
    /// it was not offered (its session went idle and the values changed since). News a session
    /// that listened had carried is not offered again, unless it is values the audience still
    /// lacks (`values_behind`: that session may have closed before they were sent), and then
    /// with the same growing wait.
    pub(crate) fn needs_offer(
        &self,
        audience: &IdentityId,
        now: &ShareSet,
        behind: Option<u64>,
        values_behind: bool,
    ) -> bool {
        if self.listening.contains_key(audience) {
            return false;
        }
        let grew = match self.told.get(audience) {
            Some((live, ended)) => !now.0.is_subset(live) || !now.1.is_subset(ended),
            None => !now.0.is_empty() || !now.1.is_empty(),
        };
        if !grew && behind.is_none() {
            return false;
        }
        match self.acked.get(audience) {
            Some(a) if a.set == *now && a.behind == behind => {
                if a.delivered && !values_behind {
                    return false;
                }
                // Values a session that listened left behind: the first time at once.
                let wait = match a.delivered {
                    true => reoffer_after(a.again).saturating_sub(reoffer_after(0)),
                    false => reoffer_after(a.again),
                };
                a.at.elapsed() >= wait
            }
            _ => true,
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
        assert!(!book.needs_offer(&peer, &nothing, None, false));
        let one: ShareSet = ([id(1)].into(), BTreeSet::new());
        assert!(book.needs_offer(&peer, &one, None, false));
        book.told(peer, one.clone());
        assert!(!book.needs_offer(&peer, &one, None, false));
        // A revocation is news; an erasure confirmed (the ended set shrinking) is not.
        let revoked: ShareSet = (BTreeSet::new(), [id(1)].into());
        assert!(book.needs_offer(&peer, &revoked, None, false));
        book.told(peer, revoked);
        assert!(!book.needs_offer(&peer, &nothing, None, false));
        // A listening session is told by its own session.
        book.start_listening(peer);
        assert!(!book.needs_offer(&peer, &([id(2)].into(), BTreeSet::new()), None, false));
        book.stop_listening(&peer);
        assert!(book.needs_offer(&peer, &([id(2)].into(), BTreeSet::new()), None, false));
    }

    #[test]
    fn news_acknowledged_is_offered_again_only_after_a_while() {
        let peer = vault_core::Identity::from_secret_bytes(&[1; 32]).public();
        let mut book = PeerBook::default();
        let one: ShareSet = ([id(1)].into(), BTreeSet::new());
        book.told(peer, one.clone());
        assert!(!book.needs_offer(&peer, &one, None, false), "up to date");
        assert!(book.needs_offer(&peer, &one, Some(7), true), "values changed after its session went idle");
        book.offer_acked(peer, one.clone(), Some(7));
        assert!(!book.needs_offer(&peer, &one, Some(7), true), "acknowledged: the grantee dials back");
        assert!(book.needs_offer(&peer, &one, Some(8), true), "a newer version");
        // Acknowledged but never dialed back: offered again after a minute, then less often.
        let long_ago = Instant::now() - Duration::from_secs(61);
        book.acked.get_mut(&peer).unwrap().at = long_ago;
        assert!(book.needs_offer(&peer, &one, Some(7), true), "the grantee did not dial back");
        book.offer_acked(peer, one.clone(), Some(7));
        book.acked.get_mut(&peer).unwrap().at = long_ago;
        assert!(!book.needs_offer(&peer, &one, Some(7), true), "the second time, two minutes");
        assert_eq!(reoffer_after(20), Duration::from_secs(1800));
        // A new grant not yet told is the same: offered, then again only if nobody dialed back.
        let two: ShareSet = ([id(1), id(2)].into(), BTreeSet::new());
        assert!(book.needs_offer(&peer, &two, None, false));
        book.offer_acked(peer, two.clone(), None);
        assert!(!book.needs_offer(&peer, &two, None, false));
        book.start_listening(peer);
        assert!(!book.needs_offer(&peer, &two, Some(9), true), "a listening session carries it");
        // Once a session listened, the news it had is not offered again, however long ago.
        book.stop_listening(&peer);
        book.acked.get_mut(&peer).unwrap().at = long_ago;
        assert!(!book.needs_offer(&peer, &two, None, false), "delivered");
        assert!(book.needs_offer(&peer, &two, Some(10), true), "new news is");
    }

    /// A session that listened but closed before the values it was offered for were sent: the
    /// same values are offered again (at once the first time, then less often), not left to the
    /// grantee's refresh half an hour later.
    #[test]
    fn values_a_listening_session_left_behind_are_offered_again() {
        let peer = vault_core::Identity::from_secret_bytes(&[1; 32]).public();
        let mut book = PeerBook::default();
        let one: ShareSet = ([id(1)].into(), BTreeSet::new());
        book.told(peer, one.clone());
        book.offer_acked(peer, one.clone(), Some(7));
        book.start_listening(peer);
        book.stop_listening(&peer);
        assert!(book.needs_offer(&peer, &one, Some(7), true), "still behind on the same values");
        assert!(!book.needs_offer(&peer, &one, Some(7), false), "told items a session carried are not");
        book.offer_acked(peer, one.clone(), Some(7));
        book.start_listening(peer);
        book.stop_listening(&peer);
        assert!(!book.needs_offer(&peer, &one, Some(7), true), "the second time, after a wait");
        book.acked.get_mut(&peer).unwrap().at = Instant::now() - Duration::from_secs(61);
        assert!(book.needs_offer(&peer, &one, Some(7), true));
    }

    #[test]
    fn waiting_offers_are_bounded() {
        let mut book = PeerBook::default();
        let device = vault_core::DeviceKey::from_secret_bytes(&[9; 32]);
        for n in 0..=MAX_OFFERS {
            let issuer = vault_core::Identity::from_secret_bytes(&[n as u8 + 10; 32]);
            let ticket = Ticket::new(issuer.certify(device.public()), Vec::new());
            assert_eq!(book.note_offer(issuer.public(), ticket, false).0, n < MAX_OFFERS);
        }
        assert_eq!(book.offers().len(), MAX_OFFERS);
        // A customer this vault follows still gets through.
        let customer = vault_core::Identity::from_secret_bytes(&[200; 32]);
        let ticket = Ticket::new(customer.certify(device.public()), Vec::new());
        assert!(book.note_offer(customer.public(), ticket, true).0);
        assert!(book.take_fresh_offer(&customer.public()));
    }
}
