//! A signed acceptance from anywhere (a market frame): decode, then verify; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vault_fuzz::panic_policy();
    vault_fuzz::statement::<vault_core::Acceptance>(data);
});
