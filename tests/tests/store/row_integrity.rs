//! Integrity covers the set of rows, not only each blob: a row deleted, or an older copy of a
//! row put back, is detected when the vault opens and by `vault verify`, and nothing is modified.
//! The attacker here has write access to the file but not the passphrase.

use rusqlite::Connection;
use vault_tests::{TestVault, snapshot_files, ticket};

type Rows = Vec<(Vec<u8>, Option<i64>, Vec<u8>)>;

/// Every row of `table` as (key, sequence, blob).
fn rows(conn: &Connection, table: &str, key: &str, seq: Option<&str>) -> Rows {
    let seq = seq.unwrap_or("NULL");
    let mut stmt = conn.prepare(&format!("SELECT CAST({key} AS BLOB), {seq}, blob FROM {table}")).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

/// Every command refuses to open the vault naming `table`, `verify` exits 1 naming it, and
/// neither modifies anything.
fn assert_detected(v: &TestVault, table: &str) {
    let before = snapshot_files(&v.dir);
    for args in [&["grants"][..], &["profile", "get"], &["audit"]] {
        let stderr = v.fails(args, 2);
        assert!(
            stderr.contains("the vault is damaged") && stderr.contains(&format!("rows of \"{table}\"")),
            "{args:?}: {stderr}"
        );
    }
    let out = v.run(&["--json", "verify"]);
    assert_eq!(out.status.code(), Some(1), "verify exits 1: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    vault_tests::check_cli_schema("verify", &report);
    let problems = report["problems"].to_string();
    assert!(problems.contains(table), "{problems}");
    assert_eq!(snapshot_files(&v.dir), before, "nothing modified");
}

fn with_bob(v: &TestVault) -> TestVault {
    let bob = TestVault::new();
    v.ok(&["contact", "add", "bob", &ticket(&bob)]);
    bob
}

#[test]
fn a_revoked_grant_put_back_from_an_old_copy_is_detected() {
    let v = TestVault::new();
    let _bob = with_bob(&v);
    v.ok(&["profile", "set", "email", "ada@example.org"]);
    let grant = vault_tests::json(&v, &["grant", "bob", "--fields", "profile.email", "--purpose", "news"]);
    let id = grant["id"].as_str().unwrap();
    let conn = Connection::open(v.db()).unwrap();
    let grants = rows(&conn, "grants", "id", None);
    let chunks = rows(&conn, "projection_chunks", "grant_id", Some("seq"));
    assert!(!grants.is_empty() && !chunks.is_empty());
    drop(conn);
    v.ok(&["revoke", id]);
    // Put the live grant back, with its projection.
    let conn = Connection::open(v.db()).unwrap();
    for (key, _, blob) in &grants {
        conn.execute(
            "INSERT OR REPLACE INTO grants (id, blob) VALUES (?1, ?2)",
            rusqlite::params![key, blob],
        )
        .unwrap();
    }
    for (key, seq, blob) in &chunks {
        conn.execute(
            "INSERT OR REPLACE INTO projection_chunks (grant_id, seq, blob) VALUES (?1, ?2, ?3)",
            rusqlite::params![key, seq, blob],
        )
        .unwrap();
    }
    drop(conn);
    assert_detected(&v, "grants");
}

#[test]
fn a_deleted_contact_row_does_not_unblock_a_peer() {
    let v = TestVault::new();
    let _bob = with_bob(&v);
    v.ok(&["contact", "block", "bob"]);
    let conn = Connection::open(v.db()).unwrap();
    assert_eq!(conn.execute("DELETE FROM contacts", []).unwrap(), 1);
    drop(conn);
    assert_detected(&v, "contacts");
}

#[test]
fn deleted_audit_rows_are_detected() {
    let v = TestVault::new();
    let _bob = with_bob(&v);
    let grant = vault_tests::json(&v, &["grant", "bob", "--fields", "profile.email", "--purpose", "news"]);
    v.ok(&["revoke", grant["id"].as_str().unwrap()]);
    let conn = Connection::open(v.db()).unwrap();
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0)).unwrap();
    assert!(n >= 2, "grant and revocation are logged");
    conn.execute("DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)", []).unwrap();
    drop(conn);
    assert_detected(&v, "audit");
}

#[test]
fn the_newest_change_deleted_is_detected() {
    let v = TestVault::new();
    v.ok(&["pref", "set", "diet", "vegan"]);
    v.ok(&["pref", "set", "diet", "omnivore"]);
    let conn = Connection::open(v.db()).unwrap();
    assert_eq!(
        conn.execute("DELETE FROM doc_changes WHERE seq = (SELECT MAX(seq) FROM doc_changes)", []).unwrap(),
        1
    );
    drop(conn);
    assert_detected(&v, "doc_changes");
}

#[test]
fn an_untouched_vault_verifies_and_opens() {
    let v = TestVault::new();
    let _bob = with_bob(&v);
    v.ok(&["contact", "block", "bob"]);
    v.ok(&["pref", "set", "diet", "vegan"]);
    v.ok(&["verify"]);
    v.ok(&["contact", "list"]);
}
