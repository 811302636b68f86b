//! `vault status` through the binary: one screen for where things stand, and its bad inputs.

use vault_tests::{TestVault, serve};

#[test]
fn status_tells_the_node_grants_erasures_and_shares() {
    let (ada, bob) = (TestVault::new(), TestVault::new());
    let fresh = ada.json(&["status"], "status");
    assert_eq!(fresh["node"]["running"], false);
    assert_eq!(fresh["live_grants"].as_array().unwrap().len(), 0);
    assert_eq!((fresh["requests_waiting"].as_u64(), fresh["notices"].as_u64()), (Some(0), Some(0)));
    let text = ada.ok(&["status"]);
    assert!(text.contains("node:     not running"), "{text}");

    ada.ok(&["profile", "set", "email", "ada@example.org"]);
    ada.ok(&["contact", "add", "bob", &vault_tests::ticket(&bob)]);
    let grant = ada.json(&["grant", "bob", "--fields", "profile.email", "--purpose", "newsletter"], "grant");
    let (node, ticket) = serve(&ada);
    let live = ada.json(&["status"], "status");
    assert_eq!(live["node"]["running"], true, "vault serve holds the node lock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(ada.dir.join("node.lock")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(live["identity"], vault_tests::json(&ada, &["id"])["identity"]);
    assert_eq!(live["live_grants"][0]["peer_name"], "bob");
    assert_eq!(live["live_grants"][0]["grants"][0]["fields"][0], "profile.email");
    assert_eq!(live["live_grants"][0]["grants"][0]["purpose"], "newsletter");
    let text = ada.ok(&["status"]);
    assert!(
        text.contains("grants:   1 live, to 1 peer")
            && text.contains("bob: profile.email (newsletter, no expiry)"),
        "{text}"
    );

    bob.ok(&["contact", "add", "ada", &ticket]);
    bob.ok(&["sync", "ada", "--no-relay"]);
    let shares = bob.json(&["status"], "status")["shares"].clone();
    assert_eq!(shares[0]["from_name"], "ada");
    assert_eq!(shares[0]["status"], "live");
    assert!(shares[0]["updated_at"].is_string(), "{shares}");
    let text = bob.ok(&["status"]);
    assert!(
        text.contains("shares:   1 received") && text.contains("from ada: profile.email (updated "),
        "{text}"
    );

    // Bob is offline when Ada revokes: the erasure is pending until his receipt arrives.
    drop(node);
    ada.ok(&["revoke", grant["id"].as_str().unwrap()]);
    let ended = ada.json(&["status"], "status");
    assert_eq!(ended["node"]["running"], false, "the lock went with the process");
    assert_eq!(ended["live_grants"].as_array().unwrap().len(), 0);
    assert_eq!(ended["erasures_pending"][0]["grant"], grant["id"]);
    assert_eq!(ended["erasures_pending"][0]["status"], "revoked");
    assert!(ada.ok(&["status"]).contains("erasures: 1 pending"));
}

#[test]
fn status_on_no_vault_or_with_extra_words_is_an_error() {
    let none = TestVault::uninitialised();
    let err = none.fails(&["status"], 2);
    assert!(err.contains("no vault"), "{err}");
    let ada = TestVault::new();
    let err = ada.fails(&["status", "now"], 2);
    assert!(err.contains("unexpected argument"), "{err}");
    let err = ada.fails(&["status", "--bogus"], 2);
    assert!(err.contains("--bogus"), "{err}");
}

#[test]
fn a_planted_lock_link_is_not_followed() {
    let v = TestVault::new();
    let target = v.dir.parent().unwrap().join("elsewhere");
    std::os::unix::fs::symlink(&target, v.dir.join("node.lock")).unwrap();
    let (_node, _) = serve(&v);
    assert!(!target.exists(), "serve followed a link planted as its lock file");
    assert_eq!(v.json(&["status"], "status")["node"]["running"], false);
}
