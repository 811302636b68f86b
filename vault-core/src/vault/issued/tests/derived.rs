//! Derived grants on the issuer's side: issued, kept live through edits and the passing of
//! days, approved in place of a raw field, and limited in how many ages one recipient holds.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;

use super::{Fixture, fixture_with};
use crate::identity::{Identity, IdentityId};
use crate::path::FieldPath;
use crate::primitives::Passphrase;
use crate::request::{ConsentRequest, WiderThanAsked};
use crate::statement::{RequestId, Signed};
use crate::vault::issued::{GrantError, NewGrant};
use crate::vault::{Approval, RequestError, Vault};

/// 2027-01-15, where the fixture's clock starts.
const START: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

/// Ada, 18 on 2027-01-20, five days after the start.
fn fixture() -> Fixture {
    fixture_with(&[("birthday", "2009-01-20"), ("address.postcode", "69001"), ("address.country", "FR")])
}

fn paths(fields: &[&str]) -> Vec<FieldPath> {
    fields.iter().map(|f| f.parse().unwrap()).collect()
}

fn new_grant(audience: IdentityId, fields: &[&str]) -> NewGrant {
    NewGrant {
        audience,
        fields: paths(fields),
        filter: None,
        purpose: "age check".into(),
        expires_at: None,
        prices: true,
    }
}

#[test]
fn a_derived_grant_follows_its_source_and_the_date() {
    let mut f = fixture();
    let fields = ["profile.birthday:over(18)", "profile.address.postcode:prefix(2)"];
    let id = f.vault.grants_mut().issue(new_grant(f.shop.public(), &fields)).unwrap().statement().id;
    let values = |v: &mut Vault| v.projections_mut().values(&id).unwrap().unwrap();
    assert_eq!(
        values(&mut f.vault),
        json!({"profile": {"birthday:over(18)": false, "address": {"postcode:prefix(2)": "69"}}})
    );
    // Nothing to do while the date stays the same: nothing read, nothing written.
    assert!(f.vault.projections_mut().update_dated().unwrap().is_empty());
    // An edit of the source.
    f.vault.records_mut().set_profile("address.postcode", "75011").unwrap();
    assert_eq!(f.vault.projections_mut().update(None).unwrap(), vec![id]);
    assert_eq!(values(&mut f.vault)["profile"]["address"]["postcode:prefix(2)"], "75");
    // Ages are counted by the month: the birthday itself (2027-01-20) changes nothing, the
    // first of the next month (from noon UTC, when it is February everywhere) turns the answer
    // true without any edit, through the node's dated update.
    f.clock.store(START + 5 * DAY, Ordering::SeqCst);
    assert!(f.vault.projections_mut().update_dated().unwrap().is_empty(), "not on the birthday");
    f.clock.store(START + 17 * DAY, Ordering::SeqCst);
    assert!(f.vault.projections_mut().update_dated().unwrap().is_empty(), "not before February everywhere");
    f.clock.store(START + 17 * DAY + 4 * 3600, Ordering::SeqCst);
    assert_eq!(f.vault.projections_mut().update_dated().unwrap(), vec![id]);
    assert_eq!(values(&mut f.vault)["profile"]["birthday:over(18)"], json!(true));
    // Unset: the value goes, it does not turn false.
    f.vault.records_mut().unset_profile("birthday").unwrap();
    f.vault.projections_mut().update(None).unwrap();
    assert_eq!(values(&mut f.vault)["profile"].get("birthday:over(18)"), None);
    // A handle that loads the projection from storage recomputes dated values on its date.
    let dir = f.vault.dir().to_owned();
    let c = f.clock.clone();
    let mut other = Vault::at(&dir)
        .clock(Arc::new(move || c.load(Ordering::SeqCst)))
        .unlock(&Passphrase::new("pw"))
        .unwrap();
    other.records_mut().set_profile("birthday", "2009-01-20").unwrap();
    other.projections_mut().update(None).unwrap();
    assert_eq!(
        other.projections_mut().values(&id).unwrap().unwrap()["profile"]["birthday:over(18)"],
        json!(true)
    );
}

#[test]
fn one_recipient_is_told_few_answers_about_one_field_ever() {
    let mut f = fixture();
    let shop = f.shop.public();
    let first = f
        .vault
        .grants_mut()
        .issue(new_grant(shop, &["profile.birthday:over(18)", "profile.birthday:year"]))
        .unwrap();
    let err = f.vault.grants_mut().issue(new_grant(shop, &["profile.birthday:over(21)"])).unwrap_err();
    assert!(matches!(err, GrantError::TooRevealing { .. }), "{err}");
    assert!(
        err.to_string().contains("\"profile.birthday\"") && err.to_string().contains("ended ones too"),
        "{err}"
    );
    // The same answers again, or another recipient: fine.
    f.vault.grants_mut().issue(new_grant(shop, &["profile.birthday:over(18)"])).unwrap();
    f.vault
        .grants_mut()
        .issue(new_grant(Identity::generate().public(), &["profile.birthday:over(25)"]))
        .unwrap();
    // What a revoked grant told is still known: revoking does not make room.
    f.vault.grants_mut().revoke(&first.statement().id).unwrap();
    assert!(
        f.vault.grants_mut().issue(new_grant(shop, &["profile.birthday:over(21)"])).is_err(),
        "revoked, still told"
    );
    // One band of one price, ever.
    f.vault.grants_mut().issue(new_grant(shop, &["purchases.*.price:band(10,50)"])).unwrap();
    let err = f.vault.grants_mut().issue(new_grant(shop, &["purchases.*.price:band(20,100)"])).unwrap_err();
    assert!(err.to_string().contains("more than one price band"), "{err}");
    // Too many in one statement: refused by the statement's rules, whoever the recipient.
    let err = f
        .vault
        .grants_mut()
        .issue(new_grant(
            Identity::generate().public(),
            &["profile.birthday:over(18)", "profile.birthday:over(19)", "profile.birthday:year"],
        ))
        .unwrap_err();
    assert!(err.to_string().contains("more than 2 answers about one date"), "{err}");
    let mut no_prices = new_grant(Identity::generate().public(), &["purchases.*.price:band(10,50)"]);
    no_prices.prices = false;
    let err = f.vault.grants_mut().issue(no_prices).unwrap_err();
    assert!(err.to_string().contains("a price band is a price"), "{err}");
}

fn request(shop: &Identity, holder: IdentityId, fields: &[&str]) -> Signed<ConsentRequest> {
    let r = ConsentRequest {
        id: RequestId::random(),
        requester: shop.public(),
        holder,
        fields: paths(fields),
        filter: None,
        purpose: "age check".into(),
        duration: None,
        prices: true,
        made_at: START,
        name: None,
        reply_to: None,
    };
    Signed::sign(r, shop).unwrap()
}

#[test]
fn a_derived_field_may_answer_a_raw_one_and_never_the_reverse() {
    let mut f = fixture();
    let me = f.vault.identity();
    let raw = request(&f.shop, me, &["profile.birthday", "profile.address"]);
    f.vault.inbox_mut().receive(&f.shop.public(), &raw).unwrap().unwrap();
    let narrower = paths(&["profile.birthday:over(18)", "profile.address:country"]);
    let grant = f
        .vault
        .inbox_mut()
        .approve(&raw.statement().id, Approval { fields: Some(narrower.clone()), ..Approval::default() })
        .unwrap();
    let id = grant.statement().id;
    let mut sorted = narrower.clone();
    sorted.sort();
    assert_eq!(grant.statement().fields, sorted);
    assert_eq!(
        f.vault.projections_mut().values(&id).unwrap().unwrap(),
        json!({"profile": {"birthday:over(18)": false, "address:country": "FR"}})
    );

    let derived = request(&f.shop, me, &["profile.birthday:over(18)"]);
    f.vault.inbox_mut().receive(&f.shop.public(), &derived).unwrap().unwrap();
    for wider in [&["profile.birthday"][..], &["profile.birthday:year"], &["profile.birthday:over(21)"]] {
        let err = f
            .vault
            .inbox_mut()
            .approve(&derived.statement().id, Approval { fields: Some(paths(wider)), ..Approval::default() })
            .unwrap_err();
        assert!(matches!(err, RequestError::Wider(WiderThanAsked::Field(_))), "{wider:?}: {err}");
    }
    f.vault.inbox_mut().approve(&derived.statement().id, Approval::default()).unwrap();
}

#[test]
fn the_consent_screen_says_held_only_when_the_derived_value_exists() {
    let f = fixture();
    let asked = request(
        &f.shop,
        f.vault.identity(),
        &[
            "profile.address.postcode:prefix(2)",
            "profile.address.postcode:prefix(4)",
            "profile.birthday:over(18)",
        ],
    );
    let held: Vec<(String, bool)> = f
        .vault
        .inbox()
        .holdings(asked.statement())
        .into_iter()
        .map(|h| (h.field.to_string(), h.held))
        .collect();
    assert_eq!(
        held,
        [
            ("profile.address.postcode:prefix(2)".to_owned(), true),
            // "69001" is one character short of what prefix(4) needs: nothing would be shared.
            ("profile.address.postcode:prefix(4)".to_owned(), false),
            ("profile.birthday:over(18)".to_owned(), true),
        ]
    );
}
