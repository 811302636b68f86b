//! A market frame from a stranger (ALPN `vault/market/1`, or a topic's message): decoding never
//! panics, and what decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vault_fuzz::panic_policy();
    if let Ok(frame) = vault_core::decode_market(data) {
        assert_eq!(vault_core::encode_market(&frame), data, "a decoded market frame re-encodes differently");
    }
});
