//! `vault feed sellers | top | also ITEM | mute | unmute`: what the network says, over the
//! feeds this vault already receives, and the filters the subscriber switches.

use anyhow::Result;
use serde_json::{Value, json};
use vault_core::network::{also_bought, sellers, top_items};
use vault_core::{FeedFilter, ItemSummary, Mute, Mutes, Price, Vault};

use crate::app::{App, Outcome};
use crate::cli::{FeedCommand, MuteArgs};
use crate::output::{untrusted, untrusted_or};

/// `vault feed sellers`, `top`, `also` and `mute`/`unmute` (`compare` is the feed's own).
pub(crate) fn run(app: &App, command: &FeedCommand) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    match command {
        FeedCommand::Compare { item } => {
            anyhow::bail!("'compare {}' is answered by 'vault feed --item'", untrusted(item))
        }
        FeedCommand::Sellers { limit } => sellers_cmd(app, &mut vault, *limit),
        FeedCommand::Top { tag, since, limit } => {
            top_cmd(app, &mut vault, tag.as_deref(), since.as_deref(), *limit)
        }
        FeedCommand::Also { item, limit } => also_cmd(app, &mut vault, item, *limit),
        FeedCommand::Mute(args) => mute_cmd(app, &mut vault, args, true),
        FeedCommand::Unmute(args) => mute_cmd(app, &mut vault, args, false),
    }
}

fn top_cmd(
    app: &App,
    vault: &mut Vault,
    tag: Option<&str>,
    since: Option<&str>,
    limit: usize,
) -> Result<Outcome> {
    let since = since.map(|s| crate::time::since_date(s, vault.now())).transpose()?;
    let filter = FeedFilter {
        tag: tag.map(str::to_owned),
        since: since.clone(),
        unordered: true,
        ..Default::default()
    };
    let top = top_items(&vault.network_mut().feed(&filter)?, limit);
    let mut heading = "most bought in your network".to_owned();
    if let Some(t) = tag {
        heading.push_str(&format!(", tagged {}", untrusted(t)));
    }
    if let Some(s) = &since {
        heading.push_str(&format!(", since {s}"));
    }
    heading.push(':');
    items_out(app, &top, &heading, json!({ "tag": tag, "since": since }))
}

fn also_cmd(app: &App, vault: &mut Vault, item: &str, limit: usize) -> Result<Outcome> {
    if item.trim().is_empty() {
        anyhow::bail!("the item is empty: name what friends bought");
    }
    let (buyers, also) = also_bought(&vault.network_mut().feed(&everything())?, item, limit);
    if buyers == 0 {
        if app.json {
            app.print_json(&json!({ "item": item, "buyers": 0, "items": [] }))?;
        } else {
            eprintln!("no friend bought \"{}\"", untrusted(item));
        }
        return Ok(Outcome::No);
    }
    let heading = format!(
        "{buyers} friend{} bought \"{}\"; they also bought:",
        if buyers == 1 { "" } else { "s" },
        untrusted(item)
    );
    items_out(app, &also, &heading, json!({ "item": item, "buyers": buyers }))
}

/// The whole feed, muted friends and tags left out, in no order (summaries need none).
fn everything() -> FeedFilter {
    FeedFilter { unordered: true, ..Default::default() }
}

fn rating(average: Option<f64>, count: usize) -> String {
    average.map_or_else(|| "not rated".to_owned(), |a| format!("rated {a:.1}/5 ({count})"))
}

fn item_json(i: &ItemSummary) -> Value {
    json!({
        "item": i.item,
        "friends": i.friends,
        "purchases": i.purchases,
        "ratings": i.ratings,
        "average_rating": i.average_rating,
    })
}

fn items_out(app: &App, items: &[ItemSummary], heading: &str, mut extra: Value) -> Result<Outcome> {
    if app.json {
        extra["items"] = items.iter().map(item_json).collect();
        app.print_json(&extra)?;
    } else if items.is_empty() {
        eprintln!("nothing in your network matches");
    } else {
        let mut out = vec![heading.to_owned()];
        for (n, i) in items.iter().enumerate() {
            out.push(format!(
                "{:>3}. {}  {} friend{}, {} purchase{}, {}",
                n + 1,
                untrusted(&i.item),
                i.friends,
                if i.friends == 1 { "" } else { "s" },
                i.purchases,
                if i.purchases == 1 { "" } else { "s" },
                rating(i.average_rating, i.ratings)
            ));
        }
        app.print(out.join("\n"))?;
    }
    Ok(if items.is_empty() { Outcome::No } else { Outcome::Done })
}

fn price_json(p: &Price) -> Value {
    json!({ "amount_minor": p.amount_minor, "currency": p.currency, "display": p.to_string() })
}

fn sellers_cmd(app: &App, vault: &mut Vault, limit: Option<usize>) -> Result<Outcome> {
    let mut list = sellers(&vault.network_mut().feed(&everything())?);
    if let Some(n) = limit {
        list.truncate(n);
    }
    if app.json {
        let out: Vec<Value> = list
            .iter()
            .map(|s| {
                json!({
                    "seller": s.seller,
                    "friends": s.friends,
                    "purchases": s.purchases,
                    "ratings": s.ratings,
                    "average_rating": s.average_rating,
                    "prices": s.prices.values().map(|r| json!({ "min": price_json(&r.min), "max": price_json(&r.max) })).collect::<Vec<_>>(),
                    "newest_review": s.newest_review.as_ref().map(|r| json!({
                        "from": r.from.to_string(),
                        "from_name": r.from_name,
                        "item": r.item,
                        "date": r.date,
                        "review": r.review,
                    })),
                })
            })
            .collect();
        app.print_json(&json!({ "sellers": out }))?;
    } else if list.is_empty() {
        eprintln!("no seller in your feed: 'vault follow PEER' asks a friend to share theirs");
    } else {
        let mut out = Vec::new();
        for s in &list {
            let prices: Vec<String> = s
                .prices
                .values()
                .map(|r| if r.min == r.max { r.min.to_string() } else { format!("{} to {}", r.min, r.max) })
                .collect();
            out.push(format!(
                "{}  {} friend{}, {} purchase{}, {}{}",
                untrusted(&s.seller),
                s.friends,
                if s.friends == 1 { "" } else { "s" },
                s.purchases,
                if s.purchases == 1 { "" } else { "s" },
                rating(s.average_rating, s.ratings),
                if prices.is_empty() {
                    String::new()
                } else {
                    format!(", {}", untrusted(&prices.join(", ")))
                }
            ));
            if let Some(r) = &s.newest_review {
                let who =
                    untrusted(&r.from_name.clone().unwrap_or_else(|| r.from.to_string()[..12].to_owned()))
                        .into_owned();
                out.push(format!(
                    "    newest review, {who} on {} ({}): \"{}\"",
                    untrusted_or(r.item.as_deref(), "?"),
                    untrusted_or(r.date.as_deref(), "?"),
                    untrusted(&r.review)
                ));
            }
        }
        app.print(out.join("\n"))?;
    }
    Ok(if list.is_empty() { Outcome::No } else { Outcome::Done })
}

fn mutes_json(vault: &Vault, mutes: &Mutes) -> Value {
    let peers: Vec<Value> = mutes
        .peers
        .iter()
        .map(|p| json!({ "identity": p.to_string(), "name": vault.contacts().petname(p) }))
        .collect();
    json!({ "peers": peers, "tags": mutes.tags })
}

fn mute_cmd(app: &App, vault: &mut Vault, args: &MuteArgs, on: bool) -> Result<Outcome> {
    let what = match (&args.peer, &args.tag) {
        (Some(peer), None) => {
            let peer = vault.contacts().resolve(peer)?;
            Mute::Peer(peer.identity)
        }
        (None, Some(tag)) if !tag.trim().is_empty() => Mute::Tag(tag.trim().to_owned()),
        (None, Some(_)) => anyhow::bail!("the tag is empty"),
        (None, None) if on => {
            let mutes = vault.network().mutes()?;
            if app.json {
                app.print_json(&json!({ "changed": false, "muted": mutes_json(vault, &mutes) }))?;
            } else if mutes.is_empty() {
                eprintln!("nothing is muted");
            } else {
                let mut lines: Vec<String> = mutes
                    .peers
                    .iter()
                    .map(|p| {
                        format!(
                            "friend {}",
                            untrusted(&vault.contacts().petname(p).unwrap_or_else(|| p.to_string()))
                        )
                    })
                    .collect();
                lines.extend(mutes.tags.iter().map(|t| format!("tag {}", untrusted(t))));
                app.print(lines.join("\n"))?;
            }
            return Ok(if mutes.is_empty() { Outcome::No } else { Outcome::Done });
        }
        _ => anyhow::bail!("name a friend or a --tag to unmute"),
    };
    let changed = vault.network_mut().set_mute(&what, on)?;
    let mutes = vault.network().mutes()?;
    if app.json {
        app.print_json(&json!({ "changed": changed, "muted": mutes_json(vault, &mutes) }))?;
    } else {
        let name = match &what {
            Mute::Peer(p) => {
                format!(
                    "{}'s purchases",
                    untrusted(&vault.contacts().petname(p).unwrap_or_else(|| p.to_string()))
                )
            }
            Mute::Tag(t) => format!("purchases tagged {}", untrusted(t)),
        };
        let verb = match (on, changed) {
            (true, true) => "muted: the feed and its summaries leave out",
            (true, false) => "already muted:",
            (false, true) => "unmuted: the feed shows again",
            (false, false) => "was not muted:",
        };
        app.print(format!("{verb} {name}"))?;
    }
    Ok(Outcome::Done)
}
