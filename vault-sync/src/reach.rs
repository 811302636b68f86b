//! Whom the node reaches: per peer, its sessions open now, when one last got through, and the
//! last error dialing it. What `vault status` says of each peer while the node runs, instead of
//! promising what nobody checked.
//!
//! Bounded: a seller's node meets every customer, and keeps at most [`MAX_TRACKED`] peers (the
//! ones quiet longest are forgotten first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vault_core::IdentityId;

/// Most peers tracked at once.
const MAX_TRACKED: usize = 4096;

/// What the node knows of reaching one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerReach {
    /// The peer.
    pub peer: IdentityId,
    /// Sessions with it open now (either side dialed).
    pub open: u32,
    /// When a session with it last got through the hellos, or last ended (unix seconds).
    pub last_reached: Option<i64>,
    /// The last failed attempt to reach it and why, when after `last_reached`.
    pub last_error: Option<(i64, String)>,
}

#[derive(Debug, Default)]
pub(crate) struct Reach {
    peers: HashMap<IdentityId, PeerReach>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Reach {
    /// The peer's entry; a new one takes the place of the quietest peer without a session
    /// open, or is not kept when every tracked peer has one (a scan of the map, only once full).
    fn entry(&mut self, peer: IdentityId) -> Option<&mut PeerReach> {
        if self.peers.len() >= MAX_TRACKED && !self.peers.contains_key(&peer) {
            let quietest = self
                .peers
                .values()
                .filter(|p| p.open == 0)
                .min_by_key(|p| p.last_reached.max(p.last_error.as_ref().map(|e| e.0)))
                .map(|p| p.peer)?;
            self.peers.remove(&quietest);
        }
        Some(self.peers.entry(peer).or_insert(PeerReach {
            peer,
            open: 0,
            last_reached: None,
            last_error: None,
        }))
    }

    fn opened(&mut self, peer: IdentityId) {
        if let Some(entry) = self.entry(peer) {
            entry.open += 1;
            entry.last_reached = Some(now());
            entry.last_error = None;
        }
    }

    fn closed(&mut self, peer: &IdentityId) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.open = entry.open.saturating_sub(1);
            entry.last_reached = Some(now());
        }
    }

    /// An attempt to reach `peer` failed with `why`.
    pub(crate) fn failed(&mut self, peer: IdentityId, why: &str) {
        if let Some(entry) = self.entry(peer) {
            entry.last_error = Some((now(), why.to_owned()));
        }
    }

    /// Connected peers first, then the most lately heard of.
    pub(crate) fn snapshot(&self) -> Vec<PeerReach> {
        let mut out: Vec<PeerReach> = self.peers.values().cloned().collect();
        let latest = |p: &PeerReach| p.last_reached.max(p.last_error.as_ref().map(|e| e.0));
        out.sort_by_key(|p| (p.open == 0, std::cmp::Reverse(latest(p)), p.peer));
        out
    }
}

/// The node's [`Reach`], shared by its sessions.
pub(crate) type SharedReach = Arc<Mutex<Reach>>;

pub(crate) fn lock(reach: &Mutex<Reach>) -> std::sync::MutexGuard<'_, Reach> {
    reach.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A session with a peer that got through the hellos, counted open until dropped.
pub(crate) struct Open {
    reach: SharedReach,
    peer: IdentityId,
}

impl Open {
    pub(crate) fn new(reach: &SharedReach, peer: IdentityId) -> Self {
        lock(reach).opened(peer);
        Open { reach: reach.clone(), peer }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        lock(&self.reach).closed(&self.peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_reached_again_loses_its_old_error_and_the_quietest_go_first() {
        let mut reach = Reach::default();
        let (a, b) = (vault_core::Identity::generate().public(), vault_core::Identity::generate().public());
        reach.failed(a, "the peer did not answer in time");
        assert_eq!(
            reach.snapshot()[0].last_error.as_ref().map(|e| e.1.as_str()),
            Some("the peer did not answer in time")
        );
        reach.opened(a);
        reach.opened(b);
        let now = reach.snapshot();
        assert!(now.iter().all(|p| p.open == 1 && p.last_error.is_none() && p.last_reached.is_some()));
        reach.closed(&a);
        assert_eq!(reach.snapshot().iter().find(|p| p.peer == a).unwrap().open, 0);
        for _ in 0..MAX_TRACKED + 10 {
            reach.failed(vault_core::Identity::generate().public(), "x");
        }
        assert_eq!(reach.peers.len(), MAX_TRACKED, "bounded");
        assert!(reach.peers.contains_key(&b), "a peer with a session open is kept");
        assert_eq!(reach.snapshot()[0].peer, b, "connected first");
        // Full of open sessions: a newcomer is not kept, and the count stays bounded.
        let mut full = Reach::default();
        for _ in 0..MAX_TRACKED + 10 {
            full.opened(vault_core::Identity::generate().public());
        }
        assert_eq!(full.peers.len(), MAX_TRACKED);
    }
}
