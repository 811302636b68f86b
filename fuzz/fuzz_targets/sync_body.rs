//! The payload of a `Sync` frame: its epoch header, then the Automerge sync message inside,
//! as the issuer and the grantee decode it. Never a panic; a decoded epoch header re-encodes
//! as it came.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::{decode_sync_body, encode_sync_body};

fuzz_target!(|data: &[u8]| {
    vault_fuzz::panic_policy();
    let Ok((epoch, message)) = decode_sync_body(data) else {
        return;
    };
    if epoch != 0 {
        assert_eq!(encode_sync_body(epoch, message), data);
    } else {
        // Epoch 0 is a bare message, unless the body claimed an epoch header of 0.
        assert!(message == data || data.len() >= 9 && message == &data[9..]);
    }
    // vault hands a peer's message to Automerge and never re-encodes it (re-encoding an unsorted
    // hash list trips a debug assertion inside Automerge, which is no concern of vault's).
    if let Ok(decoded) = automerge::sync::Message::decode(message) {
        let _ = format!("{decoded:?}");
    }
});
