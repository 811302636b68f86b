//! `vault purchase add|list|rm`

use anyhow::{Context, Result};
use serde_json::json;
use vault_core::{Price, Purchase, PurchaseRecord};

use crate::app::{App, Outcome};
use crate::cli::{PurchaseAddArgs, PurchaseCommand, PurchaseListArgs};
use crate::output::untrusted;

pub(crate) fn run(app: &App, command: PurchaseCommand) -> Result<Outcome> {
    match command {
        PurchaseCommand::Add(args) => add(app, args),
        PurchaseCommand::List(args) => list(app, &args),
        PurchaseCommand::Rm { id } => {
            let mut vault = app.unlock()?;
            let removed = vault.records_mut().remove_purchase(&id)?;
            if app.json {
                app.print_json(&json!({ "id": id, "removed": removed }))?;
            } else if !removed {
                eprintln!("no purchase with id {}", untrusted(&id));
            }
            Ok(if removed { Outcome::Done } else { Outcome::No })
        }
    }
}

fn add(app: &App, args: PurchaseAddArgs) -> Result<Outcome> {
    // Check what can be checked before asking for the passphrase.
    let price = Price::parse(&args.price, &args.currency)?;
    // Bought now unless told otherwise: today, at this minute (what orders a day's purchases,
    // newest first, in a friend's feed).
    let now = jiff::Zoned::now();
    let (date, time) = match args.date {
        Some(date) => (date, args.time),
        None if args.no_time => (now.date().to_string(), None),
        None => (now.date().to_string(), args.time.or_else(|| Some(now.strftime("%H:%M").to_string()))),
    };
    let record = PurchaseRecord::new(args.item, args.seller, price, date)
        .time(time)
        .category(args.category)
        .tags(args.tags)
        .rating(args.rating)
        .review(args.review);
    let mut vault = app.unlock()?;
    let id = vault.records_mut().add_purchase(&record)?;
    if app.json {
        app.print_json(&serde_json::to_value(Purchase { id, record })?)?;
    } else {
        app.print(id)?;
    }
    Ok(Outcome::Done)
}

fn list(app: &App, args: &PurchaseListArgs) -> Result<Outcome> {
    // A date or a duration back (`7d`), as everywhere else: read before unlocking.
    let now = jiff::Timestamp::now().as_second();
    let since =
        args.since.as_deref().map(|s| crate::time::since_date(s, now)).transpose().context("--since")?;
    let vault = app.unlock()?;
    let purchases: Vec<Purchase> = vault
        .records()
        .purchases()
        .into_iter()
        .filter(|p| args.seller.as_ref().is_none_or(|s| p.record.seller.eq_ignore_ascii_case(s)))
        .filter(|p| args.tag.as_ref().is_none_or(|t| p.record.tags.iter().any(|x| x == t)))
        .filter(|p| since.as_ref().is_none_or(|d| p.record.date.as_str() >= d.as_str()))
        .collect();
    if app.json {
        app.print_json(&json!({ "purchases": purchases }))?;
    } else if purchases.is_empty() {
        eprintln!("no purchases");
    } else {
        let mut out = String::new();
        for p in &purchases {
            let r = &p.record;
            out.push_str(&format!(
                "{}{}  {}  {}  from {}  {}{}{}\n",
                untrusted(&r.date),
                r.time.as_deref().map(|t| format!(" {}", untrusted(t))).unwrap_or_default(),
                untrusted(&p.id),
                untrusted(&r.item),
                untrusted(&r.seller),
                untrusted(&r.price.to_string()),
                r.rating.map(|n| format!("  {}", crate::output::stars(n))).unwrap_or_default(),
                if r.tags.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", untrusted(&r.tags.join(", ")))
                },
            ));
            if let Some(review) = &r.review {
                out.push_str(&format!("      \"{}\"\n", untrusted(review)));
            }
        }
        app.print(out.trim_end())?;
    }
    Ok(if purchases.is_empty() { Outcome::No } else { Outcome::Done })
}
