//! The text users paste: a ticket (`contact add NAME TICKET`), and the ids they type (grant,
//! request, identity). Also a ticket's binary form, as an `Offer` frame carries it. Never a
//! panic; what parses prints back to something that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::{GrantId, IdentityId, RequestId, Ticket};

fuzz_target!(|data: &[u8]| {
    vault_fuzz::panic_policy();
    if let Ok(ticket) = Ticket::from_bytes(data) {
        assert_eq!(ticket.to_bytes(), data, "an accepted ticket re-encodes differently");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ticket) = text.parse::<Ticket>() {
        assert_eq!(ticket.to_string().parse::<Ticket>().as_ref(), Ok(&ticket));
    }
    if let Ok(id) = text.parse::<IdentityId>() {
        assert_eq!(id.to_string().parse::<IdentityId>().ok(), Some(id));
    }
    if let Ok(id) = text.parse::<GrantId>() {
        assert_eq!(id.to_string().parse::<GrantId>().ok(), Some(id));
    }
    if let Ok(id) = text.parse::<RequestId>() {
        assert_eq!(id.to_string().parse::<RequestId>().ok(), Some(id));
    }
});
