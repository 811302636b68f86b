//! The bounds on what a seller holds, counted in memory: the counts always agree with the
//! table, whatever this connection or another one did.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use proptest::prelude::*;

use super::*;
use crate::intent::PseudonymKey;
use crate::intent::{IntentionDraft, Withdrawal};
use crate::primitives::Passphrase;
use crate::vault::new_test_vault_with_clock;

const START: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn intention(clock: &AtomicI64, days: i64) -> (PseudonymKey, SignedIntention) {
    IntentionDraft {
        what: "espresso machine".into(),
        tags: vec![],
        budget: None,
        exact_budget: false,
        place: None,
        until: clock.load(Ordering::SeqCst) + days * DAY,
    }
    .make()
    .unwrap()
}

/// Live direct, live by topic a, live, withdrawn marks.
type Tally = (usize, usize, usize, usize);

/// What the counts say, and what reading the table says.
fn counted_and_read(v: &Vault) -> (Tally, Tally) {
    let now = v.now();
    let counted = v
        .market()
        .counts(|c| (c.live_via("direct", now), c.live_via("topic a", now), c.live(now), c.marks()))
        .unwrap();
    let rows = ROWS.list(&v.store).unwrap();
    let live = |via: Option<&str>| {
        rows.iter()
            .filter(|(_, r)| r.withdrawn_at.is_none() && r.until > now && via.is_none_or(|via| r.via == via))
            .count()
    };
    let marks = rows.iter().filter(|(_, r)| r.withdrawn_at.is_some()).count();
    (counted, (live(Some("direct")), live(Some("topic a")), live(None), marks))
}

#[derive(Clone, Debug)]
enum Step {
    /// An intention for so many days, direct or by a topic.
    Receive { days: i64, topic: bool },
    /// The same, taken by another connection to the vault (another process).
    ReceiveElsewhere { days: i64 },
    /// The n-th key made so far withdraws its intention.
    Withdraw(usize),
    /// The seller forgets the n-th key's intention.
    Forget(usize),
    /// The same, from another connection (the CLI while the node runs).
    ForgetElsewhere(usize),
    /// Days pass, then what expired is forgotten.
    Expire(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1i64..5, any::<bool>()).prop_map(|(days, topic)| Step::Receive { days, topic }),
        1 => (1i64..5).prop_map(|days| Step::ReceiveElsewhere { days }),
        2 => any::<usize>().prop_map(Step::Withdraw),
        1 => any::<usize>().prop_map(Step::Forget),
        1 => any::<usize>().prop_map(Step::ForgetElsewhere),
        1 => (0i64..4).prop_map(Step::Expire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_counts_agree_with_the_table(steps in proptest::collection::vec(step(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(AtomicI64::new(START));
        let mut v = new_test_vault_with_clock(dir.path(), clock.clone());
        let c = clock.clone();
        let mut other = Vault::at(dir.path())
            .clock(Arc::new(move || c.load(Ordering::SeqCst)))
            .unlock(&Passphrase::new("pw"))
            .unwrap();
        let mut keys: Vec<PseudonymKey> = Vec::new();
        for step in steps {
            match step.clone() {
                Step::Receive { days, topic } => {
                    let (key, signed) = intention(&clock, days);
                    let via = if topic { "topic a" } else { "direct" };
                    prop_assert_eq!(v.market_mut().receive(&signed, via).unwrap(), MarketAnswer::Kept);
                    keys.push(key);
                }
                Step::ReceiveElsewhere { days } => {
                    let (key, signed) = intention(&clock, days);
                    prop_assert_eq!(other.market_mut().receive(&signed, "direct").unwrap(), MarketAnswer::Kept);
                    keys.push(key);
                }
                Step::Withdraw(n) if !keys.is_empty() => {
                    let key = &keys[n % keys.len()];
                    let now = clock.load(Ordering::SeqCst);
                    v.market_mut().withdrawn(&Withdrawal::sign(key, now)).unwrap();
                }
                Step::Forget(n) | Step::ForgetElsewhere(n) if !keys.is_empty() => {
                    let name = keys[n % keys.len()].public().to_string();
                    let by = if matches!(step, Step::Forget(_)) { &mut v } else { &mut other };
                    // Gone already (withdrawn, expired, forgotten) is fine: nothing to forget.
                    let _ = by.market_mut().forget(&name);
                }
                Step::Expire(days) => {
                    clock.fetch_add(days * DAY, Ordering::SeqCst);
                    v.market_mut().expire().unwrap();
                }
                _ => {}
            }
            let (counted, read) = counted_and_read(&v);
            prop_assert_eq!(counted, read);
        }
    }
}

#[test]
fn a_topic_fills_at_its_bound_and_a_withdrawal_frees_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(START));
    let mut v = new_test_vault_with_clock(dir.path(), clock.clone());
    let mut first = None;
    for _ in 0..MAX_HELD_PER_TOPIC {
        let (key, signed) = intention(&clock, 3);
        assert_eq!(v.market_mut().receive(&signed, "topic a").unwrap(), MarketAnswer::Kept);
        first.get_or_insert(key);
    }
    let (_, one_more) = intention(&clock, 3);
    assert_eq!(v.market_mut().receive(&one_more, "topic a").unwrap(), MarketAnswer::Full);
    // Another topic, and intentions dialled straight to this seller, have their own bounds.
    let (_, other_topic) = intention(&clock, 3);
    assert_eq!(v.market_mut().receive(&other_topic, "topic b").unwrap(), MarketAnswer::Kept);
    let (_, direct) = intention(&clock, 3);
    assert_eq!(v.market_mut().receive(&direct, "direct").unwrap(), MarketAnswer::Kept);
    // One withdrawn: its slot is free again.
    let first = first.unwrap();
    let now = clock.load(Ordering::SeqCst);
    assert_eq!(v.market_mut().withdrawn(&Withdrawal::sign(&first, now)).unwrap(), MarketAnswer::Kept);
    assert_eq!(v.market_mut().receive(&one_more, "topic a").unwrap(), MarketAnswer::Kept);
    let (_, again) = intention(&clock, 3);
    assert_eq!(v.market_mut().receive(&again, "topic a").unwrap(), MarketAnswer::Full);
    // Past their last day, they hold no slot, even before they are forgotten.
    clock.fetch_add(4 * DAY, Ordering::SeqCst);
    let (_, later) = intention(&clock, 3);
    assert_eq!(v.market_mut().receive(&later, "topic a").unwrap(), MarketAnswer::Kept);
}

#[test]
fn the_bounds_in_all_and_on_withdrawn_marks() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(START));
    let mut v = new_test_vault_with_clock(dir.path(), clock.clone());
    let fill = |v: &mut Vault, via: &str, n: usize| {
        for _ in 0..n {
            let (_, signed) = intention(&clock, 3);
            assert_eq!(v.market_mut().receive(&signed, via).unwrap(), MarketAnswer::Kept, "{via}");
        }
        let (_, one_more) = intention(&clock, 3);
        v.market_mut().receive(&one_more, via).unwrap()
    };
    assert_eq!(fill(&mut v, "direct", MAX_HELD_INTENTIONS), MarketAnswer::Full);
    for topic in ["topic b", "topic c", "topic d"] {
        assert_eq!(fill(&mut v, topic, MAX_HELD_PER_TOPIC), MarketAnswer::Full);
    }
    // 2,000 direct and 1,500 by topics: one topic more takes 500, then nothing more in all.
    const { assert!(MAX_HELD_INTENTIONS + 4 * MAX_HELD_PER_TOPIC == 2 * MAX_HELD_INTENTIONS) };
    assert_eq!(fill(&mut v, "topic e", MAX_HELD_PER_TOPIC - 1), MarketAnswer::Kept);
    assert_eq!(fill(&mut v, "topic f", 0), MarketAnswer::Full);

    // At the bound of withdrawn marks, a withdrawn intention is forgotten whole.
    let (key, signed) = intention(&clock, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut v = new_test_vault_with_clock(dir.path(), clock.clone());
    assert_eq!(v.market_mut().receive(&signed, "direct").unwrap(), MarketAnswer::Kept);
    let now = clock.load(Ordering::SeqCst);
    let mark = HeldRecord {
        intention: Vec::new(),
        until: now + DAY,
        received_at: now,
        via: "direct".into(),
        offers: Vec::new(),
        accepted: None,
        withdrawn_at: Some(now),
    };
    v.write(|v| {
        for i in 0..MAX_WITHDRAWN_MARKS as u32 {
            ROWS.put(&v.store, Key::Id(&i.to_be_bytes()), &mark)?;
        }
        Ok::<(), StoreError>(())
    })
    .unwrap();
    v.market_tally.clear();
    let pseudonym = key.public();
    assert_eq!(v.market_mut().withdrawn(&Withdrawal::sign(&key, now)).unwrap(), MarketAnswer::Kept);
    assert!(ROWS.get(&v.store, Key::Id(pseudonym.as_bytes())).unwrap().is_none());
    let (counted, read) = counted_and_read(&v);
    assert_eq!(counted, read);
    assert_eq!(read.3, MAX_WITHDRAWN_MARKS);
}
