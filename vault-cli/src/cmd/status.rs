//! `vault status`: where things stand, on one screen. Reads only; exit 0.
//!
//! Whether the node runs is told by `node.lock` in the vault directory: `vault serve` holds an
//! exclusive lock on it while it runs (the system drops it when the process ends, however it
//! ends), and `status` tries a shared one.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};
use vault_core::{GrantStatus, RequestStatus, ShareStatus};

use crate::app::{App, Outcome};
use crate::output::untrusted;
use crate::time::{local, rfc3339};

const NODE_LOCK: &str = "node.lock";

/// Opens the lock file as its owner only, never through a symbolic link someone planted.
fn open_lock(dir: &Path, create: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    if create {
        options.create(true).truncate(false).write(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(dir.join(NODE_LOCK))
}

/// Marks this process as the vault's running node until the returned file is dropped. A
/// `vault status` holding its brief shared lock is waited for (up to a second). `Ok(None)` when
/// the file cannot be made (the node serves unmarked); an error while another node holds it:
/// two nodes of one device would answer the same peers twice, over each other.
pub(crate) fn hold_node_lock(dir: &Path) -> anyhow::Result<Option<File>> {
    let Ok(file) = open_lock(dir, true) else { return Ok(None) };
    for _ in 0..50 {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(TryLockError::WouldBlock) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(TryLockError::Error(_)) => return Ok(None),
        }
    }
    anyhow::bail!(
        "another 'vault serve' runs on this vault already: one node per device (stop that one first, or \
         see it with 'vault status')"
    )
}

/// Takes this vault's node lock for a command that must not run beside a node (`vault
/// rekey`), so that no `vault serve` starts marked meanwhile either. A `vault status` holding
/// its brief shared lock is waited for (up to a second); `Ok(None)` while a node holds it.
pub(crate) fn exclude_node(dir: &Path) -> std::io::Result<Option<File>> {
    let file = open_lock(dir, true)?;
    for _ in 0..50 {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(TryLockError::WouldBlock) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
    Ok(None)
}

/// True while some `vault serve` holds this vault's node lock.
fn node_running(dir: &Path) -> bool {
    let Ok(file) = open_lock(dir, false) else { return false };
    matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
}

fn name_or_id(name: Option<String>, id: &str) -> String {
    name.unwrap_or_else(|| id.chars().take(12).collect())
}

/// Most peers listed one per line; the rest are counted (`--json` lists them all).
const PEER_LINES: usize = 12;

/// The node's line, then what it saw of each peer: connected now, or when last reached and the
/// last error; never a promise nobody checked.
fn node_lines(running: bool, seen: bool, peers: &[Value]) -> Vec<String> {
    if !running {
        return vec![
            "node:     not running: 'vault serve' keeps your shares live and takes requests".to_owned(),
        ];
    }
    if !seen {
        return vec!["node:     running (vault serve)".to_owned()];
    }
    let connected = peers.iter().filter(|p| p["connected"] == true).count();
    let mut out = vec![if peers.is_empty() {
        "node:     running (vault serve); no peer reached it or was reached yet".to_owned()
    } else {
        format!("node:     running (vault serve); {connected} of {} peers connected now", peers.len())
    }];
    for p in peers.iter().take(PEER_LINES) {
        let who =
            untrusted(p["peer_name"].as_str().unwrap_or_else(|| p["peer"].as_str().unwrap_or_default()))
                .chars()
                .take(24)
                .collect::<String>();
        let at = |v: &Value| {
            v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()).map(|t| local(t.as_second()))
        };
        let mut line = if p["connected"] == true {
            format!("    {who}: connected")
        } else {
            match at(&p["last_reached"]) {
                Some(t) => format!("    {who}: last reached {t}"),
                None => format!("    {who}: never reached"),
            }
        };
        if let Some(t) = at(&p["last_error"]["at"]) {
            line.push_str(&format!(
                "; failed {t}: {}",
                untrusted(p["last_error"]["error"].as_str().unwrap_or_default())
            ));
        }
        out.push(line);
    }
    if peers.len() > PEER_LINES {
        out.push(format!("    and {} more ('vault --json status' lists them)", peers.len() - PEER_LINES));
    }
    out
}

pub(crate) fn run(app: &App) -> Result<Outcome> {
    let running = node_running(&app.dir);
    let mut vault = app.unlock()?;
    // Who lends the key, until when (after the unlock: a command may have just used it).
    let agent = crate::agent::info(&app.dir).ok().flatten();
    let unlocked_until = agent.and_then(|a| a.until);
    let lender = agent.map(|a| if a.node { "node" } else { "agent" });
    let ticket = vault.ticket(vault.serving().node_addrs()).to_string();
    let grants = vault.grants().list()?;
    let mut live: BTreeMap<String, (Option<String>, Vec<Value>)> = BTreeMap::new();
    let mut pending_erasures = Vec::new();
    for g in &grants {
        let s = g.grant.statement();
        let peer = s.audience.to_string();
        let peer_name = vault.contacts().petname(&s.audience);
        if g.is_live() {
            live.entry(peer).or_insert_with(|| (peer_name, Vec::new())).1.push(json!({
                "grant": s.id.to_string(),
                "fields": s.fields.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "purpose": s.purpose,
                "expires_at": s.expires_at.map(rfc3339),
            }));
        } else if g.status != GrantStatus::Void && g.erasure.is_none() {
            pending_erasures.push(json!({
                "grant": s.id.to_string(),
                "peer": peer,
                "peer_name": peer_name,
                "status": match g.status { GrantStatus::Revoked => "revoked", _ => "expired" },
            }));
        }
    }
    let waiting = vault.inbox().list()?.into_iter().filter(|r| r.status == RequestStatus::Pending).count();
    let notices = vault.notices().list()?.len();
    let shares = vault.held_mut().records()?;
    let seen = if running {
        super::reach::read(&app.dir)
    } else {
        super::reach::forget(&app.dir);
        None
    };
    let seen_peers: Vec<Value> = seen
        .iter()
        .flat_map(|s| &s.peers)
        .map(|p| {
            let name = p.peer.parse().ok().and_then(|id| vault.contacts().petname(&id));
            json!({
                "peer": p.peer,
                "peer_name": name,
                "connected": p.open > 0,
                "last_reached": p.last_reached.map(rfc3339),
                "last_error": p.last_error.as_ref().map(|(at, why)| json!({ "at": rfc3339(*at), "error": why })),
            })
        })
        .collect();
    if app.json {
        let by_peer: Vec<Value> = live
            .iter()
            .map(|(peer, (name, list))| json!({ "peer": peer, "peer_name": name, "grants": list }))
            .collect();
        let shares: Vec<Value> = shares.iter().map(|s| Value::Object(super::shared::share_head(s))).collect();
        app.print_json(&json!({
            "identity": vault.identity().to_string(),
            "device": vault.device_key().public().to_string(),
            "ticket": ticket,
            "node": { "running": running, "peers": seen_peers },
            "unlock": { "until": unlocked_until.map(rfc3339), "by": unlocked_until.and(lender) },
            "live_grants": by_peer,
            "requests_waiting": waiting,
            "erasures_pending": pending_erasures,
            "notices": notices,
            "shares": shares,
        }))?;
        return Ok(Outcome::Done);
    }
    let mut out = vec![format!("identity: {}", vault.identity()), format!("ticket:   {ticket}")];
    out.extend(node_lines(running, seen.is_some(), &seen_peers));
    out.push(match (unlocked_until, lender) {
        (Some(until), Some(by)) => {
            format!("unlock:   unlocked until {} (by the {by}; 'vault lock' locks now)", local(until))
        }
        _ => "unlock:   locked: commands ask for the passphrase ('vault unlock' unlocks for a while)"
            .to_owned(),
    });
    let count: usize = live.values().map(|(_, l)| l.len()).sum();
    out.push(format!(
        "grants:   {count} live, to {} peer{}",
        live.len(),
        if live.len() == 1 { "" } else { "s" }
    ));
    for (peer, (name, list)) in &live {
        for g in list {
            let fields: Vec<&str> =
                g["fields"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let until = g["expires_at"]
                .as_str()
                .and_then(|e| e.parse::<jiff::Timestamp>().ok())
                .map_or_else(|| "no expiry".to_owned(), |t| format!("until {}", local(t.as_second())));
            out.push(format!(
                "    {}: {} ({}, {until})",
                untrusted(&name_or_id(name.clone(), peer)),
                fields.join(", "),
                untrusted(g["purpose"].as_str().unwrap_or_default())
            ));
        }
    }
    out.push(format!(
        "requests: {waiting} waiting for your decision{}",
        if waiting > 0 { " ('vault requests')" } else { "" }
    ));
    out.push(format!(
        "erasures: {} pending{}",
        pending_erasures.len(),
        if pending_erasures.is_empty() {
            ""
        } else {
            " (ended grants whose holder has not confirmed erasure yet)"
        }
    ));
    out.push(format!(
        "notices:  {notices} breach notice{}{}",
        if notices == 1 { "" } else { "s" },
        if notices > 0 { " ('vault notices')" } else { "" }
    ));
    out.push(format!("shares:   {} received", shares.len()));
    for s in &shares {
        let g = s.grant.statement();
        let who = name_or_id(s.issuer_name.clone(), &g.issuer.to_string());
        let state = match s.status {
            ShareStatus::Live => {
                s.updated_at.map_or_else(|| "never updated".to_owned(), |t| format!("updated {}", local(t)))
            }
            _ if s.erasure_pending => "withdrawn, erasure pending".to_owned(),
            other => format!("{}, erased", super::shared::status_word(other)),
        };
        let fields: Vec<String> = g.fields.iter().map(ToString::to_string).collect();
        out.push(format!("    from {}: {} ({state})", untrusted(&who), fields.join(", ")));
    }
    app.print(out.join("\n"))?;
    Ok(Outcome::Done)
}
