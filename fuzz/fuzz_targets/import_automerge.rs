//! `vault import FILE` with a Automerge document from anywhere: decoded, validated and
//! applied to a fresh in-memory vault document per input (`vault_core::fuzzing::import_document`,
//! the steps of `Vault::import` without the storage). An error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vault_fuzz::panic_policy();
    let _ = vault_core::fuzzing::import_document(data);
});
