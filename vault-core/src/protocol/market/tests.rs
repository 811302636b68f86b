//! The market frames' round trips, known answers and decoder robustness.

use super::*;
use crate::identity::{Identity, PseudonymKey};
use crate::intent::{Intention, cosign_acceptance};
use crate::statement::OfferId;
use proptest::prelude::*;

/// One frame of each kind, made with the fixture keys (`fuzz/src/lib.rs`).
pub(crate) fn sample_market_frames() -> Vec<MarketFrame> {
    let alice = Identity::from_secret_bytes(&[3; 32]);
    let shop = Identity::from_secret_bytes(&[4; 32]);
    let key = PseudonymKey::from_secret_bytes(&[6; 32]);
    let topic_key = PseudonymKey::from_secret_bytes(&[7; 32]);
    let intention = Intention {
        pseudonym: key.public(),
        what: "espresso machine".into(),
        tags: vec!["coffee".into()],
        budget: Some(crate::intent::Budget { low: 100, high: 200, currency: "EUR".into() }),
        place: Some("FR-IDF".into()),
        until: "2027-01-31".into(),
    }
    .sign(&key)
    .unwrap();
    let offer = Signed::sign(
        Offer {
            id: OfferId::from_raw(&[8; 10]).unwrap(),
            seller: shop.public(),
            name: "Acme".into(),
            intention: key.public(),
            amount_minor: 14_900,
            currency: "EUR".into(),
            terms: "delivered in 3 days".into(),
            made_at: 1_800_000_000,
            until: 1_800_086_400,
            reply_to: None,
        },
        &shop,
    )
    .unwrap();
    let acceptance = Signed::sign(
        Acceptance {
            offer: offer.statement().id,
            offer_digest: crate::statement::digest_of(&offer.to_bytes()),
            intention: key.public(),
            customer: alice.public(),
            seller: shop.public(),
            reply_to: None,
            accepted_at: 1_800_000_100,
        },
        &alice,
    )
    .unwrap();
    let cosign = cosign_acceptance(&key, acceptance.body());
    vec![
        MarketFrame::Intention(Box::new(intention)),
        MarketFrame::Answer(MarketAnswer::Kept),
        MarketFrame::FetchOffers,
        MarketFrame::Offers(vec![offer]),
        MarketFrame::Accept { acceptance: Box::new(acceptance), cosign },
        MarketFrame::Withdraw(Withdrawal::sign(&key, 1_800_000_200)),
        MarketFrame::Poll(crate::intent::Poll::sign(&key, 1_800_000_300)),
        MarketFrame::Signal(Box::new(
            crate::signal::Signal {
                pseudonym: topic_key.public(),
                topic: "coffee/FR".parse().unwrap(),
                item: "Espresso machine".into(),
                seller: "Acme".into(),
                rating: Some(4),
                price: Some(crate::intent::Budget { low: 100, high: 200, currency: "EUR".into() }),
                place: Some("FR".into()),
                when: Some("2027-01".into()),
            }
            .sign(&topic_key)
            .unwrap(),
        )),
    ]
}

#[test]
fn market_frames_roundtrip() {
    for frame in sample_market_frames() {
        assert_eq!(decode_market(&encode_market(&frame)).unwrap(), frame);
    }
}

/// Known-answer fixture: the wire format of every market frame type, kept stable.
#[test]
fn market_frames_known_answer() {
    let text: String = sample_market_frames()
        .iter()
        .map(|f| encode_market(f).iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
        .collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/market-v1.txt");
    if std::env::var_os("VAULT_BLESS").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(text, expected, "the market frame encoding changed");
}

#[test]
fn an_acceptance_without_the_pseudonyms_signature_is_refused() {
    let frames = sample_market_frames();
    let MarketFrame::Accept { acceptance, .. } = &frames[4] else { panic!("the sample order changed") };
    let other = PseudonymKey::generate();
    let forged = MarketFrame::Accept {
        acceptance: acceptance.clone(),
        cosign: cosign_acceptance(&other, acceptance.body()),
    };
    assert_eq!(decode_market(&encode_market(&forged)), Err(FrameError::BadStatement));
    // A withdrawal signed by another pseudonym, spliced onto this one.
    let MarketFrame::Withdraw(w) = &frames[5] else { panic!("the sample order changed") };
    let mut bytes = encode_market(&MarketFrame::Withdraw(Withdrawal::sign(&other, w.at)));
    bytes[1..33].copy_from_slice(w.pseudonym.as_bytes());
    assert_eq!(decode_market(&bytes), Err(FrameError::BadStatement));
    let mut many = vec![0x44];
    many.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(decode_market(&many), Err(FrameError::TooMany));
    assert_eq!(decode_market(&[]), Err(FrameError::Truncated));
    assert_eq!(decode_market(&[0x43, 0]), Err(FrameError::Truncated));
}

/// A signed intention or signal is verified over its re-encoded JSON, so another spelling of
/// the same content (a key's letters in capitals, a space, fields in another order) would pass
/// as a second wire form of one statement: refused, so each has one form only.
#[test]
fn another_spelling_of_a_signed_intention_or_signal_is_refused() {
    let frames = sample_market_frames();
    for (frame, pseudonym) in [(&frames[0], "\"pseudonym\":\""), (&frames[7], "\"pseudonym\":\"")] {
        let bytes = encode_market(frame);
        let text = String::from_utf8(bytes[1..].to_vec()).unwrap();
        let at = text.find(pseudonym).unwrap() + pseudonym.len();
        let capitals = format!("{}{}{}", &text[..at], text[at..at + 5].to_ascii_uppercase(), &text[at + 5..]);
        let spaced = text.replacen(':', ": ", 1);
        for respelled in [capitals, spaced] {
            assert_ne!(respelled, text);
            let mut wire = vec![bytes[0]];
            wire.extend_from_slice(respelled.as_bytes());
            assert_eq!(decode_market(&wire), Err(FrameError::BadStatement), "{respelled}");
        }
    }
}

proptest! {
    #[test]
    fn market_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_market(&bytes);
    }

    #[test]
    fn market_truncations_and_flips_never_panic(which in any::<usize>(), cut in any::<usize>(), flip in any::<usize>()) {
        let frames = sample_market_frames();
        let frame = encode_market(&frames[which % frames.len()]);
        let _ = decode_market(&frame[..cut % (frame.len() + 1)]);
        let mut flipped = frame.clone();
        let i = flip % flipped.len();
        flipped[i] ^= 0x5a;
        if let Ok(decoded) = decode_market(&flipped) {
            prop_assert_eq!(encode_market(&decoded), flipped, "a decoded frame has one wire form");
        }
    }
}
