//! `vault grant`, `vault grants`, `vault revoke`

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use vault_core::{FieldPath, GrantId, GrantInfo, GrantStatus, NewGrant, RecordFilter, Vault};

use crate::app::{App, Outcome};
use crate::cli::{GrantArgs, GrantsArgs};
use crate::fields::{derived_words, parse_fields};
use crate::output::untrusted;
use crate::time::{local, parse_expiry, rfc3339};

/// A grant as JSON (`schemas/cli/grants.schema.json`), with the signed grant as the receipt.
pub(crate) fn grant_json(vault: &Vault, info: &GrantInfo) -> Value {
    let g = info.grant.statement();
    json!({
        "id": g.id.to_string(),
        "audience": g.audience.to_string(),
        "audience_name": vault.contacts().petname(&g.audience),
        "fields": g.fields.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "filter": g.filter.as_ref().map(ToString::to_string),
        "purpose": g.purpose,
        "issued_at": rfc3339(g.issued_at),
        "expires_at": g.expires_at.map(rfc3339),
        "prices": g.prices,
        "status": match info.status {
            GrantStatus::Active => "active",
            GrantStatus::Expired => "expired",
            GrantStatus::Revoked => "revoked",
            _ => "void",
        },
        "revoked_at": info.revocation.as_ref().map(|r| rfc3339(r.statement().revoked_at)),
        "erasure_confirmed_at": info.erasure.as_ref().map(|e| rfc3339(e.statement().erased_at)),
        "erasure": {
            "complete": info.erasure_complete(),
            "confirmed_on": info.erased_on().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "served_to": info.served.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "receipt": info.grant.to_json(),
    })
}

fn describe(vault: &Vault, info: &GrantInfo) -> String {
    let g = info.grant.statement();
    let who = vault.contacts().petname(&g.audience).unwrap_or_else(|| g.audience.to_string());
    let until = g.expires_at.map_or_else(|| "no expiry".to_owned(), |e| format!("until {}", local(e)));
    // Erasure is confirmed per device of the grantee served: "pending" until every one has.
    let erasure = match (info.erasure_complete(), info.erasures.len(), info.served.len()) {
        (true, _, _) => "erasure confirmed".to_owned(),
        (false, 0, _) => "erasure pending".to_owned(),
        (false, k, n) => {
            format!("erasure confirmed on {k} of their {n} devices served, pending on the others")
        }
    };
    let status = match info.status {
        GrantStatus::Active => "active".to_owned(),
        GrantStatus::Expired => format!("expired, {erasure}"),
        GrantStatus::Revoked => format!("revoked, {erasure}"),
        _ => format!("void (issued by a removed device), {erasure}"),
    };
    let mut fields = g.fields.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if let Some(f) = &g.filter {
        fields.push_str(&format!(" where {f}"));
    }
    if !g.prices && g.fields.iter().any(FieldPath::is_purchases) {
        fields.push_str(" (no prices)");
    }
    // Derived fields in plain words (vault's own text: the paths were checked when read).
    let derived: String = g
        .fields
        .iter()
        .filter_map(derived_words)
        .map(|words| format!("\n             shares only {words}"))
        .collect();
    format!(
        "{}  {}  [{status}]\n    fields:  {}{derived}\n    purpose: {}\n    {until}, issued {}",
        g.id,
        untrusted(&who),
        untrusted(&fields),
        untrusted(&g.purpose),
        local(g.issued_at)
    )
}

pub(crate) fn issue(app: &App, args: &GrantArgs) -> Result<Outcome> {
    // Everything that can be checked is checked before asking for the passphrase.
    let fields = parse_fields(&args.fields)?;
    let filter: Option<RecordFilter> = args.filter.as_deref().map(str::parse).transpose()?;
    if args.purpose.trim().is_empty() {
        bail!("the purpose must not be empty: say why the peer gets these fields");
    }
    let mut vault = app.unlock()?;
    let peer = vault.contacts().resolve(&args.peer)?;
    let expires_at = args.expires.as_deref().map(|e| parse_expiry(e, vault.now())).transpose()?;
    // Building the projection reads every record the grant covers: shown while it runs.
    let spinner = app.spinner("signing the grant and building what it shares");
    let signed = vault.grants_mut().issue(NewGrant {
        audience: peer.identity,
        fields,
        filter,
        purpose: args.purpose.clone(),
        expires_at,
        prices: !args.no_prices,
    });
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let signed = signed?;
    let info = vault.grants().get(&signed.statement().id)?.context("the new grant is stored")?;
    if app.json {
        app.print_json(&grant_json(&vault, &info))?;
    } else {
        app.print(format!("granted {}", describe(&vault, &info)))?;
    }
    if expires_at.is_none() {
        // Said as it is made: nothing ends it but a revocation.
        eprintln!(
            "note: this grant has no end: it lasts until you revoke it ('vault revoke {}'); --expires 90d or a \
             date sets one",
            signed.statement().id
        );
    }
    Ok(Outcome::Done)
}

pub(crate) fn list(app: &App, args: &GrantsArgs) -> Result<Outcome> {
    let field: Option<FieldPath> = args.field.as_deref().map(str::parse).transpose()?;
    let vault = app.unlock()?;
    let grants: Vec<GrantInfo> = match &field {
        Some(path) => vault.grants().covering(path)?,
        None => vault.grants().list()?.into_iter().filter(|g| args.all || g.is_live()).collect(),
    };
    if app.json {
        let list: Vec<Value> = grants.iter().map(|g| grant_json(&vault, g)).collect();
        app.print_json(&json!({ "grants": list }))?;
    } else if grants.is_empty() {
        match &field {
            Some(path) => eprintln!("no live grant covers {path}: nobody receives it"),
            None => eprintln!(
                "no grants{}",
                if args.all { "" } else { " (--all shows revoked and expired ones)" }
            ),
        }
    } else {
        app.print(grants.iter().map(|g| describe(&vault, g)).collect::<Vec<_>>().join("\n"))?;
    }
    Ok(if grants.is_empty() { Outcome::No } else { Outcome::Done })
}

pub(crate) fn revoke(app: &App, grant_id: &str) -> Result<Outcome> {
    let id: GrantId = grant_id.parse()?;
    let mut vault = app.unlock()?;
    vault.grants_mut().revoke(&id)?;
    let info = vault.grants().get(&id)?.context("the grant is stored")?;
    if app.json {
        app.print_json(&grant_json(&vault, &info))?;
    } else {
        app.print(format!(
            "revoked {id}: nothing more is served under it; the grantee's vault erases its copy when it next \
             connects.\nWhat it already received cannot be recalled."
        ))?;
    }
    Ok(Outcome::Done)
}
