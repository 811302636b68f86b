//! Separate hosts: the customer, a seller and a friend each in a network namespace of their own,
//! joined by veth pairs to a bridge in a fourth namespace (all made by the test and removed
//! after). Each runs `vault serve` on its own address; the seller's and the friend's journeys
//! run across them, then the customer's node moves to another address and the others find it
//! again. Traffic never leaves the namespaces the test made.
//!
//! Needs root and iproute2 (`ip netns`): where namespaces cannot be made, the test says why and
//! passes without running (CI runs as root and has them).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vault_tests::{Serving, TestVault, serve_command, vault_bin};

/// The hosts' subnet (a documentation-free private range, private to the namespaces).
const SUBNET: &str = "10.77.0";
/// The port every node binds in its own namespace (each namespace has its own stack).
const PORT: u16 = 4433;

/// Network namespaces for `hosts`, joined by a bridge; removed on drop.
struct Lab {
    prefix: String,
    hosts: Vec<&'static str>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Lab {
    fn new(hosts: &[&'static str]) -> Result<Lab, String> {
        let lab = Lab { prefix: format!("vt{}", std::process::id()), hosts: hosts.to_vec() };
        let bridge = lab.ns("br");
        ip(&["netns", "add", &bridge])?;
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &bridge, "link", "set", "br0", "up"])?;
        for (i, host) in hosts.iter().enumerate() {
            let ns = lab.ns(host);
            ip(&["netns", "add", &ns])?;
            let port = format!("p{i}");
            // Both ends are made inside their namespaces: nothing appears in the host's.
            ip(&["-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &bridge])?;
            ip(&["-n", &bridge, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &bridge, "link", "set", &port, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", lab.addr(i, 0)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// Address `alias` of host `i` (0: its first address).
    fn addr(&self, i: usize, alias: usize) -> String {
        format!("{SUBNET}.{}", 1 + i + 10 * alias)
    }

    fn index(&self, host: &str) -> usize {
        self.hosts.iter().position(|h| *h == host).expect("a host of the lab")
    }

    /// Gives `host` another address (a move to another network, as the peers see it).
    fn add_addr(&self, host: &str, alias: usize) -> String {
        let addr = self.addr(self.index(host), alias);
        ip(&["-n", &self.ns(host), "addr", "add", &format!("{addr}/24"), "dev", "eth0"])
            .expect("address added");
        addr
    }

    /// `vault ARGS` for `v`, run inside `host`'s namespace.
    fn vault(&self, host: &str, v: &TestVault, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)])
            .arg(vault_bin())
            .args(args)
            .env("VAULT_DIR", &v.dir)
            .env("VAULT_PASSPHRASE", &v.passphrase)
            .env_remove("VAULT_LOG")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, host: &str, v: &TestVault, args: &[&str]) -> Output {
        self.vault(host, v, args).output().expect("vault runs")
    }

    /// A `--json` command that must succeed, parsed.
    fn json(&self, host: &str, v: &TestVault, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(host, v, &full);
        assert!(out.status.success(), "vault {args:?} on {host}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    }

    /// A `--json` command that may answer "no" (exit 1): `Null` then.
    fn json_or_no(&self, host: &str, v: &TestVault, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(host, v, &full);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "vault {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Starts `vault serve` on `addr` in `host`'s namespace; returns it and its ticket.
    fn serve(&self, host: &str, v: &TestVault, addr: &str) -> (Serving, String) {
        serve_command(self.vault(host, v, &["serve", "--no-relay", "--bind", &format!("{addr}:{PORT}")]))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace removes its veth ends and whatever it holds.
        for host in self.hosts.iter().copied().chain(["br"]) {
            let _ = ip(&["netns", "del", &self.ns(host)]);
        }
    }
}

/// Polls `check` until it holds, for at most [`vault_tests::HANG`].
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < vault_tests::HANG {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

fn email_at(lab: &Lab, seller: &TestVault) -> Option<String> {
    let shared = lab.json_or_no("seller", seller, &["shared"]);
    shared["shares"].as_array()?.iter().find(|s| s["status"] == "live")?["values"]["profile"]["email"]
        .as_str()
        .map(str::to_owned)
}

fn feed_items(lab: &Lab, friend: &TestVault) -> Vec<String> {
    let feed = lab.json_or_no("friend", friend, &["feed"]);
    feed["purchases"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["item"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[test]
fn three_hosts_share_across_namespaces_and_find_a_moved_peer() {
    let lab = match Lab::new(&["customer", "seller", "friend"]) {
        Ok(lab) => lab,
        Err(why) => {
            eprintln!("skipped: network namespaces cannot be made here ({why}); run as root with iproute2");
            return;
        }
    };
    let (customer, seller, friend) = (TestVault::new(), TestVault::new(), TestVault::new());
    customer.ok(&["profile", "set", "email", "ada@example.org"]);
    customer.ok(&[
        "purchase",
        "add",
        "--item",
        "Dune",
        "--seller",
        "Books",
        "--price",
        "12.00",
        "--currency",
        "EUR",
    ]);

    let (customer_node, customer_ticket) = lab.serve("customer", &customer, &lab.addr(0, 0));
    let (_seller_node, seller_ticket) = lab.serve("seller", &seller, &lab.addr(1, 0));
    let (_friend_node, friend_ticket) = lab.serve("friend", &friend, &lab.addr(2, 0));
    assert!(customer_ticket != seller_ticket && seller_ticket != friend_ticket);
    for (host, v) in [("seller", &seller), ("friend", &friend)] {
        lab.json(host, v, &["contact", "add", "ada", &customer_ticket]);
    }
    lab.json("customer", &customer, &["contact", "add", "shop", &seller_ticket]);
    lab.json("customer", &customer, &["contact", "add", "bob", &friend_ticket]);

    // The seller's journey: ask, the customer approves, the seller holds a live copy.
    let sent = lab.json(
        "seller",
        &seller,
        &["request", "ada", "--fields", "profile.email", "--purpose", "delivery", "--no-relay"],
    );
    assert_eq!(sent["status"], "pending", "delivered across the bridge: {sent}");
    lab.json("customer", &customer, &["approve", sent["id"].as_str().unwrap()]);
    eventually("the seller holds the email", || {
        email_at(&lab, &seller).as_deref() == Some("ada@example.org")
    });

    // The friend's journey: follow, approved, the feed arrives.
    let sent = lab.json("friend", &friend, &["follow", "ada", "--no-relay"]);
    assert_eq!(sent["status"], "pending", "{sent}");
    lab.json("customer", &customer, &["approve", sent["id"].as_str().unwrap()]);
    eventually("the friend sees the purchase", || feed_items(&lab, &friend) == ["Dune"]);

    // Live edits cross the hosts.
    lab.json("customer", &customer, &["profile", "set", "email", "ada@new.example"]);
    eventually("the edit reaches the seller", || {
        email_at(&lab, &seller).as_deref() == Some("ada@new.example")
    });

    // The customer's node moves to another address; its peers find it again, and what changed
    // meanwhile reaches them.
    drop(customer_node);
    let moved = lab.add_addr("customer", 1);
    lab.json("customer", &customer, &["profile", "set", "email", "ada@moved.example"]);
    lab.json(
        "customer",
        &customer,
        &["purchase", "add", "--item", "Tea", "--seller", "Acme", "--price", "4.50", "--currency", "EUR"],
    );
    let (_customer_node, moved_ticket) = lab.serve("customer", &customer, &moved);
    assert_ne!(moved_ticket, customer_ticket, "the ticket names the new address");
    eventually("the seller finds the moved customer", || {
        email_at(&lab, &seller).as_deref() == Some("ada@moved.example")
    });
    eventually("the friend finds the moved customer", || feed_items(&lab, &friend).len() == 2);

    // A revocation reaches the moved-to peer relationship too: the seller erases.
    let grants = lab.json("customer", &customer, &["grants"]);
    let to_shop = grants["grants"].as_array().unwrap().iter().find(|g| g["audience_name"] == "shop").unwrap();
    lab.json("customer", &customer, &["revoke", to_shop["id"].as_str().unwrap()]);
    eventually("the seller erases", || email_at(&lab, &seller).is_none());
    eventually("the customer holds the erasure receipt", || {
        let grants = lab.json_or_no("customer", &customer, &["grants", "--all"]);
        grants["grants"].as_array().is_some_and(|gs| {
            gs.iter().any(|g| g["id"] == to_shop["id"] && !g["erasure_confirmed_at"].is_null())
        })
    });
}
