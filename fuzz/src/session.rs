//! The session targets' fixture: a customer and a shop, two real vaults in a fresh directory
//! per input (copied from a template), with a live grant of the customer's email to the shop
//! that the shop has taken in; and the frames an input holds.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
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

static TEMPLATE: OnceLock<Template> = OnceLock::new();

impl Pair {
    /// Builds the template before the first input, so that its cost is not counted against
    /// that input's time limit.
    pub fn prepare() {
        TEMPLATE.get_or_init(Template::build);
    }

    /// A fresh pair under the temporary directory: a copy of a template built once per
    /// process (building two vaults and a grant per input ran at ~20 inputs a second).
    pub fn new() -> Pair {
        static N: AtomicU64 = AtomicU64::new(0);
        let template = TEMPLATE.get_or_init(Template::build);
        let dir = scratch(N.fetch_add(1, Ordering::Relaxed));
        copy_dir(&template.dir, &dir).expect("the template copies");
        Pair {
            customer: unlock(&dir.join("customer")),
            shop: unlock(&dir.join("shop")),
            dir,
            grant: template.grant,
            device: template.device,
        }
    }
}

/// The prepared pair's files (closed), with what the targets need to know of them.
struct Template {
    dir: PathBuf,
    grant: GrantId,
    device: DeviceId,
}

impl Template {
    fn build() -> Template {
        let dir = scratch(u64::MAX);
        let create = |name: &str| {
            Vault::at(dir.join(name))
                .kdf(KdfParams::INSECURE_FOR_TESTS)
                .create(&Passphrase::new(PASSPHRASE))
                .expect("a new vault")
        };
        let (mut customer, mut shop) = (create("customer"), create("shop"));
        customer.records_mut().set_profile("email", "ada@example.org").expect("an edit");
        let grant = customer
            .grants_mut()
            .issue(NewGrant {
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
        let (live, ended) = customer.grants_mut().shares_for(&shop.identity()).expect("shares");
        shop.held_mut().accept(customer.identity(), None, &live, &ended, true).expect("accepted");
        let device = shop.device_key().public();
        // Closing both checkpoints their logs into the files that are copied.
        drop((customer, shop));
        Template { dir, grant, device }
    }
}

pub(crate) const PASSPHRASE: &str = "fuzz";

pub(crate) fn scratch(n: u64) -> PathBuf {
    std::env::temp_dir().join(format!("vault-fuzz-session-{}-{n}", std::process::id()))
}

pub(crate) fn unlock(dir: &Path) -> Vault {
    Vault::at(dir)
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .unlock(&Passphrase::new(PASSPHRASE))
        .expect("the copied vault unlocks")
}

pub(crate) fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            // Read and write rather than `fs::copy`: libFuzzer's timer signal can interrupt the
            // kernel-side copy, which `fs::copy` reports instead of retrying.
            std::fs::write(target, std::fs::read(entry.path())?)?;
        }
    }
    Ok(())
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
