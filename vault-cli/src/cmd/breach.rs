//! `vault breach notify` (seller) and `vault notices` (customer; `--sent` for the seller).

use anyhow::Result;
use serde_json::{Value, json};
use vault_core::{GrantStatus, NoticeInfo, Vault};
use vault_sync::{NodeConfig, sync_once};

use crate::app::{App, Outcome};
use crate::cli::{BreachCommand, NoticesArgs};
use crate::output::untrusted;
use crate::runtime::runtime;
use crate::time::{local, parse_since, rfc3339};

/// Customers reached at once by `breach notify`; the node delivers to the rest.
const DELIVER_NOW_AT_MOST: usize = 20;

pub(crate) fn notify(app: &App, command: BreachCommand) -> Result<Outcome> {
    let BreachCommand::Notify(args) = command;
    let mut vault = app.unlock()?;
    let since = parse_since(&args.since, vault.now())?;
    // A seller with a database: every consent it records, whichever of the seller's nodes
    // holds the customer's shares (each holds its own customers' only). Unreadable (down, or
    // tampered with: a breach may be why), the notices still go to the customers this node
    // holds, and the seller is told to send again once it answers.
    let recorded = match vault.mirror().url()? {
        Some(raw) => {
            let url = vault_mirror::MirrorUrl::parse(&raw)?;
            let owner = vault_mirror::owner(&vault);
            match runtime()?.block_on(vault_mirror::recorded_consents(&url, &owner)) {
                Ok(recorded) => recorded,
                Err(e) => {
                    eprintln!(
                        "warning: cannot read the consents the seller's database records ({e}): \
                         notifying only the customers whose shares this node holds; run this again \
                         once the database answers"
                    );
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    };
    let notices = vault.notices_mut().notify_with(since, args.purpose.as_deref(), &args.text, recorded)?;
    let config = NodeConfig { relay: !args.no_relay, subscribe: false, ..NodeConfig::default() };
    if notices.len() <= DELIVER_NOW_AT_MOST {
        let rt = runtime()?;
        for (customer, ticket) in vault.notices().customers()? {
            let Some(ticket) = ticket else { continue };
            let (back, report) = rt.block_on(sync_once(vault, &ticket, &config));
            vault = back;
            if let Err(e) = report {
                tracing::info!(%customer, error = %e, "breach notice queued: customer not reachable now");
            }
        }
    }
    let sent = vault.notices().sent()?;
    let ids: Vec<_> = notices.iter().map(|n| n.statement().id).collect();
    let ours: Vec<&NoticeInfo> = sent.iter().filter(|n| ids.contains(&n.notice.statement().id)).collect();
    if app.json {
        app.print_json(
            &json!({ "notices": ours.iter().map(|n| notice_json(&vault, n)).collect::<Vec<_>>() }),
        )?;
    } else {
        let delivered = ours.iter().filter(|n| n.delivered).count();
        let mut out = vec![format!(
            "{} customers notified: {delivered} delivered now, {} queued ('vault serve' delivers them when they are online)",
            ours.len(),
            ours.len() - delivered
        )];
        for n in &ours {
            let s = n.notice.statement();
            let who = n.peer_name.clone().unwrap_or_else(|| s.customer.to_string());
            let fields: Vec<String> = s.fields.iter().map(ToString::to_string).collect();
            out.push(format!(
                "  {}  {}  [{}]  {}",
                s.id,
                untrusted(&who),
                fields.join(", "),
                if n.delivered { "delivered" } else { "queued" }
            ));
        }
        app.print(out.join("\n"))?;
    }
    Ok(Outcome::Done)
}

pub(crate) fn list(app: &App, args: &NoticesArgs) -> Result<Outcome> {
    let vault = app.unlock()?;
    let notices = if args.sent { vault.notices().sent()? } else { vault.notices().list()? };
    if app.json {
        app.print_json(
            &json!({ "notices": notices.iter().map(|n| notice_json(&vault, n)).collect::<Vec<_>>() }),
        )?;
    } else if notices.is_empty() {
        eprintln!(
            "{}",
            if args.sent {
                "you sent no breach notice"
            } else {
                "no breach notice: no seller told you of a breach"
            }
        );
    } else {
        let mut out = Vec::new();
        for n in &notices {
            let s = n.notice.statement();
            let fields: Vec<String> = s.fields.iter().map(ToString::to_string).collect();
            if args.sent {
                let who = n.peer_name.clone().unwrap_or_else(|| s.customer.to_string());
                out.push(format!(
                    "{}  to {}  [{}]  {}\n    {}",
                    s.id,
                    untrusted(&who),
                    fields.join(", "),
                    if n.delivered { "delivered" } else { "queued" },
                    untrusted(&s.text)
                ));
                continue;
            }
            let who = n.peer_name.clone().unwrap_or_else(|| s.seller.to_string());
            let granted: Vec<String> = n.granted.iter().map(ToString::to_string).collect();
            out.push(format!(
                "BREACH NOTICE from {}  (received {})\n    window: {} to {}\n    your grants gave them: {}",
                untrusted(&who),
                n.received_at.map(local).unwrap_or_default(),
                local(s.since),
                local(s.until),
                if granted.is_empty() {
                    "nothing this device knows of".to_owned()
                } else {
                    granted.join(", ")
                },
            ));
            if n.claim_differs() {
                out.push(format!(
                    "    they say they held: {}  (not what your grants gave them)",
                    untrusted(&fields.join(", "))
                ));
            }
            out.push(format!("    they say: {}", untrusted(&s.text)));
            for (grant, status) in &n.grants {
                let line = match status {
                    Some(GrantStatus::Active) => {
                        format!("    grant {grant}: active   revoke it: vault revoke {grant}")
                    }
                    Some(other) => format!("    grant {grant}: {}", status_name(*other)),
                    None => format!("    grant {grant}: unknown here"),
                };
                out.push(line);
            }
        }
        app.print(out.join("\n"))?;
    }
    Ok(if notices.is_empty() { Outcome::No } else { Outcome::Done })
}

fn status_name(status: GrantStatus) -> &'static str {
    match status {
        GrantStatus::Active => "active",
        GrantStatus::Revoked => "revoked",
        GrantStatus::Expired => "expired",
        GrantStatus::Void => "void",
    }
}

/// A notice as JSON (`schemas/cli/notices.schema.json`).
fn notice_json(vault: &Vault, n: &NoticeInfo) -> Value {
    let s = n.notice.statement();
    json!({
        "id": s.id.to_string(),
        "seller": s.seller.to_string(),
        "customer": s.customer.to_string(),
        "peer_name": n.peer_name,
        "since": rfc3339(s.since),
        "until": rfc3339(s.until),
        "fields": s.fields.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "granted_fields": n.granted.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "claim_differs": s.customer == vault.identity() && n.claim_differs(),
        "text": s.text,
        "issued_at": rfc3339(s.issued_at),
        "delivered": n.delivered,
        "received_at": n.received_at.map(rfc3339),
        "grants": if s.customer == vault.identity() {
            n.grants.iter().map(|(g, st)| json!({ "id": g.to_string(), "status": st.map(status_name) })).collect::<Vec<_>>()
        } else {
            s.grants.iter().map(|g| json!({ "id": g.to_string(), "status": Value::Null })).collect()
        },
        "signature": n.notice.signature_hex(),
    })
}
