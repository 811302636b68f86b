//! Which device of a peer to dial first: rendezvous (highest random weight) hashing of the
//! dialing identity over the peer's active devices. A seller that runs several nodes (devices
//! of one identity) gets its customers spread among them by a rule that every customer, every
//! node and a replacement node compute alike without asking anyone; a customer whose first
//! node does not answer dials the next in the same order. Adding or removing a device moves
//! only the customers whose first device changed: a device's score for a customer does not
//! depend on the other devices.

use crate::identity::{DeviceId, IdentityId};

/// The domain of the scores (so that they mean nothing anywhere else).
const CONTEXT: &str = "vault/v1 rendezvous: which device of a peer answers for a dialing identity";

/// The score of `device` for `dialer`: a keyed hash of both, compared as bytes.
fn score(dialer: &IdentityId, device: &DeviceId) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
    hasher.update(dialer.as_bytes());
    hasher.update(device.as_bytes());
    *hasher.finalize().as_bytes()
}

/// `devices` in the order `dialer` tries them: highest score first (ties, which take a hash
/// collision, broken by the device key).
pub fn dial_order(dialer: &IdentityId, devices: &[DeviceId]) -> Vec<DeviceId> {
    let mut scored: Vec<([u8; 32], DeviceId)> = devices.iter().map(|d| (score(dialer, d), *d)).collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.as_bytes().cmp(a.1.as_bytes())));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().map(|(_, d)| d).collect()
}

/// The device that answers for `dialer` among `devices` when all of them answer.
pub fn first_for(dialer: &IdentityId, devices: &[DeviceId]) -> Option<DeviceId> {
    dial_order(dialer, devices).into_iter().next()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::identity::{DeviceKey, Identity};

    fn device(n: u8) -> DeviceId {
        DeviceKey::from_secret_bytes(&[n; 32]).public()
    }

    fn customer(n: u32) -> IdentityId {
        let mut seed = [7u8; 32];
        seed[..4].copy_from_slice(&n.to_be_bytes());
        Identity::from_secret_bytes(&seed).public()
    }

    proptest! {
        /// The order is a permutation of the devices that does not depend on the order given.
        #[test]
        fn the_order_depends_on_the_devices_not_how_they_are_listed(seed in 0u32..10_000, n in 1u8..8) {
            let devices: Vec<DeviceId> = (0..n).map(device).collect();
            let mut reversed = devices.clone();
            reversed.reverse();
            let order = dial_order(&customer(seed), &devices);
            prop_assert_eq!(&order, &dial_order(&customer(seed), &reversed));
            let mut sorted = order.clone();
            sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let mut given = devices.clone();
            given.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            prop_assert_eq!(sorted, given);
        }

        /// Removing a device keeps the others in the same relative order: a customer whose first
        /// device stays keeps it, and one whose first device went gets the next in its order.
        #[test]
        fn removing_a_device_moves_only_its_customers(seed in 0u32..10_000, gone in 0u8..5) {
            let devices: Vec<DeviceId> = (0..5).map(device).collect();
            let before = dial_order(&customer(seed), &devices);
            let rest: Vec<DeviceId> = devices.iter().copied().filter(|d| *d != device(gone)).collect();
            let after = dial_order(&customer(seed), &rest);
            let expected: Vec<DeviceId> = before.into_iter().filter(|d| *d != device(gone)).collect();
            prop_assert_eq!(after, expected);
        }
    }

    /// Customers spread evenly enough, and adding a node moves about a quarter of them (to it).
    #[test]
    fn customers_spread_over_nodes_and_a_new_node_takes_only_its_share() {
        let three: Vec<DeviceId> = (0..3).map(device).collect();
        let four: Vec<DeviceId> = (0..4).map(device).collect();
        let n = 30_000;
        let mut counts = [0usize; 4];
        let mut moved = 0;
        for i in 0..n {
            let c = customer(i);
            let before = first_for(&c, &three).unwrap();
            let after = first_for(&c, &four).unwrap();
            if before != after {
                assert_eq!(after, device(3), "a customer moves only to the new node");
                moved += 1;
            }
            counts[four.iter().position(|d| *d == after).unwrap()] += 1;
        }
        for count in counts {
            let share = count as f64 / n as f64;
            assert!((share - 0.25).abs() < 0.02, "{counts:?}");
        }
        let share_moved = moved as f64 / n as f64;
        assert!((share_moved - 0.25).abs() < 0.02, "{moved} moved");
    }
}
