//! A customer and a shop, two real vaults, talking through the sans-IO session machines by
//! hand: what several of vault-core's integration tests start from.

use std::time::Instant;

use vault_core::{
    Frame, GrantId, KdfParams, NewGrant, Passphrase, ServeStep, ServeStream, ShareStream, Vault,
};

/// A new vault in `dir` with the fast test KDF and passphrase `pw`.
pub(crate) fn vault(dir: &std::path::Path) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
}

/// One grant stream between the shop (grantee) and the customer (issuer), as one connection
/// would carry it.
pub(crate) struct Link {
    pub(crate) serve: ServeStream,
    pub(crate) share: ShareStream,
}

/// Opens the stream of grant `id`: the shop's [`ShareStream`] says `Open`, the customer's
/// [`ServeStream`] takes it (for the shop's device).
pub(crate) fn open(customer: &mut Vault, shop: &mut Vault, id: &GrantId) -> Link {
    let (share, open) =
        ShareStream::open(shop, customer.identity(), customer.device_key().public(), *id, true).unwrap();
    let serve =
        ServeStream::open(customer, shop.identity(), shop.device_key().public(), &open, Instant::now())
            .unwrap();
    Link { serve, share }
}

fn body(frame: Frame) -> Vec<u8> {
    match frame {
        Frame::Sync(m) => m,
        other => panic!("not a sync frame: {other:?}"),
    }
}

/// One round on a link: the shop's next message (if any) to the customer, then the customer's
/// answer (or what it has to say after a change) to the shop. Returns both sync bodies.
pub(crate) fn round(
    customer: &mut Vault,
    shop: &mut Vault,
    link: &mut Link,
) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    round_at(customer, shop, link, Instant::now())
}

/// [`round`] with the clock at `now`.
pub(crate) fn round_at(
    customer: &mut Vault,
    shop: &mut Vault,
    link: &mut Link,
    now: Instant,
) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let from_shop = link.share.next(shop).unwrap().send;
    let step = match &from_shop {
        Some(frame) => link.serve.on_frame(customer, frame, now).unwrap(),
        None => link.serve.on_change(customer).unwrap(),
    };
    let from_customer = match step {
        ServeStep::Send(m) => Some(m),
        ServeStep::Quiet => None,
        ServeStep::WaitUntil(_) => panic!("an honest grantee was slowed down"),
    };
    if let Some(m) = &from_customer {
        link.share.on_frame(shop, &Frame::Sync(m.clone())).unwrap();
    }
    (from_shop.map(body), from_customer)
}

/// Runs rounds on a link until both sides are quiet.
pub(crate) fn sync(customer: &mut Vault, shop: &mut Vault, link: &mut Link) {
    for _ in 0..20 {
        if round(customer, shop, link) == (None, None) {
            return;
        }
    }
    panic!("sync did not settle");
}

/// A grant of the customer's profile.email to `audience`, for `purpose`, without expiry.
pub(crate) fn email_grant(audience: vault_core::IdentityId, purpose: &str) -> NewGrant {
    NewGrant {
        audience,
        fields: vec!["profile.email".parse().unwrap()],
        filter: None,
        purpose: purpose.into(),
        expires_at: None,
        prices: true,
    }
}

/// Grants `shop` the customer's profile.email for delivery, delivers the share list to the
/// shop, opens the grant's stream and syncs it; returns the grant's id and the open stream.
pub(crate) fn share_email_linked(customer: &mut Vault, shop: &mut Vault) -> (GrantId, Link) {
    let id = customer.grants_mut().issue(email_grant(shop.identity(), "delivery")).unwrap().statement().id;
    let (live, ended) = customer.grants_mut().shares_for(&shop.identity()).unwrap();
    shop.held_mut().accept(customer.identity(), None, &live, &ended, true).unwrap();
    let mut link = open(customer, shop, &id);
    sync(customer, shop, &mut link);
    (id, link)
}

/// [`share_email_linked`], the stream closed after.
pub(crate) fn share_email(customer: &mut Vault, shop: &mut Vault) -> GrantId {
    share_email_linked(customer, shop).0
}
