//! A vault file from anywhere (damaged, truncated, tampered, or not a vault at all), opened
//! with the right passphrase: an error, never a panic, never a hang.
//!
//! Each input is written as the SQLite file of a vault directory (the WAL and shared
//! memory files of the previous input removed), then unlocked. The seeds are real small vaults
//! made with the test KDF setting and the passphrase below, so mutations reach past the key
//! unwrap into the row-set manifest, the sealed rows and the document.
//!
//! One exclusion: a vault file states its own Argon2 cost, and vault-core accepts up to 4 GiB
//! and 64 passes by design (a vault made on a large machine must open). An input that claims
//! more than the default cost (64 MiB, 3 passes) is not opened, so that the run measures the
//! decoders rather than Argon2.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vault_core::{DB_FILE, KdfParams, Passphrase, Vault};

/// The passphrase of the seed vaults (`cargo run -p vault-core --example fuzz_seeds`).
const PASSPHRASE: &str = "fuzz";

/// Under the temporary directory (scripts/fuzz-smoke.sh points it at tmpfs when there is one).
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("vault-fuzz-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary vault directory");
    dir
});

/// The KDF cost the file claims, when it can be read.
fn claimed_kdf(path: &std::path::Path) -> Option<KdfParams> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    let bytes: Vec<u8> = conn.query_row("SELECT value FROM meta WHERE key = 'kdf'", [], |r| r.get(0)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fuzz_target!(|data: &[u8]| {
    vault_fuzz::panic_policy();
    let dir = &*DIR;
    let db = dir.join(DB_FILE);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
    std::fs::write(&db, data).expect("write the vault file");
    if let Some(params) = claimed_kdf(&db) {
        let default = KdfParams::DEFAULT;
        if params.memory_kib > default.memory_kib || params.iterations > default.iterations {
            return;
        }
    }
    if let Ok(vault) = Vault::at(dir).unlock(&Passphrase::new(PASSPHRASE)) {
        let _ = vault.records().export_json();
        let _ = vault.records().purchases();
    }
});
