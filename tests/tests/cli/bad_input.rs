//! Every bad input gets a clear error naming the problem, exit code 2, no panic, and loses
//! nothing: the vault's files are byte-for-byte unchanged afterwards.

use std::process::Stdio;

use vault_tests::{TestVault, snapshot_files};

fn purchase_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args =
        vec!["purchase", "add", "--item", "Tea", "--seller", "Acme", "--price", "4.50", "--currency", "EUR"];
    args.extend_from_slice(extra);
    args
}

#[test]
fn wrong_passphrase_is_refused_and_changes_nothing() {
    let v = TestVault::new();
    v.ok(&["profile", "set", "name", "Ada"]);
    let before = snapshot_files(&v.dir);
    let out =
        v.cmd(&["profile", "set", "name", "Mallory"]).env("VAULT_PASSPHRASE", "wrong").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: wrong passphrase"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!stderr.contains("wrong\n") && !stderr.contains(&v.passphrase), "no passphrase in messages");
    assert_eq!(snapshot_files(&v.dir), before);
    assert_eq!(v.ok(&["profile", "get", "name"]).trim(), "Ada");
}

#[test]
fn no_passphrase_and_no_terminal_is_a_clear_error() {
    let v = TestVault::new();
    let out =
        v.cmd(&["profile", "get"]).env_remove("VAULT_PASSPHRASE").stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no passphrase"), "{stderr}");
    assert!(stderr.contains("VAULT_PASSPHRASE"), "{stderr}");
}

#[test]
fn missing_or_foreign_vault_directory() {
    let v = TestVault::uninitialised();
    let stderr = v.fails(&["profile", "get"], 2);
    assert!(stderr.contains("no vault at"), "{stderr}");
    assert!(stderr.contains("hint: run 'vault init'"), "{stderr}");

    // A directory that exists but holds no vault.
    std::fs::create_dir_all(&v.dir).unwrap();
    assert!(v.fails(&["profile", "get"], 2).contains("no vault at"));

    // A vault.db that is not SQLite, and one that is SQLite but not a vault.
    std::fs::write(
        v.db(),
        b"just some text, not a database at all.............................................................",
    )
    .unwrap();
    let stderr = v.fails(&["profile", "get"], 2);
    assert!(stderr.contains("is not a vault file"), "{stderr}");
    std::fs::remove_file(v.db()).unwrap();
    let conn = rusqlite::Connection::open(v.db()).unwrap();
    conn.execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('hi');").unwrap();
    drop(conn);
    let stderr = v.fails(&["profile", "get"], 2);
    assert!(stderr.contains("is not a vault file"), "{stderr}");
}

#[test]
fn schema_violations_name_the_field_and_write_nothing() {
    let v = TestVault::new();
    v.ok(&purchase_args(&[]));
    let before = snapshot_files(&v.dir);
    let cases: &[(&[&str], &str)] = &[
        (&purchase_args(&["--rating", "9"]), "\"purchases.*.rating\": must be at most 5"),
        (&purchase_args(&["--rating", "0"]), "\"purchases.*.rating\": must be at least 1"),
        (
            &["purchase", "add", "--item", "Tea", "--seller", "Acme", "--price", "abc", "--currency", "EUR"],
            "invalid price",
        ),
        (
            &["purchase", "add", "--item", "Tea", "--seller", "Acme", "--price", "1", "--currency", "XYZ"],
            "unknown currency \"XYZ\"",
        ),
        (
            &["purchase", "add", "--item", "Tea", "--seller", "Acme", "--price", "1.5", "--currency", "JPY"],
            "JPY has 0 decimal places",
        ),
        (&purchase_args(&["--date", "yesterday"]), "\"purchases.*.date\": must be a date"),
        (&purchase_args(&["--tag", "Not A Tag"]), "purchases.*.tags.0"),
        (
            &["purchase", "add", "--item", "", "--seller", "Acme", "--price", "1", "--currency", "EUR"],
            "\"purchases.*.item\": must not be empty",
        ),
        (&["profile", "set", "nickname", "Ada"], "unknown field \"profile.nickname\""),
        (&["profile", "set", "address.planet", "Mars"], "unknown field \"profile.address.planet\""),
        (&["profile", "set", "email", "not-an-address"], "\"profile.email\": must be an email address"),
        (&["profile", "set", "address.country", "France"], "\"profile.address.country\""),
        (&["profile", "set", "address..city", "Lyon"], "invalid field name"),
        (&["pref", "set", "Bad Key", "x"], "preference keys"),
    ];
    for (args, expected) in cases {
        let stderr = v.fails(args, 2);
        assert!(stderr.contains(expected), "vault {args:?}: expected {expected:?} in {stderr}");
    }
    assert_eq!(snapshot_files(&v.dir), before, "refused writes left the files untouched");
    let list: serde_json::Value = serde_json::from_str(&v.ok(&["--json", "purchase", "list"])).unwrap();
    assert_eq!(list["purchases"].as_array().unwrap().len(), 1);
}

#[test]
fn init_over_an_existing_vault_is_refused() {
    let v = TestVault::new();
    v.ok(&["profile", "set", "name", "Ada"]);
    let before = snapshot_files(&v.dir);
    let out = v.cmd(&["init"]).env("VAULT_PASSPHRASE", "another").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a vault already exists"));
    assert_eq!(snapshot_files(&v.dir), before);
    assert_eq!(v.ok(&["profile", "get", "name"]).trim(), "Ada");
}

#[test]
fn empty_passphrase_is_refused_at_init() {
    let v = TestVault::uninitialised();
    let out = v.cmd(&["init", "--insecure-fast-kdf"]).env("VAULT_PASSPHRASE", "").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must not be empty"));
    assert!(!v.db().exists());
}

#[test]
fn malformed_and_foreign_imports_are_refused() {
    let v = TestVault::new();
    v.ok(&["profile", "set", "name", "Ada"]);
    let before = snapshot_files(&v.dir);
    let dir = v.tmp.path();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let cases = [
        (write("random.bin", &[7u8; 300]), "not a vault export"),
        (write("empty", b""), "not a vault export"),
        (write("broken.json", b"{\"format\": \"vault-export/v1\", "), "malformed"),
        (write("other.json", br#"{"hello": "world"}"#), "not a vault export"),
        (
            write(
                "bad-values.json",
                br#"{"format":"vault-export/v1","profile":{"email":"nope"},"purchases":{},"preferences":{}}"#,
            ),
            "\"profile.email\"",
        ),
        (
            write(
                "extra.json",
                br#"{"format":"vault-export/v1","profile":{},"purchases":{},"preferences":{},"secrets":{}}"#,
            ),
            "unknown field \"secrets\"",
        ),
        (
            write("fake.automerge", &[0x85, 0x6f, 0x4a, 0x83, 1, 2, 3, 4, 5, 6]),
            "Automerge document cannot be imported",
        ),
    ];
    for (path, expected) in &cases {
        let stderr = v.fails(&["import", path], 2);
        assert!(stderr.contains(expected), "import {path}: expected {expected:?} in {stderr}");
    }
    v.fails(&["import", dir.join("does-not-exist").to_str().unwrap()], 2);
    assert_eq!(snapshot_files(&v.dir), before);
}

/// Every sealed blob, with one flipped byte: the vault refuses to open, names what is damaged,
/// `verify` names it too, and the file is not modified.
#[test]
fn a_flipped_byte_in_any_ciphertext_is_detected_and_named() {
    let v = TestVault::new();
    v.ok(&["profile", "set", "email", "ada@example.org"]);
    v.ok(&purchase_args(&["--rating", "4"]));
    v.ok(&["pref", "set", "diet", "vegan"]);

    let conn = rusqlite::Connection::open(v.db()).unwrap();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for (table, key) in [("secrets", "name"), ("doc_snapshot", "id"), ("doc_changes", "seq")] {
        let mut stmt = conn.prepare(&format!("SELECT CAST({key} AS TEXT) FROM {table}")).unwrap();
        for row in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            rows.push((table.to_owned(), key.to_owned(), row.unwrap()));
        }
    }
    drop(conn);
    assert!(rows.len() >= 6, "{rows:?}");

    for (table, key, row) in rows {
        let copy = TestVault::uninitialised();
        std::fs::create_dir_all(&copy.dir).unwrap();
        std::fs::copy(v.db(), copy.db()).unwrap();
        let conn = rusqlite::Connection::open(copy.db()).unwrap();
        let mut blob: Vec<u8> = conn
            .query_row(&format!("SELECT blob FROM {table} WHERE CAST({key} AS TEXT) = ?1"), [&row], |r| {
                r.get(0)
            })
            .unwrap();
        let at = blob.len() / 2;
        blob[at] ^= 0x01;
        conn.execute(
            &format!("UPDATE {table} SET blob = ?1 WHERE CAST({key} AS TEXT) = ?2"),
            rusqlite::params![blob, row],
        )
        .unwrap();
        drop(conn);
        let before = snapshot_files(&copy.dir);

        let stderr = copy.fails(&["profile", "get"], 2);
        assert!(
            stderr.contains("the vault is damaged") && stderr.contains(&table),
            "{table}/{row}: {stderr}"
        );
        let report: serde_json::Value = {
            let out = copy.run(&["--json", "verify"]);
            assert_eq!(out.status.code(), Some(1), "verify exits 1 on damage");
            serde_json::from_slice(&out.stdout).unwrap()
        };
        vault_tests::check_cli_schema("verify", &report);
        let problems = report["problems"].to_string();
        assert!(problems.contains(&table), "{table}/{row}: {problems}");
        assert_eq!(snapshot_files(&copy.dir), before, "{table}/{row}: nothing modified");
    }
}

#[test]
fn a_blob_moved_to_another_row_does_not_decrypt() {
    let v = TestVault::new();
    v.ok(&["pref", "set", "diet", "vegan"]);
    v.ok(&["pref", "set", "size", "M"]);
    let conn = rusqlite::Connection::open(v.db()).unwrap();
    conn.execute_batch(
        "UPDATE doc_changes SET blob = (SELECT blob FROM doc_changes ORDER BY seq LIMIT 1)
         WHERE seq = (SELECT MAX(seq) FROM doc_changes)",
    )
    .unwrap();
    drop(conn);
    assert!(v.fails(&["pref", "get"], 2).contains("doc_changes row"));
}

#[test]
fn a_truncated_database_is_reported_not_panicked() {
    let v = TestVault::new();
    for i in 0..30 {
        v.ok(&["pref", "set", "counter", &i.to_string()]);
    }
    let len = std::fs::metadata(v.db()).unwrap().len();
    for cut in [len / 2, len - 100, 50] {
        let copy = TestVault::uninitialised();
        std::fs::create_dir_all(&copy.dir).unwrap();
        let bytes = std::fs::read(v.db()).unwrap();
        std::fs::write(copy.db(), &bytes[..cut as usize]).unwrap();
        let stderr = copy.fails(&["pref", "get"], 2);
        assert!(stderr.contains("damaged") || stderr.contains("not a vault file"), "cut at {cut}: {stderr}");
        let out = copy.run(&["verify"]);
        assert!(matches!(out.status.code(), Some(1 | 2)), "cut at {cut}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}
