//! The grantee's session machines driven by a hostile issuer: any sequence of frames to the
//! control stream's machine and to the stream of a share the grantee really holds. Every step
//! may fail (the transport would end the stream or connection); none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::{GranteeSession, ShareStream};
use vault_fuzz::session::{Pair, frames};

fuzz_target!(init: Pair::prepare(), |data: &[u8]| {
    vault_fuzz::panic_policy();
    let mut p = Pair::new();
    let issuer = p.customer.identity();
    let mut session = GranteeSession::new(issuer, None, true);
    let _ = session.start(&mut p.shop);
    let from = p.customer.device_key().public();
    let mut share = ShareStream::open(&mut p.shop, issuer, from, p.grant, true).ok().map(|(s, _)| s);
    for frame in frames(data, p.grant) {
        let _ = session.on_frame(&mut p.shop, frame.clone());
        if let Some(s) = &mut share {
            let _ = s.on_frame(&mut p.shop, &frame);
            let _ = s.next(&mut p.shop);
        }
    }
});
