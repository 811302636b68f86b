//! The unlock agent: a process of this user (or the vault's own node, `vault serve`) that
//! holds a vault's data key for a while, so that commands open the vault without the
//! passphrase. It never holds the passphrase: `vault unlock` runs Argon2id itself and hands the
//! agent the unwrapped key ([`vault_core::UnlockKey`]).
//!
//! Only this user reaches it: the socket lives in a directory of this user's closed to others
//! (`$XDG_RUNTIME_DIR/vault`, else `/tmp/vault-UID`), both are checked before use, and each
//! side checks the other's credentials on the socket. One request per connection, in frames of
//! `[op: u8][length: u16, big-endian][payload]`.
//!
//! This file is the client side and the checks both sides share; [`lender`] is the agent.

pub(crate) mod lender;

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vault_core::UnlockKey;
use zeroize::Zeroizing;

/// Requests.
pub(crate) const OP_KEY: u8 = b'K';
pub(crate) const OP_INFO: u8 = b'I';
pub(crate) const OP_UNLOCK: u8 = b'U';
pub(crate) const OP_EXTEND: u8 = b'E';
pub(crate) const OP_LOCK: u8 = b'L';
/// Answers.
pub(crate) const RE_KEY: u8 = b'k';
pub(crate) const RE_INFO: u8 = b'i';
pub(crate) const RE_OK: u8 = b'o';
pub(crate) const RE_NO: u8 = b'n';
/// The largest payload either side accepts.
pub(crate) const FRAME_MAX: usize = 1024;
/// How long one side waits for the other's frame.
pub(crate) const IO_WAIT: Duration = Duration::from_secs(3);

/// What an agent says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AgentInfo {
    /// The vault's own node (`vault serve`) rather than an agent started by `vault unlock`.
    pub(crate) node: bool,
    /// Until when (Unix seconds) it lends the key; `None` when it does not.
    pub(crate) until: Option<i64>,
}

/// This user's effective id.
pub(crate) fn my_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn agent_dir_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(runtime) if runtime.is_absolute() => runtime.join("vault"),
        _ => std::env::temp_dir().join(format!("vault-{}", my_uid())),
    }
}

/// The agent directory (created 0700 when missing and `create`; `Ok(None)` when missing
/// otherwise); refused unless it is a directory (not a link) of this user's that no one else
/// may enter.
pub(crate) fn private_dir(create: bool) -> Result<Option<PathBuf>> {
    let dir = agent_dir_path();
    if create {
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create the agent directory {}", dir.display()));
            }
        }
    }
    let Some(meta) = mine("the agent directory", &dir, |t| t.is_dir(), "a directory")? else {
        return Ok(None);
    };
    if meta.mode() & 0o077 != 0 {
        bail!(
            "the agent directory {} is open to other users (mode {:o}); not using it",
            dir.display(),
            meta.mode() & 0o777
        );
    }
    Ok(Some(dir))
}

/// Where the agent of the vault in `vault_dir` listens: one socket per vault, named by a hash
/// of the vault directory's canonical path. `Ok(None)` when there is no agent directory and
/// `create` is false.
pub(crate) fn socket_path(vault_dir: &Path, create: bool) -> Result<Option<PathBuf>> {
    runtime_path(vault_dir, "agent", "sock", create)
}

/// A file of the vault in `vault_dir` in the agent directory (`PREFIX-HASH.EXT`), named like
/// its socket; `Ok(None)` when there is no agent directory and `create` is false.
pub(crate) fn runtime_path(
    vault_dir: &Path,
    prefix: &str,
    ext: &str,
    create: bool,
) -> Result<Option<PathBuf>> {
    let canonical = std::fs::canonicalize(vault_dir)
        .with_context(|| format!("cannot resolve the vault directory {}", vault_dir.display()))?;
    let hash = blake3::hash(canonical.as_os_str().as_encoded_bytes());
    Ok(private_dir(create)?.map(|dir| dir.join(format!("{prefix}-{}.{ext}", &hash.to_hex()[..16]))))
}

/// Refuses a socket file that is not a socket or is another user's; `Ok(false)` when there is
/// none.
pub(crate) fn check_socket_file(path: &Path) -> Result<bool> {
    Ok(mine("the agent socket", path, |t| t.is_socket(), "a socket")?.is_some())
}

/// What `path` is, without following a link, checked to be `kind` and this user's; `Ok(None)`
/// when there is nothing there. `what` names it in the messages.
fn mine(
    what: &str,
    path: &Path,
    is_kind: impl Fn(std::fs::FileType) -> bool,
    kind: &str,
) -> Result<Option<std::fs::Metadata>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {what} {}", path.display())),
    };
    if !is_kind(meta.file_type()) {
        bail!("{what} {} is not {kind}; not using it", path.display());
    }
    if meta.uid() != my_uid() {
        bail!("{what} {} is owned by another user (uid {}); not using it", path.display(), meta.uid());
    }
    Ok(Some(meta))
}

/// The user id of the process at the other end of `stream`.
pub(crate) fn peer_uid(stream: &impl std::os::fd::AsFd) -> std::io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(stream)?.uid.as_raw())
}

/// One frame, in a buffer wiped when dropped.
pub(crate) fn encode_frame(op: u8, payload: &[u8]) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let len = u16::try_from(payload.len()).ok().filter(|n| usize::from(*n) <= FRAME_MAX);
    let len = len.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Zeroizing::new(Vec::with_capacity(3 + payload.len()));
    frame.push(op);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Writes one frame.
fn write_frame(out: &mut impl Write, op: u8, payload: &[u8]) -> std::io::Result<()> {
    out.write_all(&encode_frame(op, payload)?)?;
    out.flush()
}

/// Splits a frame's header: its op and payload length, refused over [`FRAME_MAX`].
pub(crate) fn frame_header(header: [u8; 3]) -> std::io::Result<(u8, usize)> {
    let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
    if len > FRAME_MAX {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"));
    }
    Ok((header[0], len))
}

fn read_frame(input: &mut impl Read) -> std::io::Result<(u8, Zeroizing<Vec<u8>>)> {
    let mut header = [0u8; 3];
    input.read_exact(&mut header)?;
    let (op, len) = frame_header(header)?;
    let mut payload = Zeroizing::new(vec![0u8; len]);
    input.read_exact(&mut payload)?;
    Ok((op, payload))
}

/// Sends one request to the agent of the vault in `vault_dir`; `Ok(None)` when no agent
/// listens there. Refuses an agent that fails the checks, naming why.
pub(crate) fn call(vault_dir: &Path, op: u8, payload: &[u8]) -> Result<Option<(u8, Zeroizing<Vec<u8>>)>> {
    let Some(path) = socket_path(vault_dir, false)? else { return Ok(None) };
    if !check_socket_file(&path)? {
        return Ok(None);
    }
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        // A socket left by an agent that is gone.
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot reach the agent at {}", path.display())),
    };
    let uid = peer_uid(&stream).context("cannot read the agent's credentials")?;
    if uid != my_uid() {
        bail!("the agent at {} runs as another user (uid {uid}); not using it", path.display());
    }
    stream.set_read_timeout(Some(IO_WAIT))?;
    stream.set_write_timeout(Some(IO_WAIT))?;
    let talk = |stream: &mut UnixStream| -> std::io::Result<(u8, Zeroizing<Vec<u8>>)> {
        write_frame(stream, op, payload)?;
        read_frame(stream)
    };
    let answer =
        talk(&mut stream).with_context(|| format!("the agent at {} did not answer", path.display()))?;
    Ok(Some(answer))
}

/// What the agent of this vault says of itself, if one runs.
pub(crate) fn info(vault_dir: &Path) -> Result<Option<AgentInfo>> {
    let Some((op, payload)) = call(vault_dir, OP_INFO, &[])? else { return Ok(None) };
    if op != RE_INFO || payload.len() != 10 {
        bail!("the agent answered something else than its state");
    }
    let until = i64::from_be_bytes(payload[2..10].try_into().expect("eight bytes"));
    Ok(Some(AgentInfo { node: payload[0] == 1, until: (payload[1] == 1).then_some(until) }))
}

/// The key the agent lends for this vault, if one runs and lends it.
pub(crate) fn borrow(vault_dir: &Path) -> Result<Option<UnlockKey>> {
    match call(vault_dir, OP_KEY, &[])? {
        Some((RE_KEY, payload)) => {
            Ok(Some(UnlockKey::from_bytes(&payload).context("the agent lent something that is not a key")?))
        }
        _ => Ok(None),
    }
}

/// Tells the agent of this vault, if one runs and lends a key, to stop lending it (as `vault
/// lock` does: an agent forgets the key and ends, the node keeps it while it runs). Returns what
/// the agent said of itself before, `None` when no agent was lending.
pub(crate) fn forget(vault_dir: &Path) -> Result<Option<AgentInfo>> {
    let Some(info) = info(vault_dir)?.filter(|i| i.until.is_some()) else { return Ok(None) };
    match call(vault_dir, OP_LOCK, &[])? {
        Some((RE_OK, _)) | None => Ok(Some(info)),
        Some((RE_NO, why)) => bail!("the agent refused to lock: {}", reason(&why)),
        Some(_) => bail!("the agent answered something else than yes or no"),
    }
}

/// A refusal's reason, as the agent gave it.
pub(crate) fn reason(payload: &[u8]) -> String {
    crate::output::untrusted(&String::from_utf8_lossy(payload)).to_string()
}
