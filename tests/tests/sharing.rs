//! Sharing over real iroh endpoints on loopback, relays off: grant, first sync, live updates
//! made by another process on the issuer's vault, revocation and the erasure receipt.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use vault_core::{AuditFilter, AuditKind, KdfParams, NewGrant, Passphrase, ShareStatus, Vault};
use vault_sync::{Node, NodeConfig, sync_once};

fn open(dir: &Path) -> Vault {
    Vault::at(dir).unlock(&Passphrase::new("pw")).unwrap()
}

fn create(dir: &Path) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
}

fn local() -> NodeConfig {
    NodeConfig { bind: Some("127.0.0.1:0".parse().unwrap()), relay: false, subscribe: true }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if check() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_sync_live_update_revoke_erase() {
    let (cdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = create(cdir.path());
    let shop = create(sdir.path());
    customer.set_profile("email", "ada@example.org").unwrap();
    customer.set_profile("phone", "+33 6 12 34 56 78").unwrap();
    customer.set_profile("address.city", "Lyon").unwrap();
    let id = customer
        .issue_grant(NewGrant {
            audience: shop.identity(),
            fields: vec!["profile.email".parse().unwrap(), "profile.address".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            expires_at: None,
            prices: true,
        })
        .unwrap()
        .statement()
        .id;
    let customer_node = Node::spawn(customer, local()).await.unwrap();
    let ticket = customer_node.ticket();
    assert!(!ticket.addrs().is_empty());

    // One-shot sync: the shop receives exactly the granted fields.
    let (mut shop, report) = sync_once(shop, &ticket, &local()).await;
    let report = report.unwrap();
    assert_eq!(report.live, 1);
    let shares = shop.shares().unwrap();
    assert_eq!(shares.len(), 1);
    assert_eq!(
        shares[0].values,
        Some(json!({"profile": {"email": "ada@example.org", "address": {"city": "Lyon"}}}))
    );

    // Live: the shop's node keeps a session; an edit by another process on the customer's
    // vault file (a second handle here) reaches it.
    let shop_node = Node::spawn(shop, local()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut cli = open(cdir.path());
    cli.set_profile("address.city", "Paris").unwrap();
    cli.set_profile("phone", "+33 1 00 00 00 00").unwrap();
    let latency = eventually("the new city at the shop", || {
        shop_node.with_vault(|v| {
            v.shares().unwrap()[0].values.as_ref().unwrap()["profile"]["address"]["city"] == "Paris"
        })
    })
    .await;
    eprintln!("edit reached the grantee in {latency:?}");
    let held = shop_node.with_vault(|v| v.shares().unwrap()[0].values.clone().unwrap());
    assert!(held["profile"].get("phone").is_none(), "non-granted fields never arrive");

    // Revoke from "another process": the shop erases its copy and the receipt comes back.
    cli.revoke(&id).unwrap();
    cli.set_profile("email", "after@example.org").unwrap();
    eventually("the shop erased its copy", || {
        shop_node.with_vault(|v| v.shares().unwrap()[0].status == ShareStatus::Revoked)
    })
    .await;
    assert!(shop_node.with_vault(|v| v.shares().unwrap()[0].values.is_none()));
    eventually("the erasure receipt is recorded", || {
        customer_node.with_vault(|v| v.grant_info(&id).unwrap().unwrap().erasure.is_some())
    })
    .await;
    let log = customer_node.with_vault(|v| v.audit(&AuditFilter::default()).unwrap());
    let kinds: Vec<AuditKind> = log.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&AuditKind::SyncServed), "{kinds:?}");
    assert!(kinds.contains(&AuditKind::ErasureReceipt), "{kinds:?}");
    shop_node.shutdown().await;
    customer_node.shutdown().await;
}
