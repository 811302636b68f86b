//! [`Topics`]: the public topics this vault takes part in, and the signals heard on them (see
//! `docs/intentions.md`). Each topic has a pseudonym of its own (made for it alone), under
//! which this vault listens and publishes; the peers to enter it by; whether it takes
//! intentions (a seller) and publishes this vault's purchases of the topic's category. Owns the
//! sealed tables `topics` and `signals`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::Vault;
use crate::identity::Ticket;
use crate::intent::{Budget, Pseudonym, PseudonymKey};
use crate::signal::{Signal, SignedSignal, Topic};
use crate::store::StoreError;
use crate::store::sealed::{Key, SIGNALS, TOPICS};
use crate::store::typed::TypedTable;

const TOPIC_ROWS: TypedTable<TopicRecord> = TypedTable::new(TOPICS);
const SIGNAL_ROWS: TypedTable<SignalRecord> = TypedTable::new(SIGNALS);

/// Items counted per pseudonym on one topic, at most: one person's signals beyond are dropped.
pub const MAX_ITEMS_PER_PSEUDONYM: usize = 64;
/// Signals kept per topic, at most.
pub const MAX_SIGNALS_PER_TOPIC: usize = 20_000;
/// Topics joined, at most.
pub const MAX_TOPICS: usize = 32;

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    topic: Topic,
    key: [u8; 32],
    #[serde(default)]
    via: Vec<String>,
    #[serde(default)]
    intentions: bool,
    #[serde(default)]
    publish: bool,
    #[serde(default)]
    joined_at: i64,
    #[serde(default)]
    vouched: BTreeSet<String>,
}

#[derive(Serialize, Deserialize)]
struct SignalRecord {
    signal: Vec<u8>,
    received_at: i64,
}

/// A topic this vault takes part in.
#[derive(Clone, Debug)]
pub struct JoinedTopic {
    /// The topic.
    pub topic: Topic,
    /// This vault's pseudonym on it.
    pub pseudonym: Pseudonym,
    /// The peers to enter it by.
    pub via: Vec<Ticket>,
    /// Takes intentions sent to the topic (a seller).
    pub intentions: bool,
    /// Publishes this vault's purchases of the topic's category.
    pub publish: bool,
    /// Pseudonyms this vault vouches for on it.
    pub vouched: BTreeSet<String>,
}

/// What a topic says, counted: each pseudonym once per item.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicItem {
    /// The item, as first spelled.
    pub item: String,
    /// How many pseudonyms bought it.
    pub buyers: usize,
    /// The mean of their ratings, when any.
    pub rating: Option<f64>,
    /// The sellers named, by how many pseudonyms.
    pub sellers: Vec<(String, usize)>,
    /// The price bands given, lowest and highest bound.
    pub price: Option<Budget>,
}

/// Signals kept from one topic: in all, and per pseudonym.
#[derive(Clone, Debug, Default)]
pub struct SignalCounts {
    /// In all.
    pub total: usize,
    /// Per pseudonym.
    pub per_pseudonym: HashMap<Pseudonym, usize>,
}

/// Something about topics could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopicsError {
    /// Not a topic this vault joined.
    #[error("you have not joined topic {0} (vault topic join)")]
    NotJoined(String),
    /// Taking intentions (as yourself) and publishing (under a pseudonym) on one topic.
    #[error(
        "a topic is joined either to take intentions (as yourself) or to listen and publish (under a pseudonym), not both"
    )]
    Roles,
    /// Too many topics.
    #[error("at most {MAX_TOPICS} topics")]
    TooMany,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The topics of this vault: `vault.topics()`, `vault.topics_mut()`.
#[derive(Debug)]
pub struct Topics<V> {
    vault: V,
}

fn topic_key(topic: &Topic) -> Vec<u8> {
    topic.as_str().as_bytes().to_vec()
}

fn signal_id(topic: &Topic, pseudonym: &Pseudonym, item: &str) -> [u8; 16] {
    let mut h = blake3::Hasher::new_derive_key("vault signal row v1");
    h.update(topic.as_str().as_bytes());
    h.update(&[0]);
    h.update(pseudonym.as_bytes());
    h.update(item.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

impl<V: Deref<Target = Vault>> Topics<V> {
    fn new(vault: V) -> Self {
        Self { vault }
    }

    /// The topics joined.
    pub fn list(&self) -> Result<Vec<JoinedTopic>, StoreError> {
        Ok(TOPIC_ROWS
            .list(&self.vault.store)?
            .into_iter()
            .map(|(_, r)| JoinedTopic {
                pseudonym: PseudonymKey::from_secret_bytes(&r.key).public(),
                topic: r.topic,
                via: r.via.iter().filter_map(|t| t.parse().ok()).collect(),
                intentions: r.intentions,
                publish: r.publish,
                vouched: r.vouched,
            })
            .collect())
    }

    /// This vault's key on a topic joined.
    pub fn key(&self, topic: &Topic) -> Result<Option<PseudonymKey>, StoreError> {
        Ok(TOPIC_ROWS
            .get(&self.vault.store, Key::Id(&topic_key(topic)))?
            .map(|r| PseudonymKey::from_secret_bytes(&r.key)))
    }

    /// How many signals are kept from a topic, in all and per pseudonym (one scan).
    pub fn counts(&self, topic: &Topic) -> Result<SignalCounts, StoreError> {
        let mut counts = SignalCounts::default();
        for s in self.signals(topic)? {
            counts.total += 1;
            *counts.per_pseudonym.entry(s.signal.pseudonym).or_default() += 1;
        }
        Ok(counts)
    }

    /// The signals kept from a topic.
    pub fn signals(&self, topic: &Topic) -> Result<Vec<SignedSignal>, StoreError> {
        Ok(SIGNAL_ROWS
            .list(&self.vault.store)?
            .into_iter()
            .filter_map(|(_, r)| SignedSignal::from_stored(&r.signal))
            .filter(|s| s.signal.topic == *topic)
            .collect())
    }

    /// The signals this vault publishes on a topic it joined to publish: one per purchase tagged
    /// with the topic's category, coarse (the price as its band, the month, the topic's place),
    /// signed by this vault's pseudonym there. Empty when it does not publish there.
    pub fn my_signals(&self, topic: &Topic) -> Result<Vec<SignedSignal>, StoreError> {
        let Some(record) = TOPIC_ROWS.get(&self.vault.store, Key::Id(&topic_key(topic)))? else {
            return Ok(Vec::new());
        };
        if !record.publish || record.intentions {
            return Ok(Vec::new());
        }
        let key = PseudonymKey::from_secret_bytes(&record.key);
        let category = topic.category();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for p in self.vault.records().purchases() {
            let r = p.record;
            if !r.tags.iter().any(|t| t == category) || !seen.insert(r.item.trim().to_lowercase()) {
                continue;
            }
            let signal = Signal {
                pseudonym: key.public(),
                topic: topic.clone(),
                item: r.item.chars().take(crate::signal::MAX_SIGNAL_TEXT).collect(),
                seller: r.seller.chars().take(crate::signal::MAX_SIGNAL_TEXT).collect(),
                rating: r.rating.and_then(|x| u8::try_from(x).ok()),
                price: Some(Budget::band(r.price.amount_minor, &r.price.currency)),
                place: topic.place().map(str::to_owned),
                when: r.date.get(..7).map(str::to_owned),
            };
            if let Ok(signed) = signal.sign(&key) {
                out.push(signed);
            }
            if out.len() >= MAX_ITEMS_PER_PSEUDONYM {
                break;
            }
        }
        Ok(out)
    }

    /// What a topic says, most bought first: each pseudonym counts once per item, this vault's
    /// own pseudonym not at all. `vouched`: only pseudonyms vouched for (by this vault).
    pub fn top(
        &self,
        topic: &Topic,
        vouched: Option<&BTreeSet<String>>,
    ) -> Result<Vec<TopicItem>, StoreError> {
        let me = self.key(topic)?.map(|k| k.public());
        let mut by_item: BTreeMap<String, (String, Vec<Signal>)> = BTreeMap::new();
        for s in self.signals(topic)? {
            let s = s.signal;
            if Some(s.pseudonym) == me || vouched.is_some_and(|v| !v.contains(&s.pseudonym.to_string())) {
                continue;
            }
            by_item.entry(s.item_key()).or_insert_with(|| (s.item.clone(), Vec::new())).1.push(s);
        }
        let mut out: Vec<TopicItem> = by_item.into_values().map(|(_, signals)| summarize(&signals)).collect();
        out.sort_by(|a, b| b.buyers.cmp(&a.buyers).then(a.item.cmp(&b.item)));
        Ok(out)
    }

    /// "People who bought ITEM also bought": among the pseudonyms that bought `item` on the
    /// topic, the other items they bought, by how many of them.
    pub fn also(
        &self,
        topic: &Topic,
        item: &str,
        vouched: Option<&BTreeSet<String>>,
    ) -> Result<Vec<(String, usize)>, StoreError> {
        let me = self.key(topic)?.map(|k| k.public());
        let wanted = item.trim().to_lowercase();
        let mut items_of: HashMap<Pseudonym, BTreeMap<String, String>> = HashMap::new();
        for s in self.signals(topic)? {
            let s = s.signal;
            if Some(s.pseudonym) == me || vouched.is_some_and(|v| !v.contains(&s.pseudonym.to_string())) {
                continue;
            }
            items_of.entry(s.pseudonym).or_default().insert(s.item_key(), s.item.clone());
        }
        let mut counts: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for items in items_of.values().filter(|i| i.contains_key(&wanted)) {
            for (key, spelled) in items.iter().filter(|(k, _)| **k != wanted) {
                counts.entry(key.clone()).or_insert_with(|| (spelled.clone(), 0)).1 += 1;
            }
        }
        let mut out: Vec<(String, usize)> = counts.into_values().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(out)
    }
}

/// The spelling most of them used (the first in order among equals).
fn most_used_spelling(signals: &[Signal]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in signals {
        *counts.entry(s.item.trim()).or_default() += 1;
    }
    let best = counts.values().copied().max().unwrap_or(0);
    counts.into_iter().find(|(_, n)| *n == best).map(|(s, _)| s.to_owned()).unwrap_or_default()
}

fn summarize(signals: &[Signal]) -> TopicItem {
    let item = most_used_spelling(signals);
    let ratings: Vec<f64> = signals.iter().filter_map(|s| s.rating.map(f64::from)).collect();
    let mut sellers: BTreeMap<String, usize> = BTreeMap::new();
    for s in signals {
        *sellers.entry(s.seller.trim().to_owned()).or_default() += 1;
    }
    let mut sellers: Vec<(String, usize)> = sellers.into_iter().collect();
    sellers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let bands: Vec<&Budget> = signals.iter().filter_map(|s| s.price.as_ref()).collect();
    let price = bands.first().map(|first| Budget {
        low: bands.iter().filter(|b| b.currency == first.currency).map(|b| b.low).min().unwrap_or(first.low),
        high: bands
            .iter()
            .filter(|b| b.currency == first.currency)
            .map(|b| b.high)
            .max()
            .unwrap_or(first.high),
        currency: first.currency.clone(),
    });
    TopicItem {
        item,
        buyers: signals.len(),
        rating: (!ratings.is_empty()).then(|| ratings.iter().sum::<f64>() / ratings.len() as f64),
        sellers,
        price,
    }
}

impl Topics<&mut Vault> {
    /// Joins a topic (or changes how): a pseudonym made for it alone the first time.
    pub fn join(
        &mut self,
        topic: &Topic,
        via: &[Ticket],
        intentions: bool,
        publish: bool,
    ) -> Result<JoinedTopic, TopicsError> {
        let now = self.vault.now();
        let known = self.list()?;
        if known.len() >= MAX_TOPICS && !known.iter().any(|t| t.topic == *topic) {
            return Err(TopicsError::TooMany);
        }
        self.vault.write(|v| {
            let id = topic_key(topic);
            let mut record = TOPIC_ROWS.get(&v.store, Key::Id(&id))?.unwrap_or_else(|| TopicRecord {
                topic: topic.clone(),
                key: *PseudonymKey::generate().secret_bytes(),
                via: Vec::new(),
                intentions: false,
                publish: false,
                joined_at: now,
                vouched: BTreeSet::new(),
            });
            for t in via {
                let t = t.to_string();
                if !record.via.contains(&t) {
                    record.via.push(t);
                }
            }
            // One role per topic: a seller takes part as itself, a publisher under a pseudonym;
            // both at once would sign the pseudonym's signals from the seller's own node.
            if (record.intentions || intentions) && (record.publish || publish) {
                return Err(TopicsError::Roles);
            }
            record.intentions |= intentions;
            record.publish |= publish;
            TOPIC_ROWS.put(&v.store, Key::Id(&id), &record)?;
            Ok::<(), TopicsError>(())
        })?;
        self.list()?
            .into_iter()
            .find(|t| t.topic == *topic)
            .ok_or_else(|| TopicsError::NotJoined(topic.to_string()))
    }

    /// Leaves a topic: its pseudonym and the signals heard on it are forgotten.
    pub fn leave(&mut self, topic: &Topic) -> Result<bool, TopicsError> {
        let rows: Vec<Vec<u8>> = SIGNAL_ROWS
            .list(&self.vault.store)?
            .into_iter()
            .filter(|(_, r)| SignedSignal::from_stored(&r.signal).is_some_and(|s| s.signal.topic == *topic))
            .map(|(k, _)| k.id().to_vec())
            .collect();
        self.vault.write(|v| {
            for id in &rows {
                SIGNAL_ROWS.delete(&v.store, Key::Id(id))?;
            }
            Ok(TOPIC_ROWS.delete(&v.store, Key::Id(&topic_key(topic)))?)
        })
    }

    /// Vouches for a pseudonym on a topic (or takes the vouch back).
    pub fn vouch(&mut self, topic: &Topic, pseudonym: &Pseudonym, vouch: bool) -> Result<(), TopicsError> {
        self.vault.write(|v| {
            let id = topic_key(topic);
            let mut record = TOPIC_ROWS
                .get(&v.store, Key::Id(&id))?
                .ok_or_else(|| TopicsError::NotJoined(topic.to_string()))?;
            if vouch {
                record.vouched.insert(pseudonym.to_string());
            } else {
                record.vouched.remove(&pseudonym.to_string());
            }
            TOPIC_ROWS.put(&v.store, Key::Id(&id), &record)?;
            Ok(())
        })
    }

    /// Keeps a signal heard on a topic this vault joined: one per pseudonym and item (a newer
    /// one replaces it), at most [`MAX_ITEMS_PER_PSEUDONYM`] items per pseudonym and
    /// [`MAX_SIGNALS_PER_TOPIC`] signals per topic, counted in `counts` (see
    /// [`Topics::counts`]; the caller keeps them, so that no signal costs a scan). Returns
    /// whether it was kept.
    pub fn take_signal(
        &mut self,
        signed: &SignedSignal,
        counts: &mut SignalCounts,
    ) -> Result<bool, StoreError> {
        let s = &signed.signal;
        if TOPIC_ROWS.get(&self.vault.store, Key::Id(&topic_key(&s.topic)))?.is_none() {
            return Ok(false);
        }
        let id = signal_id(&s.topic, &s.pseudonym, &s.item_key());
        let now = self.vault.now();
        let known = SIGNAL_ROWS.get(&self.vault.store, Key::Id(&id))?;
        let bytes = signed.to_bytes();
        if known.as_ref().is_some_and(|k| k.signal == bytes) {
            // Said again (a republish): nothing to write.
            return Ok(true);
        }
        if known.is_none() {
            let from = counts.per_pseudonym.get(&s.pseudonym).copied().unwrap_or(0);
            if from >= MAX_ITEMS_PER_PSEUDONYM || counts.total >= MAX_SIGNALS_PER_TOPIC {
                return Ok(false);
            }
        }
        self.vault.write(|v| {
            SIGNAL_ROWS.put(&v.store, Key::Id(&id), &SignalRecord { signal: bytes, received_at: now })
        })?;
        if known.is_none() {
            counts.total += 1;
            *counts.per_pseudonym.entry(s.pseudonym).or_default() += 1;
        }
        Ok(true)
    }
}

impl Vault {
    /// Public topics joined and the signals heard on them, to read.
    pub fn topics(&self) -> Topics<&Self> {
        Topics::new(self)
    }

    /// Public topics joined and the signals heard on them, to change.
    pub fn topics_mut(&mut self) -> Topics<&mut Self> {
        Topics::new(self)
    }
}

#[cfg(test)]
mod tests;
