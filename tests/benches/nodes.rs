//! A seller across nodes, against a real PostgreSQL (`VAULT_TEST_PG`, see scripts/pg-throwaway.sh):
//! the same N customers (default 300, `-- customers=N`) served by 1, 2 and 3 seller nodes
//! (`-- nodes=1,2,3`), each node a `vault serve` process of its own device of one seller identity
//! (linked with `vault device add`), all writing into one database. Customers run in this
//! process and get the tickets of the seller's nodes in turn (as a web page or a load balancer
//! would hand them out); each customer's own node is the first of its rendezvous order.
//!
//! Reports, per run: the fill (nodes started -> all N consents in PostgreSQL), then for one edit
//! from every customer (once the first contacts' sessions went quiet): each node's share of the
//! customers (rows it wrote last), of the CPU spent on the edits, and its RSS.
//!
//! `eval "$(scripts/pg-throwaway.sh start)"; cargo bench -p vault-tests --bench nodes`

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use vault_sync::Node;
use vault_tests::TestVault;
use vault_tests::bench::{create, local, proc_cpu, proc_status};
use vault_tests::pairing::{free_addr, pair};
use vault_tests::pg::TestDb;

/// Quiet sessions close after this long at the seller's nodes.
const IDLE: &str = "2s";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let list = |key: &str, default: Vec<usize>| -> Vec<usize> {
        args.iter()
            .find_map(|a| a.strip_prefix(key))
            .map(|l| l.split(',').filter_map(|n| n.parse().ok()).collect())
            .unwrap_or(default)
    };
    let customers = list("customers=", vec![300]);
    let nodes = list("nodes=", vec![1, 2, 3]);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    for &n in &customers {
        for &k in &nodes {
            let db = TestDb::new();
            runtime.block_on(run(&db, k, n));
        }
    }
}

/// A seller node: its vault, its process, its device.
struct SellerNode {
    vault: TestVault,
    process: std::process::Child,
    ticket: vault_core::Ticket,
    device: String,
}

impl Drop for SellerNode {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn mirror_set(v: &TestVault, url: &str) {
    let mut child = v.cmd(&["mirror", "set"]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{url}\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "vault mirror set");
}

fn start(v: TestVault, bind: &str) -> SellerNode {
    let mut process = v
        .cmd(&["serve", "--no-relay", "--bind", bind, "--idle-close", IDLE])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("vault serve starts");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(process.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    process.stdout = Some(out.into_inner());
    let ticket = line.trim().parse().expect("the ticket first");
    let id: serde_json::Value = serde_json::from_str(&v.ok(&["--json", "id"])).unwrap();
    let device = id["device"].as_str().unwrap().to_owned();
    SellerNode { vault: v, process, ticket, device }
}

/// `k` linked nodes of one seller, each mirroring into `db`, each synced with the first.
fn seller(db: &TestDb, k: usize) -> Vec<SellerNode> {
    let first = TestVault::new();
    mirror_set(&first, &db.url());
    let mut nodes = vec![start(first, &free_addr())];
    for i in 1..k {
        let v = TestVault::uninitialised();
        pair(&nodes[0].vault, &v, &format!("node{i}"));
        mirror_set(&v, &db.url());
        nodes.push(start(v, &free_addr()));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list: serde_json::Value =
            serde_json::from_str(&nodes[0].vault.ok(&["--json", "device", "list"])).unwrap();
        let synced = list["devices"].as_array().unwrap().iter().filter(|d| !d["last_seen"].is_null()).count();
        let up =
            db.try_count("SELECT count(*) FROM vault.nodes WHERE seen_at > now() - interval '5 seconds'");
        if synced + 1 >= k && up == Some(k as i64) {
            return nodes;
        }
        assert!(Instant::now() < deadline, "the seller's nodes did not sync");
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn run(db: &TestDb, k: usize, n: usize) {
    let nodes = tokio::task::block_in_place(|| seller(db, k));
    // Let the first node's roster (the devices' addresses) reach the others.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let customers: Vec<_> = (0..n)
        .map(|i| {
            let dir = tempfile::tempdir().unwrap();
            let ticket = &nodes[i % k].ticket;
            let mut v = create(dir.path());
            v.records_mut().set_profile("email", &format!("customer{i}@example.org")).unwrap();
            v.contacts_mut().add("shop", ticket).unwrap();
            v.grants_mut()
                .issue(vault_tests::new_grant(ticket.identity(), &["profile.email"], "orders"))
                .unwrap();
            (dir, v)
        })
        .collect();
    let count = |sql: &str| tokio::task::block_in_place(|| db.count(sql));
    let cpu = || nodes.iter().map(|s| proc_cpu(s.process.id())).collect::<Vec<_>>();
    let start = Instant::now();
    let mut running = Vec::new();
    for (dir, v) in customers {
        let node = Node::spawn(v, vault_sync::NodeConfig { poll: Duration::from_secs(60), ..local() })
            .await
            .unwrap();
        running.push((dir, node));
    }
    while count("SELECT count(*) FROM vault.consent_values") as usize != n {
        assert!(start.elapsed() < Duration::from_secs(600), "the mirror did not fill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "nodes {k}: all {n} consents in PostgreSQL {:.2?} after the customers' nodes started",
        start.elapsed()
    );

    // The first contacts' sessions go quiet; then every customer edits once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = cpu();
    let start = Instant::now();
    for (i, (_, node)) in running.iter().enumerate() {
        node.with_vault(|v| {
            v.records_mut().set_profile("email", &format!("customer{i}@edited.example")).unwrap()
        });
    }
    // At most two minutes: an edit that did not arrive by then is reported, not waited for.
    let edited = "SELECT count(*) FROM vault.consent_values WHERE value_text LIKE '%@edited.example'";
    while count(edited) as usize != n && start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = start.elapsed();
    let arrived = count(edited) as usize;
    if arrived != n {
        println!("nodes {k}: only {arrived} of the {n} edits in PostgreSQL after {took:.2?}");
    }
    let spent: Vec<Duration> = cpu().iter().zip(&before).map(|(a, b)| a.saturating_sub(*b)).collect();
    let total: Duration = spent.iter().sum();
    println!("nodes {k}: one edit from each of the {n} customers in PostgreSQL {took:.2?}");
    for (i, s) in nodes.iter().enumerate() {
        let rows = count(&format!("SELECT count(*) FROM vault.consents WHERE node = '{}'", s.device));
        println!(
            "nodes {k}: node {i}: {:.0}% of the customers (1/{k} = {:.0}%), {:.0}% of the edits' CPU ({:.2?}), RSS {}",
            100.0 * rows as f64 / n as f64,
            100.0 / k as f64,
            100.0 * spent[i].as_secs_f64() / total.as_secs_f64().max(1e-9),
            spent[i],
            proc_status(s.process.id(), "VmRSS"),
        );
    }
    // The sessions go quiet, and each node lets go of the customers another serves (the
    // first contacts' and the ones it stood in for).
    tokio::time::sleep(Duration::from_secs(15)).await;
    for (i, s) in nodes.iter().enumerate() {
        let shared = tokio::task::block_in_place(|| vault_tests::json_or_no(&s.vault, &["shared"]));
        let held =
            shared["shares"].as_array().map_or(0, |a| a.iter().filter(|x| x["status"] == "live").count());
        println!(
            "nodes {k}: node {i}: once quiet, holds {:.0}% of the customers' shares ({held}), RSS {}",
            100.0 * held as f64 / n as f64,
            proc_status(s.process.id(), "VmRSS"),
        );
    }
    for (_, node) in running {
        node.shutdown().await;
    }
}
