//! The seller at scale, against a real PostgreSQL (`VAULT_TEST_PG`, see scripts/pg-throwaway.sh):
//! one seller (`vault serve` with a mirror, a separate process) and N customers (default 1,000,
//! `-- customers=N`), each with a node running in this process and a grant of two profile fields
//! to the seller. Measures the time until the seller's PostgreSQL holds all N consents with their
//! values, the seller node's RSS, and one customer's edit to PostgreSQL (p50/p99); against
//! PostgreSQL's own insert throughput in the same run (the same rows inserted bare: one
//! transaction per customer, and one transaction for all).
//!
//! `eval "$(scripts/pg-throwaway.sh start)"; cargo bench -p vault-tests --bench mirror`

use std::process::Command;
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

fn main() {
    let n: usize = std::env::args()
        .find_map(|a| a.strip_prefix("customers=").and_then(|n| n.parse().ok()))
        .unwrap_or(1000);
    let db = TestDb::new();
    let (each, all) = bare_inserts(&db, n);
    println!(
        "baseline: PostgreSQL, the same {n} consents and {} values inserted bare: one transaction per customer {each:.2?}, one for all {all:.2?}",
        2 * n
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(seller(&db, n));
}

async fn seller(db: &TestDb, n: usize) {
    // The seller, with its mirror attached, as its own process.
    let sdir = tempfile::tempdir().unwrap();
    {
        let mut seller = create(sdir.path());
        seller.mirror_mut().attach(&db.url()).unwrap();
    }
    let (mut serve, ticket) = spawn_serve(sdir.path());
    let pid = serve.id();
    let seller_id = ticket.identity();

    // N customers, each granting the seller two profile fields.
    let mut customers = Vec::new();
    for i in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let mut v = create(dir.path());
        v.records_mut().set_profile("email", &format!("customer{i}@example.org")).unwrap();
        v.records_mut().set_profile("name", &format!("Customer {i}")).unwrap();
        v.contacts_mut().add("shop", &ticket).unwrap();
        v.grants_mut()
            .issue(vault_tests::new_grant(seller_id, &["profile.email", "profile.name"], "orders"))
            .unwrap();
        customers.push((dir, v));
    }
    let me = std::process::id();
    let (start, cpu_before, own_before) = (Instant::now(), proc_cpu(pid), proc_cpu(me));
    let mut nodes = Vec::new();
    for (dir, v) in customers {
        let node =
            Node::spawn(v, vault_sync::NodeConfig { poll: Duration::from_secs(1), ..local() }).await.unwrap();
        nodes.push((dir, node));
    }
    let spawned = start.elapsed();
    let count = |sql: &str| blocking(|| db.count(sql));
    loop {
        if count("SELECT count(*) FROM vault.profiles WHERE email IS NOT NULL AND name IS NOT NULL") as usize
            == n
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "the mirror did not fill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let filled = start.elapsed();
    println!(
        "seller: all {n} consents with their values in PostgreSQL {filled:.2?} after the customers' nodes started \
         ({spawned:.2?} of it starting them); seller `vault serve` RSS {}, peak {}",
        proc_status(pid, "VmRSS"),
        proc_status(pid, "VmHWM")
    );
    let (cpu, own) = (proc_cpu(pid) - cpu_before, proc_cpu(me) - own_before);
    println!(
        "seller: CPU during the fill {cpu:.2?}, {:.2?} per customer; the {n} customers' nodes (all in this one \
         process, sharing its cores) {own:.2?}",
        cpu / n as u32
    );

    // One customer's edit to the seller's PostgreSQL.
    let mut client = blocking(|| db.client());
    let mut samples = Vec::new();
    for round in 0..40 {
        let (_, node) = &nodes[(round * 7919) % n];
        let email = format!("edit{round}@example.org");
        let id = node.with_vault(|v| {
            v.records_mut().set_profile("email", &email).unwrap();
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
            if got.as_deref() == Some(email.as_str()) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "an edit did not arrive");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(start.elapsed());
    }
    summary(&format!("seller: one customer's edit to PostgreSQL, {n} customers"), samples);
    blocking(|| drop(client));
    for (_, node) in nodes {
        node.shutdown().await;
    }
    let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
    let _ = serve.wait();
}
