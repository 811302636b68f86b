//! Another device of the customer, gone hostile or broken, on the device session's sharing
//! state (`vault/device/1`): its `Have` (what it says it holds, digests and forked origins
//! included) and its batches, in any order, taken by the box. Every step may fail (the session
//! would end); none may panic, and the box still opens afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::SharedHave;
use vault_fuzz::devices::Devices;

fuzz_target!(init: Devices::prepare(), |data: &[u8]| {
    vault_fuzz::panic_policy();
    let mut d = Devices::new();
    let from = d.laptop.device_key().public();
    let mut believed = SharedHave::default();
    // Pieces: a 2-byte big-endian length, then a `Have` (first byte even) or a batch (odd).
    let mut rest = data;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let piece = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[(2 + len).min(rest.len())..];
        let Some((&kind, body)) = piece.split_first() else { continue };
        if kind % 2 == 0 {
            if let Some(have) = SharedHave::from_bytes(body) {
                let _ = d.home.replication_mut().take_have(&have);
                let mut theirs = have;
                let _ = d.home.replication().batch(&mut theirs);
            }
        } else {
            let _ = d.home.replication_mut().receive(&from, &mut believed, body);
        }
    }
    let _ = d.home.grants();
    let _ = d.home.replication().have(&from);
});
