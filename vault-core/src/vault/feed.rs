//! The friend's side of purchase feeds: every purchase shared with this vault, merged across
//! everyone it follows, newest first, and the price comparison for one item.

use std::collections::{HashMap, HashSet};

use automerge::ROOT;
use serde::Deserialize;

use super::Vault;
use super::received::ShareStatus;
use crate::doc::obj_to_json;
use crate::grant::GrantId;
use crate::identity::IdentityId;
use crate::money::Price;
use crate::store::StoreError;

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
}

#[derive(Deserialize)]
struct ViewPurchases {
    #[serde(default)]
    purchases: HashMap<String, RawPurchase>,
}

#[derive(Deserialize)]
struct RawPurchase {
    item: Option<String>,
    seller: Option<String>,
    price: Option<Price>,
    date: Option<String>,
    category: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    rating: Option<u8>,
    review: Option<String>,
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

impl Vault {
    /// The merged purchase feed of every live share that carries purchases.
    pub fn feed(&mut self, filter: &FeedFilter) -> Result<Vec<FeedEntry>, StoreError> {
        let mut out = Vec::new();
        let mut seen: HashSet<(IdentityId, String)> = HashSet::new();
        for (grant, status) in self.received_grants()? {
            let g = grant.statement();
            if status != ShareStatus::Live
                || filter.from.is_some_and(|f| f != g.issuer)
                || !g.fields.iter().any(|f| matches!(f, crate::path::FieldPath::Purchases(_)))
            {
                continue;
            }
            let parsed: ViewPurchases = match self.view_bytes(&g.id)? {
                Some(bytes) => serde_json::from_slice(&bytes),
                None => serde_json::from_value(obj_to_json(self.replica_doc(&g.id)?, &ROOT)),
            }
            .map_err(|_| StoreError::Damaged(format!("received_views row {}", g.id)))?;
            let from_name = self.petname(&g.issuer);
            for (id, p) in parsed.purchases {
                if filter.tag.as_ref().is_some_and(|t| !p.tags.iter().any(|x| x.eq_ignore_ascii_case(t)))
                    || filter
                        .seller
                        .as_ref()
                        .is_some_and(|s| !p.seller.as_ref().is_some_and(|x| x.eq_ignore_ascii_case(s)))
                    || filter
                        .item
                        .as_ref()
                        .is_some_and(|i| !p.item.as_ref().is_some_and(|x| contains_ignore_case(x, i)))
                {
                    continue;
                }
                // The same purchase can arrive through two shares of one friend.
                if !seen.insert((g.issuer, id.clone())) {
                    continue;
                }
                out.push(FeedEntry {
                    from: g.issuer,
                    from_name: from_name.clone(),
                    grant: g.id,
                    id,
                    item: p.item,
                    seller: p.seller,
                    price: p.price,
                    date: p.date,
                    category: p.category,
                    tags: p.tags,
                    rating: p.rating,
                    review: p.review,
                });
            }
        }
        if filter.item.is_some() {
            // Lowest price first, per currency; purchases shared without a price last.
            out.sort_by(|a, b| {
                let key =
                    |e: &FeedEntry| e.price.as_ref().map(|p| (p.currency.clone(), p.amount_minor)).ok_or(());
                key(a).cmp(&key(b)).then_with(|| b.date.cmp(&a.date))
            });
        } else {
            out.sort_by(|a, b| {
                b.date.cmp(&a.date).then_with(|| a.from.cmp(&b.from)).then_with(|| a.id.cmp(&b.id))
            });
        }
        Ok(out)
    }
}
