//! VAULT_PASSPHRASE_COMMAND through the binary: a password manager's command prints the
//! passphrase; its failures are named, and what it printed never appears in a message.

use std::process::Output;

use vault_tests::TestVault;

/// Runs `vault ARGS` with the passphrase coming from `command` only.
fn with_command(v: &TestVault, command: &str, args: &[&str]) -> Output {
    v.cmd(args)
        .env_remove("VAULT_PASSPHRASE")
        .env("VAULT_PASSPHRASE_COMMAND", command)
        .output()
        .expect("vault runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_command_unlocks_and_its_failures_are_named_without_its_output() {
    let v = TestVault::new();
    let good = format!("printf '%s\\n' '{}'", v.passphrase);
    let out = with_command(&v, &good, &["id"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Windows line endings, and only the first line counts.
    let crlf = format!("printf '%s\\r\\nsecond line\\n' '{}'", v.passphrase);
    assert!(with_command(&v, &crlf, &["id"]).status.success());

    let wrong = with_command(&v, "echo hunter2-not-it", &["id"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(stderr(&wrong).contains("wrong passphrase"), "{}", stderr(&wrong));
    assert!(!stderr(&wrong).contains("hunter2"), "what the command printed stays out of messages");

    let failed = with_command(&v, "echo leaked-secret; exit 3", &["id"]);
    assert_eq!(failed.status.code(), Some(2));
    let err = stderr(&failed);
    assert!(err.contains("VAULT_PASSPHRASE_COMMAND failed") && err.contains('3'), "{err}");
    assert!(!err.contains("leaked-secret"), "{err}");

    let flood = with_command(&v, "head -c 100000 /dev/zero | tr '\\0' a", &["id"]);
    assert!(stderr(&flood).contains("more than 64 KiB"), "{}", stderr(&flood));

    let silent = with_command(&v, "true", &["id"]);
    assert!(stderr(&silent).contains("printed no passphrase"), "{}", stderr(&silent));
    let empty = with_command(&v, "", &["id"]);
    assert!(stderr(&empty).contains("VAULT_PASSPHRASE_COMMAND is empty"), "{}", stderr(&empty));

    // VAULT_PASSPHRASE, when set, wins: the command is not run.
    let marker = v.dir.parent().unwrap().join("ran");
    let out = v
        .cmd(&["id"])
        .env("VAULT_PASSPHRASE_COMMAND", format!("touch '{}'; exit 1", marker.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!marker.exists(), "the command ran although VAULT_PASSPHRASE was set");
}

#[test]
fn init_takes_its_passphrase_from_the_command_too() {
    let v = TestVault::uninitialised();
    let good = format!("printf '%s\\n' '{}'", v.passphrase);
    let out = with_command(&v, &good, &["init", "--insecure-fast-kdf"]);
    assert!(out.status.success(), "{}", stderr(&out));
    v.ok(&["id"]);
}
