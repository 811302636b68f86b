//! `vault serve` and `vault sync`

use std::io::Write;

use anyhow::{Context, Result, bail};
use serde_json::json;
use vault_sync::{Node, NodeConfig, sync_once};

use crate::agent::lender::{self, Lender, Listening};
use crate::app::{App, Outcome};
use crate::cli::{ServeArgs, SyncArgs};
use crate::output::untrusted;
use crate::runtime::runtime;

pub(crate) fn serve(app: &App, args: &ServeArgs) -> Result<Outcome> {
    // A node holds the data key (and maybe the identity key) for as long as it runs, agent or
    // not: its memory is kept from the user's other processes and out of core dumps, before
    // the passphrase is read.
    if let Err(e) = lender::harden() {
        eprintln!("warning: {e:#}");
    }
    if args.mirror.is_some() {
        bail!(
            "serve no longer takes the mirror's URL on the command line, where the process list shows it \
             (password included): give it on standard input with `vault mirror set`, or in VAULT_MIRROR_URL"
        );
    }
    let idle_close = match args.idle_close.as_deref().map(str::trim) {
        None => NodeConfig::default().idle_close,
        Some("never") => None,
        Some(text) => {
            let seconds = crate::time::parse_duration(text).context("--idle-close")?;
            Some(std::time::Duration::from_secs(seconds as u64))
        }
    };
    // Held while this process runs: `vault status` reads it, a second `vault serve` is refused
    // (before it asks for the passphrase or changes anything).
    let _running = super::status::hold_node_lock(&app.dir)?;
    let mut vault = app.unlock()?;
    crate::app::refuse_if_removed(&vault)?;
    // From the environment (kept out of the process list), attached as `vault mirror set` does.
    if let Some(given) = std::env::var("VAULT_MIRROR_URL").ok().filter(|u| !u.is_empty()) {
        let url = super::mirror::read_url(Some(given))?;
        super::mirror::refuse_another(&vault, &url)?;
        if vault.mirror().url()?.is_none() {
            // Attached at once, reachable or not: the mirror prepares its tables when it can,
            // and erasure receipts wait for it from now on.
            vault.mirror_mut().attach(url.expose())?;
        }
    }
    // For serving as the vault's unlock agent, once the node runs.
    let agent_key = vault.unlock_key();
    let config = NodeConfig { bind: args.bind, relay: !args.no_relay, idle_close, ..NodeConfig::default() };
    runtime()?.block_on(async {
        let node = Node::spawn(vault, config).await?;
        if let Some(listening) = node_agent(app, &agent_key) {
            // Dropped with the runtime, which removes its socket.
            tokio::spawn(lender::serve(listening, Lender::node(agent_key?)));
        }
        // Follows `vault mirror set` and `vault mirror off` made while the node runs.
        let mirror = tokio::spawn(keep_mirror(node.vault_handle(), !app.json));
        let ticket = node.ticket();
        // The ticket is the first line, so scripts can read it.
        {
            let mut out = std::io::stdout().lock();
            if app.json {
                let addrs: Vec<String> = ticket.addrs().iter().map(ToString::to_string).collect();
                writeln!(out, "{}", json!({ "ticket": ticket.to_string(), "identity": ticket.identity().to_string(), "addrs": addrs }))?;
            } else {
                writeln!(out, "{ticket}")?;
            }
            out.flush()?;
        }
        if let Some(port) = node.moved_from() {
            eprintln!(
                "warning: port {port}, where this node served last, is taken: serving on another. Peers that saved \
                 the old ticket reach it again once it offers to them (on its next change), or with the ticket above"
            );
        }
        if !app.json {
            let addrs: Vec<String> = ticket.addrs().iter().map(ToString::to_string).collect();
            eprintln!("serving as {} on {}; Ctrl-C to stop", ticket.identity(), addrs.join(", "));
        }
        let events = (!args.quiet).then(|| tokio::spawn(super::serve_events::print(node.vault_handle(), app.json)));
        let seen = super::reach::follow(&app.dir, &node);
        let removed = tokio::select! {
            _ = shutdown_signal() => None,
            at = removal(node.vault_handle()) => Some(at),
        };
        seen.stop().await;
        if let Some(events) = events {
            events.abort();
        }
        mirror.abort();
        let _ = mirror.await;
        node.shutdown().await;
        if let Some(at) = removed {
            bail!(
                "the node stopped: this device was removed from your identity on {} (the identity key's \
                 signed word, handed over by another of your devices)",
                crate::time::local(at)
            );
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(Outcome::Done)
}

/// Resolves once this device learns it was removed from its identity (another device hands it
/// the identity key's roster when it calls), with when.
async fn removal(handle: vault_sync::VaultHandle) -> i64 {
    let mut changes = handle.changes();
    loop {
        if let Some(at) = handle.with_vault(|v| crate::app::removed_at(v)) {
            return at;
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), changes.changed()).await;
    }
}

/// The node serves as its vault's unlock agent (lending nothing until `vault unlock`) unless
/// another agent already does (its memory was made unreadable to the user's other processes
/// when it started, as the agent's is).
fn node_agent(app: &App, key: &Result<vault_core::UnlockKey, vault_core::StoreError>) -> Option<Listening> {
    let bound = match key {
        Ok(_) => lender::bind(&app.dir),
        Err(e) => Err(anyhow::anyhow!("cannot read the vault's key: {e}")),
    };
    match bound {
        Ok(Some(listening)) => Some(listening),
        Ok(None) => {
            if !app.json {
                eprintln!("an unlock agent already holds this vault's key; the node leaves it be");
            }
            None
        }
        Err(e) => {
            eprintln!("warning: the node does not serve as unlock agent: {e:#}");
            None
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) fn sync(app: &App, args: &SyncArgs) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    crate::app::refuse_if_removed(&vault)?;
    let targets = match &args.peer {
        Some(peer) => {
            let peer = vault.contacts().resolve(peer)?;
            let ticket = peer
                .ticket
                .context("no ticket for that peer: add them with 'vault contact add NAME TICKET'")?;
            vec![ticket]
        }
        None => vault.held().issuers()?.into_iter().filter_map(|(_, t)| t).collect(),
    };
    if targets.is_empty() {
        bail!("nobody to sync with: name a peer (a contact or a ticket)");
    }
    let config = NodeConfig { relay: !args.no_relay, subscribe: false, ..NodeConfig::default() };
    let rt = runtime()?;
    let mut results = Vec::new();
    let mut failed = 0;
    for ticket in targets {
        let name =
            vault.contacts().petname(&ticket.identity()).unwrap_or_else(|| ticket.identity().to_string());
        let shown = untrusted(&name);
        let (back, report) = rt.block_on(sync_once(vault, &ticket, &config));
        vault = back;
        if let Err(e) = &report {
            failed += 1;
            eprintln!("error: sync with {shown} failed: {}", untrusted(&e.to_string()));
            if matches!(e, vault_sync::SyncError::Timeout | vault_sync::SyncError::Connect(_)) {
                let name = untrusted(&name);
                eprintln!(
                    "  {name} is offline, or its address changed: say where to reach it ('vault contact addr \
                     {name} HOST:PORT'), or ask for a fresh ticket ('vault id' there) and put it in place \
                     ('vault contact rm {name}', then 'vault contact add {name} TICKET')"
                );
            }
        }
        if let Ok(r) = report {
            if !app.json {
                app.print(format!(
                    "{shown}: {} live share(s), {} updated, {} erased",
                    r.live, r.updated, r.erased
                ))?;
            }
            results.push(json!({ "peer": ticket.identity().to_string(), "name": name, "live": r.live, "updated": r.updated, "erased": r.erased }));
        }
    }
    if app.json {
        app.print_json(&json!({ "synced": results }))?;
    }
    if failed > 0 && results.is_empty() {
        bail!("no peer could be reached");
    }
    Ok(Outcome::Done)
}

/// Runs the database mirror the vault names, whenever it names one: attached before the node
/// started, or later by `vault mirror set` in another process (the node's watcher reports that
/// write); stopped when detached or pointed elsewhere. The mirror itself stops when its URL is
/// no longer the vault's.
async fn keep_mirror(handle: vault_sync::VaultHandle, say: bool) {
    let mut changes = handle.changes();
    // Dropping a mirror stops it.
    let mut running: Option<(String, vault_mirror::Mirror)> = None;
    let mut warned: Option<String> = None;
    loop {
        let Ok(raw) = handle.with_vault(|v| v.mirror().url()) else {
            // Cannot tell now: leave things as they are.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), changes.changed()).await;
            continue;
        };
        let stopped = running.as_ref().is_some_and(|(_, m)| m.is_finished());
        if stopped || running.as_ref().map(|(url, _)| url) != raw.as_ref() {
            running = None;
            if let Some(raw) = raw {
                match vault_mirror::MirrorUrl::parse(&raw) {
                    Ok(url) => {
                        if say {
                            eprintln!("mirroring what is shared with you into {url}");
                        }
                        running = Some((raw, vault_mirror::Mirror::spawn(handle.clone(), url)));
                    }
                    Err(e) if warned.as_deref() != Some(raw.as_str()) => {
                        // Serve anyway; receipts stay held until the mirror is mended or detached.
                        eprintln!("warning: the mirror is not running: {e}");
                        warned = Some(raw);
                    }
                    Err(_) => {}
                }
            }
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), changes.changed()).await;
    }
}
