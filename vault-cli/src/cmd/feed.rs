//! `vault feed [--from --tag --seller --item --since]` and `vault feed compare ITEM`; the
//! network's summaries and the mutes are in network.rs.

use anyhow::Result;
use serde_json::{Value, json};
use vault_core::{FeedEntry, FeedFilter};

use crate::app::{App, Outcome};
use crate::cli::{FeedArgs, FeedCommand};
use crate::output::{untrusted, untrusted_or};

fn entry_json(e: &FeedEntry) -> Value {
    json!({
        "from": e.from.to_string(),
        "from_name": e.from_name,
        "grant": e.grant.to_string(),
        "id": e.id,
        "item": e.item,
        "seller": e.seller,
        "price": e.price.as_ref().map(|p| json!({ "amount_minor": p.amount_minor, "currency": p.currency, "display": p.to_string() })),
        "date": e.date,
        "time": e.time,
        "category": e.category,
        "tags": e.tags,
        "rating": e.rating,
        "review": e.review,
    })
}

/// Appends one entry's line (and its review's) to `out`; `who` is how its friend is named.
fn entry_line(out: &mut String, e: &FeedEntry, who: &str, ranked: bool) {
    use std::fmt::Write;
    let price = e.price.as_ref().map(|p| untrusted(&p.to_string()).into_owned());
    let price = price.as_deref().unwrap_or("(price not shared)");
    // Writing to a String cannot fail.
    let _ = if ranked {
        write!(
            out,
            "{price:>14}  {who}  {} at {}  {}",
            untrusted_or(e.item.as_deref(), "?"),
            untrusted_or(e.seller.as_deref(), "?"),
            untrusted_or(e.date.as_deref(), "")
        )
    } else {
        write!(
            out,
            "{}{}  {who} bought {} at {}  {price}",
            untrusted_or(e.date.as_deref(), "????-??-??"),
            e.time.as_deref().map(|t| format!(" {}", untrusted(t))).unwrap_or_default(),
            untrusted_or(e.item.as_deref(), "(item not shared)"),
            untrusted_or(e.seller.as_deref(), "?"),
        )
    };
    if let Some(r) = e.rating {
        let _ = write!(out, "  {}", crate::output::stars(i64::from(r)));
    }
    if !e.tags.is_empty() {
        out.push_str("  [");
        for (i, tag) in e.tags.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&untrusted(tag));
        }
        out.push(']');
    }
    if let Some(review) = &e.review {
        let _ = write!(out, "\n            \"{}\"", untrusted(review));
    }
}

/// The feed as text, a line per purchase: each friend's name made once, not once per line (a
/// feed of 100,000 purchases comes from a few dozen friends).
fn feed_text(entries: &[FeedEntry], ranked: bool, out: &mut String) {
    let mut names: std::collections::HashMap<vault_core::IdentityId, String> = Default::default();
    out.reserve(entries.len() * 96);
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let who = names.entry(e.from).or_insert_with(|| match &e.from_name {
            Some(name) => untrusted(name).into_owned(),
            None => e.from.to_string()[..12].to_owned(),
        });
        entry_line(out, e, who, ranked);
    }
}

pub(crate) fn run(app: &App, args: &FeedArgs) -> Result<Outcome> {
    let item = match &args.command {
        Some(FeedCommand::Compare { item }) => Some(item.clone()),
        Some(other) => return super::network::run(app, other),
        None => args.item.clone(),
    };
    let mut vault = app.unlock()?;
    let from = args.from.as_deref().map(|p| vault.contacts().resolve(p)).transpose()?.map(|p| p.identity);
    let since = args.since.as_deref().map(|s| crate::time::since_date(s, vault.now())).transpose()?;
    let filter = FeedFilter {
        from,
        tag: args.tag.clone(),
        seller: args.seller.clone(),
        item: item.clone(),
        since,
        include_muted: false,
        unordered: false,
    };
    let mut entries = vault.network_mut().feed(&filter)?;
    if let Some(n) = args.limit {
        entries.truncate(n);
    }
    if app.json {
        let list: Vec<Value> = entries.iter().map(entry_json).collect();
        app.print_json(&json!({ "item": item, "purchases": list }))?;
    } else if entries.is_empty() {
        // Everything muted is not the same as nothing shared.
        let muted = item.is_none()
            && !vault.network_mut().feed(&FeedFilter { include_muted: true, ..filter.clone() })?.is_empty();
        eprintln!(
            "{}",
            match &item {
                Some(i) => format!("no friend's purchase matches \"{}\"", untrusted(i)),
                None if muted => {
                    "everything in your feed is muted: 'vault feed mute' lists the mutes, 'vault feed unmute' brings one back"
                        .to_owned()
                }
                None => "nothing in your feed: 'vault follow PEER' asks a friend to share theirs".to_owned(),
            }
        );
    } else {
        let ranked = item.is_some();
        let mut out = String::new();
        if let Some(i) = &item {
            out.push_str(&format!("what friends paid for \"{}\", lowest first:\n", untrusted(i)));
        }
        feed_text(&entries, ranked, &mut out);
        app.print(out)?;
    }
    Ok(if entries.is_empty() { Outcome::No } else { Outcome::Done })
}
