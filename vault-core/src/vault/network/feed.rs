//! The friend's side of purchase feeds: every purchase shared with this vault, merged across
//! everyone it follows, newest first, and the price comparison for one item; what is muted
//! (network.rs) is left out. Owns no table: it
//! reads the received shares' views (received.rs).

use super::Network;
use std::collections::{HashMap, HashSet};
use std::ops::DerefMut;

use serde::Deserialize;

use crate::identity::IdentityId;
use crate::money::Price;
use crate::statement::GrantId;
use crate::store::StoreError;
use crate::vault::Vault;
use crate::vault::held::ShareStatus;

/// One purchase in the merged feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntry {
    /// Who bought it (the share's issuer).
    pub from: IdentityId,
    /// Their petname, when a contact.
    pub from_name: Option<String>,
    /// The share it came through.
    pub grant: GrantId,
    /// The purchase's id in the issuer's vault.
    pub id: String,
    /// What was bought (absent when the share leaves it out).
    pub item: Option<String>,
    /// Where.
    pub seller: Option<String>,
    /// For how much (absent when the share has no prices).
    pub price: Option<Price>,
    /// When (`YYYY-MM-DD`).
    pub date: Option<String>,
    /// At what time of day (`HH:MM`), when shared.
    pub time: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Rating, 1 to 5.
    pub rating: Option<u8>,
    /// Review.
    pub review: Option<String>,
}

/// Which feed entries to list. Text comparisons ignore case.
#[derive(Clone, Debug, Default)]
pub struct FeedFilter {
    /// Only purchases shared by this identity.
    pub from: Option<IdentityId>,
    /// Only purchases with this tag.
    pub tag: Option<String>,
    /// Only purchases from this seller.
    pub seller: Option<String>,
    /// Only purchases whose item contains this text; the result is then ranked by price,
    /// lowest first (per currency), instead of by date.
    pub item: Option<String>,
    /// Only purchases on or after this date (`YYYY-MM-DD`).
    pub since: Option<String>,
    /// Muted friends and tags included too (see network.rs); a friend or tag named by `from`
    /// or `tag` is included anyway.
    pub include_muted: bool,
    /// In no particular order (for summaries, which need no order: a third of the time of a
    /// feed of 100,000 purchases goes to sorting it).
    pub unordered: bool,
}

/// A view's purchases, each kept as its text until read on its own (no tree of values built
/// for a feed of 100,000).
#[derive(Deserialize)]
struct ViewPurchases<'a> {
    #[serde(default, borrow)]
    purchases: HashMap<String, &'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct RawPurchase {
    item: Option<String>,
    seller: Option<String>,
    price: Option<Price>,
    date: Option<String>,
    time: Option<String>,
    category: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    rating: Option<u8>,
    review: Option<String>,
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn keep(filter: &FeedFilter, p: &RawPurchase) -> bool {
    !(filter.since.as_ref().is_some_and(|since| p.date.as_ref().is_none_or(|d| d < since))
        || filter.tag.as_ref().is_some_and(|t| !p.tags.iter().any(|x| x.eq_ignore_ascii_case(t)))
        || filter
            .seller
            .as_ref()
            .is_some_and(|s| !p.seller.as_ref().is_some_and(|x| x.eq_ignore_ascii_case(s)))
        || filter.item.as_ref().is_some_and(|i| !p.item.as_ref().is_some_and(|x| contains_ignore_case(x, i))))
}

fn entry(
    from: IdentityId,
    grant: GrantId,
    from_name: Option<String>,
    id: String,
    p: RawPurchase,
) -> FeedEntry {
    FeedEntry {
        from,
        from_name,
        grant,
        id,
        item: p.item,
        seller: p.seller,
        price: p.price,
        date: p.date,
        time: p.time,
        category: p.category,
        tags: p.tags,
        rating: p.rating,
        review: p.review,
    }
}

impl<V: DerefMut<Target = Vault>> Network<V> {
    /// The merged purchase feed of every live share that carries purchases.
    pub fn feed(&mut self, filter: &FeedFilter) -> Result<Vec<FeedEntry>, StoreError> {
        // Read the decoded views (one sealed blob per share), then parse them on every core.
        let mutes = if filter.include_muted { Default::default() } else { self.mutes()? };
        let mut views: Vec<(IdentityId, GrantId, Option<String>, Vec<u8>)> = Vec::new();
        for (grant, status) in self.vault.held().received_grants()? {
            let g = grant.statement();
            if status != ShareStatus::Live
                || filter.from.is_some_and(|f| f != g.issuer)
                || (mutes.peers.contains(&g.issuer) && filter.from != Some(g.issuer))
                || !g.fields.iter().any(|f| matches!(f, crate::path::FieldPath::Purchases(_)))
            {
                continue;
            }
            let Some(bytes) = self.vault.held_mut().share_view_bytes(&g.issuer, &g.id)? else { continue };
            views.push((g.issuer, g.id, self.vault.contacts().petname(&g.issuer), bytes));
        }
        let parse = |chunk: &[(IdentityId, GrantId, Option<String>, Vec<u8>)]| {
            let mut out = Vec::new();
            for (issuer, grant, name, bytes) in chunk {
                let parsed: ViewPurchases = serde_json::from_slice(bytes)
                    .map_err(|_| StoreError::damaged(&crate::store::sealed::RECEIVED_VIEWS, grant))?;
                for (id, p) in parsed.purchases {
                    // One record this vault cannot read costs that record, not the feed.
                    let Ok(p) = serde_json::from_str::<RawPurchase>(p.get()) else {
                        tracing::warn!(%grant, "a shared purchase record cannot be read; left out of the feed");
                        continue;
                    };
                    if keep(filter, &p) {
                        out.push(entry(*issuer, *grant, name.clone(), id, p));
                    }
                }
            }
            Ok::<_, StoreError>(out)
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(views.len()).max(1);
        let per = views.len().div_ceil(threads).max(1);
        let parts: Vec<Result<Vec<FeedEntry>, StoreError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = views.chunks(per).map(|chunk| scope.spawn(move || parse(chunk))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Ok(Vec::new()))).collect()
        });
        let mut out = Vec::new();
        for part in parts {
            out.extend(part?);
        }
        if !mutes.tags.is_empty() {
            out.retain(|e| !mutes.hides(e, filter.from, filter.tag.as_deref()));
        }
        // The same purchase can arrive through two shares of one friend: keep it once.
        let mut issuers: Vec<IdentityId> = views.iter().map(|v| v.0).collect();
        issuers.sort();
        if issuers.windows(2).any(|w| w[0] == w[1]) {
            let mut seen: HashSet<(IdentityId, String)> = HashSet::new();
            out.retain(|e| seen.insert((e.from, e.id.clone())));
        }
        if filter.unordered {
            return Ok(out);
        }
        if filter.item.is_some() {
            // Lowest price first, per currency; purchases shared without a price last.
            out.sort_unstable_by(|a, b| {
                let key =
                    |e: &FeedEntry| e.price.as_ref().map(|p| (p.currency.clone(), p.amount_minor)).ok_or(());
                key(a).cmp(&key(b)).then_with(|| b.date.cmp(&a.date))
            });
        } else {
            // Newest first: by date, then by time of day (a purchase with no time after the
            // day's timed ones), then in a fixed order.
            out.sort_unstable_by(|a, b| {
                b.date
                    .cmp(&a.date)
                    .then_with(|| b.time.cmp(&a.time))
                    .then_with(|| a.from.cmp(&b.from))
                    .then_with(|| a.id.cmp(&b.id))
            });
        }
        Ok(out)
    }
}
