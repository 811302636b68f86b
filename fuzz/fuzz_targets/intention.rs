//! A signed intention from a stranger (a customer's pseudonym): decode, check, verify; never a
//! panic. An accepted intention re-encodes to the very bytes it came in (one wire form each).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::SignedIntention;

fuzz_target!(|data: &[u8]| {
    vault_fuzz::panic_policy();
    if let Ok(signed) = SignedIntention::from_bytes(data) {
        assert_eq!(signed.to_bytes(), data, "an accepted intention has a second wire form");
    }
});
