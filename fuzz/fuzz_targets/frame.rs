//! A wire frame body (type byte and payload) from a peer: decode never panics, and a decoded
//! frame re-encodes to the same bytes, which decode to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::{decode, encode, encode_with_length};

fuzz_target!(|data: &[u8]| {
    vault_fuzz::panic_policy();
    let Ok(frame) = decode(data) else {
        return;
    };
    let bytes = encode(&frame);
    assert_eq!(decode(&bytes).as_ref(), Ok(&frame), "a decoded frame does not survive re-encoding");
    assert_eq!(bytes, data, "a decoded frame re-encodes differently");
    assert_eq!(encode_with_length(&frame)[4..], bytes[..]);
    let _ = format!("{frame:?}");
});
