//! What the network says: summaries over the purchase feeds this vault already receives
//! (sellers, the items most bought and best rated, "friends who bought this also bought"), and
//! the mutes the subscriber switches on and off. Nothing new is shared or sent: everything here
//! reads the merged feed ([`Network::feed`]).
//!
//! Items are grouped by name, ignoring case and surrounding spaces; a friend counts once per
//! item and per seller however often they bought it. The mutes are this device's (kept in the
//! node's settings, not replicated to other devices).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Serialize};

use super::Vault;
mod feed;

use crate::identity::IdentityId;
use crate::money::Price;
use crate::store::StoreError;
use crate::vault::settings::Setting;
pub use feed::{FeedEntry, FeedFilter};

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

/// What the network says: the purchase feed of the shares held, its mutes, and the summaries over it: `vault.network()`, `vault.network_mut()`.
#[derive(Debug)]
pub struct Network<V> {
    pub(in crate::vault) vault: V,
}

impl<V: Deref<Target = Vault>> Network<V> {
    pub(in crate::vault) fn new(vault: V) -> Self {
        Self { vault }
    }
}

impl<V: Deref<Target = Vault>> Network<V> {
    /// The current mutes.
    pub fn mutes(&self) -> Result<Mutes, StoreError> {
        match self.vault.settings().get(Setting::Mutes)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|_| StoreError::damaged(&crate::store::sealed::NODE, Setting::Mutes)),
            None => Ok(Mutes::default()),
        }
    }
}

impl<V: DerefMut<Target = Vault>> Network<V> {
    /// Mutes (`on`) or unmutes a friend or a tag; false when that changed nothing.
    pub fn set_mute(&mut self, what: &Mute, on: bool) -> Result<bool, StoreError> {
        self.vault.write(|v| {
            let mut mutes = v.network().mutes()?;
            let changed = match what {
                Mute::Peer(p) => toggle(&mut mutes.peers, *p, on, |a, b| a == b),
                Mute::Tag(t) => {
                    toggle(&mut mutes.tags, t.trim().to_owned(), on, |a, b| a.eq_ignore_ascii_case(b))
                }
            };
            if changed {
                v.settings().put(Setting::Mutes, &serde_json::to_vec(&mutes).expect("serializes"))?;
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

/// A name compared and hashed ignoring case and surrounding spaces, without making a
/// lowercase copy of each of 100,000 names.
#[derive(Clone, Copy)]
struct Folded<'a>(&'a str);

impl<'a> Folded<'a> {
    fn new(name: &'a str) -> Self {
        Folded(name.trim())
    }

    fn chars(&self) -> impl Iterator<Item = char> + '_ {
        self.0.chars().flat_map(char::to_lowercase)
    }
}

impl PartialEq for Folded<'_> {
    fn eq(&self, other: &Self) -> bool {
        if self.0.is_ascii() && other.0.is_ascii() {
            return self.0.eq_ignore_ascii_case(other.0);
        }
        self.chars().eq(other.chars())
    }
}

impl Eq for Folded<'_> {}

impl std::hash::Hash for Folded<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The lowercase UTF-8 bytes, written a buffer at a time.
        let mut buf = [0u8; 64];
        let mut n = 0;
        for c in self.chars() {
            if n + 4 > buf.len() {
                state.write(&buf[..n]);
                n = 0;
            }
            n += c.encode_utf8(&mut buf[n..]).len();
        }
        state.write(&buf[..n]);
        state.write_u8(0xff);
    }
}

/// Counts for one item or seller. A friend counts once; most items have one buyer, so the
/// first is kept inline and only the others allocate.
#[derive(Default)]
struct Tally<'a> {
    /// The name as most recently written (the newest purchase's spelling).
    name: Option<&'a str>,
    newest: Option<&'a str>,
    purchases: usize,
    first_friend: Option<IdentityId>,
    other_friends: Vec<IdentityId>,
    rating_sum: u32,
    ratings: usize,
}

impl<'a> Tally<'a> {
    fn add(&mut self, name: &'a str, e: &'a FeedEntry) {
        if self.name.is_none() || e.date.as_deref() > self.newest {
            self.name = Some(name.trim());
            self.newest = e.date.as_deref();
        }
        self.purchases += 1;
        match self.first_friend {
            None => self.first_friend = Some(e.from),
            Some(f) if f == e.from => {}
            Some(_) if self.other_friends.contains(&e.from) => {}
            Some(_) => self.other_friends.push(e.from),
        }
        if let Some(r) = e.rating {
            self.rating_sum += u32::from(r);
            self.ratings += 1;
        }
    }

    fn friends(&self) -> usize {
        usize::from(self.first_friend.is_some()) + self.other_friends.len()
    }

    fn average(&self) -> Option<f64> {
        (self.ratings > 0).then(|| f64::from(self.rating_sum) / self.ratings as f64)
    }

    fn item(&self) -> ItemSummary {
        ItemSummary {
            item: self.name.unwrap_or_default().to_owned(),
            friends: self.friends(),
            purchases: self.purchases,
            ratings: self.ratings,
            average_rating: self.average(),
        }
    }
}

/// Most friends first, then most purchases, then best rated, then by name.
fn ranking(a: &Tally<'_>, b: &Tally<'_>) -> std::cmp::Ordering {
    (Reverse(a.friends()), Reverse(a.purchases))
        .cmp(&(Reverse(b.friends()), Reverse(b.purchases)))
        .then_with(|| b.average().unwrap_or(0.0).total_cmp(&a.average().unwrap_or(0.0)))
        .then_with(|| a.name.cmp(&b.name))
}

/// The first `limit` tallies by [`ranking`], without sorting the rest.
fn best(mut tallies: Vec<Tally<'_>>, limit: usize) -> Vec<ItemSummary> {
    if tallies.len() > limit {
        if limit == 0 {
            return Vec::new();
        }
        tallies.select_nth_unstable_by(limit - 1, ranking);
        tallies.truncate(limit);
    }
    tallies.sort_by(ranking);
    tallies.iter().map(Tally::item).collect()
}

/// Every seller in `entries` (in any order), the most friends first.
pub fn sellers(entries: &[FeedEntry]) -> Vec<SellerSummary> {
    /// A seller's tally, price ranges and newest review.
    type Seen<'a> = (Tally<'a>, BTreeMap<String, PriceRange>, Option<ReviewBy>);
    let mut by: HashMap<String, Seen<'_>> = HashMap::new();
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
                seller: tally.name.unwrap_or_default().to_owned(),
                purchases: tally.purchases,
                friends: tally.friends(),
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

/// The `limit` items most bought (by the most friends) and best rated in `entries`.
pub fn top_items(entries: &[FeedEntry], limit: usize) -> Vec<ItemSummary> {
    let mut by: HashMap<Folded<'_>, Tally<'_>> = HashMap::with_capacity(entries.len());
    for e in entries {
        let Some(item) = e.item.as_deref().filter(|i| !i.trim().is_empty()) else { continue };
        by.entry(Folded::new(item)).or_default().add(item, e);
    }
    best(by.into_values().collect(), limit)
}

/// Friends who bought an item matching `item` (ignoring case, as `feed --item` matches), and
/// the `limit` other items those friends bought most, ranked like [`top_items`]. The first
/// number is how many friends bought the item.
pub fn also_bought(entries: &[FeedEntry], item: &str, limit: usize) -> (usize, Vec<ItemSummary>) {
    let wanted = key(item);
    let matches = |name: &str| key(name).contains(&wanted);
    let buyers: HashSet<IdentityId> =
        entries.iter().filter(|e| e.item.as_deref().is_some_and(matches)).map(|e| e.from).collect();
    let mut by: HashMap<Folded<'_>, Tally<'_>> = HashMap::new();
    for e in entries.iter().filter(|e| buyers.contains(&e.from)) {
        let Some(name) = e.item.as_deref().filter(|i| !i.trim().is_empty() && !matches(i)) else { continue };
        by.entry(Folded::new(name)).or_default().add(name, e);
    }
    (buyers.len(), best(by.into_values().collect(), limit))
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
            time: None,
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
        let top = top_items(&entries, 10);
        let names: Vec<&str> = top.iter().map(|t| t.item.as_str()).collect();
        assert_eq!(names, ["Green tea", "Biscuits", "Teapot", "Tent"]);
        assert_eq!((top[0].friends, top[0].purchases, top[0].average_rating), (2, 2, Some(4.0)));

        assert_eq!(top_items(&entries, 2).len(), 2);
        assert_eq!(top_items(&entries, 0), Vec::new());
        let (buyers, also) = also_bought(&entries, "GREEN tea", 10);
        assert_eq!(buyers, 2);
        let names: Vec<&str> = also.iter().map(|t| t.item.as_str()).collect();
        assert_eq!(names, ["Biscuits", "Teapot"], "Carol did not buy tea; the tea itself is left out");
        assert_eq!(also_bought(&entries, "caviar", 10), (0, Vec::new()));
    }

    #[test]
    fn folded_names_match_ignoring_case_and_spaces_in_any_script() {
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        let same = |a: &str, b: &str| {
            let (a, b) = (Folded::new(a), Folded::new(b));
            a == b && hasher.hash_one(a) == hasher.hash_one(b)
        };
        assert!(same(" Green Tea", "green TEA "));
        assert!(same("Crème BRÛLÉE", "crème brûlée"));
        assert!(same(&"x".repeat(100), &"X".repeat(100)), "longer than the hash buffer");
        assert!(!same("Tea", "Teas"));
        assert!(!same("Crème", "Creme"));
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
