//! What a vault publishes on a topic names nothing of who publishes it: not the identity, not a
//! device, not the exact price or the day; and its pseudonyms on two topics share nothing.

use proptest::prelude::*;

use crate::money::Price;
use crate::primitives::{KdfParams, Passphrase};
use crate::signal::Topic;
use crate::vault::{PurchaseRecord, Vault};

fn vault(dir: &std::path::Path) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn a_signal_carries_nothing_of_who_published_it(
        amounts in proptest::collection::vec(1i64..5_000_000, 1..6),
        day in 1u32..28,
        month in 1u32..12,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut v = vault(dir.path());
        let date = format!("2026-{month:02}-{day:02}");
        for (i, amount) in amounts.iter().enumerate() {
            let record = PurchaseRecord::new(
                format!("Item {i}"),
                "Acme".into(),
                Price { amount_minor: *amount, currency: "EUR".into() },
                date.clone(),
            )
            .tags(vec!["coffee".into()])
            .rating(Some(4));
            v.records_mut().add_purchase(&record).unwrap();
        }
        let (coffee, tea): (Topic, Topic) = ("coffee/FR".parse().unwrap(), "coffee/DE".parse().unwrap());
        v.topics_mut().join(&coffee, &[], false, true).unwrap();
        v.topics_mut().join(&tea, &[], false, true).unwrap();
        let a = v.topics().my_signals(&coffee).unwrap();
        let b = v.topics().my_signals(&tea).unwrap();
        prop_assert_eq!(a.len(), amounts.len());
        let identity = v.identity();
        let device = v.device_key().public();
        let forms = [
            identity.to_string(),
            device.to_string(),
            data_encoding::HEXLOWER.encode(identity.as_bytes()),
            data_encoding::HEXLOWER.encode(device.as_bytes()),
        ];
        for (s, amount) in a.iter().zip(amounts.iter().rev()).chain(b.iter().zip(amounts.iter().rev())) {
            let wire = String::from_utf8(s.to_bytes()).unwrap();
            for form in &forms {
                prop_assert!(!wire.contains(form.as_str()));
            }
            prop_assert!(!wire.contains(&date), "the day is not said, the month is");
            prop_assert!(!wire.contains("amount_minor"));
            let band = s.signal.price.as_ref().unwrap();
            prop_assert!(band.low < band.high && band.is_band(), "a band, not the price {amount}");
        }
        // The two topics' pseudonyms are different keys, and neither names the other.
        let (pa, pb) = (a[0].signal.pseudonym, b[0].signal.pseudonym);
        prop_assert_ne!(pa, pb);
        let all_a: String = a.iter().map(|s| String::from_utf8(s.to_bytes()).unwrap()).collect();
        prop_assert!(!all_a.contains(&pb.to_string()));
    }
}
