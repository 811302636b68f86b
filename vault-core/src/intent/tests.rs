//! What an intention may carry, and that it verifies only as its pseudonym signed it.

use proptest::prelude::*;

use super::*;
use crate::identity::{DeviceKey, Identity};
use crate::money::Price;

fn draft(amount_minor: i64, until: i64) -> IntentionDraft {
    IntentionDraft {
        what: "a two-person tent".into(),
        tags: vec!["camping".into(), "outdoor".into()],
        budget: Some(Price { amount_minor, currency: "EUR".into() }),
        exact_budget: false,
        place: Some("FR-IDF".into()),
        until,
    }
}

#[test]
fn a_budget_goes_as_its_band_and_a_time_as_its_day() {
    let (_, signed) = draft(15_000, 1_796_000_123).make().unwrap();
    let i = &signed.intention;
    assert_eq!(i.budget.as_ref().unwrap().to_string(), "100 to 200 EUR");
    assert_eq!(i.until.len(), 10);
    let exact = IntentionDraft { exact_budget: true, ..draft(15_000, 1_796_000_123) };
    assert_eq!(exact.make().unwrap().1.intention.budget.unwrap().to_string(), "150 EUR");
    assert_eq!(Budget::band(0, "EUR").to_string(), "0 to 1 EUR");
    assert_eq!(Budget::band(99_999, "JPY").to_string(), "50000 to 100000 JPY");
}

#[test]
fn a_changed_or_resigned_intention_does_not_verify() {
    let (key, signed) = draft(15_000, 1_796_000_123).make().unwrap();
    let bytes = signed.to_bytes();
    assert_eq!(SignedIntention::from_bytes(&bytes).unwrap(), signed);
    // Its text changed on the way.
    let text = String::from_utf8(bytes.clone()).unwrap().replace("tent", "tank");
    assert_eq!(SignedIntention::from_bytes(text.as_bytes()), Err(IntentError::Forged));
    // Signed by another key than the one it names.
    let other = PseudonymKey::generate();
    assert_eq!(signed.intention.clone().sign(&other), Err(IntentError::Forged));
    // The same content under another pseudonym is another intention, with its own signature.
    let moved = Intention { pseudonym: other.public(), ..signed.intention.clone() }.sign(&other).unwrap();
    let mut spliced = moved.clone();
    spliced.signature = signed.signature.clone();
    assert_eq!(SignedIntention::from_bytes(&spliced.to_bytes()), Err(IntentError::Forged));
    assert!(SignedIntention::from_bytes(&moved.to_bytes()).is_ok());
    // Unknown fields, oversized input, bad content: refused.
    let extra = String::from_utf8(bytes).unwrap().replacen('{', "{\"identity\":\"x\",", 1);
    assert!(SignedIntention::from_bytes(extra.as_bytes()).is_err());
    assert!(SignedIntention::from_bytes(&vec![b' '; MAX_INTENTION_BYTES + 1]).is_err());
    for bad in [
        Intention { what: " ".into(), ..signed.intention.clone() },
        Intention { what: "a\u{7}bell".into(), ..signed.intention.clone() },
        Intention { tags: vec!["Upper".into()], ..signed.intention.clone() },
        Intention { place: Some("France".into()), ..signed.intention.clone() },
        Intention { until: "2027-01-01T10:00".into(), ..signed.intention.clone() },
        Intention {
            budget: Some(Budget { low: 5, high: 1, currency: "EUR".into() }),
            ..signed.intention.clone()
        },
    ] {
        assert!(bad.sign(&key).is_err());
    }
}

proptest! {
    /// Nothing an intention carries names the customer: not the identity, not a device, not the
    /// exact price (unless chosen), not the exact time; and two intentions of one customer share
    /// no key, nor anything but what the customer typed into both.
    #[test]
    fn an_intention_carries_nothing_of_who_sent_it(
        amount in 0i64..10_000_000_000,
        until in 1_700_000_000i64..2_100_000_000,
        place in proptest::option::of("[A-Z]{2}(-[A-Z0-9]{1,8})?"),
    ) {
        let identity = Identity::generate();
        let device = DeviceKey::generate();
        let d = IntentionDraft { place, ..draft(amount, until) };
        let (key_a, a) = d.make().unwrap();
        let (key_b, b) = d.make().unwrap();
        for signed in [&a, &b] {
            let wire = String::from_utf8(signed.to_bytes()).unwrap();
            let forms = [
                identity.public().to_string(),
                device.public().to_string(),
                data_encoding::HEXLOWER.encode(identity.public().as_bytes()),
                data_encoding::HEXLOWER.encode(device.public().as_bytes()),
            ];
            for form in forms {
                prop_assert!(!wire.contains(&form));
            }
            prop_assert!(!wire.contains("amount_minor"));
            prop_assert!(!wire.contains(&until.to_string()));
            let budget = signed.intention.budget.as_ref().unwrap();
            let major = (amount / 100) as u64;
            prop_assert!(budget.low <= major && major < budget.high, "the band holds the price");
            prop_assert!(budget.low < budget.high, "a band, not a figure");
            prop_assert_eq!(signed.intention.until.len(), 10);
        }
        // Unlinkable: fresh keys, each named in its own intention only.
        prop_assert_ne!(key_a.public(), key_b.public());
        let (wa, wb) = (String::from_utf8(a.to_bytes()).unwrap(), String::from_utf8(b.to_bytes()).unwrap());
        prop_assert!(!wa.contains(&key_b.public().to_string()) && !wb.contains(&key_a.public().to_string()));
        prop_assert_ne!(&a.signature, &b.signature);
        let strip = |s: &SignedIntention| Intention { pseudonym: key_a.public(), ..s.intention.clone() };
        prop_assert_eq!(strip(&a), strip(&b), "what differs between them is the pseudonym alone");
    }
}

/// The fuzz target's seed corpus (`fuzz/corpus/intention/`) holds intentions that verify, so
/// the fuzzer starts from inputs that reach the signature check. Written anew with
/// `VAULT_WRITE_FUZZ_SEEDS=1 cargo test -p vault-core --lib intent::tests::the_fuzz_seeds`.
#[test]
fn the_fuzz_seeds_are_intentions_that_verify() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/intention");
    if std::env::var_os("VAULT_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        let full = draft(15_000, 1_796_000_123).make().unwrap().1;
        let bare = IntentionDraft { what: "bread".into(), until: 1_796_000_123, ..Default::default() }
            .make()
            .unwrap()
            .1;
        std::fs::write(dir.join("full"), full.to_bytes()).unwrap();
        std::fs::write(dir.join("bare"), bare.to_bytes()).unwrap();
    }
    let seeds: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    assert!(seeds.len() >= 2);
    for seed in seeds {
        assert!(SignedIntention::from_bytes(&seed).is_ok());
    }
}
