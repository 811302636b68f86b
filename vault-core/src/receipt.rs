//! Consent receipts: a signed grant rendered as JSON whose members follow the Kantara
//! Initiative Consent Receipt Specification v1.1, with the ISO/IEC TS 27560 consent-record
//! elements that Kantara lacks (state, expiry, withdrawal method) in an `iso27560` member, and
//! the exact signed bytes so that anyone can check the signature. The mapping is documented in
//! `schemas/receipt/MAPPING.md`; the shape in `schemas/receipt/consent-receipt.schema.json`.

use serde_json::{Value, json};

use crate::statement::grant::{Grant, SignedGrant};
use crate::vault::ShareStatus;

/// Where the consent stands, for the receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentState {
    /// Given and in force.
    Given,
    /// Withdrawn by the principal (revoked).
    Withdrawn,
    /// Past its expiry.
    Expired,
}

impl ConsentState {
    fn as_str(self) -> &'static str {
        match self {
            ConsentState::Given => "given",
            ConsentState::Withdrawn => "withdrawn",
            ConsentState::Expired => "expired",
        }
    }
}

impl From<ShareStatus> for ConsentState {
    /// Where a received share stands, as a consent receipt says it (the grantee's side).
    fn from(status: ShareStatus) -> Self {
        match status {
            ShareStatus::Live => ConsentState::Given,
            ShareStatus::Revoked => ConsentState::Withdrawn,
            ShareStatus::Expired => ConsentState::Expired,
        }
    }
}

/// Petnames known locally, to make the receipt readable; identities are always included.
#[derive(Clone, Debug, Default)]
pub struct ReceiptNames {
    /// The data subject's (issuer's) petname.
    pub principal: Option<String>,
    /// The recipient's (audience's) petname.
    pub controller: Option<String>,
}

fn purpose_category(grant: &Grant) -> &'static str {
    if grant.fields.iter().all(crate::path::FieldPath::is_purchases) {
        "sharing with a chosen recipient"
    } else {
        "service provision"
    }
}

/// The consent receipt of a signed grant.
pub fn consent_receipt(
    grant: &SignedGrant,
    state: ConsentState,
    withdrawn_at: Option<i64>,
    names: &ReceiptNames,
) -> Value {
    let g = grant.statement();
    let fields: Vec<String> = g.fields.iter().map(ToString::to_string).collect();
    let mut categories = fields.clone();
    if let Some(filter) = &g.filter {
        categories = categories.into_iter().map(|f| format!("{f} where {filter}")).collect();
    }
    let termination = match g.expires_at {
        Some(e) => format!(
            "ends at {} (unix seconds) or when the principal revokes it, whichever comes first; the recipient then erases its copy and returns a signed erasure receipt",
            e
        ),
        None => "ends when the principal revokes it; the recipient then erases its copy and returns a signed erasure receipt".to_owned(),
    };
    json!({
        "version": "KI-CR-v1.1.0",
        "jurisdiction": "",
        "consentTimestamp": g.issued_at,
        "collectionMethod": match g.request {
            Some(_) => "consent request signed by the controller, approved by the principal in their own vault",
            None => "granted by the principal in their own vault",
        },
        "consentReceiptID": g.id.to_string(),
        "publicKey": g.issuer.to_string(),
        "language": "en",
        "piiPrincipalId": g.issuer.to_string(),
        "piiControllers": [{
            "piiController": names.controller.clone().unwrap_or_else(|| g.audience.to_string()),
            "onBehalf": false,
            "contact": g.audience.to_string(),
            // Kantara CR v1.1 wants an object here (a postal address); a vault identity has none.
            "address": {},
            "email": "",
            "phone": "",
        }],
        "policyUrl": "",
        "services": [{
            "service": g.purpose,
            "purposes": [{
                "purpose": g.purpose,
                "purposeCategory": [purpose_category(g)],
                "consentType": "EXPLICIT",
                "piiCategory": categories,
                "primaryPurpose": true,
                "termination": termination,
                "thirdPartyDisclosure": false,
            }],
        }],
        "sensitive": false,
        "spiCat": [],
        "iso27560": {
            "recordId": g.id.to_string(),
            "piiPrincipalId": g.issuer.to_string(),
            "piiPrincipalName": names.principal,
            "controllerId": g.audience.to_string(),
            "controllerName": names.controller,
            "purposes": [g.purpose],
            "piiCategories": fields,
            "recordFilter": g.filter.as_ref().map(ToString::to_string),
            "includesPrices": g.prices,
            "consentTimestamp": g.issued_at,
            "expiry": g.expires_at,
            "duration": g.expires_at.map(|e| e - g.issued_at),
            "state": state.as_str(),
            "withdrawnAt": withdrawn_at,
            "withdrawalMethod": format!("the principal runs 'vault revoke {}'; a signed revocation reaches the recipient at its next connection", g.id),
            "request": g.request.map(|r| r.to_string()),
        },
        "signature": grant.proof_json(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::statement::{GrantId, Signed};
    use data_encoding::BASE64;

    #[test]
    fn receipts_carry_the_exact_signed_bytes() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let grant = Signed::sign(
            Grant {
                id: GrantId::random(),
                issuer: alice.public(),
                audience: shop.public(),
                fields: vec!["profile.email".parse().unwrap()],
                filter: None,
                purpose: "delivery".into(),
                issued_at: 1_800_000_000,
                expires_at: Some(1_800_000_000 + 86_400),
                prices: false,
                request: None,
            },
            &alice,
        )
        .unwrap();
        let receipt = consent_receipt(&grant, ConsentState::Given, None, &ReceiptNames::default());
        assert_eq!(receipt["piiPrincipalId"], alice.public().to_string());
        assert_eq!(receipt["services"][0]["purposes"][0]["piiCategory"][0], "profile.email");
        assert_eq!(receipt["iso27560"]["duration"], 86_400);
        // Kantara CR v1.1's published schema: every controller carries these members, and its
        // address is an object (a postal address), not a string.
        let controller = &receipt["piiControllers"][0];
        for member in ["piiController", "contact", "address", "email", "phone"] {
            assert!(controller.get(member).is_some(), "piiControllers[0].{member} is required");
        }
        assert!(controller["address"].is_object(), "{controller}");
        let purpose = &receipt["services"][0]["purposes"][0];
        assert_eq!(purpose["thirdPartyDisclosure"], false);
        assert!(purpose.get("thirdPartyName").is_none());
        // A third party can verify the receipt from its own members.
        let body = BASE64.decode(receipt["signature"]["body"].as_str().unwrap().as_bytes()).unwrap();
        let sig: [u8; 64] = BASE64
            .decode(receipt["signature"]["value"].as_str().unwrap().as_bytes())
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(SignedGrant::verify(&body, &sig).unwrap(), grant);
    }
}
