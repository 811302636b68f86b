//! Encryption at rest: the database file and its write-ahead log never contain a plaintext user
//! value, while the vault is open, after it is closed, and after compaction.

use std::path::Path;

use vault_core::{KdfParams, Passphrase, Price, PurchaseRecord, Vault};

const MARKERS: [&str; 6] = [
    "zq7-marker-email@example.org",
    "Zq7MarkerStreet",
    "Zq7MarkerItem",
    "Zq7MarkerSeller",
    "Zq7 marker review text",
    "zq7markerdiet",
];

fn assert_no_plaintext(dir: &Path, when: &str) {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        checked += bytes.len();
        for marker in MARKERS {
            let found = bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
            assert!(!found, "{when}: {} contains the plaintext {marker:?}", path.display());
        }
        // The passphrase never lands on disk either.
        assert!(!bytes.windows(12).any(|w| w == b"pass-zq7-mkr"), "{when}: passphrase in {}", path.display());
    }
    assert!(checked > 0);
}

#[test]
fn no_plaintext_user_value_in_the_database_or_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let pass = Passphrase::new("pass-zq7-mkr");
    let mut vault = Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&pass).unwrap();
    vault.records_mut().set_profile("email", MARKERS[0]).unwrap();
    vault.records_mut().set_profile("address.street", MARKERS[1]).unwrap();
    vault
        .records_mut()
        .add_purchase(
            &PurchaseRecord::new(
                MARKERS[2].into(),
                MARKERS[3].into(),
                Price::parse("9.99", "EUR").unwrap(),
                "2026-11-02".into(),
            )
            .rating(Some(3))
            .review(Some(MARKERS[4].into())),
        )
        .unwrap();
    vault.records_mut().set_preference("diet", MARKERS[5]).unwrap();
    // While open: the changes sit in the WAL.
    let wal = dir.path().join(format!("{}-wal", vault_core::DB_FILE));
    assert!(std::fs::metadata(&wal).map(|m| m.len() > 0).unwrap_or(false), "the WAL holds the writes");
    assert_no_plaintext(dir.path(), "while open");
    vault.compact().unwrap();
    assert_no_plaintext(dir.path(), "after compaction");
    drop(vault);
    assert_no_plaintext(dir.path(), "after close");
    // And the values really are in there, and would be visible without the encryption: the
    // document's own bytes hold every marker verbatim.
    let mut vault = Vault::at(dir.path()).unlock(&pass).unwrap();
    assert_eq!(vault.records().profile()["email"], MARKERS[0]);
    let plain = vault.records_mut().export_automerge();
    for marker in MARKERS {
        assert!(
            plain.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{marker} in the document bytes"
        );
    }
}
