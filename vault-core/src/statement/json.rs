//! The JSON forms of a signed statement, for every kind alike: the one the CLI prints and a
//! mirror keeps ([`Signed::to_json`]), and the one a consent receipt carries so that anyone can
//! check the signature from its members alone ([`Signed::proof_json`]).

use data_encoding::BASE64;
use serde_json::{Map, Value, json};

use crate::statement::{Signed, Statement};

impl<T: Statement> Signed<T> {
    /// The signature in lowercase hex.
    pub fn signature_hex(&self) -> String {
        self.signature().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The signed statement as JSON: the signed body, parsed, under the kind's name (`grant`,
    /// `erasure_receipt`, ...: [`Statement::KIND`] with `_` for spaces), and the signature in
    /// hex, as in `{"grant": {...}, "signature": "9f0c..."}`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        // The body parsed when it was verified, so it is JSON; `null` stays the answer if not.
        let body = serde_json::from_slice::<Value>(self.body()).unwrap_or(Value::Null);
        out.insert(T::KIND.replace(' ', "_"), body);
        out.insert("signature".to_owned(), Value::String(self.signature_hex()));
        Value::Object(out)
    }

    /// What a third party needs to check the signature, each part named: the algorithm, the
    /// author's key, the label, the exact body and the signature (both base64), and how the
    /// signed message is formed from them.
    pub fn proof_json(&self) -> Value {
        json!({
            "algorithm": "Ed25519",
            "publicKey": self.statement().author().to_string(),
            "label": String::from_utf8_lossy(T::LABEL),
            "body": BASE64.encode(self.body()),
            "value": BASE64.encode(self.signature()),
            "signedMessage": "label, one zero byte, then the body bytes",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::statement::GrantId;
    use crate::statement::erasure_receipt::ErasureReceipt;
    use crate::statement::grant::Grant;

    #[test]
    fn the_json_form_names_the_kind_and_carries_the_exact_signature() {
        let (alice, shop) = (Identity::from_secret_bytes(&[3; 32]), Identity::from_secret_bytes(&[4; 32]));
        let receipt = ErasureReceipt {
            grant: GrantId::from_raw(&[7; 10]).unwrap(),
            issuer: alice.public(),
            grantee: shop.public(),
            erased_at: 1_800_000_200,
            device: None,
        };
        let signed = Signed::sign(receipt, &shop).unwrap();
        let json = signed.to_json();
        assert_eq!(json["erasure_receipt"]["grant"], "a4dqobyha4dqobyh");
        assert_eq!(json["erasure_receipt"]["erased_at"], 1_800_000_200);
        let hex = json["signature"].as_str().unwrap();
        assert_eq!(hex.len(), 128);
        assert_eq!(hex, signed.signature_hex());
        let bytes: Vec<u8> =
            (0..128).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        assert_eq!(bytes, signed.signature());
        assert_eq!(json.as_object().unwrap().len(), 2);

        let proof = signed.proof_json();
        assert_eq!(proof["publicKey"], shop.public().to_string(), "the author's key");
        assert_eq!(proof["label"], "vault/v1/erasure-receipt");
    }

    /// The forms the CLI, the mirror and the consent receipts built by hand before, byte for
    /// byte (their outputs are documented contracts).
    #[test]
    fn the_json_forms_print_as_before() {
        let (alice, shop) = (Identity::from_secret_bytes(&[3; 32]), Identity::from_secret_bytes(&[4; 32]));
        let grant = Grant {
            id: GrantId::from_raw(&[7; 10]).unwrap(),
            issuer: alice.public(),
            audience: shop.public(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            issued_at: 1_800_000_000,
            expires_at: None,
            prices: true,
            request: None,
        };
        let signed = Signed::sign(grant, &alice).unwrap();
        let by_hand = json!({
            "grant": serde_json::from_slice::<Value>(signed.body()).unwrap_or(Value::Null),
            "signature": signed.signature().iter().map(|b| format!("{b:02x}")).collect::<String>(),
        });
        assert_eq!(serde_json::to_vec(&signed.to_json()).unwrap(), serde_json::to_vec(&by_hand).unwrap());
        assert_eq!(
            serde_json::to_vec_pretty(&signed.to_json()).unwrap(),
            serde_json::to_vec_pretty(&by_hand).unwrap()
        );
        let by_hand = json!({
            "algorithm": "Ed25519",
            "publicKey": signed.statement().issuer.to_string(),
            "label": String::from_utf8_lossy(<Grant as Statement>::LABEL),
            "body": BASE64.encode(signed.body()),
            "value": BASE64.encode(signed.signature()),
            "signedMessage": "label, one zero byte, then the body bytes",
        });
        assert_eq!(serde_json::to_vec(&signed.proof_json()).unwrap(), serde_json::to_vec(&by_hand).unwrap());
    }
}
