//! The fast, insecure key derivation is a test-build feature, not something a user can pick.

use vault_tests::TestVault;

#[test]
fn init_help_does_not_offer_a_weak_key_derivation() {
    let v = TestVault::uninitialised();
    for args in [&["init", "--help"][..], &["help", "init"], &["--help"]] {
        let help = v.ok(args);
        assert!(help.contains("init") || help.contains("vault"), "{help}");
        assert!(!help.to_lowercase().contains("insecure") && !help.contains("fast-kdf"), "{args:?}: {help}");
    }
    // A release build is made without the `insecure-test-kdf` feature and has no such option at
    // all (`vault init --insecure-fast-kdf` is an unknown argument there); this test binary's
    // `vault` is built with it, so that the other tests can create vaults quickly.
}
