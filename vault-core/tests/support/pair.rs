//! A customer and a shop, two real vaults, talking through the sans-IO serving functions by
//! hand: what several of vault-core's integration tests start from.

// Each test binary uses a part of it.
#![allow(dead_code)]

use vault_core::{GrantId, KdfParams, NewGrant, Passphrase, Vault};

/// A new vault in `dir` with the fast test KDF and passphrase `pw`.
pub(crate) fn vault(dir: &std::path::Path) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
}

/// Grants `shop` the customer's profile.email for delivery, delivers the share list to the
/// shop, opens the grant's stream and syncs it; returns the grant's id.
pub(crate) fn share_email(customer: &mut Vault, shop: &mut Vault) -> GrantId {
    let id = customer
        .issue_grant(NewGrant {
            audience: shop.identity(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            expires_at: None,
            prices: true,
        })
        .unwrap()
        .statement()
        .id;
    let (live, ended) = customer.shares_for(&shop.identity()).unwrap();
    shop.accept_shares(customer.identity(), None, &live, &ended).unwrap();
    customer.serve_open(&shop.identity(), &id).unwrap();
    sync(customer, shop, &id);
    id
}

/// Runs the Automerge sync loop for one grant until both sides are quiet.
pub(crate) fn sync(customer: &mut Vault, shop: &mut Vault, id: &GrantId) {
    let (s, c) = (shop.identity(), customer.identity());
    for _ in 0..20 {
        let from_shop = shop.share_sync_generate(&c, id).unwrap();
        if let Some(m) = &from_shop {
            customer.serve_receive(&s, id, m).unwrap();
        }
        let from_customer = customer.serve_generate(&s, id).unwrap();
        if let Some(m) = &from_customer {
            shop.share_sync_receive(&c, id, m).unwrap();
        }
        if from_shop.is_none() && from_customer.is_none() {
            return;
        }
    }
    panic!("sync did not settle");
}
