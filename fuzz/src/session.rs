//! The session targets' fixture: a customer and a shop, two real vaults in a fresh directory
//! per input, with a live grant of the customer's email to the shop that the shop has taken in;
//! and the frames an input holds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use vault_core::{DeviceId, Frame, GrantId, KdfParams, NewGrant, Passphrase, Vault, decode};

/// Most frames taken from one input.
const MAX_FRAMES: usize = 32;

/// Two vaults sharing one grant, removed with their directory when dropped.
pub struct Pair {
    dir: PathBuf,
    /// The issuer.
    pub customer: Vault,
    /// The grantee (it holds the share, not yet synced).
    pub shop: Vault,
    /// The grant.
    pub grant: GrantId,
    /// The shop's device.
    pub device: DeviceId,
}

impl Pair {
    /// A fresh pair under the temporary directory.
    pub fn new() -> Pair {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vault-fuzz-session-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let open = |name: &str| {
            Vault::at(dir.join(name))
                .kdf(KdfParams::INSECURE_FOR_TESTS)
                .create(&Passphrase::new("fuzz"))
                .expect("a new vault")
        };
        let (mut customer, mut shop) = (open("customer"), open("shop"));
        customer.set_profile("email", "ada@example.org").expect("an edit");
        let grant = customer
            .issue_grant(NewGrant {
                audience: shop.identity(),
                fields: vec![
                    "profile.email".parse().expect("a field"),
                    "purchases".parse().expect("a field"),
                ],
                filter: None,
                purpose: "delivery".into(),
                expires_at: None,
                prices: true,
            })
            .expect("a grant")
            .statement()
            .id;
        let (live, ended) = customer.shares_for(&shop.identity()).expect("shares");
        shop.accept_shares(customer.identity(), None, &live, &ended).expect("accepted");
        let device = shop.device_key().public();
        Pair { dir, customer, shop, grant, device }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The frames in `data`: each a 2-byte big-endian length and a frame body (type byte and
/// payload) as on the wire; bodies that do not decode are skipped, and a frame `Open` of any
/// grant id is taken as one of the fixture's grant one time in two, so that inputs reach it.
pub fn frames(data: &[u8], grant: GrantId) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() < MAX_FRAMES && rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let body = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[(2 + len).min(rest.len())..];
        match decode(body) {
            Ok(Frame::Open(id)) if id.as_bytes()[0] % 2 == 0 => out.push(Frame::Open(grant)),
            Ok(frame) => out.push(frame),
            Err(_) => {}
        }
    }
    out
}
