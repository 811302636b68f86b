//! What the network says: summaries over the purchase feeds this vault already receives
//! (sellers, the items most bought and best rated, "friends who bought this also bought"), and
//! the mutes the subscriber switches on and off. Nothing new is shared or sent: everything here
//! reads the merged feed ([`Vault::feed`]).
//!
//! Items are grouped by name, ignoring case and surrounding spaces; a friend counts once per
//! item and per seller however often they bought it. The mutes are this device's (kept in the
//! node's settings, not replicated to other devices).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::Vault;
use super::feed::FeedEntry;
use crate::identity::IdentityId;
use crate::money::Price;
use crate::store::StoreError;

const MUTES: &str = "feed-mutes";

/// Peers and tags left out of the feed and its summaries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutes {
    /// Friends whose purchases are left out.
    pub peers: Vec<IdentityId>,
    /// Tags whose purchases are left out (compared ignoring case).
    pub tags: Vec<String>,
}

impl Mutes {
    /// True when `e` is left out, unless the caller named its friend or tag itself.
    pub(crate) fn hides(
        &self,
        e: &FeedEntry,
        asked_from: Option<IdentityId>,
        asked_tag: Option<&str>,
    ) -> bool {
        let peer = self.peers.contains(&e.from) && asked_from != Some(e.from);
        let tag = e.tags.iter().any(|t| {
            self.tags.iter().any(|m| m.eq_ignore_ascii_case(t))
                && !asked_tag.is_some_and(|a| a.eq_ignore_ascii_case(t))
        });
        peer || tag
    }

    /// True when nothing is muted.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.tags.is_empty()
    }
}

/// What to mute or unmute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mute {
    /// A friend's purchases.
    Peer(IdentityId),
    /// Purchases with this tag.
    Tag(String),
}

impl Vault {
    /// The current mutes.
    pub fn feed_mutes(&self) -> Result<Mutes, StoreError> {
        match self.node_value(MUTES)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|_| StoreError::damaged(&crate::store::sealed::NODE, MUTES)),
            None => Ok(Mutes::default()),
        }
    }

    /// Mutes (`on`) or unmutes a friend or a tag; false when that changed nothing.
    pub fn set_feed_mute(&mut self, what: &Mute, on: bool) -> Result<bool, StoreError> {
        self.write(|v| {
            let mut mutes = v.feed_mutes()?;
            let changed = match what {
                Mute::Peer(p) => toggle(&mut mutes.peers, *p, on, |a, b| a == b),
                Mute::Tag(t) => {
                    toggle(&mut mutes.tags, t.trim().to_owned(), on, |a, b| a.eq_ignore_ascii_case(b))
                }
            };
            if changed {
                v.put_node_value(MUTES, &serde_json::to_vec(&mutes).expect("serializes"))?;
            }
            Ok(changed)
        })
    }
}

fn toggle<T>(list: &mut Vec<T>, value: T, on: bool, same: impl Fn(&T, &T) -> bool) -> bool {
    let at = list.iter().position(|x| same(x, &value));
    match (at, on) {
        (None, true) => {
            list.push(value);
            true
        }
        (Some(i), false) => {
            list.remove(i);
            true
        }
        _ => false,
    }
}

/// The lowest and highest price paid in one currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceRange {
    /// The lowest.
    pub min: Price,
    /// The highest.
    pub max: Price,
}

/// A review, with who wrote it and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewBy {
    /// The friend.
    pub from: IdentityId,
    /// Their petname, when a contact.
    pub from_name: Option<String>,
    /// What they bought.
    pub item: Option<String>,
    /// When (`YYYY-MM-DD`).
    pub date: Option<String>,
    /// The review.
    pub review: String,
}

/// One seller as the network saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct SellerSummary {
    /// The seller's name, as most recently written.
    pub seller: String,
    /// Friends' purchases there.
    pub purchases: usize,
    /// Friends who bought there.
    pub friends: usize,
    /// Purchases with a rating.
    pub ratings: usize,
    /// Their average rating, 1 to 5.
    pub average_rating: Option<f64>,
    /// Price range per currency (only purchases shared with a price), by currency.
    pub prices: BTreeMap<String, PriceRange>,
    /// The newest review.
    pub newest_review: Option<ReviewBy>,
}

/// One item as the network saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemSummary {
    /// The item's name, as most recently written.
    pub item: String,
    /// Friends who bought it.
    pub friends: usize,
    /// Purchases of it.
    pub purchases: usize,
    /// Purchases with a rating.
    pub ratings: usize,
    /// Their average rating, 1 to 5.
    pub average_rating: Option<f64>,
}

fn key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[derive(Default)]
struct Tally {
    name: Option<String>,
    purchases: usize,
    friends: HashSet<IdentityId>,
    rating_sum: u32,
    ratings: usize,
}

impl Tally {
    fn add(&mut self, name: &str, e: &FeedEntry) {
        // Entries come newest first: the first spelling seen is the newest.
        self.name.get_or_insert_with(|| name.trim().to_owned());
        self.purchases += 1;
        self.friends.insert(e.from);
        if let Some(r) = e.rating {
            self.rating_sum += u32::from(r);
            self.ratings += 1;
        }
    }

    fn average(&self) -> Option<f64> {
        (self.ratings > 0).then(|| f64::from(self.rating_sum) / self.ratings as f64)
    }

    fn item(self) -> ItemSummary {
        let average_rating = self.average();
        ItemSummary {
            item: self.name.unwrap_or_default(),
            friends: self.friends.len(),
            purchases: self.purchases,
            ratings: self.ratings,
            average_rating,
        }
    }
}

/// Most friends first, then most purchases, then best rated, then by name.
fn rank_items(items: &mut [ItemSummary]) {
    items.sort_by(|a, b| {
        (Reverse(a.friends), Reverse(a.purchases))
            .cmp(&(Reverse(b.friends), Reverse(b.purchases)))
            .then_with(|| b.average_rating.unwrap_or(0.0).total_cmp(&a.average_rating.unwrap_or(0.0)))
            .then_with(|| a.item.cmp(&b.item))
    });
}

/// Every seller in `entries` (newest first, as [`Vault::feed`] returns them), the most
/// friends first.
pub fn sellers(entries: &[FeedEntry]) -> Vec<SellerSummary> {
    /// A seller's tally, price ranges and newest review.
    type Seen = (Tally, BTreeMap<String, PriceRange>, Option<ReviewBy>);
    let mut by: HashMap<String, Seen> = HashMap::new();
    for e in entries {
        let Some(seller) = e.seller.as_deref().filter(|s| !s.trim().is_empty()) else { continue };
        let (tally, prices, review) = by.entry(key(seller)).or_default();
        tally.add(seller, e);
        if let Some(p) = &e.price {
            let range = prices
                .entry(p.currency.clone())
                .or_insert_with(|| PriceRange { min: p.clone(), max: p.clone() });
            if p.amount_minor < range.min.amount_minor {
                range.min = p.clone();
            }
            if p.amount_minor > range.max.amount_minor {
                range.max = p.clone();
            }
        }
        if let Some(text) = e.review.as_deref().filter(|r| !r.trim().is_empty())
            && review.as_ref().is_none_or(|r| r.date < e.date)
        {
            *review = Some(ReviewBy {
                from: e.from,
                from_name: e.from_name.clone(),
                item: e.item.clone(),
                date: e.date.clone(),
                review: text.to_owned(),
            });
        }
    }
    let mut out: Vec<SellerSummary> = by
        .into_values()
        .map(|(tally, prices, newest_review)| {
            let average_rating = tally.average();
            SellerSummary {
                seller: tally.name.unwrap_or_default(),
                purchases: tally.purchases,
                friends: tally.friends.len(),
                ratings: tally.ratings,
                average_rating,
                prices,
                newest_review,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (Reverse(a.friends), Reverse(a.purchases), &a.seller).cmp(&(
            Reverse(b.friends),
            Reverse(b.purchases),
            &b.seller,
        ))
    });
    out
}

/// The items most bought (by the most friends) and best rated in `entries`.
pub fn top_items(entries: &[FeedEntry]) -> Vec<ItemSummary> {
    let mut by: HashMap<String, Tally> = HashMap::new();
    for e in entries {
        let Some(item) = e.item.as_deref().filter(|i| !i.trim().is_empty()) else { continue };
        by.entry(key(item)).or_default().add(item, e);
    }
    let mut out: Vec<ItemSummary> = by.into_values().map(Tally::item).collect();
    rank_items(&mut out);
    out
}

/// Friends who bought an item matching `item` (ignoring case, as `feed --item` matches), and
/// what else those friends bought, ranked like [`top_items`]. The first number is how many
/// friends bought the item.
pub fn also_bought(entries: &[FeedEntry], item: &str) -> (usize, Vec<ItemSummary>) {
    let wanted = key(item);
    let matches = |name: &str| key(name).contains(&wanted);
    let buyers: HashSet<IdentityId> =
        entries.iter().filter(|e| e.item.as_deref().is_some_and(matches)).map(|e| e.from).collect();
    let others: Vec<FeedEntry> = entries
        .iter()
        .filter(|e| buyers.contains(&e.from) && e.item.as_deref().is_some_and(|i| !matches(i)))
        .cloned()
        .collect();
    (buyers.len(), top_items(&others))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::GrantId;

    fn entry(
        from: &IdentityId,
        item: &str,
        seller: &str,
        cents: i64,
        date: &str,
        rating: Option<u8>,
    ) -> FeedEntry {
        FeedEntry {
            from: *from,
            from_name: None,
            grant: GrantId::random(),
            id: format!("{item}-{date}"),
            item: Some(item.into()),
            seller: Some(seller.into()),
            price: Some(Price { amount_minor: cents, currency: "EUR".into() }),
            date: Some(date.into()),
            category: None,
            tags: vec!["food".into()],
            rating,
            review: rating.map(|r| format!("{r} stars")),
        }
    }

    fn people() -> [IdentityId; 3] {
        [0, 1, 2].map(|_| crate::identity::Identity::generate().public())
    }

    #[test]
    fn sellers_count_friends_once_and_keep_ranges_per_currency() {
        let [a, b, c] = people();
        let mut usd = entry(&c, "Tea", "ACME ", 900, "2026-10-03", None);
        usd.price = Some(Price { amount_minor: 1200, currency: "USD".into() });
        let entries = vec![
            entry(&a, "Tea", "Acme", 450, "2026-10-05", Some(4)),
            entry(&a, "Tea", "acme", 390, "2026-10-04", Some(2)),
            usd,
            entry(&b, "Tent", "Outdoors", 19900, "2026-10-01", Some(5)),
        ];
        let s = sellers(&entries);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].seller.as_str(), s[0].friends, s[0].purchases, s[0].ratings), ("Acme", 2, 3, 2));
        assert_eq!(s[0].average_rating, Some(3.0));
        assert_eq!((s[0].prices["EUR"].min.amount_minor, s[0].prices["EUR"].max.amount_minor), (390, 450));
        assert_eq!(s[0].prices["USD"].min.amount_minor, 1200);
        assert_eq!(s[0].newest_review.as_ref().unwrap().review, "4 stars");
        assert_eq!(s[1].seller, "Outdoors");
    }

    #[test]
    fn top_ranks_by_friends_then_purchases_then_rating_and_also_excludes_the_item() {
        let [a, b, c] = people();
        let entries = vec![
            entry(&a, "Green tea", "Acme", 450, "2026-10-05", Some(5)),
            entry(&b, "green TEA", "Acme", 450, "2026-10-04", Some(3)),
            entry(&a, "Teapot", "Acme", 2000, "2026-10-03", Some(5)),
            entry(&b, "Biscuits", "Acme", 300, "2026-10-03", Some(4)),
            entry(&b, "Biscuits", "Acme", 300, "2026-10-02", Some(4)),
            entry(&c, "Tent", "Outdoors", 19900, "2026-10-01", None),
        ];
        let top = top_items(&entries);
        let names: Vec<&str> = top.iter().map(|t| t.item.as_str()).collect();
        assert_eq!(names, ["Green tea", "Biscuits", "Teapot", "Tent"]);
        assert_eq!((top[0].friends, top[0].purchases, top[0].average_rating), (2, 2, Some(4.0)));

        let (buyers, also) = also_bought(&entries, "GREEN tea");
        assert_eq!(buyers, 2);
        let names: Vec<&str> = also.iter().map(|t| t.item.as_str()).collect();
        assert_eq!(names, ["Biscuits", "Teapot"], "Carol did not buy tea; the tea itself is left out");
        assert_eq!(also_bought(&entries, "caviar"), (0, Vec::new()));
    }

    #[test]
    fn mutes_hide_unless_asked_for() {
        let [a, b, _] = people();
        let mutes = Mutes { peers: vec![a], tags: vec!["FOOD".into()] };
        let mut e = entry(&b, "Tea", "Acme", 1, "2026-01-01", None);
        assert!(mutes.hides(&e, None, None), "a muted tag");
        assert!(!mutes.hides(&e, None, Some("food")), "the tag asked for");
        e.tags.clear();
        assert!(!mutes.hides(&e, None, None));
        e.from = a;
        assert!(mutes.hides(&e, None, None), "a muted friend");
        assert!(!mutes.hides(&e, Some(a), None), "the friend asked for");
    }
}
