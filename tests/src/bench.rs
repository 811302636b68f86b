//! What the benchmarks share: vaults with the fast test key derivation, nodes on loopback with
//! relays off, a deterministic purchase record, and percentiles of timed samples.

use std::path::Path;
use std::time::Duration;

use vault_core::{KdfParams, Passphrase, Price, PurchaseRecord, Vault};
use vault_sync::NodeConfig;

/// A new vault in `dir` (passphrase "pw").
pub fn create(dir: &Path) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).expect("a new vault")
}

/// A node bound to loopback, relays off.
pub fn local() -> NodeConfig {
    NodeConfig { bind: Some(([127, 0, 0, 1], 0).into()), relay: false, ..NodeConfig::default() }
}

/// Purchase number `i`: varied sellers, dates, tags and ratings.
pub fn record(i: usize) -> PurchaseRecord {
    PurchaseRecord::new(
        format!("Item number {i}"),
        format!("Seller {}", i % 50),
        Price { amount_minor: (i as i64 * 37) % 100_000, currency: "EUR".into() },
        format!("2026-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
    )
    .category(Some("groceries".into()))
    .tags(vec![format!("tag{}", i % 20)])
    .rating(Some(1 + (i as i64 % 5)))
}

/// The `p` quantile (0..=1) of sorted samples.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Prints `name: n=.. p50 .. p90 .. p99 .. max ..`.
pub fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50 {:.2?} p90 {:.2?} p99 {:.2?} max {:.2?}",
        samples.len(),
        pct(&samples, 0.5),
        pct(&samples, 0.9),
        pct(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

/// Runs `vault serve` (loopback, relays off) on the vault in `dir` (passphrase "pw"); returns the
/// process and the ticket it printed first. `extra` are more arguments for `serve`.
pub fn spawn_serve(dir: &Path, extra: &[&str]) -> (std::process::Child, vault_core::Ticket) {
    use std::io::BufRead;
    // VAULT_BENCH_WRAP="heaptrack -o /tmp/seller": the seller under a profiler.
    let wrap = std::env::var("VAULT_BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(tool) => {
            let mut c = std::process::Command::new(tool);
            c.args(words).arg(crate::vault_bin());
            c
        }
        None => std::process::Command::new(crate::vault_bin()),
    };
    let mut serve = command
        .args(["serve", "--no-relay", "--bind", "127.0.0.1:0"])
        .args(extra)
        .env("VAULT_DIR", dir)
        .env("VAULT_PASSPHRASE", "pw")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("vault serve starts");
    // The ticket is the first line `vault serve` prints (a wrapper may print before it).
    let mut out = std::io::BufReader::new(serve.stdout.take().expect("piped"));
    for _ in 0..20 {
        let mut line = String::new();
        out.read_line(&mut line).expect("a ticket");
        if let Ok(ticket) = line.trim().parse() {
            // The pipe stays open with the child, so that its later writes do not fail.
            serve.stdout = Some(out.into_inner());
            return (serve, ticket);
        }
    }
    let _ = serve.kill();
    let _ = serve.wait();
    panic!("vault serve printed no ticket")
}

/// The value of a line of `/proc/PID/status` (`VmRSS`, `VmHWM`), or "?".
pub fn proc_status(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// CPU time a process has used so far (user and system, `/proc/PID/stat`), or zero.
pub fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's name in parentheses: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
    // Clock ticks are 100 a second on Linux.
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}
