//! The market protocol on the wire (ALPN `vault/market/1`; frames in
//! [`vault_core::MarketFrame`]). [`MarketListener`] is the seller's side in the node;
//! [`market_call`] is the customer's: a short-lived endpoint whose key *is* the intention's
//! pseudonym, on a fresh port, so the seller sees the pseudonym and the address the call came
//! from, never a device of the customer's or the port its node serves on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::{Endpoint, EndpointAddr};
use tokio::io::AsyncReadExt;
use vault_core::framing::{LENGTH_LEN, announced_length, check_length, frame};
use vault_core::{
    MARKET_ALPN, MARKET_LIMIT, MarketAnswer, MarketFrame, Pseudonym, PseudonymKey, Ticket, decode_market,
    encode_market,
};

use crate::endpoint::{NodeConfig, NodeTasks, bind_secret, endpoint_id};
use crate::error::SyncError;
use crate::limits::HANDSHAKE_TIMEOUT;

/// Requests one market connection may make (a customer's call makes one to three).
const MAX_MARKET_STREAMS: u32 = 8;
/// New intentions the node takes per minute from everyone together: a stranger making fresh
/// pseudonyms cannot fill the seller's vault faster than this.
pub(crate) const MARKET_INTENTIONS_PER_MINUTE: u32 = 60;

/// Reads one market frame of at most [`MARKET_LIMIT`] bytes; `None` at a clean end.
async fn read_market(recv: &mut RecvStream) -> Result<Option<MarketFrame>, SyncError> {
    let mut len = [0u8; LENGTH_LEN];
    match AsyncReadExt::read_exact(recv, &mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(SyncError::io(e)),
    }
    let len = announced_length(len);
    check_length(len, MARKET_LIMIT).map_err(|e| SyncError::Protocol(e.to_string()))?;
    let mut body = vec![0u8; len];
    AsyncReadExt::read_exact(recv, &mut body).await.map_err(SyncError::io)?;
    decode_market(&body).map(Some).map_err(|e| SyncError::Protocol(e.to_string()))
}

async fn write_market(send: &mut SendStream, f: &MarketFrame) -> Result<(), SyncError> {
    send.write_all(&frame(&encode_market(f))).await.map_err(SyncError::io)
}

/// How many new intentions were taken in the current minute.
#[derive(Debug)]
struct Window {
    started: Instant,
    taken: u32,
}

/// Accepts market connections: intentions, fetches, acceptances and withdrawals from
/// pseudonyms.
#[derive(Debug, Clone)]
pub(crate) struct MarketListener {
    pub(crate) shared: Arc<NodeTasks>,
    window: Arc<Mutex<Window>>,
}

impl MarketListener {
    pub(crate) fn new(shared: Arc<NodeTasks>) -> Self {
        Self { shared, window: Arc::new(Mutex::new(Window { started: Instant::now(), taken: 0 })) }
    }

    /// Whether one more new intention may be taken now.
    fn admit(&self) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.started.elapsed() >= Duration::from_secs(60) {
            *w = Window { started: Instant::now(), taken: 0 };
        }
        if w.taken >= MARKET_INTENTIONS_PER_MINUTE {
            return false;
        }
        w.taken += 1;
        true
    }

    fn answer(&self, remote: &Pseudonym, request: MarketFrame) -> Result<MarketFrame, SyncError> {
        let mut vault = self.shared.vault();
        let answer = match request {
            MarketFrame::Intention(signed) => {
                if signed.intention.pseudonym != *remote {
                    MarketAnswer::Refused
                } else if vault.market().find(&remote.to_string()).is_ok() {
                    MarketAnswer::Kept
                } else if !self.admit() {
                    MarketAnswer::Full
                } else {
                    vault.market_mut().receive(&signed, "direct")?
                }
            }
            MarketFrame::FetchOffers => {
                let mut offers = vault.market().offers_for(remote)?;
                offers.truncate(16);
                return Ok(MarketFrame::Offers(offers));
            }
            MarketFrame::Accept { acceptance, .. } => vault.market_mut().accepted(remote, &acceptance)?,
            MarketFrame::Withdraw(w) if w.pseudonym == *remote => vault.market_mut().withdrawn(&w)?,
            MarketFrame::Withdraw(_) => MarketAnswer::Refused,
            MarketFrame::Answer(_) | MarketFrame::Offers(_) => {
                return Err(SyncError::Protocol("a market answer sent as a request".into()));
            }
        };
        drop(vault);
        self.shared.changed();
        Ok(MarketFrame::Answer(answer))
    }

    async fn serve(&self, conn: &Connection) -> Result<(), SyncError> {
        let remote = Pseudonym::from_bytes(*conn.remote_id().as_bytes())
            .map_err(|_| SyncError::Protocol("not a pseudonym".into()))?;
        let mut served = 0;
        while served < MAX_MARKET_STREAMS {
            let Ok(Ok((mut send, mut recv))) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi()).await
            else {
                return Ok(());
            };
            served += 1;
            let request = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_market(&mut recv))
                .await
                .map_err(|_| SyncError::Timeout)??;
            let Some(request) = request else { continue };
            let reply = self.answer(&remote, request)?;
            write_market(&mut send, &reply).await?;
            let _ = send.finish();
        }
        Ok(())
    }
}

impl ProtocolHandler for MarketListener {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        match self.serve(&conn).await {
            Ok(()) => {
                // Let the last answer reach the customer before closing.
                let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.closed()).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "closing a market connection");
                conn.close(VarInt::from_u32(1), b"protocol error");
            }
        }
        Ok(())
    }
}

/// The customer's side: dials the seller `ticket` names under `key` (an intention's
/// pseudonym), sends each request on a stream of its own and returns the answers in order.
/// The endpoint lives for this call only, on a fresh port.
pub async fn market_call(
    key: &PseudonymKey,
    ticket: &Ticket,
    requests: &[MarketFrame],
    relay: bool,
) -> Result<Vec<MarketFrame>, SyncError> {
    let config = NodeConfig { relay, ..NodeConfig::default() };
    let endpoint = bind_secret(iroh::SecretKey::from_bytes(&key.secret_bytes()), &config, vec![]).await?;
    let result = call(&endpoint, ticket, requests).await;
    endpoint.close().await;
    result
}

async fn call(
    endpoint: &Endpoint,
    ticket: &Ticket,
    requests: &[MarketFrame],
) -> Result<Vec<MarketFrame>, SyncError> {
    let device = ticket.device();
    let mut addr = EndpointAddr::new(endpoint_id(device));
    for sock in ticket.addrs() {
        addr = addr.with_ip_addr(*sock);
    }
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, endpoint.connect(addr, MARKET_ALPN))
        .await
        .map_err(|_| SyncError::Timeout)?
        .map_err(|e| SyncError::Connect(Box::new(e)))?;
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        let (mut send, mut recv) = conn.open_bi().await.map_err(SyncError::io)?;
        write_market(&mut send, request).await?;
        let _ = send.finish();
        let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_market(&mut recv))
            .await
            .map_err(|_| SyncError::Timeout)??
            .ok_or_else(|| SyncError::Protocol("the seller closed the stream without answering".into()))?;
        answers.push(answer);
    }
    conn.close(VarInt::from_u32(0), b"done");
    Ok(answers)
}
