//! Erasure is erasure: once a received share is erased, no copy of its sealed blobs is left in
//! the database file or its write-ahead log (free pages and old log frames included).

use std::path::Path;

use vault_core::{GrantId, Passphrase, Vault};

use crate::support::pair::{open, share_email, share_email_linked, sync, vault};

/// The last 16 bytes (the Poly1305 tag) of every blob of the share's chunks and view.
fn share_tags(dir: &Path, issuer: &vault_core::IdentityId, id: &GrantId) -> Vec<Vec<u8>> {
    let key = [issuer.as_bytes().as_slice(), id.as_bytes().as_slice()].concat();
    let conn = rusqlite::Connection::open(dir.join(vault_core::DB_FILE)).unwrap();
    let mut tags = Vec::new();
    for table in ["received_chunks", "received_views"] {
        let mut stmt =
            conn.prepare(&format!("SELECT substr(blob, -16, 16) FROM {table} WHERE grant_id = ?1")).unwrap();
        let rows = stmt.query_map([key.as_slice()], |r| r.get::<_, Vec<u8>>(0)).unwrap();
        tags.extend(rows.map(Result::unwrap));
    }
    tags
}

fn files_containing(dir: &Path, tags: &[Vec<u8>]) -> Vec<String> {
    let mut found = Vec::new();
    for suffix in ["", "-wal"] {
        let path = dir.join(format!("{}{suffix}", vault_core::DB_FILE));
        let bytes = std::fs::read(&path).unwrap_or_default();
        for tag in tags {
            if bytes.windows(tag.len()).any(|w| w == &tag[..]) {
                found.push(format!("{} holds a tag", path.display()));
            }
        }
    }
    found
}

#[test]
fn an_erased_share_leaves_no_ciphertext_in_the_file_or_the_wal() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = vault(d1.path());
    let mut shop = vault(d2.path());
    for i in 0..20 {
        customer.records_mut().set_profile("email", &format!("ada{i}@example.org")).unwrap();
    }
    let id = share_email(&mut customer, &mut shop);
    let tags = share_tags(d2.path(), &customer.identity(), &id);
    assert!(!tags.is_empty(), "the share is stored");
    assert!(!files_containing(d2.path(), &tags).is_empty(), "the blobs are on disk before erasure");

    customer.grants_mut().revoke(&id).unwrap();
    let (live, ended) = customer.grants_mut().shares_for(&shop.identity()).unwrap();
    assert_eq!(shop.held_mut().accept(customer.identity(), None, &live, &ended, true).unwrap().len(), 1);
    assert!(share_tags(d2.path(), &customer.identity(), &id).is_empty(), "the rows are gone");
    assert_eq!(files_containing(d2.path(), &tags), Vec::<String>::new());
    // The vault is still whole.
    drop(shop);
    assert!(Vault::at(d2.path()).verify(&Passphrase::new("pw")).unwrap().is_ok());
}

/// The projection's blobs (issuer side): the tags of every chunk of grant `id`.
fn projection_tags(dir: &Path, id: &GrantId) -> Vec<Vec<u8>> {
    let conn = rusqlite::Connection::open(dir.join(vault_core::DB_FILE)).unwrap();
    let mut stmt =
        conn.prepare("SELECT substr(blob, -16, 16) FROM projection_chunks WHERE grant_id = ?1").unwrap();
    stmt.query_map([id.as_bytes().as_slice()], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A new epoch replaces a copy that held a value since retracted: on both sides, the old
/// copy's blobs leave the file and its log as an erasure's do (review L3).
#[test]
fn a_new_epoch_leaves_no_old_copy_in_the_file_or_the_wal() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = vault(d1.path());
    let mut shop = vault(d2.path());
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    let (id, mut link) = share_email_linked(&mut customer, &mut shop);
    sync(&mut customer, &mut shop, &mut link);
    let old_copy = share_tags(d2.path(), &customer.identity(), &id);
    // The grantee goes away; a value is set and overwritten meanwhile: a new epoch.
    customer.records_mut().set_profile("email", "ada@never-seen.example").unwrap();
    customer.projections_mut().update(None).unwrap();
    let old_projection = projection_tags(d1.path(), &id);
    customer.records_mut().set_profile("email", "ada@third.example").unwrap();
    customer.projections_mut().update(None).unwrap();
    assert_eq!(files_containing(d1.path(), &old_projection), Vec::<String>::new(), "issuer side");
    let mut link = open(&mut customer, &mut shop, &id);
    sync(&mut customer, &mut shop, &mut link);
    assert_eq!(
        shop.held_mut().list().unwrap()[0].values,
        Some(serde_json::json!({"profile": {"email": "ada@third.example"}}))
    );
    assert_eq!(files_containing(d2.path(), &old_copy), Vec::<String>::new(), "grantee side");
}

/// `vault device forget-key`: once the identity key leaves this device, no copy of its sealed
/// blob is left in the database file or its write-ahead log.
#[test]
fn a_forgotten_identity_key_leaves_no_ciphertext_in_the_file_or_the_wal() {
    let d = tempfile::tempdir().unwrap();
    let mut v = vault(d.path());
    let tag: Vec<u8> = {
        let conn = rusqlite::Connection::open(d.path().join(vault_core::DB_FILE)).unwrap();
        conn.query_row("SELECT substr(blob, -16, 16) FROM secrets WHERE name = 'identity'", [], |r| r.get(0))
            .unwrap()
    };
    assert!(!files_containing(d.path(), std::slice::from_ref(&tag)).is_empty(), "the key is on disk");
    let code = v.keys_mut().recovery_code().unwrap();
    v.keys_mut().forget_identity_key(&code).unwrap();
    assert!(v.identity_key().is_none());
    assert_eq!(files_containing(d.path(), &[tag]), Vec::<String>::new());
    drop(v);
    assert!(Vault::at(d.path()).verify(&Passphrase::new("pw")).unwrap().is_ok());
}
