//! Pairing a new device over iroh (ALPN `vault/pair/1`): [`Invitation`] is the side of the
//! device that prints the code and waits for one joiner; [`join`] is the new device's side.
//! What the messages prove is in `vault_core::PairingCode`; this module moves them.
//!
//! The inviter listens on an endpoint of its own, under a key made for this one code (the
//! code pins it), so a running `vault serve` on the same vault is not disturbed. It takes
//! exactly one attempt: a wrong proof voids the code, a declined confirmation ends it.

use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::{Endpoint, EndpointAddr};
use vault_core::framing::{LENGTH_LEN, PAIR_JOIN_LIMIT, PAIR_WELCOME_LIMIT, announced_length, check_length};
use vault_core::{DeviceId, DeviceKey, JoinPackage, PAIR_ALPN, PairMessage, PairingCode, PairingError};
use zeroize::Zeroizing;

use crate::endpoint::{NodeConfig, bind_endpoint, device_id, endpoint_id, ticket_addrs};
use crate::error::SyncError;
use crate::limits::HANDSHAKE_TIMEOUT;

/// How long the joiner waits for the inviter's user to confirm.
const CONFIRM_WAIT: Duration = Duration::from_secs(5 * 60);
/// How long the inviter waits, once a device connected, for its proof: the joiner connects
/// first (so that a used or mistyped code fails before anyone types a passphrase), then asks
/// for the new device's passphrase, twice, then sends its proof.
const PROOF_WAIT: Duration = Duration::from_secs(3 * 60);
/// The close code of a connection that sent no proof within [`PROOF_WAIT`].
const NO_PROOF_IN_TIME: u32 = 2;
/// The close code of a connection that sent something other than a proof.
const NOT_A_PROOF: u32 = 3;

/// Pairing did not complete; nothing was handed over.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PairError {
    /// No device joined in time.
    #[error("no device joined before the code expired; nothing was shared")]
    Expired,
    /// A device presented a proof that does not match the code.
    #[error("a device presented a wrong proof for this code: the code is void and nothing was shared")]
    WrongProof,
    /// The user of the inviting device did not confirm.
    #[error("the join was declined on the other device; nothing was shared")]
    Declined,
    /// The inviting device refused the proof.
    #[error("the other device refused this code (mistyped, or tried by someone else first): it is void")]
    Refused,
    /// The inviting device could not be reached.
    #[error(
        "cannot reach the device that made this code: it is not waiting any more (used, expired or cancelled), not reachable, or busy with another device that connected first (try again in a few minutes)"
    )]
    Unreachable,
    /// This device took longer than the inviter waits for a proof; the code is still valid.
    #[error(
        "the other device stopped waiting for this one (more than 3 minutes before the passphrase was given): the code is still valid until it expires; run the same command again"
    )]
    TooSlow,
    /// The other side broke off or broke the protocol.
    #[error("the other device ended the pairing: {0}")]
    Broken(String),
    /// The code itself is unusable.
    #[error(transparent)]
    Code(#[from] PairingError),
    /// The endpoint could not start.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// The inviting side: an endpoint waiting for one joiner, and the code that reaches it.
#[derive(Debug)]
pub struct Invitation {
    endpoint: Endpoint,
    code: PairingCode,
}

impl Invitation {
    /// Binds an endpoint for one pairing and makes its code, valid from `now`.
    pub async fn open(config: &NodeConfig, now: i64) -> Result<Invitation, PairError> {
        let key = DeviceKey::generate();
        let endpoint = bind_endpoint(&key, config, vec![PAIR_ALPN.to_vec()]).await?;
        let code = PairingCode::new(key.public(), ticket_addrs(&endpoint), now);
        Ok(Invitation { endpoint, code })
    }

    /// The code to show the user.
    pub fn code(&self) -> &PairingCode {
        &self.code
    }

    /// Waits (until the code expires at `deadline`) for the joiner, checks its proof, asks
    /// `confirm` with the six digits both devices show, and hands over what `welcome` makes for
    /// the joining device (or the reason it could not). Returns the new device's id once it has made its vault.
    pub async fn complete<C, W>(
        self,
        deadline: Duration,
        confirm: C,
        welcome: W,
    ) -> Result<DeviceId, PairError>
    where
        C: FnOnce(&str) -> bool + Send + 'static,
        W: FnOnce(DeviceId) -> Result<JoinPackage, String>,
    {
        let result = self.run(deadline, confirm, welcome).await;
        self.endpoint.close().await;
        result
    }

    async fn run<C, W>(&self, deadline: Duration, confirm: C, welcome: W) -> Result<DeviceId, PairError>
    where
        C: FnOnce(&str) -> bool + Send + 'static,
        W: FnOnce(DeviceId) -> Result<JoinPackage, String>,
    {
        let attempt = async {
            loop {
                let conn = accept(&self.endpoint).await?;
                let Some(joiner) = device_id(conn.remote_id()) else { continue };
                // A device that connects and leaves, or sends anything but a proof, within
                // PROOF_WAIT (its user stopped at the passphrase prompt) made no attempt at the
                // code: the next one may. The stream opens with the proof, which follows at once.
                let proof = async {
                    let (send, mut recv) = conn.accept_bi().await.ok()?;
                    Some(match read_message(&mut recv, PAIR_JOIN_LIMIT, HANDSHAKE_TIMEOUT).await {
                        Ok(PairMessage::Join(proof)) => Some((send, recv, proof)),
                        _ => None,
                    })
                };
                match tokio::time::timeout(PROOF_WAIT, proof).await {
                    Ok(Some(Some((send, recv, proof)))) => {
                        return Ok::<_, PairError>((conn, joiner, send, recv, proof));
                    }
                    Ok(Some(None)) => conn.close(VarInt::from_u32(NOT_A_PROOF), b"not a proof"),
                    // Told, so that a joiner that took too long knows the code is still good.
                    _ => conn.close(VarInt::from_u32(NO_PROOF_IN_TIME), b"no proof in time"),
                }
            }
        };
        let (conn, joiner, mut send, mut recv, proof) =
            tokio::time::timeout(deadline, attempt).await.map_err(|_| PairError::Expired)??;
        if !self.code.verify_proof(&joiner, &proof) {
            let _ = write_message(&mut send, &PairMessage::Refused).await;
            finish(&conn, send).await;
            return Err(PairError::WrongProof);
        }
        let digits = self.code.confirmation(&joiner);
        let confirmed = tokio::task::spawn_blocking(move || confirm(&digits)).await.unwrap_or(false);
        if !confirmed {
            let _ = write_message(&mut send, &PairMessage::Declined).await;
            finish(&conn, send).await;
            return Err(PairError::Declined);
        }
        let package =
            welcome(joiner).map_err(|e| PairError::Broken(format!("this vault could not link it: {e}")))?;
        write_message(&mut send, &PairMessage::Welcome(Box::new(package))).await?;
        match read_message(&mut recv, PAIR_JOIN_LIMIT, HANDSHAKE_TIMEOUT * 4).await? {
            PairMessage::Joined => {}
            _ => return Err(broken("expected joined")),
        }
        finish(&conn, send).await;
        Ok(joiner)
    }
}

async fn accept(endpoint: &Endpoint) -> Result<Connection, PairError> {
    loop {
        let Some(incoming) = endpoint.accept().await else { return Err(broken("endpoint closed")) };
        // A connection that fails (or does not finish) its handshake is not an attempt at the
        // code.
        if let Ok(Ok(conn)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
            return Ok(conn);
        }
    }
}

async fn finish(conn: &Connection, mut send: SendStream) {
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    conn.close(VarInt::from_u32(0), b"");
}

fn broken(what: &str) -> PairError {
    PairError::Broken(what.to_owned())
}

/// The joining side: dials the code's endpoint as `device` (the key the new vault will run
/// under), proves the code, tells `show` the six digits to compare, and returns the package
/// once the other device's user confirmed. `made` is called with it; its result is reported
/// back before returning.
pub async fn join<T, E: std::fmt::Display>(
    code: &PairingCode,
    device: &DeviceKey,
    config: &NodeConfig,
    show: impl FnOnce(&str),
    made: impl FnOnce(JoinPackage) -> Result<T, E>,
) -> Result<Result<T, E>, PairError> {
    Joining::connect(code, device, config).await?.complete(code, device, show, made).await
}

/// The joining side once connected to the endpoint the code pins (so the code is live: a used,
/// expired or cancelled one has nobody waiting), before it proves the code: the place to ask
/// for the new device's passphrase. Dropping it (or [`Joining::cancel`]) makes no attempt at
/// the code.
#[derive(Debug)]
pub struct Joining {
    endpoint: Endpoint,
    conn: Connection,
    /// Where a `Joining` dropped unfinished closes its endpoint (iroh aborts an endpoint dropped
    /// unclosed, before the connection's close is sent).
    runtime: tokio::runtime::Handle,
    /// Closed by `complete` or `cancel`.
    done: bool,
}

impl Joining {
    /// Dials the code's endpoint as `device` (the key the new vault will run under).
    pub async fn connect(
        code: &PairingCode,
        device: &DeviceKey,
        config: &NodeConfig,
    ) -> Result<Self, PairError> {
        let endpoint = bind_endpoint(device, config, vec![PAIR_ALPN.to_vec()]).await?;
        let mut addr = EndpointAddr::new(endpoint_id(code.inviter()));
        for sock in code.addrs() {
            addr = addr.with_ip_addr(*sock);
        }
        let dialed = tokio::time::timeout(HANDSHAKE_TIMEOUT, endpoint.connect(addr, PAIR_ALPN)).await;
        match dialed {
            Ok(Ok(conn)) if device_id(conn.remote_id()) == Some(code.inviter()) => {
                Ok(Self { endpoint, conn, runtime: tokio::runtime::Handle::current(), done: false })
            }
            _ => {
                endpoint.close().await;
                Err(PairError::Unreachable)
            }
        }
    }

    /// Leaves without an attempt at the code.
    pub async fn cancel(mut self) {
        self.done = true;
        self.conn.close(VarInt::from_u32(0), b"");
        self.endpoint.close().await;
    }

    /// Proves the code, tells `show` the six digits to compare, and returns the package once
    /// the other device's user confirmed; `made` is called with it, and its result is reported
    /// back before returning.
    pub async fn complete<T, E: std::fmt::Display>(
        mut self,
        code: &PairingCode,
        device: &DeviceKey,
        show: impl FnOnce(&str),
        made: impl FnOnce(JoinPackage) -> Result<T, E>,
    ) -> Result<Result<T, E>, PairError> {
        let mut result = prove(&self.conn, code, device, show, made).await;
        if result.is_err() && closed_for_no_proof(&self.conn) {
            result = Err(PairError::TooSlow);
        }
        self.done = true;
        self.endpoint.close().await;
        result
    }
}

/// Whether the inviter closed the connection because no proof came in time.
fn closed_for_no_proof(conn: &Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(iroh::endpoint::ConnectionError::ApplicationClosed(close))
            if close.error_code == VarInt::from_u32(NO_PROOF_IN_TIME)
    )
}

impl Drop for Joining {
    /// Left without [`Joining::complete`] or [`Joining::cancel`]: the inviter is told at once
    /// (not at the connection's idle timeout), and may take the next device.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.conn.close(VarInt::from_u32(0), b"");
        let endpoint = self.endpoint.clone();
        self.runtime.spawn(async move { endpoint.close().await });
    }
}

async fn prove<T, E: std::fmt::Display>(
    conn: &Connection,
    code: &PairingCode,
    device: &DeviceKey,
    show: impl FnOnce(&str),
    made: impl FnOnce(JoinPackage) -> Result<T, E>,
) -> Result<Result<T, E>, PairError> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| broken(&e.to_string()))?;
    let me = device.public();
    write_message(&mut send, &PairMessage::Join(code.proof(&me))).await?;
    show(&code.confirmation(&me));
    let package = match read_message(&mut recv, PAIR_WELCOME_LIMIT, CONFIRM_WAIT).await? {
        PairMessage::Welcome(package) => *package,
        PairMessage::Refused => return Err(PairError::Refused),
        PairMessage::Declined => return Err(PairError::Declined),
        _ => return Err(broken("unexpected message")),
    };
    let outcome = made(package);
    if outcome.is_ok() {
        write_message(&mut send, &PairMessage::Joined).await?;
        finish(conn, send).await;
    } else {
        conn.close(VarInt::from_u32(1), b"could not make the vault");
    }
    Ok(outcome)
}

async fn write_message(send: &mut SendStream, message: &PairMessage) -> Result<(), PairError> {
    send.write_all(&message.to_frame()).await.map_err(|e| broken(&e.to_string()))
}

async fn read_message(recv: &mut RecvStream, limit: usize, wait: Duration) -> Result<PairMessage, PairError> {
    let read = async {
        let mut len = [0u8; LENGTH_LEN];
        recv.read_exact(&mut len).await.map_err(|_| broken("the connection ended"))?;
        let len = announced_length(len);
        if check_length(len, limit).is_err() {
            return Err(broken("message too large"));
        }
        let mut body = Zeroizing::new(vec![0u8; len]);
        recv.read_exact(&mut body).await.map_err(|_| broken("the connection ended"))?;
        Ok(PairMessage::decode(&body)?)
    };
    tokio::time::timeout(wait, read).await.map_err(|_| broken("no answer in time"))?
}
