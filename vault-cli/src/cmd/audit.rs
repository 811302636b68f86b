//! `vault audit [--peer --grant --since]`

use anyhow::Result;
use serde_json::json;
use vault_core::{AuditEvent, AuditFilter, AuditKind, Vault};

use crate::app::{App, Outcome};
use crate::cli::AuditArgs;
use crate::output::untrusted;
use crate::time::{local, parse_since, rfc3339};

pub(crate) fn run(app: &App, args: &AuditArgs) -> Result<Outcome> {
    let vault = app.unlock()?;
    let filter = AuditFilter {
        peer: args.peer.as_deref().map(|p| vault.contacts().resolve(p)).transpose()?.map(|p| p.identity),
        grant: args.grant.as_deref().map(str::parse).transpose()?,
        since: args.since.as_deref().map(|s| parse_since(s, vault.now())).transpose()?,
    };
    let events = vault.access_log().list(&filter)?;
    let devices = vault.devices().list()?;
    let device_name = |e: &AuditEvent| {
        e.device.map(|d| devices.iter().find(|r| r.id == d).map_or_else(|| d.to_string(), |r| r.name.clone()))
    };
    if app.json {
        let list: Vec<_> = events
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).expect("events serialize");
                v["at"] = json!(rfc3339(e.at));
                v["peer_name"] = json!(e.peer.and_then(|p| vault.contacts().petname(&p)));
                if e.device.is_some() {
                    v["device_name"] = json!(device_name(e));
                }
                v
            })
            .collect();
        app.print_json(&json!({ "events": list }))?;
    } else if events.is_empty() {
        eprintln!("no events");
    } else {
        let lines: Vec<String> = events
            .iter()
            .map(|e| match device_name(e) {
                Some(name) => format!("{}  on {}", describe_event(&vault, e), untrusted(&name)),
                None => describe_event(&vault, e),
            })
            .collect();
        app.print(lines.join("\n"))?;
    }
    Ok(if events.is_empty() { Outcome::No } else { Outcome::Done })
}

/// One access-log line: when, what, who, which grant and fields.
pub(crate) fn describe_event(vault: &Vault, e: &AuditEvent) -> String {
    let who =
        e.peer.map(|p| vault.contacts().petname(&p).unwrap_or_else(|| p.to_string())).unwrap_or_default();
    let what = match e.kind {
        AuditKind::GrantIssued => "granted",
        AuditKind::GrantRevoked => "revoked",
        AuditKind::GrantExpired => "expired",
        AuditKind::ErasureReceipt => "erasure confirmed by",
        AuditKind::SyncServed => "served",
        AuditKind::ChangeRefused => "refused a change from",
        AuditKind::PeerRefused => "refused",
        AuditKind::ShareReceived => "received a share from",
        AuditKind::ShareErased => "erased the share of",
        AuditKind::RequestSent => "asked",
        AuditKind::RequestReceived => "request from",
        AuditKind::RequestRefused => "refused a request from",
        AuditKind::RequestApproved => "approved the request of",
        AuditKind::RequestDenied => "denied the request of",
        AuditKind::RequestAnswered => "answer from",
        AuditKind::BreachNotified => "sent a breach notice to",
        AuditKind::BreachNotice => "BREACH NOTICE from",
        AuditKind::SharingForked => "sharing state sent again",
        AuditKind::IntentionStated => "stated an intention",
        AuditKind::IntentionSent => "sent an intention to",
        AuditKind::IntentionReceived => "received an intention",
        AuditKind::IntentionWithdrawn => "intention withdrawn",
        AuditKind::OfferMade => "made an offer",
        AuditKind::OfferReceived => "offer from",
        AuditKind::OfferAccepted => "offer accepted, identities told:",
        _ => "event",
    };
    let mut line = format!("{}  {what} {}", local(e.at), untrusted(&who));
    if let Some(g) = e.grant {
        line.push_str(&format!("  grant {g}"));
    }
    if !e.fields.is_empty() {
        line.push_str(&format!("  [{}]", untrusted(&e.fields.join(", "))));
    }
    if let Some(b) = e.bytes {
        line.push_str(&format!("  {b} bytes"));
    }
    if let Some(d) = &e.detail {
        line.push_str(&format!("  ({})", untrusted(d)));
    }
    line
}
