//! The seller at scale, against a real PostgreSQL (`VAULT_TEST_PG`, see scripts/pg-throwaway.sh):
//! one seller (`vault serve` with a mirror, a separate process) and N customers (default 1,000,
//! `-- customers=N`), each with a node running in this process and a grant of two profile fields
//! to the seller. Measures the time until the seller's PostgreSQL holds all N consents with their
//! values, the seller node's RSS, and one customer's edit to PostgreSQL (p50/p99); against
//! PostgreSQL's own insert throughput in the same run (the same rows inserted bare: one
//! transaction per customer, and one transaction for all).
//!
//! Several sizes in one run: `-- customers=300,2000,10000`. Past [`PER_PROCESS`] customers,
//! the rest run in helper processes (this benchmark started again as `host`), as one process
//! may not hold the sockets and files of more customers' nodes; the edits are made on this
//! process's customers.
//!
//! `eval "$(scripts/pg-throwaway.sh start)"; cargo bench -p vault-tests --bench mirror`

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vault_sync::Node;
use vault_tests::bench::{create, local, proc_cpu, proc_status, spawn_serve, summary};
use vault_tests::pg::TestDb;

/// The same rows the mirror writes, inserted bare: one transaction per customer, then all in one.
fn bare_inserts(db: &TestDb, n: usize) -> (Duration, Duration) {
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE bare_consents (customer text, grant_id text, purpose text, receipt jsonb, PRIMARY KEY (customer, grant_id));
         CREATE TABLE bare_values (customer text, grant_id text, path text, value jsonb, value_text text,
                                   PRIMARY KEY (customer, grant_id, path));",
    )
    .unwrap();
    let mut run = |per_customer: bool, tag: &str| {
        let start = Instant::now();
        let mut tx = c.transaction().unwrap();
        for i in 0..n {
            let (cust, grant) = (format!("{tag}customer{i}"), format!("grant{i}"));
            let receipt = serde_json::json!({ "consentReceiptID": grant, "purpose": "orders" });
            tx.execute("INSERT INTO bare_consents VALUES ($1, $2, 'orders', $3)", &[&cust, &grant, &receipt])
                .unwrap();
            for (path, v) in [("profile.email", "someone@example.org"), ("profile.name", "Some One")] {
                tx.execute(
                    "INSERT INTO bare_values VALUES ($1, $2, $3, $4, $5)",
                    &[&cust, &grant, &path, &serde_json::json!(v), &v],
                )
                .unwrap();
            }
            if per_customer {
                tx.commit().unwrap();
                tx = c.transaction().unwrap();
            }
        }
        tx.commit().unwrap();
        start.elapsed()
    };
    let each = run(true, "a");
    let all = run(false, "b");
    (each, all)
}

/// The test database's client blocks on its own runtime: run it off this one's worker.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The most customers' nodes one process runs (each holds a few sockets and files; this
/// machine allows 20,000 open files per process).
const PER_PROCESS: usize = 2000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(spec) = args.iter().find_map(|a| a.strip_prefix("host=")) {
        return host(spec);
    }
    let sizes: Vec<usize> = args
        .iter()
        .find_map(|a| a.strip_prefix("customers="))
        .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1000]);
    for n in sizes {
        let db = TestDb::new();
        let (each, all) = bare_inserts(&db, n);
        println!(
            "baseline: PostgreSQL, the same {n} consents and {} values inserted bare: one transaction per customer {each:.2?}, one for all {all:.2?}",
            2 * n
        );
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(seller(&db, n));
    }
}

/// One customer, granting the seller two profile fields.
fn customer(i: usize, ticket: &vault_core::Ticket) -> (tempfile::TempDir, vault_core::Vault) {
    let dir = tempfile::tempdir().unwrap();
    let mut v = create(dir.path());
    v.records_mut().set_profile("email", &format!("customer{i}@example.org")).unwrap();
    v.records_mut().set_profile("name", &format!("Customer {i}")).unwrap();
    v.contacts_mut().add("shop", ticket).unwrap();
    v.grants_mut()
        .issue(vault_tests::new_grant(ticket.identity(), &["profile.email", "profile.name"], "orders"))
        .unwrap();
    (dir, v)
}

/// The customers' nodes look at their vault files once a minute, not every second: nothing else
/// writes to them here (edits go through the node, which wakes at once), and ten thousand nodes
/// each polling every second took both cores.
async fn spawn_nodes(
    customers: Vec<(tempfile::TempDir, vault_core::Vault)>,
) -> Vec<(tempfile::TempDir, Node)> {
    let mut nodes = Vec::new();
    for (dir, v) in customers {
        let node = Node::spawn(v, vault_sync::NodeConfig { poll: Duration::from_secs(60), ..local() })
            .await
            .unwrap();
        nodes.push((dir, node));
    }
    nodes
}

/// A helper process (`host=FIRST,COUNT,TICKET`): makes its customers, says `made`, starts their
/// nodes on a line from its parent, says `started`, and runs them until its input closes.
fn host(spec: &str) {
    let mut parts = spec.splitn(3, ',');
    let first: usize = parts.next().unwrap().parse().unwrap();
    let count: usize = parts.next().unwrap().parse().unwrap();
    let ticket: vault_core::Ticket = parts.next().unwrap().parse().unwrap();
    let customers: Vec<_> = (first..first + count).map(|i| customer(i, &ticket)).collect();
    println!("made");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let nodes = spawn_nodes(customers).await;
        println!("started");
        blocking(|| {
            let _ = std::io::stdin().lock().read_line(&mut String::new());
        });
        for (_, node) in nodes {
            node.shutdown().await;
        }
    });
}

/// How long a quiet session lives at the seller here.
const IDLE: Duration = Duration::from_secs(10);

/// Sets `email` on `node`'s vault; returns how long until the seller's PostgreSQL has it.
async fn edit_to_postgres(node: &Node, client: &mut postgres::Client, email: &str) -> Duration {
    let id = node.with_vault(|v| {
        v.records_mut().set_profile("email", email).unwrap();
        v.identity().to_string()
    });
    let start = Instant::now();
    loop {
        let got: Option<String> = blocking(|| {
            client
                .query_opt("SELECT email FROM vault.profiles WHERE customer = $1", &[&id])
                .unwrap()
                .and_then(|r| r.get(0))
        });
        if got.as_deref() == Some(email) {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "an edit did not arrive");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn seller(db: &TestDb, n: usize) {
    // The seller, with its mirror attached, as its own process.
    let sdir = tempfile::tempdir().unwrap();
    {
        let mut seller = create(sdir.path());
        seller.mirror_mut().attach(&db.url()).unwrap();
    }
    // Sessions quiet for IDLE close, so that what the seller holds after the fill is what it
    // keeps for customers who are not active.
    let idle_arg = format!("{}s", IDLE.as_secs());
    let (mut serve, ticket) = spawn_serve(sdir.path(), &["--idle-close", &idle_arg]);
    let pid = serve.id();

    // N customers: the first PER_PROCESS here, the rest in helper processes.
    let own = n.min(PER_PROCESS);
    let mut hosts: Vec<std::process::Child> = (own..n)
        .step_by(PER_PROCESS)
        .map(|first| {
            let count = PER_PROCESS.min(n - first);
            Command::new(std::env::current_exe().unwrap())
                .arg(format!("host={first},{count},{ticket}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("a helper process starts")
        })
        .collect();
    let customers: Vec<_> = (0..own).map(|i| customer(i, &ticket)).collect();
    let said = |host: &mut std::process::Child, what: &str| {
        let mut line = String::new();
        let out = host.stdout.as_mut().unwrap();
        // One byte at a time: the pipe is read again later.
        let mut byte = [0u8];
        while std::io::Read::read(out, &mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        assert_eq!(line, what, "a helper process failed");
    };
    for host in &mut hosts {
        said(host, "made");
    }
    let me = std::process::id();
    let helpers: Vec<u32> = hosts.iter().map(|h| h.id()).collect();
    let customers_cpu = || proc_cpu(me) + helpers.iter().map(|p| proc_cpu(*p)).sum::<Duration>();
    let (start, cpu_before, own_before) = (Instant::now(), proc_cpu(pid), customers_cpu());
    for host in &mut hosts {
        host.stdin.as_mut().unwrap().write_all(b"start\n").unwrap();
    }
    let nodes = spawn_nodes(customers).await;
    for host in &mut hosts {
        blocking(|| said(host, "started"));
    }
    let spawned = start.elapsed();
    let count = |sql: &str| blocking(|| db.count(sql));
    loop {
        if count("SELECT count(*) FROM vault.profiles WHERE email IS NOT NULL AND name IS NOT NULL") as usize
            == n
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600).max(Duration::from_millis(100) * n as u32),
            "the mirror did not fill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let filled = start.elapsed();
    println!(
        "seller: all {n} consents with their values in PostgreSQL {filled:.2?} after the customers' nodes started \
         ({spawned:.2?} of it starting them); seller `vault serve` RSS {}, peak {}",
        proc_status(pid, "VmRSS"),
        proc_status(pid, "VmHWM")
    );
    let (cpu, theirs) = (proc_cpu(pid) - cpu_before, customers_cpu() - own_before);
    println!(
        "seller: CPU during the fill {cpu:.2?}, {:.2?} per customer; the {n} customers' nodes (this process \
         and its helpers, on the same cores) {theirs:.2?}",
        cpu / n as u32
    );

    // Every session idle: what the seller keeps per customer who is not active.
    tokio::time::sleep(IDLE * 2 + Duration::from_secs(5)).await;
    println!(
        "seller: sessions idle ({IDLE:?} without a word closes one): `vault serve` RSS {}, {n} customers",
        proc_status(pid, "VmRSS")
    );

    // One customer's edit to the seller's PostgreSQL: first with the session idle (the
    // customer offers, the seller dials back), then again at once, the session live.
    let mut client = blocking(|| db.client());
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for round in 0..40 {
        let (_, node) = &nodes[(round * 7919) % own];
        for (i, samples) in [&mut cold, &mut warm].into_iter().enumerate() {
            let email = format!("edit{round}.{i}@example.org");
            samples.push(edit_to_postgres(node, &mut client, &email).await);
        }
    }
    summary(&format!("seller: one customer's edit to PostgreSQL, {n} customers"), warm);
    summary(
        &format!("seller: one idle customer's edit to PostgreSQL (its session closed), {n} customers"),
        cold,
    );
    blocking(|| drop(client));
    for (_, node) in nodes {
        node.shutdown().await;
    }
    for mut host in hosts {
        drop(host.stdin.take());
        let _ = host.wait();
    }
    let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
    let _ = serve.wait();
}
