//! Sharing benchmarks over loopback iroh (relays off). Run with
//! `cargo bench -p vault-tests --bench sharing` (add `-- fanout=N` to change the fan-out size;
//! `only=feed keep=DIR` keeps the feed's follower vault in DIR, passphrase `pw`).
//!
//! Prints medians and percentiles with the baseline measured in the same run:
//! 1. edit-to-grantee latency, durable on both sides (in-process edit, and an edit by another
//!    handle on the file, as a separate CLI process makes);
//! 2. first full sync of a 10,000-purchase projection against the bare Automerge sync protocol
//!    in memory for the same document (time and bytes);
//! 3. incremental projections: one edit on a 10,000-purchase vault with 100 live grants;
//! 4. fan-out: one issuer (`vault serve`, a separate process) with N connected grantees, one new
//!    purchase, time until all have it, and the issuer's peak memory;
//! 5. the friend's feed: `vault feed` over 50 followed friends with 2,000 purchases each (the
//!    whole command, warm, against `vault id` as the baseline of starting and unlocking), and
//!    the time from a friend's new purchase to its appearance in the follower's feed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use automerge::AutoCommit;
use automerge::sync::{State, SyncDoc};
use vault_core::{AuditFilter, AuditKind, Identity, NewGrant, Passphrase, PurchaseRecord, Vault};
use vault_sync::{Node, NodeConfig, sync_once};
use vault_tests::bench::{create, local, pct, proc_status, record, summary};

fn grant(audience: vault_core::IdentityId, fields: &[&str], filter: Option<&str>) -> NewGrant {
    NewGrant {
        audience,
        fields: fields.iter().map(|f| f.parse().unwrap()).collect(),
        filter: filter.map(|f| f.parse().unwrap()),
        purpose: "benchmark".into(),
        expires_at: None,
        prices: true,
    }
}

async fn latency() {
    let (cdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = create(cdir.path());
    let shop = create(sdir.path());
    customer.records_mut().set_profile("email", "start@example.org").unwrap();
    customer.grants_mut().issue(grant(shop.identity(), &["profile.email"], None)).unwrap();
    let customer_node = Node::spawn(customer, local()).await.unwrap();
    let (shop, r) = sync_once(shop, &customer_node.ticket(), &local()).await;
    r.unwrap();
    let shop_node = Node::spawn(shop, local()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut changes = shop_node.changes();

    let mut samples = Vec::new();
    for i in 0..300 {
        let value = format!("v{i}@example.org");
        let start = Instant::now();
        customer_node.with_vault(|v| v.records_mut().set_profile("email", &value).unwrap());
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(5), changes.changed()).await;
            let held = shop_node.inspect(|v| {
                v.held_mut().list().unwrap()[0].values.clone().unwrap()["profile"]["email"].clone()
            });
            if held == value.as_str() {
                break;
            }
        }
        samples.push(start.elapsed());
    }
    summary("1a edit-to-grantee latency, edit through the serving node, durable both sides", samples);

    // An edit by another handle on the file, as `vault profile set` in another process makes:
    // the node notices it by polling (every vault_sync::POLL_INTERVAL).
    let mut other = Vault::at(cdir.path()).unlock(&Passphrase::new("pw")).unwrap();
    let mut samples = Vec::new();
    for i in 0..100 {
        let value = format!("x{i}@example.org");
        let start = Instant::now();
        other.records_mut().set_profile("email", &value).unwrap();
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(5), changes.changed()).await;
            let held = shop_node.inspect(|v| {
                v.held_mut().list().unwrap()[0].values.clone().unwrap()["profile"]["email"].clone()
            });
            if held == value.as_str() {
                break;
            }
        }
        samples.push(start.elapsed());
    }
    summary(
        "1b edit-to-grantee latency, edit by another handle on the file (node polls every 5 ms)",
        samples,
    );
    shop_node.shutdown().await;
    customer_node.shutdown().await;
}

async fn first_sync() {
    let cdir = tempfile::tempdir().unwrap();
    let mut customer = create(cdir.path());
    let records: Vec<PurchaseRecord> = (0..10_000).map(record).collect();
    for batch in records.chunks(100) {
        customer.records_mut().add_purchases(batch).unwrap();
    }
    let runs = 5;
    let mut shops = Vec::new();
    let mut build = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let shop = create(dir.path());
        let start = Instant::now();
        let g = customer.grants_mut().issue(grant(shop.identity(), &["purchases"], None)).unwrap();
        build.push(start.elapsed());
        shops.push((dir, shop, g.statement().id));
    }
    summary("2a building a 10,000-purchase projection for a new grant (once per grant)", build);
    // The baseline: the bare Automerge sync protocol in memory, same projection document.
    let projection_bytes = customer.projections_mut().doc(&shops[0].2).unwrap().unwrap().save();
    let mut base_times = Vec::new();
    let mut base_bytes = 0;
    for _ in 0..runs {
        let mut source = AutoCommit::load(&projection_bytes).unwrap();
        let mut target = AutoCommit::new();
        let (mut s1, mut s2) = (State::new(), State::new());
        let start = Instant::now();
        let mut bytes = 0;
        loop {
            let a = source.sync().generate_sync_message(&mut s1);
            if let Some(m) = a.clone() {
                let enc = m.encode();
                bytes += enc.len();
                target
                    .sync()
                    .receive_sync_message(&mut s2, automerge::sync::Message::decode(&enc).unwrap())
                    .unwrap();
            }
            let b = target.sync().generate_sync_message(&mut s2);
            if let Some(m) = b.clone() {
                let enc = m.encode();
                bytes += enc.len();
                source
                    .sync()
                    .receive_sync_message(&mut s1, automerge::sync::Message::decode(&enc).unwrap())
                    .unwrap();
            }
            if a.is_none() && b.is_none() {
                break;
            }
        }
        base_times.push(start.elapsed());
        base_bytes = bytes;
    }
    let customer_node = Node::spawn(customer, local()).await.unwrap();
    let ticket = customer_node.ticket();
    let mut times = Vec::new();
    let mut first_reads = Vec::new();
    for (_dir, shop, id) in shops {
        let start = Instant::now();
        let (mut shop, r) = sync_once(shop, &ticket, &local()).await;
        r.unwrap();
        times.push(start.elapsed());
        // The decoded view is built on the first read, once.
        let start = Instant::now();
        let n = shop.held_mut().list().unwrap()[0].values.as_ref().unwrap()["purchases"]
            .as_object()
            .unwrap()
            .len();
        first_reads.push(start.elapsed());
        assert_eq!(n, 10_000);
        let _ = id;
    }
    summary(
        "2c the grantee's first read of the share after it (builds and keeps the decoded view)",
        first_reads,
    );
    let served: u64 = customer_node
        .inspect(|v| v.access_log().list(&AuditFilter::default()).unwrap())
        .iter()
        .filter(|e| e.kind == AuditKind::SyncServed)
        .filter_map(|e| e.bytes)
        .sum::<u64>()
        / runs as u64;
    times.sort();
    base_times.sort();
    let (t, b) = (pct(&times, 0.5), pct(&base_times, 0.5));
    println!(
        "2b first full sync of 10,000 purchases over iroh (connect, hello, sync, durable at the grantee): \
         p50 {t:.2?}, {served} bytes served; bare in-memory Automerge sync: p50 {b:.2?}, {base_bytes} bytes; \
         ratio {:.2}x time, {:.2}x bytes",
        t.as_secs_f64() / b.as_secs_f64(),
        served as f64 / base_bytes as f64
    );
    customer_node.shutdown().await;
}

fn incremental(size: usize) {
    let cdir = tempfile::tempdir().unwrap();
    let mut customer = create(cdir.path());
    let records: Vec<PurchaseRecord> = (0..size).map(record).collect();
    for batch in records.chunks(100) {
        customer.records_mut().add_purchases(batch).unwrap();
    }
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    let mut ids = Vec::new();
    for i in 0..100 {
        let who = Identity::generate().public();
        let g = match i % 4 {
            0 => grant(who, &["purchases"], None),
            1 => grant(who, &["purchases"], Some("tag=tag3")),
            2 => grant(who, &["purchases.*.item", "purchases.*.rating"], None),
            _ => grant(who, &["profile.email", "profile.address"], None),
        };
        ids.push(customer.grants_mut().issue(g).unwrap().statement().id);
    }
    // Warm: every projection loaded once (as in a running node).
    customer.projections_mut().update(None).unwrap();
    let mut samples = Vec::new();
    for i in 0..40 {
        if i % 2 == 0 {
            customer.records_mut().add_purchase(&record(20_000 + i)).unwrap();
        } else {
            customer.records_mut().set_profile("email", &format!("e{i}@example.org")).unwrap();
        }
        let start = Instant::now();
        let changed = customer.projections_mut().update(None).unwrap();
        samples.push(start.elapsed());
        assert!(!changed.is_empty());
    }
    summary(
        &format!(
            "3 one edit on a {size}-purchase vault, 100 live grants: every affected projection updated, durable"
        ),
        samples,
    );
}

async fn fanout(n: usize) {
    let cdir = tempfile::tempdir().unwrap();
    let mut customer = create(cdir.path());
    for i in 0..10 {
        customer.records_mut().add_purchase(&record(i)).unwrap();
    }
    let mut grantees = Vec::new();
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let v = create(dir.path());
        customer.grants_mut().issue(grant(v.identity(), &["purchases"], None)).unwrap();
        grantees.push((dir, v));
    }
    drop(customer);
    let bin = vault_tests::vault_bin();
    let (mut serve, ticket) = vault_tests::bench::spawn_serve(cdir.path(), &[]);
    let pid = serve.id();
    let start = Instant::now();
    let mut nodes = Vec::new();
    let mut pending = grantees;
    while !pending.is_empty() {
        let batch: Vec<_> = pending.drain(..pending.len().min(50)).collect();
        let mut joins = Vec::new();
        for (dir, v) in batch {
            let ticket = ticket.clone();
            joins.push(tokio::spawn(async move {
                let (v, r) = sync_once(v, &ticket, &local()).await;
                r.unwrap();
                // Grantees here never edit: poll their files rarely, so that a thousand nodes in
                // one process do not compete with the issuer for the CPU.
                (dir, Node::spawn(v, NodeConfig { poll: Duration::from_secs(1), ..local() }).await.unwrap())
            }));
        }
        for j in joins {
            nodes.push(j.await.unwrap());
        }
    }
    println!("4  {n} grantees synced and subscribed in {:.1?}", start.elapsed());
    // Each grantee reads its share once (as a follower reading its feed would), which builds
    // its decoded view: the fan-out below then measures updates, not first reads.
    for (_, node) in &nodes {
        node.inspect(|v| v.held_mut().list().unwrap());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = proc_status(pid, "VmRSS");
    // One task per grantee notes when its copy first holds the new purchase.
    let nodes = std::sync::Arc::new(nodes);
    let mut arrivals = tokio::task::JoinSet::new();
    let start = Instant::now();
    for i in 0..nodes.len() {
        let nodes = nodes.clone();
        let mut changes = nodes[i].1.changes();
        arrivals.spawn(async move {
            let node = &nodes[i].1;
            loop {
                let has = node.inspect(|v| {
                    v.held_mut().list().unwrap()[0].values.as_ref().unwrap()["purchases"]
                        .as_object()
                        .unwrap()
                        .values()
                        .any(|p| p["item"] == "Fan-out item")
                });
                if has {
                    return start.elapsed();
                }
                assert!(start.elapsed() < Duration::from_secs(120), "fan-out did not complete");
                let _ = tokio::time::timeout(Duration::from_millis(50), changes.changed()).await;
            }
        });
    }
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args([
                "purchase",
                "add",
                "--item",
                "Fan-out item",
                "--seller",
                "Acme",
                "--price",
                "1",
                "--currency",
                "EUR",
            ])
            .env("VAULT_DIR", cdir.path())
            .env("VAULT_PASSPHRASE", "pw")
            .output()
            .map(|out| (out, cdir))
    });
    let (out, cdir) = out.await.unwrap().unwrap();
    let command = start.elapsed();
    assert!(out.status.success());
    let mut times = Vec::new();
    while let Some(t) = arrivals.join_next().await {
        times.push(t.unwrap());
    }
    times.sort();
    let last = *times.last().unwrap();
    println!(
        "4  fan-out: one new purchase (a `vault purchase add` process, {command:.1?} of it) reached all {n} grantees in {last:.2?} \
         (first {:.1?}, half {:.1?}, 99% {:.1?}); issuer `vault serve` RSS {rss_before} before, peak (VmHWM) {}",
        times[0],
        pct(&times, 0.5),
        pct(&times, 0.99),
        proc_status(pid, "VmHWM")
    );
    drop(cdir);
    let nodes = std::sync::Arc::try_unwrap(nodes).unwrap_or_else(|_| panic!("arrival tasks ended"));
    for (_, node) in nodes {
        node.shutdown().await;
    }
    let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
    let _ = serve.wait();
}

/// Runs the `vault` binary on `dir` `runs` times; returns the sorted wall times.
/// Times a whole command that opens the vault with the key the unlock agent lends: no
/// passphrase is given (see [`unlocked`]).
fn time_command(dir: &Path, args: &[&str], runs: usize) -> Vec<Duration> {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let out = Command::new(vault_tests::vault_bin())
                .args(args)
                .env("VAULT_DIR", dir)
                .env("XDG_RUNTIME_DIR", dir)
                .env_remove("VAULT_PASSPHRASE")
                .stdout(Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "vault {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples
}

/// Runs `vault unlock` (or, with `lock`, `vault lock`) for the vault in `dir`, its agent's
/// socket in `dir` too.
fn unlocked(dir: &Path, lock: bool) {
    let args: &[&str] = if lock { &["lock"] } else { &["unlock", "--for", "30m"] };
    let out = Command::new(vault_tests::vault_bin())
        .args(args)
        .env("VAULT_DIR", dir)
        .env("XDG_RUNTIME_DIR", dir)
        .env("VAULT_PASSPHRASE", "pw")
        .output()
        .unwrap();
    assert!(out.status.success(), "vault {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

async fn feed(friends: usize, purchases: usize, keep: Option<std::path::PathBuf>) {
    // With `keep=DIR`, the follower's vault stays in DIR (passphrase `pw`), to look into.
    let temp = tempfile::tempdir().unwrap();
    let fdir = keep.unwrap_or_else(|| temp.path().to_owned());
    let follower = create(&fdir);
    let me = follower.identity();
    let start = Instant::now();
    let mut issuers = Vec::new();
    for f in 0..friends {
        let dir = tempfile::tempdir().unwrap();
        let mut v = create(dir.path());
        let records: Vec<PurchaseRecord> = (0..purchases).map(|i| record(f * purchases + i)).collect();
        for chunk in records.chunks(500) {
            v.records_mut().add_purchases(chunk).unwrap();
        }
        v.grants_mut().issue(grant(me, &["purchases"], None)).unwrap();
        issuers.push((dir, v));
    }
    println!("5  built {friends} friends' vaults with {purchases} purchases each in {:.1?}", start.elapsed());
    let mut follower = follower;
    let mut nodes = Vec::new();
    for (dir, v) in issuers {
        // The friends edit through their nodes here: poll their files rarely, so that fifty
        // nodes in one process do not compete with the follower for the two cores.
        let node = Node::spawn(v, NodeConfig { poll: Duration::from_secs(1), ..local() }).await.unwrap();
        let (back, r) = sync_once(follower, &node.ticket(), &local()).await;
        r.unwrap();
        follower = back;
        nodes.push((dir, node));
    }
    let total = follower.network_mut().feed(&vault_core::FeedFilter::default()).unwrap().len();
    assert_eq!(total, friends * purchases);
    let mut lib = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let entries = follower.network_mut().feed(&vault_core::FeedFilter::default()).unwrap();
        lib.push(start.elapsed());
        assert_eq!(entries.len(), total);
    }
    drop(follower);
    // Build the binary before timing it.
    let _ = vault_tests::vault_bin();
    // Warm and unlocked, as a user would run them: the agent lends the key.
    unlocked(&fdir, false);
    let feed_cmd = time_command(&fdir, &["feed"], 10);
    let id_cmd = time_command(&fdir, &["id"], 10);
    let compare = time_command(&fdir, &["feed", "compare", "Item number 4242"], 10);
    let sellers = time_command(&fdir, &["feed", "sellers"], 10);
    let top = time_command(&fdir, &["feed", "top"], 10);
    let also = time_command(&fdir, &["feed", "also", "Item number 4242"], 10);
    unlocked(&fdir, true);
    summary(&format!("5a feed, in the library ({total} purchases from {friends} friends)"), lib);
    summary(
        &format!("5b `vault feed` printing all {total} purchases, whole command, warm"),
        feed_cmd.clone(),
    );
    summary("5c `vault feed compare ITEM`, whole command, warm", compare);
    summary("5g `vault feed sellers`, whole command, warm", sellers);
    summary("5h `vault feed top`, whole command, warm", top);
    summary("5i `vault feed also ITEM`, whole command, warm", also);
    summary("5d baseline: `vault id` (start, the key from the agent, print), same vault", id_cmd.clone());
    println!(
        "5  feed command minus baseline: {:.1?} (all whole commands here take the key from `vault unlock`'s agent)",
        pct(&feed_cmd, 0.5).saturating_sub(pct(&id_cmd, 0.5))
    );

    // Live: the follower runs its node; a friend adds a purchase through theirs.
    let follower = Vault::at(&fdir).unlock(&Passphrase::new("pw")).unwrap();
    let follower_node = Node::spawn(follower, local()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut changes = follower_node.changes();
    // Two rounds over the friends: the first update of each share since the node started,
    // then a later one.
    let (mut first, mut later) = (Vec::new(), Vec::new());
    for i in 0..2 * nodes.len() {
        let (_, friend) = &nodes[i % nodes.len()];
        let who = friend.inspect(|v| v.identity());
        let item = format!("Live purchase {i}");
        let start = Instant::now();
        let mut r = record(i);
        r.item = item.clone();
        r.date = "2027-01-01".into();
        friend.with_vault(|v| v.records_mut().add_purchase(&r).unwrap());
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(5), changes.changed()).await;
            let filter =
                vault_core::FeedFilter { from: Some(who), item: Some(item.clone()), ..Default::default() };
            if !follower_node.inspect(|v| v.network_mut().feed(&filter).unwrap()).is_empty() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "the purchase never arrived");
        }
        if i < nodes.len() { first.push(start.elapsed()) } else { later.push(start.elapsed()) }
    }
    summary(
        "5e a friend's new purchase to the follower's feed, loopback, durable both sides, first of each friend",
        first,
    );
    summary("5f the same, each friend's second", later);
    follower_node.shutdown().await;
    for (_, node) in nodes {
        node.shutdown().await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let fan =
        args.iter().find_map(|a| a.strip_prefix("fanout=")).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let only = args.iter().find_map(|a| a.strip_prefix("only=")).map(str::to_owned);
    let want = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let workers =
        args.iter().find_map(|a| a.strip_prefix("workers=")).and_then(|n| n.parse().ok()).unwrap_or(2);
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();
    if want("latency") {
        rt.block_on(latency());
    }
    if want("first-sync") {
        rt.block_on(first_sync());
    }
    if want("incremental") {
        // The same edit on a document ten times smaller: the cost should not change.
        incremental(1_000);
        incremental(10_000);
    }
    if want("fanout") {
        rt.block_on(fanout(fan));
    }
    if want("feed") {
        let friends =
            args.iter().find_map(|a| a.strip_prefix("friends=")).and_then(|n| n.parse().ok()).unwrap_or(50);
        let keep = args.iter().find_map(|a| a.strip_prefix("keep=")).map(std::path::PathBuf::from);
        rt.block_on(feed(friends, 2_000, keep));
    }
}
