//! `vault contact add|addr|list|rm|block|unblock`

use anyhow::{Context, Result, bail};
use serde_json::json;
use vault_core::{Contact, RequestId, Ticket, Vault};

use crate::app::{App, Outcome};
use crate::cli::ContactCommand;
use crate::output::untrusted;

pub(crate) fn run(app: &App, command: ContactCommand) -> Result<Outcome> {
    match command {
        ContactCommand::Add { name, ticket, from_request, addrs } => {
            let mut vault = app.unlock()?;
            let ticket: Ticket = match (ticket, from_request) {
                (Some(ticket), _) => ticket.parse().context("invalid ticket")?,
                (None, Some(id)) => requester_ticket(&vault, &id)?,
                (None, None) => bail!(
                    "no ticket: give theirs ('vault id' on their side), or --from-request ID to add whoever sent you a request"
                ),
            };
            // The same peer under a second name: allowed, said.
            let known = vault.contacts().petname(&ticket.identity()).filter(|n| *n != name);
            let contact = vault.contacts_mut().add_at(&name, &ticket, &addrs)?;
            if let Some(other) = known {
                eprintln!(
                    "note: {} is already your contact '{}': both names now mean the same peer ('vault contact rm {}' \
                     keeps one)",
                    contact.identity,
                    untrusted(&other),
                    untrusted(&name)
                );
            }
            if app.json {
                app.print_json(&json!({
                    "name": contact.name,
                    "identity": contact.identity.to_string(),
                    "addrs": addr_strings(&contact),
                }))?;
            } else {
                app.print(format!(
                    "added {} ({}){}",
                    untrusted(&contact.name),
                    contact.identity,
                    dialed_at(&contact)
                ))?;
            }
            Ok(Outcome::Done)
        }
        ContactCommand::Addr { name, addrs, clear } => {
            let addrs = if clear { Vec::new() } else { addrs };
            let mut vault = app.unlock()?;
            let contact = vault.contacts_mut().set_addrs(&name, &addrs)?;
            if app.json {
                app.print_json(&json!({ "name": contact.name, "addrs": addr_strings(&contact) }))?;
            } else if contact.addrs.is_empty() {
                app.print(format!("{} is dialed at its ticket's addresses", untrusted(&contact.name)))?;
            } else {
                app.print(format!("{}{}", untrusted(&contact.name), dialed_at(&contact)))?;
            }
            Ok(Outcome::Done)
        }
        ContactCommand::List => {
            let vault = app.unlock()?;
            let contacts = vault.contacts().list()?;
            if app.json {
                let list: Vec<_> = contacts
                    .iter()
                    .map(|c| {
                        json!({
                            "name": c.name,
                            "identity": c.identity.to_string(),
                            "blocked": c.blocked,
                            "addrs": addr_strings(c),
                        })
                    })
                    .collect();
                app.print_json(&json!({ "contacts": list }))?;
            } else if contacts.is_empty() {
                eprintln!("no contacts");
            } else {
                let lines: Vec<String> = contacts
                    .iter()
                    .map(|c| {
                        format!(
                            "{:<16} {}{}{}",
                            untrusted(&c.name),
                            c.identity,
                            if c.blocked { "  (blocked)" } else { "" },
                            dialed_at(c)
                        )
                    })
                    .collect();
                app.print(lines.join("\n"))?;
            }
            Ok(if contacts.is_empty() { Outcome::No } else { Outcome::Done })
        }
        ContactCommand::Rm { name } => {
            let mut vault = app.unlock()?;
            let removed = vault.contacts_mut().remove(&name)?;
            if app.json {
                app.print_json(&json!({ "name": name, "removed": removed }))?;
            } else if !removed {
                eprintln!("no contact named {}", untrusted(&name));
            }
            Ok(if removed { Outcome::Done } else { Outcome::No })
        }
        ContactCommand::Block { name } => set_blocked(app, &name, true),
        ContactCommand::Unblock { name } => set_blocked(app, &name, false),
    }
}

fn set_blocked(app: &App, name: &str, blocked: bool) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    let found =
        if blocked { vault.contacts_mut().block(name)? } else { vault.contacts_mut().unblock(name)? };
    if app.json {
        let key = if blocked { "blocked" } else { "unblocked" };
        app.print_json(&json!({ "name": name, key: found }))?;
    } else if !found {
        eprintln!("no contact named {}", untrusted(name));
    }
    Ok(if found { Outcome::Done } else { Outcome::No })
}

fn addr_strings(contact: &Contact) -> Vec<String> {
    contact.addrs.iter().map(ToString::to_string).collect()
}

/// The way back to whoever sent request `id`, as its delivery showed it.
fn requester_ticket(vault: &Vault, id: &str) -> Result<Ticket> {
    let id: RequestId = id.parse().with_context(|| format!("'{}' is not a request id", untrusted(id)))?;
    if vault.inbox().get(&id)?.is_none() {
        bail!("no request {id} was received here: 'vault requests' lists them");
    }
    let Some(ticket) = vault.inbox().reply_to(&id)? else {
        bail!(
            "request {id} came without a way back to its sender (it was received before vault kept one): ask \
             them for their ticket ('vault id' on their side)"
        )
    };
    if vault.devices().is_removed_device(&ticket.identity(), &ticket.device())? {
        bail!("request {id} points at a device its identity removed: ask them for a fresh ticket");
    }
    Ok(ticket)
}

/// `  dialed at A, B` for a contact with addresses set by hand; empty otherwise.
fn dialed_at(contact: &Contact) -> String {
    if contact.addrs.is_empty() {
        String::new()
    } else {
        format!("  dialed at {}", addr_strings(contact).join(", "))
    }
}
