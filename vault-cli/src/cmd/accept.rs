//! `vault accept [anyone [--strangers N]|contacts|requests]`

use anyhow::{Result, bail};
use serde_json::json;
use vault_core::{AcceptGrants, DEFAULT_MAX_UNSOLICITED, MAX_UNSOLICITED_PER_STRANGER};

use crate::app::{App, Outcome};
use crate::cli::AcceptArgs;

pub(crate) fn run(app: &App, args: &AcceptArgs) -> Result<Outcome> {
    let policy = match (args.from.as_deref(), args.strangers) {
        (None, None) => None,
        (None | Some("anyone"), strangers) => {
            Some(AcceptGrants::Anyone { strangers: strangers.unwrap_or(DEFAULT_MAX_UNSOLICITED) })
        }
        (Some(_), Some(_)) => bail!("--strangers goes with `anyone` only"),
        (Some("contacts"), None) => Some(AcceptGrants::Contacts),
        (Some(_), None) => Some(AcceptGrants::Requests),
    };
    let mut vault = app.unlock()?;
    if let Some(policy) = policy {
        vault.held_mut().set_accepts(policy)?;
    }
    let policy = vault.held().accepts()?;
    let strangers = match policy {
        AcceptGrants::Anyone { strangers } => Some(strangers),
        _ => None,
    };
    if app.json {
        app.print_json(&json!({ "accepts": policy.as_str(), "strangers": strangers }))?;
    } else {
        app.print(match strangers {
            Some(n) => format!(
                "this vault takes grants from anyone: contacts, answers to your requests, and unsolicited \
                 grants from strangers ({MAX_UNSOLICITED_PER_STRANGER} live shares each, {n} in all)"
            ),
            None if policy == AcceptGrants::Contacts => {
                "this vault takes grants only from its contacts and answers to its requests".to_owned()
            }
            None => "this vault takes only grants that answer its requests".to_owned(),
        })?;
    }
    Ok(Outcome::Done)
}
