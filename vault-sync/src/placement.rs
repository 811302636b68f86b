//! Which of a seller's nodes serves which customer, when several nodes of one identity write
//! into one database mirror. Each customer belongs to the first node of its rendezvous order
//! ([`vault_core::first_for`]) among the nodes that database heard from lately: every node
//! computes the same answer from the same facts, and no node coordinates the others. When a
//! node stops, its customers move to the next node of their order; when it is back, they move
//! back. Without a mirror saying who is up (one node, or the database unreachable), a node
//! serves every customer it holds, as before.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use vault_core::{DeviceId, IdentityId, Ticket};

/// How long what the database said about the nodes holds: past it, with no fresher word (the
/// database unreachable), this node serves everyone it holds.
const FRESH: Duration = Duration::from_secs(8);

/// How long the nodes up stay the same before a node lets go of another's customers.
const SETTLED: Duration = Duration::from_secs(10);

/// At most this many customers are kept to be called on another node's behalf.
const MAX_ADOPTED: usize = 1_000_000;

/// What this node knows of its place among the identity's nodes.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    /// The identity's nodes the database heard from lately (this one included), and when the
    /// database said so.
    live: Option<(Vec<DeviceId>, Instant)>,
    /// When the nodes up last changed.
    moved_at: Option<Instant>,
    /// Customers the database lists that this node now serves without holding their shares
    /// (another node's, until it stopped), with the ticket each was last reached at.
    adopted: HashMap<IdentityId, Ticket>,
}

impl Placement {
    /// The database heard from these nodes lately. True when who serves whom may have changed
    /// (other nodes than before, or nothing fresh known before).
    pub(crate) fn set_live(&mut self, mut devices: Vec<DeviceId>) -> bool {
        devices.sort_by_key(|d| *d.as_bytes());
        let changed = self.live().is_none_or(|before| before != devices.as_slice());
        self.live = Some((devices, Instant::now()));
        if changed {
            self.moved_at = Some(Instant::now());
        }
        changed
    }

    /// The nodes up, while what the database said still holds.
    pub(crate) fn live(&self) -> Option<&[DeviceId]> {
        match &self.live {
            Some((devices, at)) if at.elapsed() < FRESH => Some(devices),
            _ => None,
        }
    }

    /// Whether node `me` serves `customer`: the first of its order among the nodes up, or any
    /// customer while nothing fresh is known of the others.
    pub(crate) fn serves(&self, me: DeviceId, customer: &IdentityId) -> bool {
        let Some(live) = self.live() else { return true };
        let mut nodes = live.to_vec();
        if !nodes.contains(&me) {
            nodes.push(me);
        }
        vault_core::first_for(customer, &nodes) == Some(me)
    }

    /// Whether the nodes up have been the same for [`SETTLED`]: a node lets go of the customers
    /// of another only then (nodes that come and go, or a database that says so, do not make
    /// it drop and take in the same customers over and over).
    pub(crate) fn settled(&self) -> bool {
        self.live().is_some() && self.moved_at.is_some_and(|at| at.elapsed() >= SETTLED)
    }

    /// Whether several nodes share the work now (a single node serves everyone).
    pub(crate) fn shared(&self) -> bool {
        self.live().is_some_and(|l| l.len() > 1)
    }

    /// Customers this node should call: those it serves among `customers` (from the database),
    /// apart from those `held` already.
    pub(crate) fn adopt(
        &mut self,
        me: DeviceId,
        customers: Vec<(IdentityId, Ticket)>,
        held: impl Fn(&IdentityId) -> bool,
    ) -> usize {
        let mut n = 0;
        for (customer, ticket) in customers {
            if self.adopted.len() >= MAX_ADOPTED {
                break;
            }
            if self.serves(me, &customer) && !held(&customer) {
                n += usize::from(self.adopted.insert(customer, ticket).is_none());
            }
        }
        n
    }

    /// The customers adopted and not yet called.
    pub(crate) fn adopted(&self) -> Vec<(IdentityId, Ticket)> {
        self.adopted.iter().map(|(c, t)| (*c, t.clone())).collect()
    }

    /// A customer was called (or given up): it is held now, or not to be called again.
    pub(crate) fn called(&mut self, customer: &IdentityId) {
        self.adopted.remove(customer);
    }
}

#[cfg(test)]
mod tests {
    use vault_core::{DeviceKey, Identity};

    use super::*;

    fn device(n: u8) -> DeviceId {
        DeviceKey::from_secret_bytes(&[n; 32]).public()
    }

    #[test]
    fn each_customer_has_one_node_and_moves_only_when_its_node_stops() {
        let nodes = [device(1), device(2), device(3)];
        let customers: Vec<IdentityId> = (0..300).map(|_| Identity::generate().public()).collect();
        let mut views: Vec<Placement> = nodes.iter().map(|_| Placement::default()).collect();
        for v in &mut views {
            v.set_live(nodes.to_vec());
        }
        let owner = |views: &[Placement], c: &IdentityId| -> Vec<usize> {
            (0..views.len()).filter(|&i| views[i].serves(nodes[i], c)).collect()
        };
        let before: Vec<usize> = customers
            .iter()
            .map(|c| {
                let o = owner(&views, c);
                assert_eq!(o.len(), 1, "exactly one node serves each customer");
                o[0]
            })
            .collect();
        // Node 0 stops: the others agree on who takes its customers; nobody else moves.
        for v in &mut views[1..] {
            v.set_live(nodes[1..].to_vec());
        }
        for (c, was) in customers.iter().zip(&before) {
            let o: Vec<usize> = (1..3).filter(|&i| views[i].serves(nodes[i], c)).collect();
            assert_eq!(o.len(), 1);
            if *was != 0 {
                assert_eq!(o[0], *was, "a customer of a running node stays");
            }
        }
        // Nothing fresh known: a node serves everyone it holds.
        assert!(Placement::default().serves(nodes[0], &customers[0]));
    }
}
