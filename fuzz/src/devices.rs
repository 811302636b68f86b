//! The device targets' fixture: two devices of one customer (the laptop holds the identity key,
//! the box was linked to it) in a fresh directory per input, copied from a template; the laptop
//! has issued and revoked grants and added a contact, so that its sharing state has entries.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use vault_core::{DeviceKey, Identity, KdfParams, NewGrant, Passphrase, Ticket, Vault};

use crate::session::{PASSPHRASE, copy_dir, scratch, unlock};

/// Two devices of one identity, removed with their directory when dropped.
pub struct Devices {
    dir: PathBuf,
    /// The first device (identity key).
    pub laptop: Vault,
    /// The linked device.
    pub home: Vault,
}

static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();

impl Devices {
    /// Builds the template before the first input.
    pub fn prepare() {
        TEMPLATE.get_or_init(build);
    }

    /// A fresh pair, copied from the template.
    pub fn new() -> Devices {
        static N: AtomicU64 = AtomicU64::new(1 << 32);
        let template = TEMPLATE.get_or_init(build);
        let dir = scratch(N.fetch_add(1, Ordering::Relaxed));
        copy_dir(template, &dir).expect("the template copies");
        Devices { laptop: unlock(&dir.join("laptop")), home: unlock(&dir.join("box")), dir }
    }
}

fn build() -> PathBuf {
    let dir = scratch((1 << 32) - 1);
    let mut laptop = Vault::at(dir.join("laptop"))
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .create(&Passphrase::new(PASSPHRASE))
        .expect("a new vault");
    laptop.records_mut().set_profile("email", "ada@example.org").expect("an edit");
    let device = DeviceKey::generate();
    let package = laptop.devices_mut().invite(device.public(), "box").expect("an invitation");
    let home = Vault::at(dir.join("box"))
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .join(&Passphrase::new(PASSPHRASE), device, package)
        .expect("the box joins");
    let shop = Identity::generate();
    let new = || NewGrant {
        audience: shop.public(),
        fields: vec!["profile.email".parse().expect("a field")],
        filter: None,
        purpose: "delivery".into(),
        expires_at: None,
        prices: false,
    };
    laptop.grants_mut().issue(new()).expect("a grant");
    let revoked = laptop.grants_mut().issue(new()).expect("a grant").statement().id;
    laptop.grants_mut().revoke(&revoked).expect("a revocation");
    let ticket = Ticket::new(shop.certify(DeviceKey::generate().public()), Vec::new());
    laptop.contacts_mut().add("shop", &ticket).expect("a contact");
    laptop.replication_mut().seed().expect("the log");
    drop((laptop, home));
    dir
}

impl Drop for Devices {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
