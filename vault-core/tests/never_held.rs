//! A grant revoked (or expired) before its grantee ever received it: the grantee holds nothing
//! of it, and must say so, or the issuer shows the erasure as pending forever.

#[path = "support/pair.rs"]
mod pair;
use pair::vault;
use vault_core::NewGrant;

#[test]
fn a_grant_ended_before_it_was_received_gets_an_erasure_receipt() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut customer, mut shop) = (vault(d1.path()), vault(d2.path()));
    customer.set_profile("email", "ada@example.org").unwrap();
    let grant = customer
        .issue_grant(NewGrant {
            audience: shop.identity(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            expires_at: None,
            prices: true,
        })
        .unwrap();
    let id = grant.statement().id;
    // Revoked before the shop ever connected.
    customer.revoke(&id).unwrap();
    let (live, ended) = customer.shares_for(&shop.identity()).unwrap();
    assert!(live.is_empty() && ended.len() == 1);

    let receipts = shop.accept_shares(customer.identity(), None, &live, &ended).unwrap();
    assert_eq!(receipts.len(), 1, "the shop says it holds nothing of the grant");
    assert_eq!(receipts[0].statement().grant, id);
    assert!(shop.shares().unwrap().is_empty(), "and keeps nothing of it");
    customer.record_erasure(&receipts[0]).unwrap();
    assert!(customer.grant_info(&id).unwrap().unwrap().erasure.is_some(), "erasure confirmed");
    let (_, ended) = customer.shares_for(&shop.identity()).unwrap();
    assert!(ended.is_empty(), "nothing left to tell the shop");

    // A revocation signed by someone else, for a grant the shop never held, gets nothing.
    let (d3, _d4) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut stranger = vault(d3.path());
    stranger.set_profile("email", "x@example.org").unwrap();
    let g = stranger
        .issue_grant(NewGrant {
            audience: shop.identity(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "spam".into(),
            expires_at: None,
            prices: true,
        })
        .unwrap();
    stranger.revoke(&g.statement().id).unwrap();
    let (_, foreign) = stranger.shares_for(&shop.identity()).unwrap();
    let receipts = shop.accept_shares(customer.identity(), None, &[], &foreign).unwrap();
    assert!(receipts.is_empty(), "a revocation by another issuer is not this issuer's to ask about");
}
