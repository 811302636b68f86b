//! Key events as they arrive (a `KeyEvents` frame, a device session's key message): one event's
//! wire form, then a run of them merged into a chain; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::{KeyEvent, KeyLog, decode_events};

fuzz_target!(|data: &[u8]| {
    vault_fuzz::panic_policy();
    if let Ok(event) = KeyEvent::from_bytes(data) {
        assert_eq!(&event.to_bytes()[..], data, "an accepted event re-encodes differently");
        let _ = format!("{event:?}");
    }
    let Ok(events) = decode_events(data) else {
        return;
    };
    let Some(first) = events.first() else {
        return;
    };
    let identity = first.identity();
    let mut log = KeyLog::default();
    if log.merge(&identity, &events).is_ok() {
        let again = KeyLog::from_bytes(&identity, &log.to_bytes()).expect("a merged chain reads back");
        assert_eq!(again, log);
        // The newest key is current: it may sign at any time from its event on.
        if let Some(last) = log.last() {
            assert!(log.allows(&identity, &last.key(), last.at()), "the current key is refused");
        }
    }
});
