//! Crashes at scale: `vault` processes SIGKILLed at random points of every kind of write, and
//! both nodes killed in the middle of a first sync, round after round, with a restart each time.
//! After every batch: every acknowledged write is there, `verify` is clean on both sides, the
//! grantee holds exactly what the issuer serves, and no share is left half-erased.
//!
//! `VAULT_SOAK_ROUNDS` sets the number of rounds (CI: the default, 100; the figure in
//! docs/reliability.md: `scripts/crash-soak.sh`, 1,000 rounds in a release build).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use vault_tests::{TestVault, json as run_json};

/// Rounds between two checks.
const BATCH: usize = 10;
/// Purchases in one import.
const IMPORT_SIZE: usize = 150;
/// Most grants to the seller live at once (more are revoked first).
const MAX_LIVE: usize = 4;
/// Requests one requester makes (below the per-peer daily limit).
const REQUESTS_PER_REQUESTER: usize = 30;

/// A `vault serve` on a fixed loopback port, so that a restart is found at the same address.
struct Node {
    child: Option<Child>,
    port: u16,
}

impl Node {
    fn start(v: &TestVault, port: u16) -> Node {
        let mut node = Node { child: None, port };
        node.restart(v);
        node
    }

    fn restart(&mut self, v: &TestVault) {
        self.kill();
        let bind = format!("127.0.0.1:{}", self.port);
        // The port of a killed node is free at once (UDP), but give the OS a few tries.
        for _ in 0..50 {
            let mut child = v
                .cmd(&["serve", "--no-relay", "--bind", &bind])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("vault serve starts");
            let mut line = String::new();
            let _ = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
            if line.starts_with("vault1") {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("vault serve did not start on {bind}");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A 16-character id in the vault's alphabet, unique for `n`.
fn record_id(prefix: char, n: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut id = String::from(prefix);
    for i in (0..15).rev() {
        id.push(ALPHABET[((u128::from(n) >> (i * 5)) & 31) as usize] as char);
    }
    id
}

/// Runs `args` on `v` and SIGKILLs it after a random part of `typical`. Returns its standard
/// output when it finished successfully (the write is acknowledged), `None` when killed first.
fn killed_at_random(v: &TestVault, args: &[&str], typical: Duration, rng: &mut StdRng) -> Option<Value> {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let mut child = v.cmd(&full).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(typical.mul_f64(rng.random_range(0.0..1.3)));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "vault {args:?} panicked: {stderr}");
    if out.status.success() && !out.stdout.is_empty() {
        Some(serde_json::from_slice(&out.stdout).expect("one JSON document"))
    } else {
        None
    }
}

/// What the soak knows was acknowledged.
#[derive(Default)]
struct Acked {
    prefs: BTreeSet<String>,
    purchases: BTreeSet<String>,
    grants: BTreeSet<String>,
    revoked: BTreeSet<String>,
    approved: BTreeSet<String>,
    /// Contact name -> present, for the last acknowledged change of each.
    contacts: BTreeMap<String, bool>,
}

struct Soak {
    customer: TestVault,
    seller: TestVault,
    customer_node: Node,
    seller_node: Node,
    requesters: Vec<TestVault>,
    strangers: Vec<String>,
    import: tempfile::TempDir,
    acked: Acked,
    rng: StdRng,
    /// Typical duration of each kind of write, from the ones that completed.
    typical: BTreeMap<&'static str, Duration>,
    killed: usize,
    completed: usize,
    approvals: usize,
    node_kills: usize,
}

impl Soak {
    fn new(seed: u64) -> Soak {
        let (customer, seller) = (TestVault::new(), TestVault::new());
        customer.ok(&["profile", "set", "email", "ada@example.org"]);
        let customer_node = Node::start(&customer, free_port());
        let seller_node = Node::start(&seller, free_port());
        let (c_ticket, s_ticket) = (ticket(&customer), ticket(&seller));
        customer.ok(&["contact", "add", "shop", &s_ticket]);
        seller.ok(&["contact", "add", "ada", &c_ticket]);
        let strangers = (0..3).map(|_| ticket(&TestVault::new())).collect();
        Soak {
            customer,
            seller,
            customer_node,
            seller_node,
            requesters: Vec::new(),
            strangers,
            import: tempfile::tempdir().unwrap(),
            acked: Acked::default(),
            rng: StdRng::seed_from_u64(seed),
            typical: BTreeMap::new(),
            killed: 0,
            completed: 0,
            approvals: 0,
            node_kills: 0,
        }
    }

    /// Runs one write of kind `kind`, killed at a random point.
    fn write(&mut self, kind: &'static str, args: &[&str]) -> Option<Value> {
        let typical = self.typical.get(kind).copied().unwrap_or(Duration::from_millis(300));
        let start = Instant::now();
        let out = killed_at_random(&self.customer, args, typical, &mut self.rng);
        match out {
            Some(_) => {
                self.completed += 1;
                // A running mean, weighted to the recent ones.
                let took = start.elapsed();
                self.typical.insert(kind, (typical * 3 + took) / 4);
            }
            None => {
                self.killed += 1;
                // Killed before it finished: it may take longer than thought.
                self.typical.insert(kind, typical.mul_f64(1.25));
            }
        }
        out
    }

    fn live_grants_to_seller(&self) -> Vec<String> {
        let seller = self.seller.ok(&["--json", "id"]);
        let seller: Value = serde_json::from_str(&seller).unwrap();
        grants(&self.customer)
            .into_iter()
            .filter(|g| g["status"] == "active" && g["audience"] == seller["identity"])
            .map(|g| g["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn grant(&mut self, kind: &'static str) {
        if self.live_grants_to_seller().len() >= MAX_LIVE {
            return self.revoke();
        }
        let purpose = format!("orders {}", self.completed + self.killed);
        if let Some(out) =
            self.write(kind, &["grant", "shop", "--fields", "purchases", "--purpose", &purpose])
        {
            self.acked.grants.insert(out["id"].as_str().unwrap().to_owned());
        }
    }

    fn revoke(&mut self) {
        let Some(id) = self.live_grants_to_seller().into_iter().next() else { return self.grant("grant") };
        if self.write("revoke", &["revoke", &id]).is_some() {
            self.acked.revoked.insert(id);
        }
    }

    fn round(&mut self, i: usize) {
        match i % 10 {
            0 => {
                let key = format!("k{i}");
                if self.write("pref", &["pref", "set", &key, "v"]).is_some() {
                    self.acked.prefs.insert(key);
                }
            }
            1 => {
                let item = format!("item {i}");
                let args = [
                    "purchase",
                    "add",
                    "--item",
                    &item,
                    "--seller",
                    "Acme",
                    "--price",
                    "2.50",
                    "--currency",
                    "EUR",
                ];
                if let Some(out) = self.write("purchase", &args) {
                    self.acked.purchases.insert(out["id"].as_str().unwrap().to_owned());
                }
            }
            2 => self.import(i),
            3 => self.grant("grant"),
            4 | 9 => self.revoke(),
            5 => self.approve(i),
            6 => self.contact(i),
            7 => {
                // The customer's node killed while it serves a first sync.
                self.grant("grant");
                self.sleep_random(1500);
                self.customer_node.restart(&self.customer);
                self.node_kills += 1;
            }
            8 => {
                // The seller's node killed while it receives a first sync.
                self.grant("grant");
                self.sleep_random(1500);
                self.seller_node.restart(&self.seller);
                self.node_kills += 1;
            }
            _ => unreachable!(),
        }
    }

    fn sleep_random(&mut self, max_ms: u64) {
        std::thread::sleep(Duration::from_millis(self.rng.random_range(0..max_ms)));
    }

    /// An import big enough to make the change log compact now and then.
    fn import(&mut self, i: usize) {
        let ids: Vec<String> =
            (0..IMPORT_SIZE).map(|k| record_id('m', (i * IMPORT_SIZE + k) as u64)).collect();
        let purchases: serde_json::Map<String, Value> = ids
            .iter()
            .map(|id| {
                let record = json!({
                    "item": format!("imported {id}"),
                    "seller": "Bulk",
                    "date": "2026-01-02",
                    "price": {"amount_minor": 1999, "currency": "EUR"},
                    "review": "x".repeat(300),
                });
                (id.clone(), record)
            })
            .collect();
        let file = self.import.path().join(format!("import-{i}.json"));
        let export =
            json!({"format": "vault-export/v1", "profile": {}, "preferences": {}, "purchases": purchases});
        std::fs::write(&file, serde_json::to_vec(&export).unwrap()).unwrap();
        if self.write("import", &["import", file.to_str().unwrap()]).is_some() {
            self.acked.purchases.extend(ids);
        }
    }

    /// A seller's consent request, delivered at once, then approved (killed at random).
    fn approve(&mut self, i: usize) {
        if self.requesters.len() <= self.approvals / REQUESTS_PER_REQUESTER {
            let requester = TestVault::new();
            requester.ok(&["contact", "add", "ada", &ticket(&self.customer)]);
            self.requesters.push(requester);
        }
        let requester = self.requesters.last().unwrap();
        let purpose = format!("newsletter {i}");
        let args = ["request", "ada", "--fields", "profile.email", "--purpose", &purpose, "--no-relay"];
        let sent = run_json(requester, &args);
        assert_eq!(sent["status"], "pending", "delivered to the running node: {sent}");
        let id = sent["id"].as_str().unwrap().to_owned();
        self.approvals += 1;
        if self.write("approve", &["approve", &id]).is_some() {
            self.acked.approved.insert(id);
        }
    }

    /// Adds or removes a contact (whichever changes the state).
    fn contact(&mut self, i: usize) {
        let k = i / 10 % self.strangers.len();
        let name = format!("stranger-{k}");
        let present = contacts(&self.customer).contains(&name);
        let ticket = self.strangers[k].clone();
        let args: Vec<&str> =
            if present { vec!["contact", "rm", &name] } else { vec!["contact", "add", &name, &ticket] };
        if self.write("contact", &args).is_some() {
            self.acked.contacts.insert(name, !present);
        } else {
            // Killed: the change may or may not have landed, so nothing is promised about
            // this contact until a later change of it is acknowledged.
            self.acked.contacts.remove(&name);
        }
    }

    /// Every acknowledged write is there; both vaults verify; the seller converges.
    fn check(&mut self) {
        let export = run_json(&self.customer, &["export", "--format", "json"]);
        for key in &self.acked.prefs {
            assert!(export["preferences"].get(key).is_some(), "acknowledged preference {key} lost");
        }
        let purchases: BTreeSet<String> = export["purchases"].as_object().unwrap().keys().cloned().collect();
        for id in &self.acked.purchases {
            assert!(purchases.contains(id), "acknowledged purchase {id} lost");
        }
        let grants = grants(&self.customer);
        let status: BTreeMap<String, String> = grants
            .iter()
            .map(|g| (g["id"].as_str().unwrap().to_owned(), g["status"].as_str().unwrap().to_owned()))
            .collect();
        for id in &self.acked.grants {
            assert!(status.contains_key(id), "acknowledged grant {id} lost");
        }
        for id in &self.acked.revoked {
            assert_eq!(
                status.get(id).map(String::as_str),
                Some("revoked"),
                "acknowledged revocation of {id} lost"
            );
        }
        let requests = run_json(&self.customer, &["requests", "--all"]);
        for id in &self.acked.approved {
            let r = requests["requests"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str());
            assert_eq!(
                r.map(|r| r["status"].clone()),
                Some(json!("approved")),
                "acknowledged approval {id} lost"
            );
        }
        let contacts = contacts(&self.customer);
        for (name, present) in &self.acked.contacts {
            assert_eq!(contacts.contains(name), *present, "acknowledged contact change of {name} lost");
        }
        for v in [&self.customer, &self.seller] {
            let verify = run_json(v, &["verify"]);
            assert_eq!(verify["ok"], true, "{verify}");
        }
        self.converge(&purchases);
    }

    /// The seller holds exactly the customer's purchases under every live grant, and nothing
    /// under an ended one, whose erasure the customer has confirmed.
    fn converge(&self, purchases: &BTreeSet<String>) {
        let seller: Value = serde_json::from_str(&self.seller.ok(&["--json", "id"])).unwrap();
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < vault_tests::HANG {
            match self.diverged(&seller["identity"], purchases) {
                None => return,
                Some(why) => last = why,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the seller did not converge: {last}");
    }

    fn diverged(&self, seller: &Value, purchases: &BTreeSet<String>) -> Option<String> {
        let shared = vault_tests::json_or_no(&self.seller, &["shared"]);
        let empty = Vec::new();
        let shares = shared["shares"].as_array().unwrap_or(&empty);
        for g in grants(&self.customer).iter().filter(|g| g["audience"] == *seller) {
            let id = g["id"].as_str().unwrap();
            let held = shares.iter().find(|s| s["grant"] == id);
            if g["status"] == "active" {
                let Some(held) = held.filter(|s| s["status"] == "live") else {
                    return Some(format!("grant {id} is not live at the seller"));
                };
                let got: BTreeSet<String> = held["values"]["purchases"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                if &got != purchases {
                    return Some(format!("grant {id}: {} of {} purchases", got.len(), purchases.len()));
                }
            } else {
                if held.is_some_and(|s| !s["values"].is_null()) {
                    return Some(format!("ended grant {id} still has values at the seller"));
                }
                if g["erasure_confirmed_at"].is_null() {
                    return Some(format!("ended grant {id}: erasure not confirmed"));
                }
            }
        }
        None
    }
}

fn ticket(v: &TestVault) -> String {
    run_json(v, &["id"])["ticket"].as_str().unwrap().to_owned()
}

fn grants(v: &TestVault) -> Vec<Value> {
    vault_tests::json_or_no(v, &["grants", "--all"])["grants"].as_array().cloned().unwrap_or_default()
}

fn contacts(v: &TestVault) -> BTreeSet<String> {
    run_json(v, &["contact", "list"])["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn kills_at_every_kind_of_write_lose_nothing_acknowledged() {
    let rounds: usize = std::env::var("VAULT_SOAK_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(100);
    let seed =
        std::env::var("VAULT_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("crash soak: {rounds} rounds, seed {seed} (VAULT_SOAK_SEED to replay)");
    let start = Instant::now();
    let mut soak = Soak::new(seed);
    eprintln!("crash soak: set up in {:.1?}", start.elapsed());
    for i in 0..rounds {
        let t = Instant::now();
        soak.round(i);
        if std::env::var_os("VAULT_SOAK_TRACE").is_some() {
            eprintln!("round {i}: {:.1?}", t.elapsed());
        }
        if i % BATCH == BATCH - 1 || i + 1 == rounds {
            soak.check();
        }
    }
    eprintln!(
        "crash soak: {rounds} rounds in {:.0?}: {} writes acknowledged, {} killed before, {} node kills; \
         {} purchases, {} grants, {} revocations, {} approvals acknowledged; all present, verify clean, converged",
        start.elapsed(),
        soak.completed,
        soak.killed,
        soak.node_kills,
        soak.acked.purchases.len(),
        soak.acked.grants.len(),
        soak.acked.revoked.len(),
        soak.acked.approved.len(),
    );
    assert!(soak.killed > 0 && soak.completed > 0, "kills should land both before and after commits");
}
