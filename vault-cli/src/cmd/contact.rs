//! `vault contact add|list|rm|block`

use anyhow::{Context, Result};
use serde_json::json;
use vault_core::Ticket;

use crate::app::{App, Outcome};
use crate::cli::ContactCommand;

pub(crate) fn run(app: &App, command: ContactCommand) -> Result<Outcome> {
    match command {
        ContactCommand::Add { name, ticket } => {
            let ticket: Ticket = ticket.parse().context("invalid ticket")?;
            let mut vault = app.unlock()?;
            let contact = vault.add_contact(&name, &ticket)?;
            if app.json {
                app.print_json(&json!({ "name": contact.name, "identity": contact.identity.to_string() }))?;
            } else {
                app.print(format!("added {} ({})", contact.name, contact.identity))?;
            }
            Ok(Outcome::Done)
        }
        ContactCommand::List => {
            let vault = app.unlock()?;
            let contacts = vault.contacts()?;
            if app.json {
                let list: Vec<_> = contacts
                    .iter()
                    .map(|c| json!({ "name": c.name, "identity": c.identity.to_string(), "blocked": c.blocked }))
                    .collect();
                app.print_json(&json!({ "contacts": list }))?;
            } else if contacts.is_empty() {
                eprintln!("no contacts");
            } else {
                let lines: Vec<String> = contacts
                    .iter()
                    .map(|c| {
                        format!("{:<16} {}{}", c.name, c.identity, if c.blocked { "  (blocked)" } else { "" })
                    })
                    .collect();
                app.print(lines.join("\n"))?;
            }
            Ok(if contacts.is_empty() { Outcome::No } else { Outcome::Done })
        }
        ContactCommand::Rm { name } => {
            let mut vault = app.unlock()?;
            let removed = vault.remove_contact(&name)?;
            if app.json {
                app.print_json(&json!({ "name": name, "removed": removed }))?;
            } else if !removed {
                eprintln!("no contact named {name}");
            }
            Ok(if removed { Outcome::Done } else { Outcome::No })
        }
        ContactCommand::Block { name } => {
            let mut vault = app.unlock()?;
            let blocked = vault.block_contact(&name)?;
            if app.json {
                app.print_json(&json!({ "name": name, "blocked": blocked }))?;
            } else if !blocked {
                eprintln!("no contact named {name}");
            }
            Ok(if blocked { Outcome::Done } else { Outcome::No })
        }
    }
}
