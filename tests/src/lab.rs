//! Separate hosts for a test: each host a network namespace of its own, joined by veth pairs to
//! a bridge in another namespace (all made by the test and removed when the [`Lab`] is
//! dropped). Traffic never leaves the namespaces the test made, except to the one address
//! [`Lab::link_host`] gives the test's own namespace (for a server the hosts share, such as the
//! seller's PostgreSQL behind a [`crate::pg::Gate`]).
//!
//! Needs root and iproute2 (`ip netns`): [`Lab::new`] says why when namespaces cannot be made.

use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::{Serving, TestVault, serve_command, vault_bin};

/// The port a host's node binds in its own namespace (each namespace has its own stack).
pub const PORT: u16 = 4433;

/// Network namespaces for `hosts`, joined by a bridge; removed on drop.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    subnet: &'static str,
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
    /// Hosts on `subnet` (three octets of a private range, one per lab that may run at once):
    /// host `i` is `subnet.(i+1)`.
    pub fn new(subnet: &'static str, hosts: &[&'static str]) -> Result<Lab, String> {
        let lab = Lab {
            prefix: format!("vt{}{}", std::process::id(), subnet.replace('.', "")),
            subnet,
            hosts: hosts.to_vec(),
        };
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

    /// Joins the test's own namespace to the bridge at `subnet.250`, which it returns: a
    /// server the test runs there (a gate to PostgreSQL) is reachable from every host. The link
    /// goes with the bridge's namespace.
    pub fn link_host(&self) -> Result<String, String> {
        let bridge = self.ns("br");
        let name = format!("{}h", self.prefix);
        let name = &name[name.len().saturating_sub(15)..];
        ip(&["link", "add", name, "type", "veth", "peer", "name", "ph", "netns", &bridge])?;
        ip(&["-n", &bridge, "link", "set", "ph", "master", "br0"])?;
        ip(&["-n", &bridge, "link", "set", "ph", "up"])?;
        let addr = format!("{}.250", self.subnet);
        ip(&["addr", "add", &format!("{addr}/24"), "dev", name])?;
        ip(&["link", "set", name, "up"])?;
        Ok(addr)
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// Address `alias` of host `i` (0: its first address).
    pub fn addr(&self, i: usize, alias: usize) -> String {
        format!("{}.{}", self.subnet, 1 + i + 10 * alias)
    }

    /// The first address of `host`.
    pub fn addr_of(&self, host: &str) -> String {
        self.addr(self.index(host), 0)
    }

    fn index(&self, host: &str) -> usize {
        self.hosts.iter().position(|h| *h == host).expect("a host of the lab")
    }

    /// Gives `host` another address (a move to another network, as the peers see it).
    pub fn add_addr(&self, host: &str, alias: usize) -> String {
        let addr = self.addr(self.index(host), alias);
        ip(&["-n", &self.ns(host), "addr", "add", &format!("{addr}/24"), "dev", "eth0"])
            .expect("address added");
        addr
    }

    /// `vault ARGS` for `v`, run inside `host`'s namespace.
    pub fn vault(&self, host: &str, v: &TestVault, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)])
            .arg(vault_bin())
            .args(args)
            .env("VAULT_DIR", &v.dir)
            .env("VAULT_PASSPHRASE", &v.passphrase)
            .env("XDG_RUNTIME_DIR", v.runtime_dir())
            .env_remove("VAULT_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `vault ARGS` for `v` inside `host`'s namespace.
    pub fn run(&self, host: &str, v: &TestVault, args: &[&str]) -> Output {
        self.vault(host, v, args).output().expect("vault runs")
    }

    /// A `--json` command that must succeed, parsed.
    pub fn json(&self, host: &str, v: &TestVault, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(host, v, &full);
        assert!(out.status.success(), "vault {args:?} on {host}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    }

    /// A `--json` command that may answer "no" (exit 1): `Null` then.
    pub fn json_or_no(&self, host: &str, v: &TestVault, args: &[&str]) -> Value {
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
    pub fn serve(&self, host: &str, v: &TestVault, addr: &str) -> (Serving, String) {
        serve_command(self.vault(host, v, &["serve", "--no-relay", "--bind", &format!("{addr}:{PORT}")]))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace removes its veth ends (and their peers) and whatever it holds.
        for host in self.hosts.iter().copied().chain(["br"]) {
            let _ = ip(&["netns", "del", &self.ns(host)]);
        }
    }
}
