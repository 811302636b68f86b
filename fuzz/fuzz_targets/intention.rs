//! A signed intention from a stranger (a customer's pseudonym): decode, check, verify; never a
//! panic. An accepted intention re-encodes to bytes that are accepted as the same intention.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::SignedIntention;

fuzz_target!(|data: &[u8]| {
    vault_fuzz::panic_policy();
    if let Ok(signed) = SignedIntention::from_bytes(data) {
        let again = SignedIntention::from_bytes(&signed.to_bytes());
        assert_eq!(again.as_ref(), Ok(&signed), "an accepted intention reads back differently");
    }
});
