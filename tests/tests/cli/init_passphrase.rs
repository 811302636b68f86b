//! The passphrase at `vault init`, through the binary: a weak one is refused with an estimate
//! (or accepted when the user insists), and a strong one can be generated.

use serde_json::Value;
use vault_tests::{TestVault, check_cli_schema};

fn init(v: &TestVault, passphrase: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--json", "init", "--insecure-fast-kdf"];
    args.extend_from_slice(extra);
    v.cmd(&args).env("VAULT_PASSPHRASE", passphrase).output().expect("vault runs")
}

#[test]
fn a_weak_passphrase_is_refused_unless_insisted_on() {
    let v = TestVault::uninitialised();
    let out = init(&v, "password123", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the passphrase is weak: about 10^") && err.contains("--generate-passphrase"),
        "{err}"
    );
    assert!(!err.contains("password123"), "the passphrase is never echoed: {err}");
    assert!(!v.db().exists(), "nothing was created");

    let out = init(&v, "password123", &["--weak-passphrase-ok"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    check_cli_schema("init", &made);
    assert!(made["passphrase_strength"]["score"].as_u64().unwrap() < 4);
    // Owner only: a copy of the file is a copy to guess against offline.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&v.dir).unwrap().permissions().mode() & 0o777, 0o700);

    // The test vaults' passphrase is strong enough as it is.
    let strong = TestVault::uninitialised();
    let out = init(&strong, &strong.passphrase, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["passphrase_strength"]["score"], 4);
    assert!(made.get("generated_passphrase").is_none());
}

#[test]
fn a_generated_passphrase_is_strong_shown_once_and_opens_the_vault() {
    let v = TestVault::uninitialised();
    let out = init(&v, "ignored when generating", &["--generate-passphrase"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    check_cli_schema("init", &made);
    let generated = made["generated_passphrase"].as_str().unwrap().to_owned();
    assert_eq!(made["passphrase_strength"]["score"], 4);
    let id = v.cmd(&["id"]).env("VAULT_PASSPHRASE", &generated).output().unwrap();
    assert!(id.status.success(), "{}", String::from_utf8_lossy(&id.stderr));
    let wrong = v.cmd(&["id"]).env("VAULT_PASSPHRASE", "ignored when generating").output().unwrap();
    assert_eq!(wrong.status.code(), Some(2));

    let other = TestVault::uninitialised();
    let out = init(&other, "x", &["--generate-passphrase"]);
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(again["generated_passphrase"], made["generated_passphrase"]);

    let out = init(&TestVault::uninitialised(), "x", &["--generate-passphrase", "--weak-passphrase-ok"]);
    assert_eq!(out.status.code(), Some(2), "the two options contradict each other");
    let out = init(&TestVault::uninitialised(), "x", &["--join", "CODE", "--generate-passphrase"]);
    assert_eq!(out.status.code(), Some(2), "a joining device is not given a generated passphrase silently");
}

#[test]
fn a_joining_device_gets_the_same_check() {
    let laptop = TestVault::new();
    let (mut inviter, _stderr, code) = vault_tests::pairing::invite(&laptop, "phone");
    let phone = TestVault::uninitialised();
    let out = phone
        .cmd(&["init", "--join", &code, "--no-relay", "--insecure-fast-kdf"])
        .env("VAULT_PASSPHRASE", "password123")
        .output()
        .unwrap();
    let _ = inviter.kill();
    let _ = inviter.wait();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the passphrase is weak"), "{err}");
    assert!(!phone.db().exists(), "nothing was created");
}
