//! The market protocol on the wire (ALPN `vault/market/1`; frames in
//! [`vault_core::MarketFrame`]). [`MarketListener`] is the seller's side in the node;
//! [`market_call`] is the customer's: a short-lived endpoint whose key *is* the intention's
//! pseudonym, on a fresh port, so the seller sees the pseudonym and the address the call came
//! from, never a device of the customer's or the port its node serves on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::{Endpoint, EndpointAddr};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use vault_core::framing::{LENGTH_LEN, announced_length, check_length, frame};
use vault_core::{
    MARKET_ALPN, MARKET_LIMIT, MAX_OFFERS_PER_FRAME, MarketAnswer, MarketFrame, Pseudonym, PseudonymKey,
    Ticket, decode_market, encode_market,
};

use crate::endpoint::{NodeTasks, bind_pseudonymous, endpoint_id};
use crate::error::SyncError;
use crate::limits::HANDSHAKE_TIMEOUT;

/// Requests one market connection may make (a customer's call makes one to three).
const MAX_MARKET_STREAMS: u32 = 8;
/// Market connections served at once; beyond, a new one is closed at once.
const MAX_MARKET_CONNECTIONS: usize = 64;
/// How long one market connection may last, all its requests together.
const MARKET_CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// New intentions the node takes per minute from everyone together: a stranger making fresh
/// pseudonyms cannot fill the seller's vault faster than this.
pub(crate) const MARKET_INTENTIONS_PER_MINUTE: u32 = 60;
/// New intentions the node takes per minute from one address (every connection through a
/// relay counts as one address): one client cannot take the whole minute's share.
pub(crate) const MARKET_INTENTIONS_PER_SOURCE: u32 = 10;
/// Sources remembered at most; beyond, the oldest minute's are forgotten.
const MAX_SOURCES: usize = 4096;

/// Reads one market frame of at most [`MARKET_LIMIT`] bytes, its length first taken from
/// `budget` (the node's budget for strangers' bytes); `None` at a clean end.
async fn read_market(
    recv: &mut RecvStream,
    budget: Option<&Arc<Semaphore>>,
) -> Result<Option<MarketFrame>, SyncError> {
    let mut len = [0u8; LENGTH_LEN];
    match AsyncReadExt::read_exact(recv, &mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(SyncError::io(e)),
    }
    let len = announced_length(len);
    check_length(len, MARKET_LIMIT).map_err(|e| SyncError::Protocol(e.to_string()))?;
    let _permit = match budget {
        Some(b) => Some(
            Arc::clone(b)
                .acquire_many_owned(u32::try_from(len.max(1)).unwrap_or(u32::MAX))
                .await
                .map_err(|_| SyncError::Protocol("the node is stopping".into()))?,
        ),
        None => None,
    };
    let mut body = vec![0u8; len];
    AsyncReadExt::read_exact(recv, &mut body).await.map_err(SyncError::io)?;
    decode_market(&body).map(Some).map_err(|e| SyncError::Protocol(e.to_string()))
}

async fn write_market(send: &mut SendStream, f: &MarketFrame) -> Result<(), SyncError> {
    send.write_all(&frame(&encode_market(f))).await.map_err(SyncError::io)
}

/// New intentions taken in the current minute: in all, and per source.
#[derive(Debug)]
struct Window {
    started: Instant,
    taken: u32,
    per_source: HashMap<Option<IpAddr>, u32>,
}

/// Accepts market connections: intentions, fetches, acceptances and withdrawals from
/// pseudonyms. Keeps nothing of where they came from but a count per address for the minute.
#[derive(Debug, Clone)]
pub(crate) struct MarketListener {
    pub(crate) shared: Arc<NodeTasks>,
    window: Arc<Mutex<Window>>,
    connections: Arc<Semaphore>,
}

impl MarketListener {
    pub(crate) fn new(shared: Arc<NodeTasks>) -> Self {
        let window = Window { started: Instant::now(), taken: 0, per_source: HashMap::new() };
        Self {
            shared,
            window: Arc::new(Mutex::new(window)),
            connections: Arc::new(Semaphore::new(MAX_MARKET_CONNECTIONS)),
        }
    }

    /// Whether one more new intention from `source` may be taken now.
    fn admit(&self, source: Option<IpAddr>) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.started.elapsed() >= Duration::from_secs(60) || w.per_source.len() >= MAX_SOURCES {
            *w = Window { started: Instant::now(), taken: 0, per_source: HashMap::new() };
        }
        let from_source = w.per_source.get(&source).copied().unwrap_or(0);
        if w.taken >= MARKET_INTENTIONS_PER_MINUTE || from_source >= MARKET_INTENTIONS_PER_SOURCE {
            return false;
        }
        w.taken += 1;
        w.per_source.insert(source, from_source + 1);
        true
    }

    fn answer(
        &self,
        remote: &Pseudonym,
        source: Option<IpAddr>,
        request: MarketFrame,
    ) -> Result<MarketFrame, SyncError> {
        let answer = match request {
            MarketFrame::Intention(signed) => {
                if signed.intention.pseudonym != *remote {
                    MarketAnswer::Refused
                } else if let Some(answer) = self.shared.vault().market().precheck(&signed)? {
                    // Known, withdrawn or out of its days: answered without spending a slot.
                    answer
                } else if !self.admit(source) {
                    MarketAnswer::Full
                } else {
                    self.shared.vault().market_mut().receive(&signed, "direct")?
                }
            }
            MarketFrame::FetchOffers => {
                let mut offers = self.shared.vault().market().offers_for(remote)?;
                offers.truncate(MAX_OFFERS_PER_FRAME);
                return Ok(MarketFrame::Offers(offers));
            }
            MarketFrame::Accept { acceptance, .. } => {
                self.shared.vault().market_mut().accepted(remote, &acceptance)?
            }
            MarketFrame::Withdraw(w) if w.pseudonym == *remote => {
                self.shared.vault().market_mut().withdrawn(&w)?
            }
            // Topic messages and answers have no place on a connection.
            MarketFrame::Withdraw(_) | MarketFrame::Poll(_) | MarketFrame::Signal(_) => MarketAnswer::Refused,
            MarketFrame::Answer(_) | MarketFrame::Offers(_) => {
                return Err(SyncError::Protocol("a market answer sent as a request".into()));
            }
        };
        Ok(MarketFrame::Answer(answer))
    }

    async fn serve(&self, conn: &Connection) -> Result<(), SyncError> {
        let remote = Pseudonym::from_bytes(*conn.remote_id().as_bytes())
            .map_err(|_| SyncError::Protocol("not a pseudonym".into()))?;
        // The address counts toward the minute's share, and is never kept.
        let source = conn.paths().iter().find_map(|p| match p.remote_addr() {
            iroh::TransportAddr::Ip(addr) => Some(addr.ip()),
            _ => None,
        });
        let mut served = 0;
        while served < MAX_MARKET_STREAMS {
            let Ok(Ok((mut send, mut recv))) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi()).await
            else {
                return Ok(());
            };
            served += 1;
            let request = tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                read_market(&mut recv, Some(&self.shared.handshakes)),
            )
            .await
            .map_err(|_| SyncError::Timeout)??;
            let Some(request) = request else { continue };
            let reply = self.answer(&remote, source, request)?;
            write_market(&mut send, &reply).await?;
            let _ = send.finish();
        }
        Ok(())
    }
}

impl ProtocolHandler for MarketListener {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let Ok(_slot) = self.connections.clone().try_acquire_owned() else {
            conn.close(VarInt::from_u32(3), b"busy");
            return Ok(());
        };
        match tokio::time::timeout(MARKET_CONNECTION_DEADLINE, self.serve(&conn)).await {
            Ok(Ok(())) => {
                // Let the last answer reach the customer before closing.
                let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.closed()).await;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "closing a market connection");
                conn.close(VarInt::from_u32(1), b"protocol error");
            }
            Err(_) => conn.close(VarInt::from_u32(2), b"too slow"),
        }
        Ok(())
    }
}

/// Forgets intentions received past their last day, every few minutes while the node runs.
pub(crate) async fn expire_intentions(shared: Arc<NodeTasks>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        if let Err(e) = shared.vault().market_mut().expire() {
            tracing::warn!(error = %e, "forgetting expired intentions failed");
        }
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
    let endpoint = bind_pseudonymous(iroh::SecretKey::from_bytes(&key.secret_bytes()), relay).await?;
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
        let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_market(&mut recv, None))
            .await
            .map_err(|_| SyncError::Timeout)??
            .ok_or_else(|| SyncError::Protocol("the seller closed the stream without answering".into()))?;
        answers.push(answer);
    }
    conn.close(VarInt::from_u32(0), b"done");
    Ok(answers)
}
