//! A device certificate as a peer presents it in `Hello` (128 bytes: identity, device,
//! signature): decode, then verify against the device it names; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::DeviceCertificate;

fuzz_target!(|data: &[u8]| {
    vault_fuzz::panic_policy();
    let Ok(cert) = DeviceCertificate::from_bytes(data) else {
        return;
    };
    assert_eq!(&cert.to_bytes()[..], data, "an accepted certificate re-encodes differently");
    let _ = format!("{cert:?}");
    if cert.verify(cert.device()).is_ok() {
        // A valid certificate names exactly one device.
        let other = vault_fuzz::shop().certify(vault_core::DeviceKey::from_secret_bytes(&[9; 32]).public());
        if other.device() != cert.device() {
            assert!(
                cert.verify(other.device()).is_err(),
                "a certificate verified for a device it does not name"
            );
        }
    }
});
