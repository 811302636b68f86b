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
    PurchaseRecord {
        item: format!("Item number {i}"),
        seller: format!("Seller {}", i % 50),
        price: Price { amount_minor: (i as i64 * 37) % 100_000, currency: "EUR".into() },
        date: format!("2026-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
        category: Some("groceries".into()),
        tags: vec![format!("tag{}", i % 20)],
        rating: Some(1 + (i as i64 % 5)),
        review: None,
    }
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
