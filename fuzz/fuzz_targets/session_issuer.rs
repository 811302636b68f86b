//! The issuer's session machines driven by a hostile grantee that holds a valid grant: any
//! sequence of frames to the control stream's machine and to grant streams (one on the real
//! grant, others opened by the input), with the time moving on. Every step may fail (the
//! transport would end the stream or connection); none may panic.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vault_core::{Frame, IssuerSession, ServeStream};
use vault_fuzz::session::{Pair, frames};

fuzz_target!(init: Pair::prepare(), |data: &[u8]| {
    vault_fuzz::panic_policy();
    let mut p = Pair::new();
    let (peer, now) = (p.shop.identity(), Instant::now());
    let mut control = IssuerSession::new(peer, p.device, now);
    let mut streams = Vec::new();
    if let Ok(s) = ServeStream::open(&mut p.customer, peer, p.device, &Frame::Open(p.grant), now) {
        streams.push(s);
    }
    for (n, frame) in frames(data, p.grant).into_iter().enumerate() {
        let at = now + Duration::from_millis(7 * n as u64);
        let _ = control.on_frame(&mut p.customer, frame.clone(), at);
        let _ = control.on_change(&mut p.customer);
        if streams.len() < 4
            && let Ok(s) = ServeStream::open(&mut p.customer, peer, p.device, &frame, at)
        {
            streams.push(s);
        }
        for s in &mut streams {
            let _ = s.on_frame(&mut p.customer, &frame, at);
            let _ = s.on_change(&mut p.customer);
        }
        if n == 8 {
            // The data changes under the sessions, as a user's edits would.
            let _ = p.customer.records_mut().set_profile("email", "ada@new.example");
        }
    }
});
