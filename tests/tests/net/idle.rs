//! A grantee's node lets a quiet session go (a seller keeps connections to active customers
//! only) and loses nothing by it: an edit, a revocation with its erasure receipt, and a
//! request queued by the grantee all get through a session that went idle.

use std::time::Duration;

use vault_core::{NewRequest, ShareStatus};
use vault_sync::{Node, NodeConfig};
use vault_tests::peer::{create, eventually, local, open};

fn email_at_shop(shop: &Node) -> Option<String> {
    shop.with_vault(|v| {
        let shares = v.held_mut().list().unwrap();
        let values = shares.first()?.values.clone()?;
        values["profile"]["email"].as_str().map(str::to_owned)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_misses_no_edit_no_revocation_and_no_request() {
    let (cdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = create(cdir.path());
    let shop = create(sdir.path());
    let shop_id = shop.identity();
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    // The shop lets a session go after one quiet second, and would call back only after an
    // hour on its own: whatever arrives below came because the customer offered it.
    let quick = NodeConfig {
        idle_close: Some(Duration::from_secs(1)),
        idle_refresh: Duration::from_secs(3600),
        ..local()
    };
    let shop_node = Node::spawn(shop, quick).await.unwrap();
    customer.contacts_mut().add("shop", &shop_node.ticket()).unwrap();
    let id = customer
        .grants_mut()
        .issue(vault_tests::new_grant(shop_id, &["profile.email"], "receipts by email"))
        .unwrap()
        .statement()
        .id;
    let customer_node = Node::spawn(customer, local()).await.unwrap();
    eventually("the shop holds the email", || {
        email_at_shop(&shop_node).as_deref() == Some("ada@example.org")
    })
    .await;
    eventually("the shop's session went idle", || shop_node.idle_sessions() == 1).await;

    // An edit by another process on the customer's vault reaches the idle shop.
    let mut cli = open(cdir.path());
    cli.records_mut().set_profile("email", "ada@new.example").unwrap();
    let took = eventually("the edit at the shop", || {
        email_at_shop(&shop_node).as_deref() == Some("ada@new.example")
    })
    .await;
    eprintln!("an edit reached an idle grantee in {took:?}");
    eventually("idle again", || shop_node.idle_sessions() == 1).await;

    // A request the shop queues while idle is delivered.
    shop_node.with_vault(|v| {
        v.outbox_mut()
            .make(NewRequest {
                holder: cli.identity(),
                ticket: None,
                fields: vec!["profile.name".parse().unwrap()],
                filter: None,
                purpose: "loyalty card".into(),
                duration: None,
                prices: false,
                name: None,
                reply_to: None,
            })
            .unwrap()
    });
    eventually("the request reached the customer", || {
        customer_node.with_vault(|v| v.inbox().list().unwrap().len() == 1)
    })
    .await;
    eventually("idle again", || shop_node.idle_sessions() == 1).await;

    // A revocation reaches the idle shop; the erasure receipt comes back.
    cli.grants_mut().revoke(&id).unwrap();
    eventually("the shop erased its copy", || {
        shop_node.with_vault(|v| v.held_mut().list().unwrap()[0].status == ShareStatus::Revoked)
    })
    .await;
    assert!(email_at_shop(&shop_node).is_none());
    eventually("the erasure receipt is recorded", || {
        customer_node.with_vault(|v| v.grants().get(&id).unwrap().unwrap().erasure.is_some())
    })
    .await;
    shop_node.shutdown().await;
    customer_node.shutdown().await;
}
