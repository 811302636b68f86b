//! `vault shared [--from PEER] [--purpose TEXT]`

use anyhow::{Context, Result};
use serde_json::{Value, json};
use vault_core::{ConsentState, ReceiptNames, Share, ShareStatus, Vault, consent_receipt};

use crate::app::{App, Outcome};
use crate::cli::{SharedArgs, TableFormat};
use crate::output::{key_values, untrusted};
use crate::time::{local, rfc3339};

/// A share's status as one lowercase word.
pub(crate) fn status_word(status: ShareStatus) -> &'static str {
    match status {
        ShareStatus::Live => "live",
        ShareStatus::Revoked => "revoked",
        ShareStatus::Expired => "expired",
    }
}

/// What `shared` and `status` both say of a share, as JSON: which grant, from whom, which
/// fields, where it stands and how fresh.
pub(crate) fn share_head(s: &Share) -> serde_json::Map<String, Value> {
    let g = s.grant.statement();
    let status = status_word(s.status);
    let head = json!({
        "grant": g.id.to_string(),
        "from": g.issuer.to_string(),
        "from_name": s.issuer_name,
        "fields": g.fields.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "status": status,
        "updated_at": s.updated_at.map(rfc3339),
        "erasure_pending": s.erasure_pending,
    });
    match head {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

pub(crate) fn run(app: &App, args: &SharedArgs) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let from = args.from.as_deref().map(|p| vault.contacts().resolve(p)).transpose()?.map(|p| p.identity);
    let purpose = args.purpose.as_ref().map(|p| p.to_lowercase());
    let shares: Vec<_> = vault
        .held_mut()
        .list()?
        .into_iter()
        .filter(|s| from.is_none_or(|f| s.grant.statement().issuer == f))
        .filter(|s| purpose.as_ref().is_none_or(|p| s.grant.statement().purpose.to_lowercase().contains(p)))
        .collect();
    if let Some(format) = args.export {
        return export(app, &vault, &shares, format, args.output.as_deref());
    }
    if app.json {
        let list: Vec<Value> = shares
            .iter()
            .map(|s| {
                let g = s.grant.statement();
                let mut out = share_head(s);
                out.extend([
                    ("filter".to_owned(), json!(g.filter.as_ref().map(ToString::to_string))),
                    ("purpose".to_owned(), json!(g.purpose)),
                    ("issued_at".to_owned(), json!(rfc3339(g.issued_at))),
                    ("expires_at".to_owned(), json!(g.expires_at.map(rfc3339))),
                    ("withdrawn_at".to_owned(), json!(s.ended_at.map(rfc3339))),
                    ("values".to_owned(), json!(s.values)),
                    ("refused".to_owned(), json!(s.refused)),
                    ("receipt".to_owned(), s.grant.to_json()),
                ]);
                Value::Object(out)
            })
            .collect();
        app.print_json(&json!({ "shares": list }))?;
    } else if shares.is_empty() {
        eprintln!("nothing is shared with you{}", if from.is_some() { " by that peer" } else { "" });
    } else {
        // Erased here, but not yet from the seller's database: no receipt until it is.
        let pending = match vault.mirror().status()? {
            Some(st) if !st.ok => "withdrawn, erasure pending: mirror unreachable".to_owned(),
            _ => "withdrawn, erasure pending: waiting for the mirror (`vault serve` runs it)".to_owned(),
        };
        let mut out = Vec::new();
        for s in &shares {
            let g = s.grant.statement();
            let who = s.issuer_name.clone().unwrap_or_else(|| g.issuer.to_string());
            let until =
                g.expires_at.map_or_else(|| "no expiry".to_owned(), |e| format!("until {}", local(e)));
            let status = match s.status {
                ShareStatus::Live => "live".to_owned(),
                _ if s.erasure_pending => pending.clone(),
                ShareStatus::Revoked => {
                    format!("withdrawn (revoked {}), copy erased", s.ended_at.map(local).unwrap_or_default())
                }
                ShareStatus::Expired => {
                    format!("withdrawn (expired {}), copy erased", s.ended_at.map(local).unwrap_or_default())
                }
            };
            out.push(format!(
                "{}  from {}  [{status}]\n    purpose: {}\n    {until}",
                g.id,
                untrusted(&who),
                untrusted(&g.purpose)
            ));
            if let Some(values) = &s.values {
                for line in key_values(values).lines() {
                    out.push(format!("    {line}"));
                }
            }
            if !s.refused.is_empty() {
                out.push(format!("    left out of what {} sent ({}):", untrusted(&who), s.refused.len()));
                for r in &s.refused {
                    out.push(format!("      {}: {}", untrusted(&r.path), r.why));
                }
            }
        }
        app.print(out.join("\n"))?;
    }
    Ok(if shares.is_empty() { Outcome::No } else { Outcome::Done })
}

/// One exported row: who consented, to what, until when, with the consent receipt.
fn export_row(vault: &Vault, share: &Share) -> Value {
    let g = share.grant.statement();
    let names = ReceiptNames { principal: share.issuer_name.clone(), controller: None };
    let mut receipt = consent_receipt(&share.grant, ConsentState::from(share.status), share.ended_at, &names);
    receipt["iso27560"]["controllerName"] = Value::Null;
    json!({
        "customer": g.issuer.to_string(),
        "customer_name": share.issuer_name,
        "grant": g.id.to_string(),
        "purpose": g.purpose,
        "fields": g.fields.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "filter": g.filter.as_ref().map(ToString::to_string),
        "status": status_word(share.status),
        "issued_at": rfc3339(g.issued_at),
        "expires_at": g.expires_at.map(rfc3339),
        "withdrawn_at": share.ended_at.map(rfc3339),
        "values": share.values,
        "consent_receipt": receipt,
        "controller": vault.identity().to_string(),
    })
}

fn export(
    app: &App,
    vault: &Vault,
    shares: &[Share],
    format: TableFormat,
    output: Option<&std::path::Path>,
) -> Result<Outcome> {
    let rows: Vec<Value> = shares.iter().map(|s| export_row(vault, s)).collect();
    let bytes = match format {
        TableFormat::Json => {
            let mut b = serde_json::to_vec_pretty(&json!({ "consents": rows }))?;
            b.push(b'\n');
            b
        }
        TableFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([
                "customer",
                "customer_name",
                "grant",
                "purpose",
                "fields",
                "filter",
                "status",
                "issued_at",
                "expires_at",
                "withdrawn_at",
                "values",
                "consent_receipt",
            ])?;
            let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_default();
            for r in &rows {
                let fields: Vec<String> = r["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.as_str().map(str::to_owned))
                    .collect();
                w.write_record([
                    text(&r["customer"]),
                    text(&r["customer_name"]),
                    text(&r["grant"]),
                    text(&r["purpose"]),
                    fields.join(" "),
                    text(&r["filter"]),
                    text(&r["status"]),
                    text(&r["issued_at"]),
                    text(&r["expires_at"]),
                    text(&r["withdrawn_at"]),
                    if r["values"].is_null() { String::new() } else { r["values"].to_string() },
                    r["consent_receipt"].to_string(),
                ])?;
            }
            w.into_inner().map_err(|e| anyhow::anyhow!("cannot write the CSV: {e}"))?
        }
    };
    match output {
        Some(path) => {
            crate::cmd::export::write_private(path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if !app.json {
                eprintln!("exported {} consent(s) to {}", rows.len(), untrusted(&path.display().to_string()));
            }
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
        }
    }
    Ok(if rows.is_empty() { Outcome::No } else { Outcome::Done })
}
