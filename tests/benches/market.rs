//! Intentions and topics, at two or three sizes in one run:
//!
//! 1. an intention to offers on loopback: a customer's call under a fresh pseudonym delivering
//!    an intention to a seller's node (kept), then fetching the offer made to it, with the
//!    seller holding `held` live intentions already (how the seller's cost grows with them);
//! 2. a topic of `signals` signals: keeping each (as a node does, counts in memory), then the
//!    subscriber's views (`top`, `also`) over them.
//!
//! `cargo bench -p vault-tests --bench market [-- held=100,1000 signals=1000,10000]`

use std::time::Instant;

use vault_core::{IntentionDraft, MarketAnswer, MarketFrame, Price, PseudonymKey, Signal, Topic, Vault};
use vault_sync::{Node, market_call};
use vault_tests::bench::{create, local, summary};

fn sizes(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::args()
        .find_map(|a| a.strip_prefix(&format!("{name}=")).map(str::to_owned))
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn draft(i: usize, now: i64) -> IntentionDraft {
    IntentionDraft {
        what: format!("thing {i}"),
        tags: vec!["coffee".into()],
        budget: Some(Price { amount_minor: 15_000, currency: "EUR".into() }),
        exact_budget: false,
        place: Some("FR".into()),
        until: now + 7 * 86_400,
    }
}

fn intentions(rt: &tokio::runtime::Runtime, held: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = create(dir.path());
    let now = vault.now();
    for i in 0..held {
        let (_, signed) = draft(i, now).make().unwrap();
        assert_eq!(vault.market_mut().receive(&signed, "direct").unwrap(), MarketAnswer::Kept);
    }
    let node = rt.block_on(Node::spawn(vault, local())).unwrap();
    let ticket = node.ticket();
    // A node takes 10 new intentions a minute from one address: ten calls.
    let mut sent = Vec::new();
    let mut keys = Vec::new();
    for i in 0..10 {
        let (key, signed) = draft(held + i, now).make().unwrap();
        let start = Instant::now();
        let answer = rt.block_on(market_call(
            &key,
            &ticket,
            &[MarketFrame::Intention(Box::new(signed.clone()))],
            false,
        ));
        sent.push(start.elapsed());
        assert_eq!(answer.unwrap(), vec![MarketFrame::Answer(MarketAnswer::Kept)]);
        keys.push((key, signed.intention.pseudonym));
    }
    summary(&format!("intention delivered and kept, {held} held"), sent);
    let mut fetched = Vec::new();
    for (key, pseudonym) in keys.iter().cycle().take(50) {
        node.with_vault(|v: &mut Vault| {
            let name = pseudonym.to_string();
            if v.market().offers_for(pseudonym).unwrap().is_empty() {
                let price = Price { amount_minor: 14_900, currency: "EUR".into() };
                v.market_mut().offer(&name, "Acme", &price, "", now + 86_400, None).unwrap();
            }
        });
        let start = Instant::now();
        let answer = rt.block_on(market_call(key, &ticket, &[MarketFrame::FetchOffers], false)).unwrap();
        fetched.push(start.elapsed());
        assert!(matches!(&answer[0], MarketFrame::Offers(o) if o.len() == 1));
    }
    summary(&format!("offers fetched, {held} held"), fetched);
    rt.block_on(node.shutdown());
}

fn topic(signals: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = create(dir.path());
    let topic: Topic = "coffee/FR".parse().unwrap();
    vault.topics_mut().join(&topic, &[], false, false).unwrap();
    let mut counts = vault.topics().counts(&topic).unwrap();
    // Four items per pseudonym, out of forty.
    let keys: Vec<PseudonymKey> = (0..signals / 4).map(|_| PseudonymKey::generate()).collect();
    let made: Vec<_> = (0..signals)
        .map(|i| {
            let key = &keys[i / 4];
            Signal {
                pseudonym: key.public(),
                topic: topic.clone(),
                item: format!("Item {}", (i * 7 + i / 4) % 40),
                seller: format!("Shop {}", i % 9),
                rating: Some(1 + (i % 5) as u8),
                price: None,
                place: None,
                when: Some("2026-11".into()),
            }
            .sign(key)
            .unwrap()
        })
        .collect();
    let mut kept = Vec::with_capacity(signals);
    for s in &made {
        let start = Instant::now();
        vault.topics_mut().take_signal(s, &mut counts).unwrap();
        kept.push(start.elapsed());
    }
    summary(&format!("signal kept, topic of {signals}"), kept);
    let mut views = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let top = vault.topics().top(&topic, None).unwrap();
        assert!(!top.is_empty());
        views.push(start.elapsed());
    }
    summary(&format!("topic top, {signals} signals"), views);
    let mut also = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        vault.topics().also(&topic, "Item 3", None).unwrap();
        also.push(start.elapsed());
    }
    summary(&format!("topic also, {signals} signals"), also);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let started = Instant::now();
    for held in sizes("held", &[100, 1000]) {
        intentions(&rt, held);
    }
    for n in sizes("signals", &[1000, 10_000]) {
        topic(n);
    }
    println!("market bench done in {:.1?}", started.elapsed());
}
