//! Every change made by separate `vault` processes (edits, grants, revocations) while
//! `vault serve` runs reaches a connected grantee. Latencies are recorded, not asserted tightly
//! (machines are noisy); delivery is asserted with a generous timeout.

use std::time::{Duration, Instant};

use serde_json::Value;
use vault_core::{GrantId, KdfParams, Passphrase, ShareStatus, Vault};
use vault_sync::Node;
use vault_tests::peer::local;
use vault_tests::{TestVault, json, serve};

/// Waits until `check` holds on the grantee (at most [`vault_tests::HANG`]); returns how long it took.
async fn delivered(what: &str, bob: &Node, check: impl Fn(&mut Vault) -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < vault_tests::HANG {
        if bob.inspect(&check) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never reached the grantee: {what}");
}

fn value_of(v: &mut Vault, grant: &str) -> Option<Value> {
    let id: GrantId = grant.parse().ok()?;
    v.held_mut().list().ok()?.into_iter().find(|s| s.grant.statement().id == id)?.values
}

fn status_of(v: &mut Vault, grant: &str) -> Option<ShareStatus> {
    let id: GrantId = grant.parse().ok()?;
    v.held_mut().list().ok()?.into_iter().find(|s| s.grant.statement().id == id).map(|s| s.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_from_many_processes_reach_a_connected_grantee() {
    let alice = TestVault::new();
    alice.ok(&["profile", "set", "email", "ada@example.org"]);
    let bob_dir = tempfile::tempdir().unwrap();
    let bob =
        Vault::at(bob_dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
    let bob = Node::spawn(bob, local()).await.unwrap();
    let (_alice_node, _) = serve(&alice);
    alice.ok(&["contact", "add", "bob", &bob.ticket().to_string()]);
    let first = json(&alice, &["grant", "bob", "--fields", "profile.email", "--purpose", "news"]);
    let first = first["id"].as_str().unwrap().to_owned();
    delivered("the first grant", &bob, |v| value_of(v, &first).is_some()).await;

    let mut latencies = Vec::new();
    for round in 0..6 {
        // An edit by another process.
        let email = format!("ada{round}@example.org");
        alice.ok(&["profile", "set", "email", &email]);
        latencies.push(
            delivered("an edit", &bob, |v| {
                value_of(v, &first).is_some_and(|x| x["profile"]["email"] == email.as_str())
            })
            .await,
        );
        // A grant by another process.
        let phone = format!("+33 6 00 00 00 0{round}");
        alice.ok(&["profile", "set", "phone", &phone]);
        let grant = json(&alice, &["grant", "bob", "--fields", "profile.phone", "--purpose", "calls"]);
        let id = grant["id"].as_str().unwrap().to_owned();
        latencies.push(
            delivered("a grant", &bob, |v| {
                value_of(v, &id).is_some_and(|x| x["profile"]["phone"] == phone.as_str())
            })
            .await,
        );
        // A revocation by another process.
        alice.ok(&["revoke", &id]);
        latencies
            .push(delivered("a revocation", &bob, |v| status_of(v, &id) == Some(ShareStatus::Revoked)).await);
    }
    // Several processes at once: the last edit wins and reaches the grantee.
    let writers: Vec<_> = (0..4)
        .map(|n| alice.cmd(&["pref", "set", &format!("k{n}"), "v"]).spawn().expect("vault runs"))
        .collect();
    alice.ok(&["profile", "set", "email", "final@example.org"]);
    for mut w in writers {
        assert!(w.wait().unwrap().success());
    }
    latencies.push(
        delivered("the last edit", &bob, |v| {
            value_of(v, &first).is_some_and(|x| x["profile"]["email"] == "final@example.org")
        })
        .await,
    );
    latencies.sort();
    eprintln!(
        "{} changes reached the grantee; median {:?}, slowest {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies.last().unwrap()
    );
    bob.shutdown().await;
}
