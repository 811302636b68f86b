//! One seller, several nodes, one PostgreSQL: each node a `vault serve` of its own device of the
//! seller's identity (linked with `vault device add`), every customer a `vault serve` of its own.
//! Each consent is in PostgreSQL exactly once; a node that stops costs nothing (its customers
//! reach the next node, whose erasures come before their receipts); a node that comes back takes
//! its customers back. And a node that never held a grant (restored from a backup) erases its
//! rows before it signs the receipt.

use vault_tests::nodes::{
    Hosts, erasure_confirmed, grant, mirror_set, serve_node, three_nodes_share_the_customers,
};
use vault_tests::pairing::free_addr;
use vault_tests::pg::TestDb;
use vault_tests::{TestVault, eventually, serve};

/// A revocation that reaches a node which never held the grant (its vault restored from a
/// backup made before the grant) is erased in PostgreSQL, for good, before its receipt.
#[test]
fn a_node_that_never_held_a_grant_erases_its_rows_before_the_receipt() {
    let db = TestDb::new();
    let (alice, shop) = (TestVault::new(), TestVault::new());
    assert!(mirror_set(&shop, &db.url()).status.success());
    let backup = tempfile::tempdir().unwrap();
    copy_dir(&shop.dir, backup.path());
    let bind = free_addr();
    let (node, ticket) = serve_node(&shop, &bind);
    let (_alice_node, _) = serve(&alice);
    alice.ok(&["contact", "add", "shop", &ticket]);
    alice.ok(&["profile", "set", "email", "alice@example.org"]);
    let id = grant(&alice, "profile.email");
    eventually("the email in PostgreSQL", || {
        db.try_count("SELECT count(*) FROM vault.consent_values") == Some(1)
    });

    // The seller's node goes down and its vault comes back from the backup: it never held the
    // grant. Meanwhile alice revokes.
    drop(node);
    std::fs::remove_dir_all(&shop.dir).unwrap();
    copy_dir(backup.path(), &shop.dir);
    alice.ok(&["revoke", &id]);
    let (_node, _) = serve_node(&shop, &bind);
    eventually("the receipt at alice", || erasure_confirmed(&alice, &id));
    assert_eq!(db.count("SELECT count(*) FROM vault.consent_values"), 0, "the values are gone");
    assert_eq!(db.count("SELECT count(*) FROM vault.consents WHERE status = 'withdrawn'"), 1);
    assert_eq!(db.count("SELECT count(*) FROM vault.erased"), 1, "erased for good");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Three nodes of one seller on loopback (the same on separate hosts: `net::seller_nodes`).
#[test]
fn three_nodes_share_the_customers_and_one_that_stops_costs_nothing() {
    let db = TestDb::new();
    let hosts = Hosts {
        nodes: [(None, free_addr()), (None, free_addr()), (None, free_addr())],
        customers: (0..24).map(|_| (None, "127.0.0.1:0".to_owned())).collect(),
        db_url: db.url(),
    };
    three_nodes_share_the_customers(&db, &hosts);
}
