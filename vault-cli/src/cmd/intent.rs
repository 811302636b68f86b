//! `vault intent`: the customer states intentions under pseudonyms and accepts an offer; the
//! seller lists what it received and answers with offers.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use vault_core::{
    HeldIntention, Intention, IntentionDraft, MarketAnswer, MarketFrame, MyIntention, Offer, Poll, Price,
    PseudonymKey, Signed, Ticket, Topic, Vault,
};
use vault_sync::{market_call, topic_call};

/// How long a visit to a topic stays after saying something, for it to spread.
const TOPIC_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a poll waits for sellers' offers on a topic.
const POLL_LISTEN: std::time::Duration = std::time::Duration::from_secs(4);

use crate::app::{App, Outcome};
use crate::cli::{
    IntentAcceptArgs, IntentAddArgs, IntentCommand, IntentOfferArgs, IntentOffersArgs, IntentWithdrawArgs,
};
use crate::output::untrusted;
use crate::runtime::runtime;
use crate::time::{local, parse_expiry, rfc3339};

pub(crate) fn run(app: &App, command: IntentCommand) -> Result<Outcome> {
    match command {
        IntentCommand::Add(args) => add(app, &args),
        IntentCommand::List => list(app),
        IntentCommand::Offers(args) => offers(app, &args),
        IntentCommand::Accept(args) => accept(app, &args),
        IntentCommand::Withdraw(args) => withdraw(app, &args),
        IntentCommand::Inbox => inbox(app),
        IntentCommand::Offer(args) => offer(app, &args),
        IntentCommand::Forget { intention } => {
            let mut vault = app.unlock()?;
            let gone = vault.market_mut().forget(&intention)?;
            app.print(format!("intention {gone} forgotten, with your offers to it"))?;
            Ok(Outcome::Done)
        }
    }
}

fn answer_words(answer: MarketAnswer) -> &'static str {
    match answer {
        MarketAnswer::Kept => "kept",
        MarketAnswer::Full => "not kept: the seller holds as many intentions as it takes; try later",
        MarketAnswer::Ended => "not kept: past its last day, or withdrawn",
        MarketAnswer::Unknown => "unknown there",
        MarketAnswer::Refused => "refused",
    }
}

/// One request to one seller, under the intention's key; the seller's single answer.
fn call_one(key: &PseudonymKey, ticket: &Ticket, request: MarketFrame, relay: bool) -> Result<MarketFrame> {
    let answers = runtime()?.block_on(market_call(key, ticket, &[request], relay))?;
    answers.into_iter().next().context("the seller gave no answer")
}

fn seller_ticket(vault: &Vault, peer: &str) -> Result<Ticket> {
    let resolved = vault.contacts().resolve(peer)?;
    let Some(ticket) = resolved.ticket else {
        bail!("no ticket for {}: add the seller as a contact with its ticket first", untrusted(peer));
    };
    Ok(vault.contacts().dial_ticket(&ticket)?)
}

fn add(app: &App, args: &IntentAddArgs) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let now = vault.now();
    let budget = match (&args.budget, &args.currency) {
        (Some(amount), Some(currency)) => Some(Price::parse(amount, currency)?),
        _ => None,
    };
    let draft = IntentionDraft {
        what: args.what.clone(),
        tags: args.tags.clone(),
        budget,
        exact_budget: args.exact_budget,
        place: args.place.clone(),
        until: parse_expiry(&args.until, now)?,
    };
    if draft.until <= now {
        bail!("--until is in the past: an intention holds until a day to come");
    }
    if draft.until > now + vault_core::MAX_INTENTION_DAYS * 86_400 {
        bail!("--until is too far: an intention holds at most {} days", vault_core::MAX_INTENTION_DAYS);
    }
    // Every seller is resolved before anything is made: a typo makes no pseudonym.
    let tickets = args.to.iter().map(|p| seller_ticket(&vault, p)).collect::<Result<Vec<_>>>()?;
    let topic = match &args.topic {
        Some(name) => {
            let topic: Topic = name.parse()?;
            let mut via = crate::cmd::topic::tickets(&vault, &args.via)?;
            if via.is_empty() {
                via = vault
                    .topics()
                    .list()?
                    .into_iter()
                    .find(|t| t.topic == topic)
                    .map(|t| t.via)
                    .unwrap_or_default();
            }
            if via.is_empty() {
                bail!("no member of {topic} to enter by: --via PEER (a seller's or a friend's ticket)");
            }
            Some((topic, via))
        }
        None => None,
    };
    let signed = vault.intents_mut().state(&draft, topic.as_ref().map(|(t, v)| (t, v.as_slice())))?;
    let pseudonym = signed.intention.pseudonym;
    let key = vault.intents().key(&pseudonym)?.context("the intention's key was just kept")?;
    let mut sent = Vec::new();
    for (peer, ticket) in args.to.iter().zip(&tickets) {
        let outcome =
            call_one(&key, ticket, MarketFrame::Intention(Box::new(signed.clone())), !args.no_relay);
        match outcome {
            Ok(MarketFrame::Answer(answer)) => {
                vault.intents_mut().sent(&pseudonym, ticket, answer)?;
                sent.push((peer.clone(), answer_words(answer).to_owned(), answer == MarketAnswer::Kept));
            }
            Ok(_) => sent.push((peer.clone(), "an answer that is not one".to_owned(), false)),
            Err(e) => sent.push((peer.clone(), format!("not reached ({e:#})"), false)),
        }
    }
    if let Some((topic, via)) = &topic {
        let frame = MarketFrame::Intention(Box::new(signed.clone()));
        let said = runtime()?.block_on(topic_call(&key, topic, via, &[frame], TOPIC_SETTLE, !args.no_relay));
        match said {
            Ok(_) => sent.push((format!("topic {topic}"), "broadcast".to_owned(), true)),
            Err(e) => sent.push((format!("topic {topic}"), format!("not reached ({e:#})"), false)),
        }
    }
    let mine = vault.intents().find(&pseudonym.to_string())?;
    if app.json {
        let sent: Vec<Value> =
            sent.iter().map(|(p, a, kept)| json!({ "peer": p, "answer": a, "kept": kept })).collect();
        app.print_json(&json!({ "intention": mine_json(&vault, &mine), "sent": sent }))?;
    } else {
        let mut out = vec![format!(
            "intention {pseudonym} ({}), under a pseudonym made for it alone:",
            describe(&mine.signed.intention)
        )];
        for (peer, answer, _) in &sent {
            out.push(format!("  {}: {answer}", untrusted(peer)));
        }
        out.push(format!("offers: vault intent offers {}", short(&mine)));
        app.print(out.join("\n"))?;
    }
    Ok(if sent.iter().any(|(_, _, kept)| *kept) { Outcome::Done } else { Outcome::No })
}

fn short(mine: &MyIntention) -> String {
    mine.pseudonym().to_string()[..12].to_owned()
}

/// An intention in one line: what (quoted: the customer's own words, escaped), tags, budget
/// band, place, last day. The customer's and the seller's lists say it alike.
fn describe(i: &Intention) -> String {
    let mut parts = vec![format!("\"{}\"", untrusted(&i.what))];
    if !i.tags.is_empty() {
        parts.push(format!("#{}", i.tags.join(" #")));
    }
    if let Some(b) = &i.budget {
        parts.push(b.to_string());
    }
    if let Some(p) = &i.place {
        parts.push(p.clone());
    }
    parts.push(format!("until {}", i.until));
    parts.join(", ")
}

fn status(mine: &MyIntention) -> &'static str {
    if mine.withdrawn_at.is_some() {
        "withdrawn"
    } else if mine.accepted.is_some() {
        "accepted"
    } else if mine.expired {
        "expired"
    } else {
        "open"
    }
}

fn offer_json(vault: &Vault, offer: &Signed<Offer>) -> Value {
    let o = offer.statement();
    json!({
        "id": o.id.to_string(),
        "seller": o.seller.to_string(),
        "seller_contact": vault.contacts().petname(&o.seller),
        "seller_says": o.name,
        "price": o.price().to_string(),
        "terms": o.terms,
        "made_at": rfc3339(o.made_at),
        "until": rfc3339(o.until),
    })
}

fn mine_json(vault: &Vault, mine: &MyIntention) -> Value {
    json!({
        "pseudonym": mine.pseudonym().to_string(),
        "intention": serde_json::to_value(&mine.signed.intention).unwrap_or(Value::Null),
        "status": status(mine),
        "made_at": rfc3339(mine.made_at),
        "sent_to": mine.sent_to.iter().map(|(s, kept)| json!({
            "seller": s.to_string(), "contact": vault.contacts().petname(s), "kept": kept
        })).collect::<Vec<_>>(),
        "offers": mine.offers.iter().map(|(o, _)| offer_json(vault, o)).collect::<Vec<_>>(),
        "accepted": mine.accepted.map(|a| a.to_string()),
    })
}

fn offer_line(vault: &Vault, offer: &Signed<Offer>, accepted: bool) -> String {
    let o = offer.statement();
    let who = match vault.contacts().petname(&o.seller) {
        Some(name) => format!("{} (contact)", untrusted(&name)),
        None => format!("\"{}\" (its own words; {})", untrusted(&o.name), o.seller),
    };
    let price = o.price();
    let mut line = format!("  {}  {price}  from {who}  until {}", o.id, local(o.until));
    if !o.terms.is_empty() {
        line.push_str(&format!("\n      terms: {}", untrusted(&o.terms)));
    }
    if accepted {
        line.push_str("  ACCEPTED");
    }
    line
}

fn print_mine(app: &App, vault: &Vault, all: &[MyIntention]) -> Result<()> {
    if app.json {
        return app.print_json(
            &json!({ "intentions": all.iter().map(|m| mine_json(vault, m)).collect::<Vec<_>>() }),
        );
    }
    if all.is_empty() {
        return app.print("no intentions (vault intent add states one)");
    }
    let mut out = Vec::new();
    for mine in all {
        out.push(format!("{}  {}  [{}]", short(mine), describe(&mine.signed.intention), status(mine)));
        let names: Vec<String> = mine
            .sent_to
            .iter()
            .map(|(s, kept)| {
                let n = vault.contacts().petname(s).unwrap_or_else(|| s.to_string());
                format!("{}{}", untrusted(&n), if *kept { "" } else { " (not kept)" })
            })
            .collect();
        if !names.is_empty() {
            out.push(format!("  sent to: {}", names.join(", ")));
        }
        if mine.offers.is_empty() {
            out.push("  no offers fetched".into());
        }
        for (o, _) in &mine.offers {
            out.push(offer_line(vault, o, mine.accepted == Some(o.statement().id)));
        }
    }
    app.print(out.join("\n"))
}

fn list(app: &App) -> Result<Outcome> {
    let vault = app.unlock()?;
    let all = vault.intents().list()?;
    print_mine(app, &vault, &all)?;
    Ok(if all.is_empty() { Outcome::No } else { Outcome::Done })
}

fn offers(app: &App, args: &IntentOffersArgs) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let chosen: Vec<MyIntention> = match &args.intention {
        Some(name) => vec![vault.intents().find(name)?],
        None => vault.intents().list()?.into_iter().filter(MyIntention::is_open).collect(),
    };
    let mut unreachable = Vec::new();
    if !args.no_fetch {
        for mine in chosen.iter().filter(|m| m.is_open()) {
            let pseudonym = mine.pseudonym();
            let key = vault.intents().key(&pseudonym)?.context("an intention without its key")?;
            if let Some((topic, via)) = vault.intents().topic_of(&pseudonym)? {
                // Sellers on the topic answer a poll on the topic: the customer has no address.
                let poll = MarketFrame::Poll(Poll::sign(&key, vault.now()));
                match runtime()?.block_on(topic_call(
                    &key,
                    &topic,
                    &via,
                    &[poll],
                    POLL_LISTEN,
                    !args.no_relay,
                )) {
                    Ok(heard) => {
                        let offers: Vec<_> = heard
                            .into_iter()
                            .filter_map(|f| match f {
                                MarketFrame::Offers(o) => Some(o),
                                _ => None,
                            })
                            .flatten()
                            .collect();
                        vault.intents_mut().take_offers(&pseudonym, &offers)?;
                    }
                    Err(e) => eprintln!("note: topic {topic} was not reached ({e:#}); run this again later"),
                }
            }
            for ticket in vault.intents().sent_tickets(&pseudonym)? {
                let ticket = vault.contacts().dial_ticket(&ticket)?;
                match call_one(&key, &ticket, MarketFrame::FetchOffers, !args.no_relay) {
                    Ok(MarketFrame::Offers(offers)) => {
                        // Only that seller's own offers: it cannot speak for another.
                        let own: Vec<_> = offers
                            .into_iter()
                            .filter(|o| o.statement().seller == ticket.identity())
                            .collect();
                        vault.intents_mut().take_offers(&pseudonym, &own)?;
                    }
                    Ok(_) => unreachable.push(ticket.identity()),
                    Err(e) => {
                        tracing::info!(error = %e, "a seller was not reached");
                        unreachable.push(ticket.identity());
                    }
                }
            }
        }
    }
    let names: Vec<String> = chosen.iter().map(|m| m.pseudonym().to_string()).collect();
    let all: Vec<MyIntention> =
        vault.intents().list()?.into_iter().filter(|m| names.contains(&m.pseudonym().to_string())).collect();
    print_mine(app, &vault, &all)?;
    for seller in &unreachable {
        let n = vault.contacts().petname(seller).unwrap_or_else(|| seller.to_string());
        eprintln!(
            "note: {} was not reached; its offers may be missing (run this again later)",
            untrusted(&n)
        );
    }
    Ok(if all.iter().any(|m| !m.offers.is_empty()) { Outcome::Done } else { Outcome::No })
}

fn accept(app: &App, args: &IntentAcceptArgs) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let mine = vault.intents().find(&args.intention)?;
    let pseudonym = mine.pseudonym();
    let own = vault.ticket(vault.serving().node_addrs());
    let (acceptance, cosign, ticket) = vault.intents_mut().accept(&pseudonym, &args.offer, Some(own))?;
    let Some(ticket) = ticket else {
        bail!("the offer gives no way to reach its seller, and it is not a contact of yours");
    };
    let ticket = vault.contacts().dial_ticket(&ticket)?;
    let key = vault.intents().key(&pseudonym)?.context("an intention without its key")?;
    let seller = acceptance.statement().seller;
    let frame = MarketFrame::Accept { acceptance: Box::new(acceptance), cosign };
    let answer = call_one(&key, &ticket, frame, !args.no_relay).with_context(|| {
        "the seller was not reached; your acceptance is kept as it is: run the same command again to deliver it"
    })?;
    let answer = match answer {
        MarketFrame::Answer(a) => a,
        _ => MarketAnswer::Refused,
    };
    vault.intents_mut().accept_answered(&pseudonym, answer)?;
    let kept = answer == MarketAnswer::Kept;
    let name = vault.contacts().petname(&seller);
    if app.json {
        app.print_json(&json!({
            "intention": pseudonym.to_string(),
            "offer": args.offer,
            "seller": seller.to_string(),
            "seller_contact": name,
            "delivered": kept,
        }))?;
    } else if kept {
        let who = name.map_or_else(|| seller.to_string(), |n| untrusted(&n).into_owned());
        app.print(format!(
            "accepted: {who} now knows who you are (your identity and ticket), and no other seller does.\n\
             What you share with it goes through consent as usual: vault grant, or approve its request."
        ))?;
    } else {
        bail!(
            "the seller did not take the acceptance ({}); it has seen who you are. You may accept another offer",
            answer_words(answer)
        );
    }
    Ok(Outcome::Done)
}

fn withdraw(app: &App, args: &IntentWithdrawArgs) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let mine = vault.intents().find(&args.intention)?;
    let pseudonym = mine.pseudonym();
    let withdrawal = vault.intents_mut().withdraw(&pseudonym)?;
    let key = vault.intents().key(&pseudonym)?.context("an intention without its key")?;
    let mut reached = Vec::new();
    for ticket in vault.intents().sent_tickets(&pseudonym)? {
        let ticket = vault.contacts().dial_ticket(&ticket)?;
        let ok = matches!(
            call_one(&key, &ticket, MarketFrame::Withdraw(withdrawal.clone()), !args.no_relay),
            Ok(MarketFrame::Answer(MarketAnswer::Kept | MarketAnswer::Unknown))
        );
        let n = vault.contacts().petname(&ticket.identity()).unwrap_or_else(|| ticket.identity().to_string());
        reached.push((n, ok));
    }
    // Sellers that offered through a topic were dialled above only if they gave a ticket; the
    // topic hears the withdrawal too.
    if let Some((topic, via)) = vault.intents().topic_of(&pseudonym)? {
        let frame = MarketFrame::Withdraw(withdrawal.clone());
        let ok = runtime()?
            .block_on(topic_call(&key, &topic, &via, &[frame], TOPIC_SETTLE, !args.no_relay))
            .is_ok();
        reached.push((format!("topic {topic}"), ok));
    }
    if app.json {
        let r: Vec<Value> = reached.iter().map(|(n, ok)| json!({ "peer": n, "told": ok })).collect();
        app.print_json(&json!({ "intention": pseudonym.to_string(), "sellers": r }))?;
    } else {
        let mut out = vec![format!("intention {} withdrawn", short(&mine))];
        for (n, ok) in &reached {
            out.push(format!(
                "  {}: {}",
                untrusted(n),
                if *ok { "dropped it" } else { "not reached (it drops it at its last day)" }
            ));
        }
        app.print(out.join("\n"))?;
    }
    Ok(Outcome::Done)
}

fn held_json(held: &HeldIntention) -> Value {
    json!({
        "pseudonym": held.signed.intention.pseudonym.to_string(),
        "intention": serde_json::to_value(&held.signed.intention).unwrap_or(Value::Null),
        "via": held.via,
        "received_at": rfc3339(held.received_at),
        "offers": held.offers.iter().map(|o| o.statement().id.to_string()).collect::<Vec<_>>(),
        "accepted_by": held.accepted.as_ref().map(|a| a.statement().customer.to_string()),
    })
}

fn inbox(app: &App) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    vault.market_mut().expire()?;
    let all = vault.market().list()?;
    if app.json {
        app.print_json(&json!({ "intentions": all.iter().map(held_json).collect::<Vec<_>>() }))?;
    } else if all.is_empty() {
        app.print("no intentions received")?;
    } else {
        let mut out = Vec::new();
        for held in &all {
            let i = &held.signed.intention;
            out.push(format!("{}  {}  ({})", &i.pseudonym.to_string()[..12], describe(i), held.via));
            for o in &held.offers {
                let s = o.statement();
                let price = s.price();
                out.push(format!("  your offer {}  {price}  until {}", s.id, local(s.until)));
            }
            if let Some(a) = &held.accepted {
                let c = a.statement().customer;
                let n = vault.contacts().petname(&c).unwrap_or_else(|| c.to_string());
                out.push(format!("  ACCEPTED by {} (offer {})", untrusted(&n), a.statement().offer));
            }
        }
        app.print(out.join("\n"))?;
    }
    Ok(if all.is_empty() { Outcome::No } else { Outcome::Done })
}

fn offer(app: &App, args: &IntentOfferArgs) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let price = Price::parse(&args.price, &args.currency)?;
    let until = parse_expiry(&args.until, vault.now())?;
    let name = match args.name.clone().or_else(|| vault.display_name()) {
        Some(name) => name,
        None => bail!("name yourself in the offer: --name \"Your Shop\" (or set a display name)"),
    };
    let own = vault.ticket(vault.serving().node_addrs());
    let signed = vault.market_mut().offer(&args.intention, &name, &price, &args.terms, until, Some(&own))?;
    let o = signed.statement();
    if app.json {
        app.print_json(&json!({ "offer": o.id.to_string(), "intention": o.intention.to_string(), "until": rfc3339(o.until) }))?;
    } else {
        app.print(format!(
            "offer {} made: {price} until {}; the customer fetches it (its intention's pseudonym calls this vault's node: keep 'vault serve' running)",
            o.id,
            local(o.until)
        ))?;
    }
    Ok(Outcome::Done)
}
