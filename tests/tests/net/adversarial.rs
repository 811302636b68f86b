//! Hostile peers over real iroh endpoints on loopback: nothing leaks, and a misbehaving
//! connection is closed without disturbing the node's other peers.

use std::time::{Duration, Instant};

use iroh::Endpoint;
use iroh::endpoint::Connection;
use vault_core::{AuditFilter, AuditKind, DeviceKey, Frame, GrantId, Identity, Ticket};
use vault_sync::{Node, sync_once};
use vault_tests::peer::{create, dial, local, raw_endpoint, recv, send};

/// A hello-and-list session as `identity` on `device`; returns the connection and the Shares.
async fn hello(
    ep: &Endpoint,
    ticket: &Ticket,
    identity: &Identity,
    device: &DeviceKey,
) -> (Connection, Option<Frame>) {
    let conn = dial(ep, ticket).await;
    let (mut s, mut r) = conn.open_bi().await.unwrap();
    send(&mut s, &Frame::Hello(identity.certify(device.public()))).await;
    let _ = recv(&mut r).await;
    send(&mut s, &Frame::ListShares).await;
    let shares = recv(&mut r).await;
    // Keep the control stream open by leaking its halves into a task.
    tokio::spawn(async move {
        let _keep = (s, r);
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    (conn, shares)
}

struct Setup {
    _dirs: Vec<tempfile::TempDir>,
    customer: Node,
    grant: GrantId,
    shop: Node,
}

async fn setup() -> Setup {
    let (cdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = create(cdir.path());
    let shop = create(sdir.path());
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    customer.records_mut().set_profile("phone", "+33 6 00 00 00 00").unwrap();
    let grant = customer
        .grants_mut()
        .issue(vault_tests::new_grant(shop.identity(), &["profile.email"], "delivery"))
        .unwrap()
        .statement()
        .id;
    let customer = Node::spawn(customer, local()).await.unwrap();
    let (shop, report) = sync_once(shop, &customer.ticket(), &local()).await;
    report.unwrap();
    let shop = Node::spawn(shop, local()).await.unwrap();
    Setup { _dirs: vec![cdir, sdir], customer, grant, shop }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_no_grant_learns_nothing_and_cannot_name_a_document() {
    let s = setup().await;
    let ticket = s.customer.ticket();
    let (identity, device) = (Identity::generate(), DeviceKey::generate());
    let ep = raw_endpoint(&device).await;
    let (conn, shares) = hello(&ep, &ticket, &identity, &device).await;
    assert_eq!(
        shares,
        Some(Frame::Shares { live: vec![], ended: vec![] }),
        "no grants, no other peers, nothing"
    );
    // Naming the shop's real grant and naming a random id get the same answer.
    for id in [s.grant, GrantId::random()] {
        let (mut tx, mut rx) = conn.open_bi().await.unwrap();
        send(&mut tx, &Frame::Open(id)).await;
        assert_eq!(recv(&mut rx).await, Some(Frame::Refused));
        assert_eq!(recv(&mut rx).await, None, "nothing follows a refusal");
    }
    // And with the shop's identity but its own device, the certificate does not verify.
    s.shop.shutdown().await;
    s.customer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_device_is_refused() {
    let s = setup().await;
    let ticket = s.customer.ticket();
    let (mallory, device, other_device) =
        (Identity::generate(), DeviceKey::generate(), DeviceKey::generate());
    let ep = raw_endpoint(&device).await;
    let conn = dial(&ep, &ticket).await;
    let (mut tx, mut rx) = conn.open_bi().await.unwrap();
    // A valid certificate, but for a device other than the one on this connection.
    send(&mut tx, &Frame::Hello(mallory.certify(other_device.public()))).await;
    assert_eq!(recv(&mut rx).await, None, "no hello back");
    let refused =
        s.customer.with_vault(|v| v.access_log().list(&AuditFilter::default()).unwrap()).iter().any(|e| {
            e.kind == AuditKind::PeerRefused
                && e.peer.is_none()
                && e.detail.as_deref().is_some_and(|d| d.contains(&device.public().to_string()))
        });
    assert!(refused, "the refusal is logged under the device that connected, not the identity it claimed");
    s.shop.shutdown().await;
    s.customer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_close_alone_while_others_are_served() {
    let s = setup().await;
    let ticket = s.customer.ticket();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Several hostile peers at once.
    let mut hostile = Vec::new();
    for case in 0..4 {
        let ticket = ticket.clone();
        hostile.push(tokio::spawn(async move {
            let (identity, device) = (Identity::generate(), DeviceKey::generate());
            let ep = raw_endpoint(&device).await;
            let conn = dial(&ep, &ticket).await;
            let (mut tx, mut rx) = conn.open_bi().await.unwrap();
            match case {
                // An absurd length prefix.
                0 => tx.write_all(&u32::MAX.to_be_bytes()).await.unwrap(),
                // An unknown frame type.
                1 => tx.write_all(&[0, 0, 0, 1, 200]).await.unwrap(),
                // A frame cut short, then the stream finished.
                2 => {
                    tx.write_all(&[0, 0, 0, 50, 1, 2, 3]).await.unwrap();
                    tx.finish().unwrap();
                }
                // A valid hello, then a flood of streams.
                _ => {
                    send(&mut tx, &Frame::Hello(identity.certify(device.public()))).await;
                    let _ = recv(&mut rx).await;
                    for _ in 0..500 {
                        match tokio::time::timeout(Duration::from_millis(200), conn.open_bi()).await {
                            Ok(Ok((mut s, _r))) => {
                                let _ = s.write_all(&[0, 0, 0, 1]).await;
                            }
                            _ => break,
                        }
                    }
                }
            }
            // The hostile connection ends (closed by the node) or is left hanging at the
            // stream limit; either way it gets no data.
            let _ = tokio::time::timeout(Duration::from_secs(3), rx.read_to_end(1024)).await;
        }));
    }

    // Meanwhile the shop keeps receiving live updates.
    s.customer.with_vault(|v| v.records_mut().set_profile("email", "ada@new.example").unwrap());
    let start = Instant::now();
    loop {
        let email = s.shop.with_vault(|v| {
            v.held_mut().list().unwrap()[0].values.clone().unwrap()["profile"]["email"].clone()
        });
        if email == "ada@new.example" {
            break;
        }
        assert!(start.elapsed() < vault_tests::HANG, "the legitimate grantee stopped receiving updates");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for h in hostile {
        h.await.unwrap();
    }
    // And after the attack, still.
    s.customer.with_vault(|v| v.records_mut().set_profile("email", "ada@after.example").unwrap());
    let start = Instant::now();
    loop {
        let email = s.shop.with_vault(|v| {
            v.held_mut().list().unwrap()[0].values.clone().unwrap()["profile"]["email"].clone()
        });
        if email == "ada@after.example" {
            break;
        }
        assert!(start.elapsed() < vault_tests::HANG, "the node stopped serving after the attack");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.shop.shutdown().await;
    s.customer.shutdown().await;
}
