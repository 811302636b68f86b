//! `vault request`, `vault follow`, `vault requests`, `vault approve`, `vault deny`

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use vault_core::{
    Approval, FieldPath, NewRequest, RecordFilter, RequestId, RequestInfo, RequestStatus, Vault,
};
use vault_sync::{NodeConfig, sync_once};

use crate::app::{App, Outcome};
use crate::cli::{ApproveArgs, DenyArgs, FollowArgs, RequestArgs, RequestsArgs};
use crate::cmd::grant::grant_json;
use crate::fields::{derived_words, parse_fields, together_notes};
use crate::output::untrusted;
use crate::runtime::runtime;
use crate::time::{local, parse_duration, parse_expiry, rfc3339};

fn days(seconds: i64) -> String {
    if seconds % 86_400 == 0 {
        format!("{} days", seconds / 86_400)
    } else if seconds % 3600 == 0 {
        format!("{} hours", seconds / 3600)
    } else {
        format!("{seconds} seconds")
    }
}

/// A request as JSON (`schemas/cli/requests.schema.json`).
fn request_json(vault: &Vault, info: &RequestInfo, incoming: bool) -> Value {
    let r = info.request.statement();
    let mut value = json!({
        "id": r.id.to_string(),
        "direction": if incoming { "incoming" } else { "outgoing" },
        "requester": r.requester.to_string(),
        "holder": r.holder.to_string(),
        "peer_name": info.peer_name,
        "requester_says": r.name,
        "fields": r.fields.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "filter": r.filter.as_ref().map(ToString::to_string),
        "purpose": r.purpose,
        "duration_seconds": r.duration,
        "prices": r.prices,
        "made_at": rfc3339(r.made_at),
        "status": info.status.as_str(),
        "delivered_at": info.delivered_at.map(rfc3339),
        "answered_at": info.answered_at.map(rfc3339),
        "grant": info.grant.map(|g| g.to_string()),
        "reason": info.denial.as_ref().and_then(|d| d.statement().reason.clone()),
    });
    if incoming {
        let holds: Vec<Value> = vault
            .inbox()
            .holdings(r)
            .into_iter()
            .map(|h| {
                json!({
                    "field": h.field.to_string(),
                    "held": h.held,
                    "records": h.records,
                    "shares_only": derived_words(&h.field),
                })
            })
            .collect();
        value["holds"] = Value::Array(holds);
    }
    value
}

fn describe(vault: &Vault, info: &RequestInfo, incoming: bool) -> String {
    let r = info.request.statement();
    let peer = if incoming { r.requester } else { r.holder };
    let who = match (&info.peer_name, &r.name) {
        (Some(name), _) => format!("{} ({peer})", untrusted(name)),
        // A stranger's own word for itself: after its key, quoted, and said to be only that.
        (None, Some(says)) if incoming => {
            let mut line =
                format!("{peer} (not a contact; calls itself {:?}, unverified", untrusted(says).as_ref());
            let same = vault
                .contacts()
                .list()
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.name.eq_ignore_ascii_case(says));
            if let Some(contact) = same {
                line.push_str(&format!(": not your contact {}", untrusted(&contact.name)));
            }
            line.push(')');
            line
        }
        (None, _) => format!("{peer} (not a contact)"),
    };
    let kind = if r.is_follow() { "follow request (purchase feed)" } else { "access request" };
    let mut lines = vec![format!(
        "{}  {kind} {} {who}  [{}]",
        r.id,
        if incoming { "from" } else { "to" },
        info.status.as_str()
    )];
    lines.push(format!("    purpose:  {}", untrusted(&r.purpose)));
    lines.push(format!("    for:      {}", r.duration.map_or_else(|| "until revoked".to_owned(), days)));
    if let Some(f) = &r.filter {
        lines.push(format!("    only:     {}", untrusted(&f.to_string())));
    }
    if incoming {
        lines.push("    fields (what your vault holds of them):".to_owned());
        for h in vault.inbox().holdings(r) {
            let what = match (h.records, h.held) {
                (Some(n), _) => format!(
                    "{n} purchase record{}{}",
                    if n == 1 { "" } else { "s" },
                    if r.prices || !matches!(h.field, FieldPath::Purchases(None)) {
                        ""
                    } else {
                        ", without prices"
                    }
                ),
                (None, true) => "held".to_owned(),
                (None, false) => "not set (nothing would be shared yet)".to_owned(),
            };
            lines.push(format!("      {:<24} {what}", untrusted(&h.field.to_string())));
            if let FieldPath::Derived(d) = &h.field {
                lines.push(format!("          shares only {}", d.plain_words()));
            }
        }
        let given: Vec<FieldPath> = vault
            .grants()
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter(|g| g.grant.statement().audience == r.requester)
            .flat_map(|g| g.grant.statement().fields.clone())
            .collect();
        for note in together_notes(&r.fields, &given) {
            lines.push(format!("    note: {note}"));
        }
    } else {
        lines.push(format!(
            "    fields:   {}",
            untrusted(&r.fields.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        ));
        for words in r.fields.iter().filter_map(derived_words) {
            lines.push(format!("              shares only {words}"));
        }
    }
    match info.status {
        RequestStatus::Approved => {
            if let Some(g) = info.grant {
                lines.push(format!("    approved: grant {g}"));
            }
        }
        RequestStatus::Denied => {
            let reason = info.denial.as_ref().and_then(|d| d.statement().reason.clone());
            lines.push(format!(
                "    denied{}",
                reason.map(|r| format!(": {}", untrusted(&r))).unwrap_or_default()
            ));
        }
        _ => {}
    }
    if let Some(at) = info.delivered_at {
        lines.push(format!("    {} {}", if incoming { "received" } else { "delivered" }, local(at)));
    }
    lines.join("\n")
}

struct Ask {
    peer: String,
    fields: Vec<FieldPath>,
    filter: Option<RecordFilter>,
    purpose: String,
    duration: Option<i64>,
    prices: bool,
    no_relay: bool,
}

/// Signs the request, queues it, and tries to deliver it now.
fn send(app: &App, ask: Ask) -> Result<Outcome> {
    if ask.purpose.trim().is_empty() {
        bail!("the purpose must not be empty: say why you need these fields");
    }
    let mut vault = app.unlock()?;
    let peer = vault.contacts().resolve(&ask.peer)?;
    let Some(ticket) = peer.ticket.clone() else {
        bail!("no ticket for that peer: add them with 'vault contact add NAME TICKET'");
    };
    let name = untrusted(&peer.name.clone().unwrap_or_else(|| peer.identity.to_string())).into_owned();
    let (own_name, own_ticket) = (vault.display_name(), vault.ticket(vault.serving().node_addrs()));
    let signed = vault.outbox_mut().make(NewRequest {
        holder: peer.identity,
        ticket: Some(ticket.clone()),
        fields: ask.fields,
        filter: ask.filter,
        purpose: ask.purpose,
        duration: ask.duration,
        prices: ask.prices,
        name: own_name,
        reply_to: Some(own_ticket),
    })?;
    let id = signed.statement().id;
    let config = NodeConfig { relay: !ask.no_relay, subscribe: false, ..NodeConfig::default() };
    let (vault, report) = runtime()?.block_on(sync_once(vault, &ticket, &config));
    let info = vault
        .outbox()
        .list()?
        .into_iter()
        .find(|r| r.request.statement().id == id)
        .context("the request is stored")?;
    if app.json {
        app.print_json(&request_json(&vault, &info, false))?;
    }
    if info.request.statement().duration.is_none() {
        // Said as it is made: a consent given as asked would last until revoked.
        eprintln!(
            "note: this request asks for no end: consent given as asked lasts until revoked (--duration 90d sets one)"
        );
    }
    let outcome = match (info.status, &report) {
        (RequestStatus::NotAccepted, _) => {
            eprintln!(
                "{name}'s vault did not accept request {id} (it may have too many of your requests waiting)"
            );
            Outcome::No
        }
        (RequestStatus::Queued, Err(e)) => {
            if !app.json {
                app.print(format!(
                    "request {id} is queued: {name} is not reachable now ({}).\n\
                     'vault serve' delivers it when {name} is online, or run 'vault sync {}' later.",
                    untrusted(&e.to_string()),
                    untrusted(peer.name.as_deref().unwrap_or("PEER"))
                ))?;
            }
            Outcome::Done
        }
        _ => {
            if !app.json {
                app.print(format!(
                    "request {id} delivered to {name}; waiting for their decision.\n{}\n\
                     'vault serve' receives the answer live; 'vault requests --sent' shows it.",
                    describe(&vault, &info, false)
                ))?;
            }
            Outcome::Done
        }
    };
    Ok(outcome)
}

pub(crate) fn request(app: &App, args: &RequestArgs) -> Result<Outcome> {
    let fields = parse_fields(&args.fields)?;
    let filter: Option<RecordFilter> = args.filter.as_deref().map(str::parse).transpose()?;
    let duration = args.duration.as_deref().map(parse_duration).transpose()?;
    send(
        app,
        Ask {
            peer: args.peer.clone(),
            fields,
            filter,
            purpose: args.purpose.clone(),
            duration,
            prices: !args.no_prices,
            no_relay: args.no_relay,
        },
    )
}

pub(crate) fn follow(app: &App, args: &FollowArgs) -> Result<Outcome> {
    let filter: Option<RecordFilter> = args.tag.as_deref().map(|t| format!("tag={t}").parse()).transpose()?;
    let duration = args.duration.as_deref().map(parse_duration).transpose()?;
    send(
        app,
        Ask {
            peer: args.peer.clone(),
            fields: vec![FieldPath::Purchases(None)],
            filter,
            purpose: args.purpose.clone(),
            duration,
            prices: !args.no_prices,
            no_relay: args.no_relay,
        },
    )
}

pub(crate) fn list(app: &App, args: &RequestsArgs) -> Result<Outcome> {
    let vault = app.unlock()?;
    let incoming = !args.sent;
    let requests: Vec<RequestInfo> = if incoming { vault.inbox().list()? } else { vault.outbox().list()? }
        .into_iter()
        .filter(|r| {
            args.all
                || matches!(r.status, RequestStatus::Pending | RequestStatus::Queued)
                || (!incoming && r.answered_at.is_some_and(|t| vault.now() - t < 7 * 86_400))
        })
        .collect();
    if app.json {
        let list: Vec<Value> = requests.iter().map(|r| request_json(&vault, r, incoming)).collect();
        app.print_json(&json!({ "requests": list }))?;
    } else if requests.is_empty() {
        eprintln!(
            "{}{}",
            if incoming { "no requests waiting for your decision" } else { "no requests sent" },
            if args.all { "" } else { " (--all includes answered ones)" }
        );
    } else {
        let mut text = requests.iter().map(|r| describe(&vault, r, incoming)).collect::<Vec<_>>().join("\n");
        if incoming && requests.iter().any(|r| r.status == RequestStatus::Pending) {
            text.push_str("\n\n'vault approve ID' grants what was asked (--fields, --expires narrow it); 'vault deny ID' says no.");
        }
        app.print(text)?;
    }
    Ok(if requests.is_empty() { Outcome::No } else { Outcome::Done })
}

pub(crate) fn approve(app: &App, args: &ApproveArgs) -> Result<Outcome> {
    let id: RequestId = args.request_id.parse()?;
    let fields = args.fields.as_deref().map(parse_fields).transpose()?;
    let filter: Option<RecordFilter> = args.filter.as_deref().map(str::parse).transpose()?;
    let mut vault = app.unlock()?;
    let expires_at = args.expires.as_deref().map(|e| parse_expiry(e, vault.now())).transpose()?;
    let spinner = app.spinner("signing the grant and building what it shares");
    let grant =
        vault.inbox_mut().approve(&id, Approval { fields, filter, no_prices: args.no_prices, expires_at });
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let grant = grant?;
    let info = vault.grants().get(&grant.statement().id)?.context("the new grant is stored")?;
    if app.json {
        app.print_json(&grant_json(&vault, &info))?;
    } else {
        let g = grant.statement();
        let who = untrusted(&vault.contacts().petname(&g.audience).unwrap_or_else(|| g.audience.to_string()))
            .into_owned();
        app.print(format!(
            "approved request {id}: grant {} gives {who} {} for \"{}\", {}.\n\
             They receive it the next time they connect (live while 'vault serve' runs); 'vault revoke {}' withdraws it.",
            g.id,
            untrusted(&g.fields.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
            untrusted(&g.purpose),
            g.expires_at.map_or_else(|| "until you revoke it".to_owned(), |e| format!("until {}", local(e))),
            g.id,
        ))?;
    }
    Ok(Outcome::Done)
}

pub(crate) fn deny(app: &App, args: &DenyArgs) -> Result<Outcome> {
    let id: RequestId = args.request_id.parse()?;
    let mut vault = app.unlock()?;
    let denial = vault.inbox_mut().deny(&id, args.reason.clone())?;
    let info = vault.inbox().get(&id)?.context("the request is stored")?;
    if app.json {
        app.print_json(&request_json(&vault, &info, true))?;
    } else {
        let who = vault
            .contacts()
            .petname(&denial.statement().requester)
            .unwrap_or_else(|| denial.statement().requester.to_string());
        app.print(format!("denied request {id}; {} is told the next time they connect", untrusted(&who)))?;
    }
    Ok(Outcome::Done)
}
