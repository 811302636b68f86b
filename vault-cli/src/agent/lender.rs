//! The agent's side of the socket: lends one vault's key to this user's commands while its
//! time lasts. Run by `vault unlock`'s background process (which ends, forgetting the key, when
//! the time is up or on `vault lock`) and by `vault serve` for its own vault (which lends only
//! after `vault unlock` and stops on `vault lock`, keeping the key it runs with).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use vault_core::UnlockKey;
use zeroize::Zeroizing;

use super::{
    IO_WAIT, OP_EXTEND, OP_INFO, OP_KEY, OP_LOCK, OP_UNLOCK, RE_INFO, RE_KEY, RE_NO, RE_OK,
    check_socket_file, encode_frame, frame_header, my_uid, socket_path,
};

/// The longest an unlock may last.
pub(crate) const MAX_UNLOCK_SECS: i64 = 7 * 86_400;

/// What the agent holds and until when it lends it.
pub(crate) struct Lender {
    key: UnlockKey,
    node: bool,
    /// Lending until (Unix seconds); `None`: not lending.
    until: Option<i64>,
}

impl std::fmt::Debug for Lender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lender").field("node", &self.node).field("until", &self.until).finish_non_exhaustive()
    }
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn until_from(payload: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(payload.get(..8)?.try_into().ok()?))
}

impl Lender {
    /// An agent started by `vault unlock`, lending until `until`.
    pub(crate) fn agent(key: UnlockKey, until: i64) -> Self {
        Self { key, node: false, until: Some(until) }
    }

    /// The node's agent: holds the node's key, lends nothing until unlocked.
    pub(crate) fn node(key: UnlockKey) -> Self {
        Self { key, node: true, until: None }
    }

    fn lending(&self, now: i64) -> bool {
        self.until.is_some_and(|until| now < until)
    }

    /// True when an agent (not a node) has nothing left to do: locked or expired.
    fn ended(&self, now: i64) -> bool {
        !self.node && !self.lending(now)
    }

    /// Answers one request.
    pub(crate) fn answer(&mut self, op: u8, payload: &[u8], now: i64) -> (u8, Zeroizing<Vec<u8>>) {
        let no = |why: &str| (RE_NO, Zeroizing::new(why.as_bytes().to_vec()));
        let ok = || (RE_OK, Zeroizing::new(Vec::new()));
        match op {
            OP_INFO => {
                let mut out = Zeroizing::new(vec![u8::from(self.node), u8::from(self.lending(now))]);
                out.extend_from_slice(&self.until.unwrap_or(0).to_be_bytes());
                (RE_INFO, out)
            }
            OP_KEY if self.lending(now) => (RE_KEY, self.key.to_bytes()),
            OP_KEY => no("locked"),
            OP_UNLOCK => {
                let Some(until) = until_from(payload).filter(|u| *u > now) else {
                    return no("the unlock must end in the future");
                };
                match UnlockKey::from_bytes(&payload[8..]) {
                    Some(key) if key.same_as(&self.key) => {
                        self.until = Some(until.min(now + MAX_UNLOCK_SECS));
                        ok()
                    }
                    _ => no("that is not the key this vault uses"),
                }
            }
            OP_EXTEND if self.lending(now) => match until_from(payload).filter(|u| *u > now) {
                Some(until) => {
                    self.until = Some(until.min(now + MAX_UNLOCK_SECS));
                    ok()
                }
                None => no("the unlock must end in the future"),
            },
            OP_EXTEND => no("locked"),
            OP_LOCK => {
                self.until = None;
                ok()
            }
            _ => no("unknown request"),
        }
    }
}

/// A bound agent socket, and the lock that makes its agent the vault's only one. The socket
/// file is removed when this is dropped (if it is still ours), then the lock is released.
#[derive(Debug)]
pub(crate) struct Listening {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file this listener made.
    file: (u64, u64),
    /// Held for the agent's whole life (`agent-HASH.lock`, exclusive).
    _guard: std::fs::File,
}

impl Listening {
    /// True while the socket file is still the one this listener made (not removed with its
    /// directory, say, which would leave this agent unreachable by `vault lock`).
    fn still_ours(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file)
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if self.still_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Opens (creating, 0600) the agent's lock file, never through a link.
fn open_guard(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot open the agent lock {}", path.display()))
}

/// Binds the agent socket of the vault in `vault_dir`, made 0600 in the private directory.
/// `Ok(None)` when another agent holds the vault's agent lock (it runs, or is starting); with
/// the lock held, a socket left by an agent that died is replaced.
pub(crate) fn bind(vault_dir: &Path) -> Result<Option<Listening>> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let path = socket_path(vault_dir, true)?.context("no agent directory")?;
    let guard = open_guard(&path.with_extension("lock"))?;
    match guard.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(e).context("cannot take the agent lock"),
    }
    // Whoever made a socket there held this lock and has ended.
    if check_socket_file(&path)? {
        std::fs::remove_file(&path).context("cannot remove a dead agent's socket")?;
    }
    let listener = std::os::unix::net::UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    let meta = std::fs::symlink_metadata(&path)?;
    Ok(Some(Listening { listener, path, file: (meta.dev(), meta.ino()), _guard: guard }))
}

/// How often the agent looks at the wall clock and its socket file even with nothing to do:
/// a suspended machine's monotonic timers stop, and a removed socket would hide it from
/// `vault lock`.
const WAKE: Duration = Duration::from_secs(15);

/// Serves requests until the lender has ended (an agent locked or expired; a node's agent runs
/// until its task is dropped). Needs a Tokio runtime.
pub(crate) async fn serve(listening: Listening, lender: Lender) -> Result<()> {
    let listener = tokio::net::UnixListener::from_std(listening.listener.try_clone()?)?;
    let state = Arc::new(Mutex::new(lender));
    let changed = Arc::new(Notify::new());
    loop {
        let wait = {
            let lender = state.lock().unwrap_or_else(|e| e.into_inner());
            let now = now();
            if lender.ended(now) || !listening.still_ours() {
                break;
            }
            match lender.until {
                Some(until) if !lender.node => Duration::from_secs((until - now).max(0) as u64).min(WAKE),
                _ => WAKE,
            }
        };
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(handle(stream, Arc::clone(&state), Arc::clone(&changed)));
                }
            }
            () = tokio::time::sleep(wait) => {}
            () = changed.notified() => {}
        }
    }
    // The key is wiped as the lender drops; the socket file goes with `listening`.
    drop(state);
    drop(listening);
    Ok(())
}

async fn handle(mut stream: tokio::net::UnixStream, state: Arc<Mutex<Lender>>, changed: Arc<Notify>) {
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == my_uid() => {}
        Ok(cred) => {
            tracing::warn!(uid = cred.uid(), "refused a connection from another user to the unlock agent");
            return;
        }
        Err(_) => return,
    }
    let request = async {
        let mut header = [0u8; 3];
        stream.read_exact(&mut header).await?;
        let (op, len) = frame_header(header)?;
        let mut payload = Zeroizing::new(vec![0u8; len]);
        stream.read_exact(&mut payload).await?;
        Ok::<_, std::io::Error>((op, payload))
    };
    let Ok(Ok((op, payload))) = tokio::time::timeout(IO_WAIT, request).await else { return };
    let (re, body) = state.lock().unwrap_or_else(|e| e.into_inner()).answer(op, &payload, now());
    if let Ok(frame) = encode_frame(re, &body) {
        let _ = tokio::time::timeout(IO_WAIT, stream.write_all(&frame)).await;
    }
    changed.notify_one();
}

/// Makes this process's memory unreadable to other processes of the user (no ptrace, no
/// `/proc/PID/mem`) and keeps it out of core dumps.
pub(crate) fn harden() -> Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("cannot protect the agent's memory")
}

/// Refuses an unlock longer than [`MAX_UNLOCK_SECS`].
pub(crate) fn check_span(secs: i64) -> Result<()> {
    if secs > MAX_UNLOCK_SECS {
        bail!("an unlock lasts at most 7 days");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> UnlockKey {
        UnlockKey::from_bytes(&[byte; 16 + 32 + 72]).unwrap()
    }

    fn unlock_payload(until: i64, key: &UnlockKey) -> Vec<u8> {
        let mut p = until.to_be_bytes().to_vec();
        p.extend_from_slice(&key.to_bytes());
        p
    }

    #[test]
    fn a_hardened_process_is_not_dumpable() {
        harden().unwrap();
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::NotDumpable
        );
    }

    #[test]
    fn an_agent_lends_until_its_time_is_up_then_ends() {
        let mut lender = Lender::agent(key(1), 100);
        assert_eq!(lender.answer(OP_KEY, &[], 99).0, RE_KEY);
        assert_eq!(lender.answer(OP_KEY, &[], 100).0, RE_NO);
        assert!(lender.ended(100));
        // Once expired, it cannot be extended without the key.
        assert_eq!(lender.answer(OP_EXTEND, &200i64.to_be_bytes(), 100).0, RE_NO);
    }

    #[test]
    fn a_node_lends_only_after_an_unlock_with_its_key_and_stops_on_lock() {
        let mut lender = Lender::node(key(1));
        assert_eq!(lender.answer(OP_KEY, &[], 10).0, RE_NO);
        assert_eq!(lender.answer(OP_EXTEND, &50i64.to_be_bytes(), 10).0, RE_NO);
        assert_eq!(lender.answer(OP_UNLOCK, &unlock_payload(50, &key(2)), 10).0, RE_NO, "another key");
        assert_eq!(lender.answer(OP_UNLOCK, &unlock_payload(5, &key(1)), 10).0, RE_NO, "in the past");
        assert_eq!(lender.answer(OP_UNLOCK, &unlock_payload(50, &key(1)), 10).0, RE_OK);
        let (re, lent) = lender.answer(OP_KEY, &[], 11);
        assert_eq!(re, RE_KEY);
        assert!(UnlockKey::from_bytes(&lent).unwrap().same_as(&key(1)));
        assert_eq!(lender.answer(OP_LOCK, &[], 12).0, RE_OK);
        assert_eq!(lender.answer(OP_KEY, &[], 12).0, RE_NO);
        assert!(!lender.ended(12), "the node's agent runs as long as the node");
    }

    #[test]
    fn an_unlock_is_capped_and_bad_requests_are_refused() {
        let mut lender = Lender::agent(key(1), 100);
        assert_eq!(lender.answer(OP_EXTEND, &i64::MAX.to_be_bytes(), 10).0, RE_OK);
        assert_eq!(lender.until, Some(10 + MAX_UNLOCK_SECS));
        assert_eq!(lender.answer(OP_EXTEND, &[1, 2], 10).0, RE_NO);
        assert_eq!(lender.answer(OP_UNLOCK, &[], 10).0, RE_NO);
        assert_eq!(lender.answer(b'?', &[], 10).0, RE_NO);
        assert!(!format!("{lender:?}").contains("01"), "no key in Debug");
    }
}
