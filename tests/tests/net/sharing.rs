//! Sharing over real iroh endpoints on loopback, relays off: grant, first sync, live updates
//! made by another process on the issuer's vault, revocation and the erasure receipt.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use vault_core::{AuditFilter, AuditKind, GrantId, KdfParams, NewGrant, Passphrase, ShareStatus, Vault};
use vault_sync::{Node, NodeConfig, sync_once};
use vault_tests::peer::{create, eventually, local, open};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_sync_live_update_revoke_erase() {
    let (cdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = create(cdir.path());
    let shop = create(sdir.path());
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    customer.records_mut().set_profile("phone", "+33 6 12 34 56 78").unwrap();
    customer.records_mut().set_profile("address.city", "Lyon").unwrap();
    let id = customer
        .grants_mut()
        .issue(vault_tests::new_grant(shop.identity(), &["profile.email", "profile.address"], "delivery"))
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
    let shares = shop.held_mut().list().unwrap();
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
    cli.records_mut().set_profile("address.city", "Paris").unwrap();
    cli.records_mut().set_profile("phone", "+33 1 00 00 00 00").unwrap();
    let latency = eventually("the new city at the shop", || {
        shop_node.with_vault(|v| {
            v.held_mut().list().unwrap()[0].values.as_ref().unwrap()["profile"]["address"]["city"] == "Paris"
        })
    })
    .await;
    eprintln!("edit reached the grantee in {latency:?}");
    let held = shop_node.with_vault(|v| v.held_mut().list().unwrap()[0].values.clone().unwrap());
    assert!(held["profile"].get("phone").is_none(), "non-granted fields never arrive");

    // Revoke from "another process": the shop erases its copy and the receipt comes back.
    cli.grants_mut().revoke(&id).unwrap();
    cli.records_mut().set_profile("email", "after@example.org").unwrap();
    eventually("the shop erased its copy", || {
        shop_node.with_vault(|v| v.held_mut().list().unwrap()[0].status == ShareStatus::Revoked)
    })
    .await;
    assert!(shop_node.with_vault(|v| v.held_mut().list().unwrap()[0].values.is_none()));
    eventually("the erasure receipt is recorded", || {
        customer_node.with_vault(|v| v.grants().get(&id).unwrap().unwrap().erasure.is_some())
    })
    .await;
    let log = customer_node.with_vault(|v| v.access_log().list(&AuditFilter::default()).unwrap());
    let kinds: Vec<AuditKind> = log.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&AuditKind::SyncServed), "{kinds:?}");
    assert!(kinds.contains(&AuditKind::ErasureReceipt), "{kinds:?}");
    shop_node.shutdown().await;
    customer_node.shutdown().await;
}

fn create_with_clock(dir: &Path, clock: std::sync::Arc<std::sync::atomic::AtomicI64>) -> Vault {
    Vault::at(dir)
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .clock(std::sync::Arc::new(move || clock.load(std::sync::atomic::Ordering::SeqCst)))
        .create(&Passphrase::new("pw"))
        .unwrap()
}

/// A customer (on `issuer_clock`) grants a shop (on `grantee_clock`) its email for one hour from
/// 1_900_000_000; the shop syncs once, then both serve. Returns both nodes and the grant.
async fn one_hour_trial(
    cdir: &Path,
    issuer_clock: std::sync::Arc<std::sync::atomic::AtomicI64>,
    sdir: &Path,
    grantee_clock: std::sync::Arc<std::sync::atomic::AtomicI64>,
) -> (Node, Node, GrantId) {
    let mut customer = create_with_clock(cdir, issuer_clock);
    let shop = create_with_clock(sdir, grantee_clock);
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    let id = customer
        .grants_mut()
        .issue(NewGrant {
            audience: shop.identity(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "a one-hour trial".into(),
            expires_at: Some(1_900_000_000 + 3600),
            prices: true,
        })
        .unwrap()
        .statement()
        .id;
    let customer_node = Node::spawn(customer, local()).await.unwrap();
    let (shop, report) = sync_once(shop, &customer_node.ticket(), &local()).await;
    assert_eq!(report.unwrap().live, 1);
    let shop_node = Node::spawn(shop, local()).await.unwrap();
    (customer_node, shop_node, id)
}

/// The grantee's clock says the grant expired before the issuer's does: the grantee erases its
/// copy by its own clock and sends the receipt, which the issuer cannot take yet (by its clock
/// the grant is live). Once the issuer's clock ends the grant too, the receipt comes back over
/// the same live session. Before, the grantee took the issuer's next list, which still named
/// the grant live, as a confirmation, and never sent the receipt again: the issuer never
/// learned of the erasure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_the_grantee_sees_first_still_sends_the_receipt() {
    use std::sync::atomic::{AtomicI64, Ordering};
    let (cdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let issuer_clock = std::sync::Arc::new(AtomicI64::new(1_900_000_000));
    let grantee_clock = std::sync::Arc::new(AtomicI64::new(1_900_000_000));
    let (customer_node, shop_node, id) =
        one_hour_trial(cdir.path(), issuer_clock.clone(), sdir.path(), grantee_clock.clone()).await;
    eventually("the shop's live session holds the share", || {
        shop_node.with_vault(|v| v.held_mut().list().unwrap()[0].values.is_some())
    })
    .await;
    // Only the grantee's clock moves: the issuer still serves the grant.
    grantee_clock.fetch_add(3600, Ordering::SeqCst);
    eventually("the shop erased the expired copy", || {
        shop_node.with_vault(|v| v.held_mut().list().unwrap()[0].status == ShareStatus::Expired)
    })
    .await;
    // The issuer hears of it, and still serves: nothing else changes there for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(customer_node.with_vault(|v| v.grants().get(&id).unwrap().unwrap().erasure.is_none()));
    issuer_clock.fetch_add(3600, Ordering::SeqCst);
    eventually("the issuer recorded the erasure", || {
        customer_node.with_vault(|v| v.grants().get(&id).unwrap().unwrap().erasure.is_some())
    })
    .await;
    shop_node.shutdown().await;
    customer_node.shutdown().await;
}

/// Expiry behaves like revocation without a statement: with an injected clock, the issuer
/// stops serving, the grantee erases its copy and the receipt comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_with_an_injected_clock() {
    use std::sync::atomic::{AtomicI64, Ordering};
    let (cdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = std::sync::Arc::new(AtomicI64::new(1_900_000_000));
    let (customer_node, shop_node, id) =
        one_hour_trial(cdir.path(), clock.clone(), sdir.path(), clock.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    clock.fetch_add(3600, Ordering::SeqCst);
    eventually("the shop erased the expired copy", || {
        shop_node.with_vault(|v| v.held_mut().list().unwrap()[0].status == ShareStatus::Expired)
    })
    .await;
    eventually("the issuer recorded the erasure", || {
        customer_node.with_vault(|v| v.grants().get(&id).unwrap().unwrap().erasure.is_some())
    })
    .await;
    let kinds: Vec<AuditKind> = customer_node
        .with_vault(|v| v.access_log().list(&AuditFilter::default()).unwrap())
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&AuditKind::GrantExpired), "{kinds:?}");
    shop_node.shutdown().await;
    customer_node.shutdown().await;
}

/// Either side restarts in the middle: the session resumes, nothing is lost, nothing is
/// duplicated; and a friend's filtered feed follows records into and out of the filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_and_filtered_feeds() {
    use vault_core::{Price, PurchaseRecord};
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut customer = create(dirs[0].path());
    let shop = create(dirs[1].path());
    let friend = create(dirs[2].path());
    let book = |item: &str, tag: &str| {
        PurchaseRecord::new(
            item.into(),
            "Books & Co".into(),
            Price::parse("12.50", "EUR").unwrap(),
            "2026-11-20".into(),
        )
        .tags(vec![tag.into()])
        .rating(Some(4))
        .review(Some("good".into()))
    };
    let dune = customer.records_mut().add_purchase(&book("Dune", "books")).unwrap();
    customer.records_mut().add_purchase(&book("Tea", "food")).unwrap();
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    customer
        .grants_mut()
        .issue(vault_tests::new_grant(shop.identity(), &["profile.email"], "delivery"))
        .unwrap();
    customer
        .grants_mut()
        .issue(NewGrant {
            audience: friend.identity(),
            fields: vec!["purchases".parse().unwrap()],
            filter: Some("tag=books".parse().unwrap()),
            purpose: "book club".into(),
            expires_at: None,
            prices: false,
        })
        .unwrap();
    let cpath = dirs[0].path().to_owned();
    let customer_node = Node::spawn(customer, local()).await.unwrap();
    let ticket = customer_node.ticket();
    let (shop, r) = sync_once(shop, &ticket, &local()).await;
    r.unwrap();
    let (mut friend, r) = sync_once(friend, &ticket, &local()).await;
    r.unwrap();
    let feed = friend.held_mut().list().unwrap()[0].values.clone().unwrap();
    let items: Vec<&str> =
        feed["purchases"].as_object().unwrap().values().map(|p| p["item"].as_str().unwrap()).collect();
    assert_eq!(items, ["Dune"], "only the filtered records");
    assert!(feed["purchases"][&dune].get("price").is_none(), "no prices");
    assert!(feed.get("profile").is_none());

    let shop_node = Node::spawn(shop, local()).await.unwrap();
    let friend_node = Node::spawn(friend, local()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The grantee restarts while the issuer edits.
    let sdir = dirs[1].path().to_owned();
    shop_node.shutdown().await;
    customer_node.with_vault(|v| v.records_mut().set_profile("email", "ada@while-away.example").unwrap());
    let shop_node = Node::spawn(open(&sdir), local()).await.unwrap();
    eventually("the restarted shop resumes", || {
        shop_node.with_vault(|v| {
            v.held_mut().list().unwrap()[0].values.as_ref().unwrap()["profile"]["email"]
                == "ada@while-away.example"
        })
    })
    .await;

    // The issuer restarts; edits made while it was down reach everyone once it is back.
    customer_node.shutdown().await;
    {
        let mut offline = open(&cpath);
        offline.records_mut().add_purchase(&book("Foundation", "books")).unwrap();
        // Dune leaves the filter.
        offline.records_mut().remove_purchase(&dune).unwrap();
    }
    let customer_node =
        Node::spawn(open(&cpath), NodeConfig { bind: ticket.addrs().first().copied(), ..local() })
            .await
            .unwrap();
    eventually("the friend's feed follows the filter", || {
        friend_node.with_vault(|v| {
            let feed = v.held_mut().list().unwrap()[0].values.clone().unwrap();
            let items: Vec<String> = feed["purchases"]
                .as_object()
                .unwrap()
                .values()
                .map(|p| p["item"].as_str().unwrap().to_owned())
                .collect();
            items == ["Foundation"]
        })
    })
    .await;
    // Nothing duplicated: the shop's copy holds exactly the granted field.
    let held = shop_node.with_vault(|v| v.held_mut().list().unwrap()[0].values.clone().unwrap());
    assert_eq!(held, json!({"profile": {"email": "ada@while-away.example"}}));
    for node in [friend_node, shop_node, customer_node] {
        node.shutdown().await;
    }
}
