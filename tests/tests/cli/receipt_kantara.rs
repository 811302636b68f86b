//! Consent receipts exported by `vault shared --export json` are valid against the JSON schema
//! the Kantara Initiative published with the Consent Receipt Specification v1.1.
//!
//! Kantara's file (`CR_v1_1/kantara-consent-receipt-v1_1-schema.json` in
//! github.com/KantaraInitiative/consent-receipt-v-next, "v 1.1.0 DRAFT 6, 2017-11-17") is
//! published under the Kantara IPR Policy with no licence to redistribute it, so it is not
//! vendored: [`kantara_cr_v1_1`] restates its constraints, member by member, in the same JSON
//! Schema dialect (draft-04).

use serde_json::{Value, json};
use vault_tests::{TestVault, eventually, json as run_json, serve, ticket};

/// The constraints of Kantara's published CR v1.1 schema.
fn kantara_cr_v1_1() -> Value {
    let string = json!({ "type": "string" });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "required": [
            "version", "jurisdiction", "consentTimestamp", "collectionMethod", "consentReceiptID",
            "piiPrincipalId", "piiControllers", "services", "policyUrl", "sensitive", "spiCat"
        ],
        "properties": {
            "version": string,
            "jurisdiction": string,
            "consentTimestamp": { "type": "integer", "minimum": 0 },
            "collectionMethod": string,
            "consentReceiptID": string,
            "publicKey": string,
            "language": string,
            "piiPrincipalId": string,
            "piiControllers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["piiController", "contact", "address", "email", "phone"],
                    "properties": {
                        "piiController": string,
                        "onBehalf": { "type": "boolean" },
                        "contact": string,
                        "address": { "type": "object" },
                        "email": string,
                        "phone": string,
                        "piiControllerUrl": string
                    }
                }
            },
            "policyUrl": string,
            "services": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["service", "purposes"],
                    "properties": {
                        "service": string,
                        "purposes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": [
                                    "consentType", "purposeCategory", "piiCategory", "termination",
                                    "thirdPartyDisclosure"
                                ],
                                "properties": {
                                    "purpose": string,
                                    "consentType": string,
                                    "purposeCategory": strings,
                                    "piiCategory": strings,
                                    "primaryPurpose": { "type": "boolean" },
                                    "termination": string
                                },
                                "oneOf": [
                                    {
                                        "required": ["thirdPartyDisclosure"],
                                        "properties": {
                                            "thirdPartyDisclosure": { "type": "boolean", "enum": [false] }
                                        }
                                    },
                                    {
                                        "required": ["thirdPartyDisclosure", "thirdPartyName"],
                                        "properties": {
                                            "thirdPartyDisclosure": { "type": "boolean", "enum": [true] },
                                            "thirdPartyName": string
                                        }
                                    }
                                ]
                            }
                        }
                    }
                }
            },
            "sensitive": { "type": "boolean" },
            "spiCat": strings
        }
    })
}

fn kantara_errors(receipt: &Value) -> Vec<String> {
    let schema = kantara_cr_v1_1();
    let validator = jsonschema::validator_for(&schema).expect("the restated schema compiles");
    validator.iter_errors(receipt).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

#[test]
fn exported_receipts_are_valid_kantara_cr_v1_1() {
    let (customer, shop) = (TestVault::new(), TestVault::new());
    customer.ok(&["profile", "set", "email", "ada@example.org"]);
    customer.ok(&[
        "purchase",
        "add",
        "--item",
        "Tea",
        "--seller",
        "Acme",
        "--price",
        "4.50",
        "--currency",
        "EUR",
    ]);
    let (_node, customer_ticket) = serve(&customer);
    shop.ok(&["contact", "add", "ada", &customer_ticket]);
    customer.ok(&["contact", "add", "shop", &ticket(&shop)]);
    customer.ok(&["grant", "shop", "--fields", "profile.email", "--purpose", "delivery", "--expires", "90d"]);
    customer.ok(&[
        "grant",
        "shop",
        "--fields",
        "purchases",
        "--filter",
        "purchases[seller=Acme]",
        "--purpose",
        "loyalty",
    ]);
    eventually("the shop receives both shares", || {
        shop.ok(&["sync", "ada", "--no-relay"]);
        run_json(&shop, &["shared"])["shares"].as_array().is_some_and(|s| s.len() == 2)
    });
    let export: Value = serde_json::from_str(&shop.ok(&["shared", "--export", "json"])).unwrap();
    let rows = export["consents"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let receipt = &row["consent_receipt"];
        let errors = kantara_errors(receipt);
        assert!(errors.is_empty(), "not a valid Kantara CR v1.1 receipt: {errors:?}\n{receipt:#}");
        vault_tests::check_schema("schemas/receipt/consent-receipt.schema.json", receipt);
    }

    // The restated constraints are not vacuous: the old shape (address as a string) and a
    // missing member are refused.
    let mut old = rows[0]["consent_receipt"].clone();
    old["piiControllers"][0]["address"] = json!("");
    assert!(!kantara_errors(&old).is_empty(), "a string address must be refused");
    let mut missing = rows[0]["consent_receipt"].clone();
    missing.as_object_mut().unwrap().remove("spiCat");
    assert!(!kantara_errors(&missing).is_empty());
    let mut undisclosed = rows[0]["consent_receipt"].clone();
    undisclosed["services"][0]["purposes"][0]["thirdPartyDisclosure"] = json!(true);
    assert!(!kantara_errors(&undisclosed).is_empty(), "a third party needs a name");
}
