//! Grants: the issuer's signed permission for an audience to receive some of its fields. What
//! ends one is a [`Revocation`](super::revocation) or its expiry; the grantee then answers with
//! an [`ErasureReceipt`](super::erasure_receipt).

use serde::{Deserialize, Serialize};

use crate::identity::IdentityId;
use crate::path::{FieldPath, RecordFilter};
use crate::scope::check_scope;
use crate::statement::{GrantId, RequestId, Rule, Signed, Statement};

/// Permission, signed by the issuer, for the audience to receive the listed fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The grant's id.
    pub id: GrantId,
    /// Who grants (the data's owner).
    pub issuer: IdentityId,
    /// Who receives.
    pub audience: IdentityId,
    /// What is covered.
    pub fields: Vec<FieldPath>,
    /// Which purchase records, when not all.
    pub filter: Option<RecordFilter>,
    /// Why (stated by the issuer, required).
    pub purpose: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; none for no expiry.
    pub expires_at: Option<i64>,
    /// Whether purchase prices are included.
    pub prices: bool,
    /// The consent request this grant answers, when it answers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestId>,
}

impl Statement for Grant {
    const LABEL: &'static [u8] = b"vault/v1/grant";
    const KIND: &'static str = "grant";

    fn made_at(&self) -> i64 {
        self.issued_at
    }

    fn author(&self) -> IdentityId {
        self.issuer
    }

    fn check(&self) -> Result<(), Rule> {
        check_scope("covers", &self.fields, self.filter.as_ref(), &self.purpose, self.prices)?;
        if self.issuer == self.audience {
            return Err(Rule::SameIdentity("issuer and audience"));
        }
        if self.expires_at.is_some_and(|e| e <= self.issued_at) {
            return Err(Rule::ExpiresBeforeIssued);
        }
        Ok(())
    }
}

impl Grant {
    /// True when the grant is neither expired at `now` (unix seconds) nor revoked.
    pub fn is_live_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }

    /// True when some path of this grant shares values with `path`.
    pub fn touches(&self, path: &FieldPath) -> bool {
        self.fields.iter().any(|f| f.overlaps(path))
    }
}

/// A signed grant.
pub type SignedGrant = Signed<Grant>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::statement::StatementError;
    use crate::statement::is_steering_char;
    use crate::statement::revocation::Revocation;
    use proptest::prelude::*;

    fn grant(issuer: &Identity, audience: &Identity) -> Grant {
        Grant {
            id: GrantId::random(),
            issuer: issuer.public(),
            audience: audience.public(),
            fields: vec!["profile.email".parse().unwrap(), "profile.address".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            issued_at: 1_800_000_000,
            expires_at: Some(1_800_000_000 + 90 * 86_400),
            prices: true,
            request: None,
        }
    }

    #[test]
    fn signed_grants_verify_and_roundtrip() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let signed = Signed::sign(grant(&alice, &shop), &alice).unwrap();
        let back = SignedGrant::from_bytes(&signed.to_bytes()).unwrap();
        assert_eq!(back, signed);
    }

    #[test]
    fn forged_grants_are_refused() {
        let (alice, shop, mallory) = (Identity::generate(), Identity::generate(), Identity::generate());
        // Mallory cannot sign a grant in Alice's name.
        assert_eq!(Signed::sign(grant(&alice, &shop), &mallory), Err(StatementError::WrongSigner("grant")));
        let signed = Signed::sign(grant(&alice, &shop), &alice).unwrap();
        // Changing any byte of the body (wider fields, other audience) breaks the signature.
        let body = String::from_utf8(signed.body().to_vec()).unwrap();
        let widened = body.replace("profile.email", "profile.phone");
        assert!(SignedGrant::verify(widened.as_bytes(), signed.signature()).is_err());
        let redirected = body.replace(&shop.public().to_string(), &mallory.public().to_string());
        assert_eq!(
            SignedGrant::verify(redirected.as_bytes(), signed.signature()),
            Err(StatementError::BadSignature("grant"))
        );
        // A signature from another statement kind does not transfer (domain separation).
        let rev = Signed::sign(
            Revocation { grant: grant(&alice, &shop).id, issuer: alice.public(), revoked_at: 1 },
            &alice,
        )
        .unwrap();
        assert!(SignedGrant::verify(rev.body(), rev.signature()).is_err());
    }

    #[test]
    fn grant_rules() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let mut g = grant(&alice, &shop);
        let broken = |g: Grant| match Signed::sign(g, &alice) {
            Err(StatementError::Invalid { kind: "grant", rule }) => rule,
            other => panic!("expected a broken rule, got {other:?}"),
        };
        g.purpose = "  ".into();
        assert_eq!(broken(g), Rule::NoPurpose);
        let mut g = grant(&alice, &shop);
        g.fields.clear();
        assert_eq!(broken(g), Rule::NoField { verb: "covers" });
        let mut g = grant(&alice, &shop);
        g.audience = alice.public();
        assert_eq!(broken(g), Rule::SameIdentity("issuer and audience"));
        let mut g = grant(&alice, &shop);
        g.filter = Some("tag=books".parse().unwrap());
        assert_eq!(broken(g), Rule::FilterWithoutPurchases, "a filter needs purchases");
        let mut g = grant(&alice, &shop);
        g.expires_at = Some(g.issued_at);
        assert_eq!(broken(g), Rule::ExpiresBeforeIssued);
    }

    #[test]
    fn control_characters_in_a_grant_are_refused_at_decode() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let mut g = grant(&alice, &shop);
        g.purpose = "delivery\n    fields:  profile.email\x1b[8m".into();
        // Signed by hand, as a hostile issuer would, skipping the rules.
        let body = serde_json::to_vec(&g).unwrap();
        let signature = alice.sign(Grant::LABEL, &body);
        assert!(matches!(
            SignedGrant::verify(&body, &signature),
            Err(StatementError::Invalid {
                rule: Rule::SteeringCharacter { what: "purpose", code_point: 0x0A },
                ..
            })
        ));
        assert_eq!(
            Signed::sign(g, &alice).unwrap_err().to_string(),
            "invalid grant: the purpose contains a control character (U+000A)"
        );
        let mut g = grant(&alice, &shop);
        g.fields = vec!["purchases".parse().unwrap()];
        g.filter = Some("seller=Ac\u{202e}me".parse().unwrap());
        assert_eq!(
            Signed::sign(g, &alice).unwrap_err().to_string(),
            "invalid grant: the record filter contains a control character (U+202E)"
        );
        for c in ['\0', '\t', '\x1b', '\u{7f}', '\u{9b}', '\u{202a}', '\u{2069}', '\u{2028}', '\u{2029}'] {
            assert!(is_steering_char(c), "{c:?}");
        }
        for c in ['a', ' ', 'é', '配', '📦', '\u{200d}'] {
            assert!(!is_steering_char(c), "{c:?}");
        }
    }

    /// Known-answer test: a grant naming plain and derived fields, as signed bytes (hex). The
    /// plain paths are written exactly as before derivations existed; the derived ones are
    /// part of the signed body; both must keep verifying and parsing.
    #[test]
    fn grant_with_derived_fields_known_answer() {
        let (alice, shop) = (Identity::from_secret_bytes(&[1; 32]), Identity::from_secret_bytes(&[2; 32]));
        let fields = ["profile.email", "profile.birthday:over(18)", "purchases.*.price:band(10,50,100)"];
        let grant = Grant {
            id: GrantId::from_raw(&[7; 10]).unwrap(),
            fields: fields.iter().map(|f| f.parse().unwrap()).collect(),
            ..grant(&alice, &shop)
        };
        let signed = Signed::sign(grant, &alice).unwrap();
        let hex: String = signed.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let expected = include_str!("../../tests/fixtures/grant-derived-v1.txt").trim();
        assert_eq!(hex, expected);
        let body = String::from_utf8(signed.body().to_vec()).unwrap();
        assert!(
            body.contains(r#""fields":["profile.email","profile.birthday:over(18)","purchases.*.price:band(10,50,100)"]"#),
            "{body}"
        );
        let bytes: Vec<u8> = (0..expected.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&expected[i..i + 2], 16).unwrap())
            .collect();
        let back = SignedGrant::from_bytes(&bytes).unwrap();
        let printed: Vec<String> = back.statement().fields.iter().map(ToString::to_string).collect();
        assert_eq!(printed, fields);
    }

    #[test]
    fn expiry() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let g = grant(&alice, &shop);
        assert!(g.is_live_at(g.issued_at));
        assert!(!g.is_live_at(g.expires_at.unwrap()));
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SignedGrant::from_bytes(&bytes);
        }
    }
}
