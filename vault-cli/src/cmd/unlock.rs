//! `vault unlock`, `vault lock`, and the agent process `vault unlock` starts.

use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::json;
use vault_core::{UnlockKey, Vault};
use zeroize::Zeroizing;

use crate::agent::lender::{self, Lender, check_span, now};
use crate::agent::{self, FRAME_MAX, OP_EXTEND, OP_LOCK, OP_UNLOCK, RE_NO, RE_OK, reason};
use crate::app::{App, Outcome, read_passphrase};
use crate::cli::{AgentRunArgs, UnlockArgs};
use crate::time::{local, parse_duration, rfc3339};

/// The key, unwrapped from the passphrase (Argon2id), never from an agent.
fn key_from_passphrase(app: &App) -> Result<UnlockKey> {
    let passphrase = read_passphrase("Passphrase: ", false)?;
    let vault = Vault::at(&app.dir).unlock(&passphrase)?;
    Ok(vault.unlock_key()?)
}

fn said(app: &App, until: i64, by: &str, extended: bool) -> Result<Outcome> {
    if app.json {
        app.print_json(&json!({ "until": rfc3339(until), "by": by, "extended": extended }))?;
    } else if by == "node" {
        app.print(format!(
            "unlocked until {}: the running node lends the key to your commands",
            local(until)
        ))?;
    } else {
        app.print(format!("unlocked until {}; 'vault lock' locks now", local(until)))?;
    }
    Ok(Outcome::Done)
}

pub(crate) fn unlock(app: &App, args: &UnlockArgs) -> Result<Outcome> {
    if !Vault::at(&app.dir).exists() {
        return Err(vault_core::OpenError::NoVault(app.dir.clone()).into());
    }
    let span = parse_duration(&args.duration)?;
    check_span(span)?;
    let info = match agent::info(&app.dir)? {
        // A key from before `vault rekey` is not extended: the agent forgets it, and this unlock
        // starts afresh with the passphrase.
        Some(info) if info.until.is_some() && lends_a_stale_key(app) => {
            eprintln!(
                "the unlock agent held a key this vault no longer uses (its key changed); it forgets it now"
            );
            agent::forget(&app.dir)?;
            if info.node {
                Some(agent::AgentInfo { until: None, ..info })
            } else {
                agent_gone(app);
                None
            }
        }
        info => info,
    };
    match info {
        // Already unlocked: whoever can ask the agent can have the key, so a new end needs no
        // passphrase.
        Some(info) if info.until.is_some() => extend(app, now() + span, info.node),
        // The node holds the key but lends it only to someone who proves the passphrase.
        Some(_) => {
            let key = key_from_passphrase(app)?;
            // The time starts once the passphrase is in.
            let until = now() + span;
            let mut payload = Zeroizing::new(until.to_be_bytes().to_vec());
            payload.extend_from_slice(&key.to_bytes());
            match agent::call(&app.dir, OP_UNLOCK, &payload)? {
                Some((RE_OK, _)) => said(app, until, "node", false),
                Some((RE_NO, why)) => bail!("the node refused: {}", reason(&why)),
                Some(_) => bail!("the node answered something else than yes or no"),
                None => bail!("the node stopped meanwhile; run 'vault unlock' again"),
            }
        }
        None => {
            let key = key_from_passphrase(app)?;
            let until = now() + span;
            match start_agent(app, &key, until) {
                Ok(()) => said(app, until, "agent", false),
                // Another `vault unlock` started one meanwhile: give it this end, once it
                // answers (it may have taken the socket and not be serving yet).
                Err(e) => {
                    for _ in 0..30 {
                        if let Ok(Some(info)) = agent::info(&app.dir)
                            && info.until.is_some()
                        {
                            return extend(app, until, info.node);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                    Err(e)
                }
            }
        }
    }
}

/// True when the agent lends a key the vault refuses as stale (from before `vault rekey` or
/// `vault passwd`).
fn lends_a_stale_key(app: &App) -> bool {
    match agent::borrow(&app.dir) {
        Ok(Some(key)) => {
            matches!(Vault::at(&app.dir).unlock_with_key(&key), Err(vault_core::OpenError::StaleKey))
        }
        _ => false,
    }
}

/// Waits (up to three seconds) for an agent told to forget its key to end and free the socket.
fn agent_gone(app: &App) {
    for _ in 0..60 {
        if matches!(agent::info(&app.dir), Ok(None)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Gives the unlock in force a new end.
fn extend(app: &App, until: i64, node: bool) -> Result<Outcome> {
    match agent::call(&app.dir, OP_EXTEND, &until.to_be_bytes())? {
        Some((RE_OK, _)) => said(app, until, if node { "node" } else { "agent" }, true),
        Some((RE_NO, why)) => bail!("the agent refused: {}", reason(&why)),
        Some(_) => bail!("the agent answered something else than yes or no"),
        None => bail!("the agent stopped meanwhile; run 'vault unlock' again"),
    }
}

/// Starts `vault agent-run` in the background and hands it the key on its standard input.
/// The passphrase stays here.
fn start_agent(app: &App, key: &UnlockKey, until: i64) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find the vault program to start the agent")?;
    let dir = std::fs::canonicalize(&app.dir)?;
    let mut child = Command::new(exe);
    // A clean environment: nothing the agent does not need (the passphrase variables, a
    // database address) goes with it.
    child.env_clear();
    for name in ["XDG_RUNTIME_DIR", "TMPDIR", "VAULT_LOG"] {
        if let Some(value) = std::env::var_os(name) {
            child.env(name, value);
        }
    }
    let mut child = child
        .arg("--vault")
        .arg(&dir)
        .arg("agent-run")
        .arg("--until")
        .arg(until.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: Ctrl-C at this terminal does not reach it.
        .process_group(0)
        .spawn()
        .context("cannot start the unlock agent")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&key.to_bytes()).context("cannot hand the key to the agent")?;
    }
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        std::io::BufReader::new(stdout).read_line(&mut line).context("the agent did not start")?;
    }
    if line.trim_end() == "ready" {
        return Ok(());
    }
    let mut why = String::new();
    if let Some(stderr) = child.stderr.take() {
        let _ = stderr.take(4096).read_to_string(&mut why);
    }
    let _ = child.wait();
    let why = why.trim().trim_start_matches("error: ");
    bail!("the unlock agent did not start: {}", if why.is_empty() { "it ended at once" } else { why })
}

/// The background agent: reads the key, listens, says "ready", then lives detached until its
/// time is up or `vault lock`, and forgets the key as it ends.
pub(crate) fn agent_run(app: &App, args: &AgentRunArgs) -> Result<Outcome> {
    lender::harden()?;
    let key = read_key_from_stdin()?;
    if args.until <= now() {
        bail!("the unlock has already ended");
    }
    let Some(listening) = lender::bind(&app.dir)? else {
        bail!("an agent already serves this vault");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the agent")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready")?;
        out.flush()?;
    }
    // Detached from here on: nothing to print to, and the terminal may close.
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    rustix::stdio::dup2_stderr(&null)?;
    let lender = Lender::agent(key, args.until.min(now() + lender::MAX_UNLOCK_SECS));
    // Ended by a signal (a logout, say), it still wipes the key and removes its socket: both go
    // as the serving future is dropped.
    runtime.block_on(async {
        tokio::select! {
            served = lender::serve(listening, lender) => served,
            () = terminated() => Ok(()),
        }
    })?;
    Ok(Outcome::Done)
}

/// Reads the key from standard input, unbuffered: no copy is left in a buffer of the standard
/// library's.
fn read_key_from_stdin() -> Result<UnlockKey> {
    let mut bytes = Zeroizing::new(vec![0u8; FRAME_MAX + 1]);
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::io::read(rustix::stdio::stdin(), &mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(std::io::Error::from(e)).context("cannot read the key"),
        }
    }
    UnlockKey::from_bytes(&bytes[..filled]).context("what was handed over is not a key")
}

/// Resolves on SIGTERM, SIGINT or SIGHUP.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = hup.recv() => {}
    }
}

pub(crate) fn lock(app: &App) -> Result<Outcome> {
    let Some(info) = agent::info(&app.dir)? else {
        if app.json {
            app.print_json(&json!({ "locked": false, "by": null }))?;
        } else {
            let looked = agent::socket_path(&app.dir, false).ok().flatten();
            let looked = looked.as_deref().and_then(std::path::Path::parent).map(|d| d.display().to_string());
            app.print(format!(
                "nothing to lock: no agent holds this vault's key (looked in {})",
                looked.unwrap_or_else(|| "the agent directory, which does not exist".into())
            ))?;
        }
        return Ok(Outcome::Done);
    };
    match agent::call(&app.dir, OP_LOCK, &[])? {
        Some((RE_OK, _)) | None => {}
        Some((RE_NO, why)) => bail!("the agent refused: {}", reason(&why)),
        Some(_) => bail!("the agent answered something else than yes or no"),
    }
    let by = if info.node { "node" } else { "agent" };
    if app.json {
        app.print_json(&json!({ "locked": true, "by": by }))?;
    } else if info.node {
        app.print(
            "locked: commands ask for the passphrase again (the running node keeps its key until it stops)",
        )?;
    } else {
        app.print("locked: the agent has forgotten the key")?;
    }
    Ok(Outcome::Done)
}
