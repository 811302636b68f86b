//! What the fuzz targets share: the fixture keys the seed corpora were signed with, the
//! statement harness, and the panic policy.
//!
//! Panic policy: any panic is a crash (libFuzzer aborts), except one raised inside Automerge
//! (the automerge crate or hexane, its column codec) while vault-core runs it under its own
//! `catch_unwind` guard (`doc.rs`, `guarded`): there the caller gets an error, as designed.
//! Such a contained panic is reported once per source location on stderr, so a run's log shows
//! every one (they are upstream Automerge bugs), and a panic inside Automerge on a path without
//! the guard still crashes, because it unwinds into libFuzzer's own `catch_unwind`.

pub mod devices;
pub mod session;

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, Once};

use vault_core::{Identity, Signed, Statement};

/// The customer's key of the known-answer fixtures (`vault-core/tests/fixtures/frames-v1.txt`).
pub fn alice() -> Identity {
    Identity::from_secret_bytes(&[3; 32])
}

/// The shop's key of the known-answer fixtures.
pub fn shop() -> Identity {
    Identity::from_secret_bytes(&[4; 32])
}

/// Installs the panic policy described above; call at the start of every target.
pub fn panic_policy() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default_hook = std::panic::take_hook();
        let seen: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
        std::panic::set_hook(Box::new(move |info| {
            let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            // Automerge's own crates: automerge and its column codec, hexane.
            if location.contains("/automerge-0.") || location.contains("/hexane-") {
                if seen.lock().map(|mut s| s.insert(location.clone())).unwrap_or(false) {
                    // Where vault-core runs Automerge under its guard this becomes an error; a panic
                    // on an unguarded path goes on unwinding into libFuzzer, which aborts.
                    eprintln!("vault-fuzz: Automerge panic at {location}: {info}");
                }
                return;
            }
            default_hook(info);
            std::process::abort();
        }));
    });
}

/// The statement harness: `data` is a statement's wire form (`Signed::to_bytes`: body length,
/// body, signature).
///
/// 1. `Signed::from_bytes` on it as it is: must never panic; what it accepts must re-encode to
///    the same bytes.
/// 2. Its body (the bytes between the 4-byte length and the last 64, whatever the length says),
///    signed afresh with the fixture key of the author it names, then verified: this takes a
///    mutated body past the signature into the statement's parsing and its own rules.
pub fn statement<T: Statement + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(signed) = Signed::<T>::from_bytes(data) {
        assert_eq!(signed.to_bytes(), data, "an accepted statement re-encodes differently");
        let _ = format!("{signed:?}");
    }
    if data.len() < 4 + 64 {
        return;
    }
    let body = &data[4..data.len() - 64];
    let Ok(parsed) = serde_json::from_slice::<T>(body) else {
        return;
    };
    let author = parsed.author();
    static KEYS: LazyLock<[Identity; 2]> = LazyLock::new(|| [alice(), shop()]);
    let Some(key) = KEYS.iter().find(|k| k.public() == author) else {
        return;
    };
    let signature = vault_core::fuzzing::sign_body::<T>(key, body);
    if let Ok(signed) = Signed::<T>::verify(body, &signature) {
        let again = Signed::<T>::from_bytes(&signed.to_bytes()).expect("a verified statement decodes again");
        assert_eq!(again, signed);
        assert_eq!(again.statement(), &parsed);
        let _ = format!("{signed:?}");
    }
}
