//! Issuing, revoking and recording erasure of grants, on the issuer's side.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::json;

use super::*;
use crate::identity::Identity;
use crate::money::Price;
use crate::primitives::Passphrase;
use crate::vault::{AuditFilter, PurchaseRecord};

// Derived grants, on this module's fixtures.
mod derived;

/// A customer's vault on a clock the test moves (starting 2027-01-15), and a shop.
pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) vault: Vault,
    pub(super) clock: Arc<AtomicI64>,
    pub(super) shop: Identity,
}

/// A [`Fixture`] whose profile holds `profile` (relative field, value).
pub(super) fn fixture_with(profile: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(1_800_000_000));
    let mut vault = crate::vault::new_test_vault_with_clock(dir.path(), clock.clone());
    for (field, value) in profile {
        vault.records_mut().set_profile(field, value).unwrap();
    }
    Fixture { _dir: dir, vault, clock, shop: Identity::generate() }
}

fn fixture() -> Fixture {
    fixture_with(&[("email", "ada@example.org"), ("name", "Ada"), ("address.city", "Lyon")])
}

fn new_grant(audience: IdentityId, fields: &[&str]) -> NewGrant {
    NewGrant {
        audience,
        fields: fields.iter().map(|f| f.parse().unwrap()).collect(),
        filter: None,
        purpose: "delivery".into(),
        expires_at: None,
        prices: true,
    }
}

#[test]
fn grant_projects_live_values_and_revocation_stops_it() {
    let mut f = fixture();
    let g = f
        .vault
        .grants_mut()
        .issue(new_grant(f.shop.public(), &["profile.email", "profile.address"]))
        .unwrap();
    let id = g.statement().id;
    assert_eq!(
        f.vault.projections_mut().values(&id).unwrap().unwrap(),
        json!({"profile": {"email": "ada@example.org", "address": {"city": "Lyon"}}})
    );
    f.vault.records_mut().set_profile("email", "ada@new.example").unwrap();
    f.vault.records_mut().set_profile("name", "Ada L.").unwrap();
    assert_eq!(f.vault.projections_mut().update(None).unwrap(), vec![id]);
    assert_eq!(
        f.vault.projections_mut().values(&id).unwrap().unwrap()["profile"]["email"],
        "ada@new.example"
    );
    // An edit outside the grant changes nothing.
    f.vault.records_mut().set_profile("name", "Ada Lovelace").unwrap();
    assert!(f.vault.projections_mut().update(None).unwrap().is_empty());

    assert_eq!(f.vault.grants().live_for(&f.shop.public()).unwrap().len(), 1);
    f.vault.grants_mut().revoke(&id).unwrap();
    assert!(matches!(f.vault.grants_mut().revoke(&id), Err(GrantError::AlreadyRevoked(_))));
    assert!(f.vault.grants().live_for(&f.shop.public()).unwrap().is_empty());
    assert!(f.vault.projections_mut().values(&id).unwrap().is_none(), "projection dropped");
    assert_eq!(f.vault.grants().get(&id).unwrap().unwrap().status, GrantStatus::Revoked);
    let kinds: Vec<AuditKind> =
        f.vault.access_log().list(&AuditFilter::default()).unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [AuditKind::GrantIssued, AuditKind::GrantRevoked]);
}

#[test]
fn projections_survive_reopen_and_catch_up() {
    let mut f = fixture();
    let g = f.vault.grants_mut().issue(new_grant(f.shop.public(), &["purchases"])).unwrap();
    let id = g.statement().id;
    let record = PurchaseRecord::new(
        "Tea".into(),
        "Acme".into(),
        Price::parse("3", "EUR").unwrap(),
        "2026-11-01".into(),
    );
    let pid = f.vault.records_mut().add_purchase(&record).unwrap();
    let dir = f.vault.dir().to_owned();
    // Another handle (another process) brings the projection up to date.
    let mut other = Vault::at(&dir).unlock(&Passphrase::new("pw")).unwrap();
    assert_eq!(other.projections_mut().update(None).unwrap(), vec![id]);
    assert_eq!(other.projections_mut().values(&id).unwrap().unwrap()["purchases"][&pid]["item"], "Tea");
    // The first handle catches up from the stored chunks without recomputing.
    assert!(f.vault.projections_mut().update(None).unwrap().is_empty());
    assert_eq!(f.vault.projections_mut().values(&id).unwrap().unwrap()["purchases"][&pid]["item"], "Tea");
    f.vault.records_mut().remove_purchase(&pid).unwrap();
    f.vault.projections_mut().update(None).unwrap();
    assert_eq!(other.projections_mut().values(&id).unwrap().unwrap()["purchases"], json!({}));
}

#[test]
fn expiry_with_an_injected_clock() {
    let mut f = fixture();
    let mut new = new_grant(f.shop.public(), &["profile.email"]);
    new.expires_at = Some(f.vault.now() + 3600);
    let id = f.vault.grants_mut().issue(new).unwrap().statement().id;
    assert!(f.vault.grants_mut().expire().unwrap().is_empty());
    f.clock.fetch_add(3600, Ordering::SeqCst);
    assert_eq!(f.vault.grants_mut().expire().unwrap(), vec![id]);
    assert!(f.vault.grants_mut().expire().unwrap().is_empty(), "logged once");
    assert_eq!(f.vault.grants().get(&id).unwrap().unwrap().status, GrantStatus::Expired);
    assert!(f.vault.grants().live_for(&f.shop.public()).unwrap().is_empty());
    let mut past = new_grant(f.shop.public(), &["profile.email"]);
    past.expires_at = Some(f.vault.now() - 1);
    assert!(matches!(f.vault.grants_mut().issue(past), Err(GrantError::ExpiryInPast)));
}

#[test]
fn erasure_receipts_must_come_from_the_grantee() {
    let mut f = fixture();
    let id =
        f.vault.grants_mut().issue(new_grant(f.shop.public(), &["profile.email"])).unwrap().statement().id;
    let early = Signed::sign(
        ErasureReceipt {
            grant: id,
            issuer: f.vault.identity(),
            grantee: f.shop.public(),
            erased_at: f.vault.now(),
            device: None,
        },
        &f.shop,
    )
    .unwrap();
    assert!(
        matches!(f.vault.grants_mut().record_erasure(&early), Err(GrantError::StillLive(_))),
        "not while live"
    );
    f.clock.fetch_add(MAX_CLOCK_SKEW + 10, Ordering::SeqCst);
    f.vault.grants_mut().revoke(&id).unwrap();
    assert!(
        matches!(f.vault.grants_mut().record_erasure(&early), Err(GrantError::StillLive(_))),
        "not made before the end"
    );
    let mallory = Identity::generate();
    let forged = Signed::sign(
        ErasureReceipt {
            grant: id,
            issuer: f.vault.identity(),
            grantee: mallory.public(),
            erased_at: 1,
            device: None,
        },
        &mallory,
    )
    .unwrap();
    assert!(matches!(f.vault.grants_mut().record_erasure(&forged), Err(GrantError::ReceiptMismatch(_))));
    let future = Signed::sign(
        ErasureReceipt {
            grant: id,
            issuer: f.vault.identity(),
            grantee: f.shop.public(),
            erased_at: f.vault.now() + 601,
            device: None,
        },
        &f.shop,
    )
    .unwrap();
    assert!(
        f.vault.grants_mut().record_erasure(&future).is_err(),
        "a receipt dated in the future is refused"
    );
    assert!(f.vault.grants().get(&id).unwrap().unwrap().erasure.is_none());
    let real = Signed::sign(
        ErasureReceipt {
            grant: id,
            issuer: f.vault.identity(),
            grantee: f.shop.public(),
            erased_at: f.vault.now(),
            device: None,
        },
        &f.shop,
    )
    .unwrap();
    f.vault.grants_mut().record_erasure(&real).unwrap();
    assert!(f.vault.grants().get(&id).unwrap().unwrap().erasure.is_some());
}

#[test]
fn verify_checks_every_sealed_sharing_row() {
    let mut f = fixture();
    let id =
        f.vault.grants_mut().issue(new_grant(f.shop.public(), &["profile.email"])).unwrap().statement().id;
    let dir = f.vault.dir().to_owned();
    drop(f.vault);
    let verify = || Vault::at(&dir).verify(&Passphrase::new("pw")).unwrap();
    assert!(verify().problems.is_empty());
    let conn = rusqlite::Connection::open(dir.join(crate::store::DB_FILE)).unwrap();
    conn.execute(
        "UPDATE grants SET blob = CAST(substr(blob, 1, 40)
             || CASE WHEN substr(blob, 41, 1) = x'00' THEN x'01' ELSE x'00' END
             || substr(blob, 42) AS BLOB) WHERE id = ?1",
        [id.as_bytes().as_slice()],
    )
    .unwrap();
    let report = verify();
    assert!(report.problems.iter().any(|p| p.starts_with("grants:")), "{:?}", report.problems);
}

#[test]
fn who_sees_a_field() {
    let mut f = fixture();
    let friend = Identity::generate();
    f.vault.grants_mut().issue(new_grant(f.shop.public(), &["profile.address"])).unwrap();
    f.vault.grants_mut().issue(new_grant(friend.public(), &["purchases"])).unwrap();
    let city: FieldPath = "profile.address.city".parse().unwrap();
    let covering = f.vault.grants().covering(&city).unwrap();
    assert_eq!(covering.len(), 1);
    assert_eq!(covering[0].grant.statement().audience, f.shop.public());
    assert!(f.vault.grants().covering(&"profile.email".parse().unwrap()).unwrap().is_empty());
}
