//! Network faults between real nodes: two `vault_sync::Node`s with real iroh endpoints on
//! loopback (relays off) talking only through the impairment proxy (`vault_tests::impair`):
//! loss with delay and jitter, a partition in the middle of a live session, a revocation made
//! during a partition. The consent request sent during a partition is in `cli/net_faults.rs`
//! (it goes through the binary).
//!
//! Each node dials the other at the proxy because the other is its contact with an address set
//! by hand (`Contacts::add_at`). The issuer is bound on IPv4 loopback and the grantee on
//! IPv6 loopback, so no direct path exists for iroh to holepunch to (see the proxy's docs);
//! each scenario also checks that a partition really stops delivery.
//!
//! The figures are printed (`--nocapture`) for README's Reliability table.

use std::time::{Duration, Instant};

use serde_json::Value;
use vault_core::{AuditFilter, AuditKind, GrantId, Price, PurchaseRecord, ShareStatus, Vault};
use vault_sync::{Node, NodeConfig};
use vault_tests::HANG;
use vault_tests::impair::{Counters, Impairment, Proxy};
use vault_tests::peer::{create, open};

/// The scenarios run one at a time: they measure, and two cores are little.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn bound(addr: &str) -> NodeConfig {
    NodeConfig { bind: Some(addr.parse().unwrap()), relay: false, ..NodeConfig::default() }
}

fn purchase(i: usize, tag: &str) -> PurchaseRecord {
    PurchaseRecord::new(
        format!("item {i}"),
        format!("Shop {}", i % 17),
        Price::parse(&format!("{}.{:02}", 5 + i % 90, i % 100), "EUR").unwrap(),
        format!("2026-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
    )
    .category(Some("books".into()))
    .tags(vec![tag.into()])
    .rating(Some(1 + (i % 5) as i64))
    .review(Some(format!("review of item {i}: fine")))
}

/// An issuer with `n` purchases and a grantee, in `dirs`.
fn vaults(dirs: &[tempfile::TempDir; 2], n: usize) -> (Vault, Vault) {
    let mut issuer = create(dirs[0].path());
    let grantee = create(dirs[1].path());
    let records: Vec<PurchaseRecord> = (0..n).map(|i| purchase(i, "old")).collect();
    for chunk in records.chunks(100) {
        issuer.records_mut().add_purchases(chunk).unwrap();
    }
    (issuer, grantee)
}

/// Copies of the (closed) vaults in `from`: the same identities and the same data, so that two
/// runs compare like with like.
fn copies(from: &[tempfile::TempDir; 2]) -> ([tempfile::TempDir; 2], Vault, Vault) {
    let to = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for (src, dst) in from.iter().zip(&to) {
        for entry in std::fs::read_dir(src.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dst.path().join(entry.file_name())).unwrap();
        }
    }
    let (issuer, grantee) = (open(to[0].path()), open(to[1].path()));
    (to, issuer, grantee)
}

/// The issuer's node (A, IPv4) and the grantee's node (B, IPv6), each the other's contact at
/// the proxy.
struct Linked {
    issuer: Node,
    grantee: Node,
    proxy: Proxy,
}

async fn link(issuer: Vault, grantee: Vault, seed: u64) -> Linked {
    let issuer = Node::spawn(issuer, bound("127.0.0.1:0")).await.unwrap();
    let grantee = Node::spawn(grantee, bound("[::1]:0")).await.unwrap();
    let a = issuer.endpoint().bound_sockets()[0];
    let b = grantee.endpoint().bound_sockets()[0];
    assert!(a.is_ipv4() && b.is_ipv6());
    let proxy = Proxy::start(a, b, seed).await.unwrap();
    let (issuer_ticket, grantee_ticket) = (issuer.ticket(), grantee.ticket());
    issuer.with_vault(|v| v.contacts_mut().add_at("grantee", &grantee_ticket, &[proxy.addr_of_b()]).unwrap());
    grantee.with_vault(|v| v.contacts_mut().add_at("issuer", &issuer_ticket, &[proxy.addr_of_a()]).unwrap());
    Linked { issuer, grantee, proxy }
}

impl Linked {
    fn grant_purchases(&self) -> GrantId {
        let audience = self.grantee.inspect(|v| v.identity());
        self.issuer.with_vault(|v| {
            v.grants_mut()
                .issue(vault_tests::new_grant(audience, &["purchases"], "purchase feed"))
                .unwrap()
                .statement()
                .id
        })
    }

    /// What the issuer's projection for `id` holds now.
    fn projection(&self, id: &GrantId) -> Value {
        self.issuer.inspect(|v| {
            let grant = v.grants().get(id).unwrap().unwrap().grant;
            vault_core::project(grant.statement(), &v.records().export_json(), v.now())
        })
    }

    /// What the grantee holds of the (only) share.
    fn held(&self) -> Option<Value> {
        self.grantee.inspect(|v| v.held_mut().list().unwrap().first().and_then(|s| s.values.clone()))
    }

    fn held_purchases(&self) -> usize {
        self.held().and_then(|v| v["purchases"].as_object().map(|p| p.len())).unwrap_or(0)
    }

    fn add(&self, i: usize, tag: &str) -> String {
        self.issuer.with_vault(|v| v.records_mut().add_purchase(&purchase(i, tag)).unwrap())
    }

    async fn shutdown(self) {
        self.grantee.shutdown().await;
        self.issuer.shutdown().await;
    }
}

/// Checks `check` whenever `node`'s vault changed (and every 200 ms at the latest), until it
/// holds ([`HANG`] only bounds a hang: nothing here asserts a speed); returns how long it took. (Checking reads whole shares under the node's lock: on
/// every change, not in a busy loop, so that the checks do not slow down what they measure.)
async fn within(node: &Node, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    let mut changes = node.changes();
    while start.elapsed() < HANG {
        if check() {
            return start.elapsed();
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
    }
    panic!("timed out after {HANG:?} waiting for: {what}");
}

fn since(after: Counters, before: Counters) -> Counters {
    Counters {
        received: after.received - before.received,
        received_bytes: after.received_bytes - before.received_bytes,
        forwarded: after.forwarded - before.forwarded,
        forwarded_bytes: after.forwarded_bytes - before.forwarded_bytes,
        lost: after.lost - before.lost,
        partitioned: after.partitioned - before.partitioned,
        duplicated: after.duplicated - before.duplicated,
        reordered: after.reordered - before.reordered,
    }
}

const PURCHASES: usize = 1000;

/// The first sync of a 1,000-purchase projection through the proxy under `imp`: how long from
/// the grant to the last purchase at the grantee, and what the proxy carried meanwhile.
async fn first_sync(
    template: &[tempfile::TempDir; 2],
    imp: Impairment,
    seed: u64,
) -> (Linked, GrantId, Duration, Counters, [tempfile::TempDir; 2]) {
    let (dirs, issuer, grantee) = copies(template);
    let linked = link(issuer, grantee, seed).await;
    linked.proxy.set_both(imp);
    let before = linked.proxy.total();
    let grant = linked.grant_purchases();
    let took = within(&linked.grantee, "the first sync", || linked.held_purchases() == PURCHASES).await;
    let carried = since(linked.proxy.total(), before);
    assert!(linked.held() == Some(linked.projection(&grant)), "not exactly the issuer's projection");
    (linked, grant, took, carried, dirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_and_delay_first_sync_and_live_edits() {
    let _serial = SERIAL.lock().await;
    let template = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    drop(vaults(&template, PURCHASES));
    // The same sync without impairment, for comparison.
    let (clean, _, clean_took, clean_carried, _clean_dirs) =
        first_sync(&template, Impairment::default(), 1).await;
    assert!(
        clean_carried.forwarded_bytes > 50_000,
        "the projection went through the proxy: {clean_carried:?}"
    );
    clean.shutdown().await;

    let imp = Impairment::lossy(0.2, Duration::from_millis(50), Duration::from_millis(20));
    let (linked, grant, took, carried, _dirs) = first_sync(&template, imp, 2).await;
    assert!(carried.lost > 0, "the proxy lost datagrams: {carried:?}");
    // Retransmission: what the two nodes sent into the network for the same sync, with and
    // without loss (the proxy counts what arrives at it, before it drops anything).
    eprintln!(
        "[reliability] first sync of {PURCHASES} purchases, 20% loss, 50+-20 ms each way: {took:.2?}; \
         sent {} B in {} datagrams ({} lost), delivered {} B; without impairment: {clean_took:.2?}, \
         sent {} B in {} datagrams; bytes sent x{:.2}",
        carried.received_bytes,
        carried.received,
        carried.lost,
        carried.forwarded_bytes,
        clean_carried.received_bytes,
        clean_carried.received,
        carried.received_bytes as f64 / clean_carried.received_bytes as f64,
    );

    // Live edits arrive, still under loss and delay.
    let mut latencies = Vec::new();
    for i in 0..10 {
        let id = linked.add(PURCHASES + i, "live");
        let took = within(&linked.grantee, "a live edit at the grantee", || {
            linked.held().is_some_and(|v| v["purchases"].get(&id).is_some())
        })
        .await;
        latencies.push(took);
    }
    latencies.sort();
    assert!(linked.held() == Some(linked.projection(&grant)), "not exactly the issuer's projection");
    eprintln!(
        "[reliability] live edits under 20% loss, 50+-20 ms: 10 of 10 arrived, median {:.0?}, worst {:.0?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    linked.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_second_partition_in_a_live_session_then_heal() {
    let _serial = SERIAL.lock().await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (issuer, grantee) = vaults(&dirs, 100);
    let linked = link(issuer, grantee, 3).await;
    let grant = linked.grant_purchases();
    within(&linked.grantee, "the first sync", || linked.held() == Some(linked.projection(&grant))).await;
    // The live session carries edits.
    let first = linked.add(1000, "live");
    within(&linked.grantee, "a live edit", || {
        linked.held().is_some_and(|v| v["purchases"].get(&first).is_some())
    })
    .await;

    linked.proxy.partition();
    let before = linked.proxy.total();
    let started = Instant::now();
    let held_at_partition = linked.held();
    // Edits of every kind on the issuer's side while the grantee is cut off: adds, a change,
    // a removal.
    let ids: Vec<String> =
        linked.issuer.inspect(|v| v.records().purchases().iter().map(|p| p.id.clone()).collect());
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(10) {
        linked.add(2000 + i, "partitioned");
        if i == 3 {
            linked.issuer.with_vault(|v| v.records_mut().remove_purchase(&ids[0]).unwrap());
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            linked.held() == held_at_partition,
            "an edit crossed the partition: traffic went around the proxy"
        );
    }
    let during = since(linked.proxy.total(), before);
    assert_eq!(during.forwarded, 0, "{during:?}");
    assert!(during.partitioned > 0, "the nodes kept trying: {during:?}");
    assert!(
        linked.held() != Some(linked.projection(&grant)),
        "the edits made during the partition are not there yet"
    );

    linked.proxy.heal();
    let healed = Instant::now();
    let took = within(&linked.grantee, "the grantee converges after heal", || {
        linked.held() == Some(linked.projection(&grant))
    })
    .await;
    let held = linked.held().unwrap();
    assert_eq!(held["purchases"].as_object().unwrap().len(), 100 + 1 + i - 1, "nothing lost or duplicated");
    assert!(held["purchases"].get(&ids[0]).is_none(), "the removal arrived too");
    // No session is stuck: the next edit arrives as usual, with no manual sync.
    let after = linked.add(3000, "after");
    let next = within(&linked.grantee, "an edit after the heal", || {
        linked.held().is_some_and(|v| v["purchases"].get(&after).is_some())
    })
    .await;
    eprintln!(
        "[reliability] 10 s partition in a live session, {i} edits on the issuer's side: converged \
         {took:.2?} after heal ({:.2?} after the partition began), the next edit in {next:.0?}; \
         {} datagrams dropped by the partition",
        healed.duration_since(started) + took,
        during.partitioned
    );
    linked.shutdown().await;
}

/// Kinds and grants of the issuer's access log, in order.
fn log_of(node: &Node) -> Vec<(AuditKind, Option<GrantId>)> {
    node.inspect(|v| v.access_log().list(&AuditFilter::default()).unwrap())
        .iter()
        .map(|e| (e.kind, e.grant))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_during_a_partition() {
    let _serial = SERIAL.lock().await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (issuer, grantee) = vaults(&dirs, 100);
    let linked = link(issuer, grantee, 4).await;
    let grant = linked.grant_purchases();
    within(&linked.grantee, "the first sync", || linked.held() == Some(linked.projection(&grant))).await;

    linked.proxy.partition();
    let started = Instant::now();
    // An edit the grantee may not see yet, the revocation, and edits after it that it must never see.
    let before_revocation = linked.add(5000, "before");
    linked.issuer.with_vault(|v| v.grants_mut().revoke(&grant).unwrap());
    let after: Vec<String> = (0..3).map(|i| linked.add(6000 + i, "after-revocation")).collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        linked.grantee.inspect(|v| v.held_mut().list().unwrap()[0].status),
        ShareStatus::Live,
        "nothing crossed the partition"
    );
    linked.proxy.heal();
    let healed = Instant::now();
    // Watch every state the grantee's copy goes through until it is erased.
    let mut saw_before = false;
    let erased = within(&linked.grantee, "the grantee erases its copy", || {
        let share = linked.grantee.inspect(|v| v.held_mut().list().unwrap().remove(0));
        if let Some(values) = &share.values {
            for id in &after {
                assert!(
                    values["purchases"].get(id).is_none(),
                    "a purchase made after the revocation arrived"
                );
            }
            saw_before |= values["purchases"].get(&before_revocation).is_some();
        }
        share.status == ShareStatus::Revoked && share.values.is_none()
    })
    .await;
    let receipt = within(&linked.issuer, "the erasure receipt at the issuer", || {
        linked.issuer.inspect(|v| v.grants().get(&grant).unwrap().unwrap().erasure.is_some())
    })
    .await;
    // The issuer's access log: nothing served under the grant after its revocation.
    let log = log_of(&linked.issuer);
    let revoked_at = log.iter().position(|e| *e == (AuditKind::GrantRevoked, Some(grant))).expect("logged");
    assert!(
        !log[revoked_at..].contains(&(AuditKind::SyncServed, Some(grant))),
        "a sync served after the revocation: {log:?}"
    );
    assert!(log[revoked_at..].contains(&(AuditKind::ErasureReceipt, Some(grant))));
    eprintln!(
        "[reliability] revocation during a partition: erased {erased:.2?} after heal, receipt at the issuer \
         {:.2?} after heal ({:.2?} after the revocation); an edit made before it {} the grantee first",
        erased + receipt,
        healed.duration_since(started) + erased + receipt,
        if saw_before { "reached" } else { "did not reach" }
    );
    linked.shutdown().await;
}

/// The premise of the scenarios: a node on IPv6 loopback cannot reach a node on IPv4 loopback
/// at the addresses of its ticket, so between them the proxy is the only path (and iroh has
/// nothing to holepunch to around it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_different_families_have_no_direct_path() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (issuer, grantee) = vaults(&dirs, 1);
    let audience = grantee.identity();
    let issuer = Node::spawn(issuer, bound("127.0.0.1:0")).await.unwrap();
    issuer.with_vault(|v| {
        v.grants_mut().issue(vault_tests::new_grant(audience, &["purchases"], "feed")).unwrap()
    });
    let ticket = issuer.ticket();
    assert!(ticket.addrs().iter().all(|a| a.is_ipv4()));
    let (grantee, direct) = vault_sync::sync_once(grantee, &ticket, &bound("[::1]:0")).await;
    assert!(direct.is_err(), "reached the issuer without the proxy: {direct:?}");
    // Through a proxy, the same sync goes through.
    let proxy = Proxy::start(ticket.addrs()[0], "[::1]:9".parse().unwrap(), 5).await.unwrap();
    let via = vault_core::Ticket::new(*ticket.certificate(), vec![proxy.addr_of_a()]);
    let (_, through) = vault_sync::sync_once(grantee, &via, &bound("[::1]:0")).await;
    assert_eq!(through.unwrap().live, 1);
    assert!(proxy.total().forwarded_bytes > 0);
    issuer.shutdown().await;
}
