//! What the running node saw of its peers, for `vault status`: `vault serve` writes it every few
//! seconds into the agent directory (owner-only; `$XDG_RUNTIME_DIR`, in memory, where there is
//! one, else a directory under /tmp), and removes it when it stops; `status` reads it while the
//! node runs, and removes one a killed node left.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vault_sync::{Node, PeerReach};

/// How often the node writes what it saw.
const EVERY: Duration = Duration::from_secs(3);
/// A file older than this is stale (a node that was killed): not shown.
const STALE_SECS: i64 = 30;

/// The file's contents.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Seen {
    pub(crate) written_at: i64,
    pub(crate) peers: Vec<Peer>,
}

/// One peer, as the node saw it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Peer {
    pub(crate) peer: String,
    pub(crate) open: u32,
    pub(crate) last_reached: Option<i64>,
    pub(crate) last_error: Option<(i64, String)>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn path(vault_dir: &Path, create: bool) -> Option<PathBuf> {
    crate::agent::runtime_path(vault_dir, "peers", "json", create).ok().flatten()
}

/// Writes what `node` saw every few seconds until dropped (the task is aborted); then removes
/// the file. Failing to write costs `status` its peer lines, nothing else.
pub(crate) struct Writer {
    task: tokio::task::JoinHandle<()>,
    path: Option<PathBuf>,
}

impl Writer {
    pub(crate) fn start(vault_dir: &Path, reach: impl Fn() -> Vec<PeerReach> + Send + 'static) -> Writer {
        let path = path(vault_dir, true);
        let target = path.clone();
        let task = tokio::spawn(async move {
            let Some(target) = target else { return };
            let mut last = None;
            let mut written_at = 0;
            loop {
                let peers: Vec<Peer> = reach()
                    .into_iter()
                    .map(|p| Peer {
                        peer: p.peer.to_string(),
                        open: p.open,
                        last_reached: p.last_reached,
                        last_error: p.last_error,
                    })
                    .collect();
                let body = serde_json::to_vec(&peers).unwrap_or_default();
                // Rewritten when it changed, and often enough to stay fresh.
                if last.as_ref() != Some(&body) || now() - written_at >= STALE_SECS / 3 {
                    written_at = now();
                    if let Err(e) = write(&target, &Seen { written_at, peers }) {
                        tracing::debug!(error = %e, "cannot write what the node saw of its peers");
                    }
                    last = Some(body);
                }
                tokio::time::sleep(EVERY).await;
            }
        });
        Writer { task, path }
    }
}

impl Writer {
    /// Stops writing, then removes the file (after a write in flight, not before it).
    pub(crate) async fn stop(self) {
        let Writer { task, path } = self;
        task.abort();
        let _ = task.await;
        if let Some(path) = &path {
            remove(path);
        }
    }
}

fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("json.tmp"));
}

/// Removes what a node that is not running any more left (killed before it could).
pub(crate) fn forget(vault_dir: &Path) {
    if let Some(path) = path(vault_dir, false) {
        remove(&path);
    }
}

fn write(path: &Path, seen: &Seen) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(&serde_json::to_vec(seen)?)?;
    std::fs::rename(tmp, path)
}

/// What the running node of the vault in `vault_dir` saw, when it wrote it lately.
pub(crate) fn read(vault_dir: &Path) -> Option<Seen> {
    let bytes = std::fs::read(path(vault_dir, false)?).ok()?;
    let seen: Seen = serde_json::from_slice(&bytes).ok()?;
    (now() - seen.written_at <= STALE_SECS).then_some(seen)
}

/// Keeps `node`'s peers written while it runs.
pub(crate) fn follow(vault_dir: &Path, node: &Node) -> Writer {
    let shared = node.vault_handle();
    Writer::start(vault_dir, move || shared.reach())
}
