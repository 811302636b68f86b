//! The market protocol against a real node on loopback: what a stranger's pseudonym can and
//! cannot make a seller keep.

use vault_core::{
    Intention, IntentionDraft, KdfParams, MarketAnswer, MarketFrame, Passphrase, Price, PseudonymKey, Vault,
    Withdrawal,
};

use crate::endpoint::NodeConfig;
use crate::market::{MARKET_INTENTIONS_PER_MINUTE, MARKET_INTENTIONS_PER_SOURCE, market_call};
use crate::node::Node;

fn create(dir: &std::path::Path) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
}

fn local() -> NodeConfig {
    NodeConfig { bind: Some("127.0.0.1:0".parse().unwrap()), relay: false, ..NodeConfig::default() }
}

fn draft(what: &str, now: i64) -> IntentionDraft {
    IntentionDraft {
        what: what.into(),
        tags: vec!["coffee".into()],
        budget: Some(Price { amount_minor: 15_000, currency: "EUR".into() }),
        exact_budget: false,
        place: Some("FR".into()),
        until: now + 7 * 86_400,
    }
}

/// An intention whose last day is past, under a fresh pseudonym.
fn past_its_day() -> (PseudonymKey, vault_core::SignedIntention) {
    let key = PseudonymKey::generate();
    let intention = Intention {
        pseudonym: key.public(),
        what: "old".into(),
        tags: vec![],
        budget: None,
        place: None,
        until: "2020-01-31".into(),
    };
    let signed = intention.sign(&key).unwrap();
    (key, signed)
}

async fn send(key: &PseudonymKey, ticket: &vault_core::Ticket, frame: MarketFrame) -> MarketFrame {
    market_call(key, ticket, &[frame], false).await.unwrap().remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_fresh_pseudonyms_is_bounded_and_forgeries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn(create(dir.path()), local()).await.unwrap();
    let ticket = node.ticket();
    let now = node.inspect(|v| v.now());
    // Intentions that are answered without counting (out of their days) spend no slot.
    for _ in 0..12 {
        let (key, old) = past_its_day();
        let answer = send(&key, &ticket, MarketFrame::Intention(Box::new(old))).await;
        assert_eq!(answer, MarketFrame::Answer(MarketAnswer::Ended));
    }
    let mut kept = 0;
    let mut full = 0;
    for i in 0..MARKET_INTENTIONS_PER_SOURCE + 10 {
        let (key, signed) = draft(&format!("thing {i}"), now).make().unwrap();
        match send(&key, &ticket, MarketFrame::Intention(Box::new(signed))).await {
            MarketFrame::Answer(MarketAnswer::Kept) => kept += 1,
            MarketFrame::Answer(MarketAnswer::Full) => full += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // One address (loopback here) gets its share of the minute, not the node's whole.
    assert_eq!(
        kept, MARKET_INTENTIONS_PER_SOURCE,
        "at most this many new intentions a minute from one address"
    );
    const { assert!(MARKET_INTENTIONS_PER_SOURCE < MARKET_INTENTIONS_PER_MINUTE) };
    assert_eq!(full, 10);
    assert_eq!(node.inspect(|v| v.market().list().unwrap().len()), kept as usize);

    // An intention signed by one pseudonym, delivered by another: refused.
    let (_, theirs) = draft("not mine", now).make().unwrap();
    let other = PseudonymKey::generate();
    let answer = send(&other, &ticket, MarketFrame::Intention(Box::new(theirs.clone()))).await;
    assert_eq!(answer, MarketFrame::Answer(MarketAnswer::Refused));
    // Withdrawing someone else's intention: a withdrawal names its own pseudonym only, and one
    // spliced onto another's does not decode.
    let first = node.inspect(|v| v.market().list().unwrap()[0].signed.intention.pseudonym);
    let own = Withdrawal::sign(&other, now);
    let answer = send(&other, &ticket, MarketFrame::Withdraw(own.clone())).await;
    assert_eq!(answer, MarketFrame::Answer(MarketAnswer::Unknown));
    let mut spliced = own.to_bytes();
    spliced[..32].copy_from_slice(first.as_bytes());
    assert!(Withdrawal::from_bytes(&spliced).is_err());
    assert!(node.inspect(|v| v.market().find(&first.to_string()).is_ok()));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_withdrawn_intentions_are_not_taken_and_offers_go_to_their_pseudonym_only() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn(create(dir.path()), local()).await.unwrap();
    let ticket = node.ticket();
    let now = node.inspect(|v| v.now());
    // Past its last day.
    let (key, old) = past_its_day();
    assert_eq!(
        send(&key, &ticket, MarketFrame::Intention(Box::new(old))).await,
        MarketFrame::Answer(MarketAnswer::Ended)
    );
    // Taken, offered to, then fetched by its pseudonym only.
    let (key, signed) = draft("grinder", now).make().unwrap();
    let name = signed.intention.pseudonym.to_string();
    let intention = MarketFrame::Intention(Box::new(signed.clone()));
    assert_eq!(send(&key, &ticket, intention.clone()).await, MarketFrame::Answer(MarketAnswer::Kept));
    node.with_vault(|v| {
        let price = Price { amount_minor: 9_900, currency: "EUR".into() };
        v.market_mut().offer(&name, "Acme", &price, "", now + 86_400, None).unwrap();
    });
    let MarketFrame::Offers(offers) = send(&key, &ticket, MarketFrame::FetchOffers).await else { panic!() };
    assert_eq!(offers.len(), 1);
    let stranger = PseudonymKey::generate();
    let MarketFrame::Offers(none) = send(&stranger, &ticket, MarketFrame::FetchOffers).await else {
        panic!()
    };
    assert!(none.is_empty(), "another pseudonym sees no offer");
    // Withdrawn: dropped, and the same intention sent again is not taken back.
    let withdrawal = Withdrawal::sign(&key, now);
    assert_eq!(
        send(&key, &ticket, MarketFrame::Withdraw(withdrawal)).await,
        MarketFrame::Answer(MarketAnswer::Kept)
    );
    assert!(node.inspect(|v| v.market().list().unwrap().is_empty()));
    assert_eq!(send(&key, &ticket, intention).await, MarketFrame::Answer(MarketAnswer::Ended));
    let MarketFrame::Offers(gone) = send(&key, &ticket, MarketFrame::FetchOffers).await else { panic!() };
    assert!(gone.is_empty(), "a withdrawn intention's offers are gone");
    node.shutdown().await;
}
