//! Benchmarks for the vault at rest. Run with `cargo bench -p vault-core --bench vault`.
//!
//! - `open/*`: unlock + decrypt + load a vault of N purchases, against `bare_load/*`, a plain
//!   `AutoCommit::load` of the same document bytes (no SQLite, no encryption). Fixtures use the
//!   fast test KDF so that the comparison measures storage and decryption; the Argon2id cost
//!   of the default parameters is measured on its own in `unlock_kdf/default`.
//! - `add/durable`: one `add_purchase` made durable (one sealed chunk, one synchronous SQLite
//!   commit) on a 10,000-purchase vault; a separate loop prints its median and p99.
//! - `add/batch_10000`: 10,000 purchases in one change.
//! - sizes: the database (+WAL) after compaction against a plain `save()`; printed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use automerge::AutoCommit;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vault_core::{KdfParams, Passphrase, Price, PurchaseRecord, Vault};

fn record(i: usize) -> PurchaseRecord {
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

fn pass() -> Passphrase {
    Passphrase::new("bench passphrase")
}

/// A compacted vault of `n` purchases, added in commits of 100.
fn fixture(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&pass()).unwrap();
    let records: Vec<PurchaseRecord> = (0..n).map(record).collect();
    for batch in records.chunks(100) {
        vault.records_mut().add_purchases(batch).unwrap();
    }
    vault.compact().unwrap();
    dir
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn open_vs_bare_load(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for n in [10_000usize, 100_000] {
        let start = Instant::now();
        let dir = fixture(n);
        eprintln!("fixture of {n} purchases built in {:.1?}", start.elapsed());
        let mut vault = Vault::at(dir.path()).unlock(&pass()).unwrap();
        let bytes = vault.records_mut().export_automerge();
        let stats = vault.storage_stats();
        eprintln!(
            "sizes/{n}: database {} B + WAL {} B, plain save() {} B, ratio {:.3}",
            stats.db_bytes,
            stats.wal_bytes,
            bytes.len(),
            (stats.db_bytes + stats.wal_bytes) as f64 / bytes.len() as f64
        );
        drop(vault);
        group.bench_with_input(BenchmarkId::new("vault_unlock_decrypt_load", n), &n, |b, _| {
            b.iter(|| black_box(Vault::at(dir.path()).unlock(&pass()).unwrap()))
        });
        group.bench_with_input(BenchmarkId::new("bare_automerge_load", n), &n, |b, _| {
            b.iter(|| black_box(AutoCommit::load(&bytes).unwrap()))
        });
    }
    group.finish();
}

fn adds(c: &mut Criterion) {
    let dir = fixture(10_000);
    let mut vault = Vault::at(dir.path()).unlock(&pass()).unwrap();
    let mut i = 10_000;
    let mut group = c.benchmark_group("add");
    group.sample_size(50);
    group.bench_function("durable_one_on_10000", |b| {
        b.iter(|| {
            i += 1;
            vault.records_mut().add_purchase(&record(i)).unwrap()
        })
    });
    // Percentiles over plain loop samples (criterion reports means and medians of batches).
    let mut samples: Vec<Duration> = (0..2_000)
        .map(|_| {
            i += 1;
            let r = record(i);
            let start = Instant::now();
            vault.records_mut().add_purchase(&r).unwrap();
            start.elapsed()
        })
        .collect();
    samples.sort();
    eprintln!(
        "add/durable_one_on_10000 over {} adds: p50 {:.3?}, p90 {:.3?}, p99 {:.3?}, max {:.3?}",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.9),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
    group.sample_size(10);
    let batch: Vec<PurchaseRecord> = (0..10_000).map(record).collect();
    group.bench_function("batch_10000_one_change", |b| {
        b.iter_with_setup(
            || {
                let dir = tempfile::tempdir().unwrap();
                let vault = Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&pass()).unwrap();
                (dir, vault)
            },
            |(dir, mut vault)| {
                vault.records_mut().add_purchases(&batch).unwrap();
                (dir, vault)
            },
        )
    });
    group.finish();
}

fn unlock_kdf(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    drop(Vault::at(dir.path()).kdf(KdfParams::DEFAULT).create(&pass()).unwrap());
    let mut group = c.benchmark_group("unlock_kdf");
    group.sample_size(10);
    group.bench_function("default_argon2id_empty_vault", |b| {
        b.iter(|| black_box(Vault::at(dir.path()).unlock(&pass()).unwrap()))
    });
    let fast = tempfile::tempdir().unwrap();
    drop(Vault::at(fast.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&pass()).unwrap());
    group.bench_function("test_kdf_empty_vault", |b| {
        b.iter(|| black_box(Vault::at(fast.path()).unlock(&pass()).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, open_vs_bare_load, adds, unlock_kdf);
criterion_main!(benches);
