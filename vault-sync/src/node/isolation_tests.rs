//! A panic in peer-driven code fails that peer's stream only: the vault is not left inside a
//! transaction and the node keeps serving everyone else.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use vault_core::{IdentityId, KdfParams, NewGrant, Passphrase, Vault};

use crate::endpoint::NodeConfig;
use crate::node::Node;

/// The peer whose sync messages make the node panic (test hook).
static PANIC_FOR: Mutex<Vec<IdentityId>> = Mutex::new(Vec::new());

/// Panics when `peer` is marked (called while the vault is locked, as a real panic would be).
pub(super) fn maybe_panic(peer: &IdentityId) {
    if PANIC_FOR.lock().unwrap_or_else(|p| p.into_inner()).contains(peer) {
        panic!("test hook: peer-driven code panicked");
    }
}

fn create(dir: &std::path::Path) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
}

fn local() -> NodeConfig {
    NodeConfig { bind: Some("127.0.0.1:0".parse().unwrap()), relay: false, ..NodeConfig::default() }
}

fn email_grant(audience: IdentityId) -> NewGrant {
    NewGrant {
        audience,
        fields: vec!["profile.email".parse().unwrap()],
        filter: None,
        purpose: "delivery".into(),
        expires_at: None,
        prices: true,
    }
}

fn email_at(node: &Node) -> Option<String> {
    node.inspect(|v| {
        v.held_mut().list().ok()?.first()?.values.as_ref()?["profile"]["email"].as_str().map(str::to_owned)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_peer_loses_its_stream_and_the_node_serves_the_others() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut issuer = create(dirs[0].path());
    let (good, bad) = (create(dirs[1].path()), create(dirs[2].path()));
    issuer.records_mut().set_profile("email", "ada@example.org").unwrap();
    issuer.grants_mut().issue(email_grant(good.identity())).unwrap();
    issuer.grants_mut().issue(email_grant(bad.identity())).unwrap();
    PANIC_FOR.lock().unwrap().push(bad.identity());
    let issuer = Node::spawn(issuer, local()).await.unwrap();
    let ticket = issuer.ticket();
    let (good, _) = crate::client::sync_once(good, &ticket, &local()).await;
    let (bad, _) = crate::client::sync_once(bad, &ticket, &local()).await;
    let (good, bad) = (Node::spawn(good, local()).await.unwrap(), Node::spawn(bad, local()).await.unwrap());
    assert_eq!(email_at(&good).as_deref(), Some("ada@example.org"));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The bad peer's streams keep panicking on the issuer's node; edits still go through (no
    // transaction left open) and reach the good peer.
    for n in 0..3 {
        let email = format!("ada{n}@example.org");
        let e = email.clone();
        issuer.with_vault(move |v| v.records_mut().set_profile("email", &e)).unwrap();
        let start = Instant::now();
        while email_at(&good).as_deref() != Some(email.as_str()) {
            // A bound against a hang only, far above any wait on an idle machine: the point is that
            // the edit arrives, not how fast.
            assert!(start.elapsed() < Duration::from_secs(180), "the good peer stopped being served");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Another process can write to the issuer's vault: the panics left no write lock behind.
    let mut other = Vault::at(dirs[0].path()).unlock(&Passphrase::new("pw")).unwrap();
    other.records_mut().set_preference("diet", "vegan").unwrap();
    drop(bad);
}
