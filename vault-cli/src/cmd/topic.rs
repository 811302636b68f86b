//! `vault topic`: join, list, leave public topics; what a topic says (top, also), beside what
//! the subscriber's own network says; vouching.

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use vault_core::network::top_items;
use vault_core::{FeedFilter, Pseudonym, Ticket, Topic, TopicItem, Vault};

use crate::app::{App, Outcome};
use crate::cli::{TopicAlsoArgs, TopicCommand, TopicJoinArgs, TopicViewArgs};
use crate::output::untrusted;

pub(crate) fn run(app: &App, command: TopicCommand) -> Result<Outcome> {
    match command {
        TopicCommand::Join(args) => join(app, &args),
        TopicCommand::List => list(app),
        TopicCommand::Leave { topic } => {
            let topic: Topic = topic.parse()?;
            let mut vault = app.unlock()?;
            if !vault.topics_mut().leave(&topic)? {
                bail!("you have not joined topic {topic}");
            }
            app.print(format!("left {topic}: its pseudonym and what was heard there are forgotten (a running node leaves it within half a minute)"))?;
            Ok(Outcome::Done)
        }
        TopicCommand::Top(args) => top(app, &args),
        TopicCommand::Also(args) => also(app, &args),
        TopicCommand::Vouch { topic, pseudonym, undo } => {
            let topic: Topic = topic.parse()?;
            let pseudonym: Pseudonym = pseudonym
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("not a pseudonym: {}", untrusted(&pseudonym)))?;
            let mut vault = app.unlock()?;
            vault.topics_mut().vouch(&topic, &pseudonym, !undo)?;
            app.print(format!(
                "{} {pseudonym} on {topic}",
                if undo { "no longer vouching for" } else { "vouching for" }
            ))?;
            Ok(Outcome::Done)
        }
    }
}

/// Tickets for PEER arguments (contacts or tickets).
pub(crate) fn tickets(vault: &Vault, peers: &[String]) -> Result<Vec<Ticket>> {
    peers
        .iter()
        .map(|p| {
            let peer = vault.contacts().resolve(p)?;
            let Some(ticket) = peer.ticket else {
                bail!("no ticket for {}: add it as a contact with its ticket first", untrusted(p));
            };
            Ok(vault.contacts().dial_ticket(&ticket)?)
        })
        .collect()
}

fn join(app: &App, args: &TopicJoinArgs) -> Result<Outcome> {
    let topic: Topic = args.topic.parse()?;
    let mut vault = app.unlock()?;
    let via = tickets(&vault, &args.via)?;
    let joined = vault.topics_mut().join(&topic, &via, args.intentions, args.publish)?;
    if app.json {
        app.print_json(&json!({
            "topic": joined.topic.to_string(),
            "pseudonym": joined.pseudonym.to_string(),
            "intentions": joined.intentions,
            "publish": joined.publish,
            "via": joined.via.len(),
        }))?;
    } else {
        let role = if joined.intentions {
            "taking intentions there, as yourself"
        } else if joined.publish {
            "listening and publishing your purchases tagged with its category, under a pseudonym made for it alone"
        } else {
            "listening under a pseudonym made for it alone"
        };
        app.print(format!(
            "joined {topic}: {role}; your node ('vault serve') takes part while it runs{}",
            if joined.via.is_empty() && !joined.intentions {
                " (no member to enter by yet: --via PEER)"
            } else {
                ""
            }
        ))?;
    }
    Ok(Outcome::Done)
}

fn list(app: &App) -> Result<Outcome> {
    let vault = app.unlock()?;
    let all = vault.topics().list()?;
    if app.json {
        let rows: Vec<Value> = all
            .iter()
            .map(|t| {
                json!({
                    "topic": t.topic.to_string(),
                    "pseudonym": t.pseudonym.to_string(),
                    "intentions": t.intentions,
                    "publish": t.publish,
                    "via": t.via.len(),
                    "vouched": t.vouched.iter().collect::<Vec<_>>(),
                })
            })
            .collect();
        app.print_json(&json!({ "topics": rows }))?;
    } else if all.is_empty() {
        app.print("no topics joined (vault topic join TOPIC --via PEER)")?;
    } else {
        let lines: Vec<String> = all
            .iter()
            .map(|t| {
                let role = if t.intentions {
                    "seller"
                } else if t.publish {
                    "listening, publishing"
                } else {
                    "listening"
                };
                format!("{}  {role}  as {}  ({} to enter by)", t.topic, t.pseudonym, t.via.len())
            })
            .collect();
        app.print(lines.join("\n"))?;
    }
    Ok(if all.is_empty() { Outcome::No } else { Outcome::Done })
}

fn vouched_set(vault: &Vault, topic: &Topic, on: bool) -> Result<Option<BTreeSet<String>>> {
    if !on {
        return Ok(None);
    }
    let joined = vault.topics().list()?.into_iter().find(|t| t.topic == *topic);
    let Some(joined) = joined else { bail!("you have not joined topic {topic}") };
    Ok(Some(joined.vouched))
}

fn item_json(i: &TopicItem) -> Value {
    json!({
        "item": i.item,
        "buyers": i.buyers,
        "rating": i.rating,
        "sellers": i.sellers.iter().map(|(s, n)| json!({ "seller": s, "buyers": n })).collect::<Vec<_>>(),
        "price": i.price.as_ref().map(ToString::to_string),
    })
}

/// Refuses a topic this vault did not join: there is nothing heard there to show.
fn joined(vault: &Vault, topic: &Topic) -> Result<()> {
    if !vault.topics().list()?.iter().any(|t| t.topic == *topic) {
        bail!("you have not joined topic {topic} (vault topic join {topic} --via PEER)");
    }
    Ok(())
}

fn top(app: &App, args: &TopicViewArgs) -> Result<Outcome> {
    let topic: Topic = args.topic.parse()?;
    let mut vault = app.unlock()?;
    joined(&vault, &topic)?;
    let vouched = vouched_set(&vault, &topic, args.vouched)?;
    let mut items = vault.topics().top(&topic, vouched.as_ref())?;
    items.truncate(args.limit);
    // The same view at the network level: friends' purchases tagged with the category.
    let filter = FeedFilter { tag: Some(topic.category().to_owned()), unordered: true, ..Default::default() };
    let network = top_items(&vault.network_mut().feed(&filter)?, args.limit);
    if app.json {
        app.print_json(&json!({
            "topic": topic.to_string(),
            "vouched_only": args.vouched,
            "general": items.iter().map(item_json).collect::<Vec<_>>(),
            "network": network.iter().map(|n| json!({
                "item": n.item, "friends": n.friends, "purchases": n.purchases, "rating": n.average_rating
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        let mut out = vec![format!(
            "{topic}, the general level{} (each pseudonym once per item):",
            if args.vouched { ", vouched pseudonyms only" } else { "" }
        )];
        if items.is_empty() {
            out.push("  nothing heard yet".into());
        }
        for i in &items {
            let mut line = format!(
                "  {}  {} buyer{}",
                untrusted(&i.item),
                i.buyers,
                if i.buyers == 1 { "" } else { "s" }
            );
            if let Some(r) = i.rating {
                line.push_str(&format!(", rated {r:.1}"));
            }
            if let Some(p) = &i.price {
                line.push_str(&format!(", {p}"));
            }
            let sellers: Vec<String> =
                i.sellers.iter().take(3).map(|(s, n)| format!("{} ({n})", untrusted(s))).collect();
            line.push_str(&format!("; from {}", sellers.join(", ")));
            out.push(line);
        }
        out.push(format!("your network, tagged {}:", topic.category()));
        if network.is_empty() {
            out.push("  nothing from friends".into());
        }
        for n in &network {
            out.push(format!(
                "  {}  {} friend{}",
                untrusted(&n.item),
                n.friends,
                if n.friends == 1 { "" } else { "s" }
            ));
        }
        app.print(out.join("\n"))?;
    }
    Ok(if items.is_empty() && network.is_empty() { Outcome::No } else { Outcome::Done })
}

fn also(app: &App, args: &TopicAlsoArgs) -> Result<Outcome> {
    let topic: Topic = args.topic.parse()?;
    let vault = app.unlock()?;
    joined(&vault, &topic)?;
    let vouched = vouched_set(&vault, &topic, args.vouched)?;
    let also = vault.topics().also(&topic, &args.item, vouched.as_ref())?;
    if app.json {
        let rows: Vec<Value> = also.iter().map(|(i, n)| json!({ "item": i, "buyers": n })).collect();
        app.print_json(&json!({ "topic": topic.to_string(), "item": args.item, "also": rows }))?;
    } else if also.is_empty() {
        app.print(format!(
            "on {topic}, nobody who bought \"{}\" bought anything else heard of",
            untrusted(&args.item)
        ))?;
    } else {
        let mut out =
            vec![format!("on {topic}, people who bought \"{}\" also bought:", untrusted(&args.item))];
        for (i, n) in &also {
            out.push(format!("  {}  {n}", untrusted(i)));
        }
        app.print(out.join("\n"))?;
    }
    Ok(if also.is_empty() { Outcome::No } else { Outcome::Done })
}
