//! `vault shared [--from PEER] [--purpose TEXT]`

use anyhow::Result;
use serde_json::{Value, json};
use vault_core::ShareStatus;

use crate::app::{App, Outcome};
use crate::cli::SharedArgs;
use crate::output::key_values;
use crate::time::{local, rfc3339};

pub(crate) fn run(app: &App, args: &SharedArgs) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let from = args.from.as_deref().map(|p| vault.resolve_peer(p)).transpose()?.map(|p| p.identity);
    let purpose = args.purpose.as_ref().map(|p| p.to_lowercase());
    let shares: Vec<_> = vault
        .shares()?
        .into_iter()
        .filter(|s| from.is_none_or(|f| s.grant.statement().issuer == f))
        .filter(|s| purpose.as_ref().is_none_or(|p| s.grant.statement().purpose.to_lowercase().contains(p)))
        .collect();
    if app.json {
        let list: Vec<Value> = shares
            .iter()
            .map(|s| {
                let g = s.grant.statement();
                json!({
                    "grant": g.id.to_string(),
                    "from": g.issuer.to_string(),
                    "from_name": s.issuer_name,
                    "fields": g.fields.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "filter": g.filter.as_ref().map(ToString::to_string),
                    "purpose": g.purpose,
                    "issued_at": rfc3339(g.issued_at),
                    "expires_at": g.expires_at.map(rfc3339),
                    "status": match s.status { ShareStatus::Live => "live", ShareStatus::Revoked => "revoked", ShareStatus::Expired => "expired" },
                    "withdrawn_at": s.ended_at.map(rfc3339),
                    "updated_at": s.updated_at.map(rfc3339),
                    "values": s.values,
                    "receipt": {
                        "grant": serde_json::from_slice::<Value>(s.grant.body()).unwrap_or(Value::Null),
                        "signature": s.grant.signature().iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    },
                })
            })
            .collect();
        app.print_json(&json!({ "shares": list }))?;
    } else if shares.is_empty() {
        eprintln!("nothing is shared with you{}", if from.is_some() { " by that peer" } else { "" });
    } else {
        let mut out = Vec::new();
        for s in &shares {
            let g = s.grant.statement();
            let who = s.issuer_name.clone().unwrap_or_else(|| g.issuer.to_string());
            let until =
                g.expires_at.map_or_else(|| "no expiry".to_owned(), |e| format!("until {}", local(e)));
            let status = match s.status {
                ShareStatus::Live => "live".to_owned(),
                ShareStatus::Revoked => {
                    format!("withdrawn (revoked {}), copy erased", s.ended_at.map(local).unwrap_or_default())
                }
                ShareStatus::Expired => {
                    format!("withdrawn (expired {}), copy erased", s.ended_at.map(local).unwrap_or_default())
                }
            };
            out.push(format!("{}  from {who}  [{status}]\n    purpose: {}\n    {until}", g.id, g.purpose));
            if let Some(values) = &s.values {
                for line in key_values(values).lines() {
                    out.push(format!("    {line}"));
                }
            }
        }
        app.print(out.join("\n"))?;
    }
    Ok(if shares.is_empty() { Outcome::No } else { Outcome::Done })
}
