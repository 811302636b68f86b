//! Public topics over iroh-gossip (see `docs/intentions.md`). A node joins each topic its vault
//! joined: a seller's (one that takes intentions) on the node's own endpoint, where customers
//! enter by its ticket; a customer's on an endpoint of its own whose key is the vault's
//! pseudonym for that topic, so that nothing heard or published there names a device. What
//! arrives is a market frame ([`vault_core::MarketFrame`]), verified when decoded:
//! intentions, withdrawals and polls for a seller, signals for everyone.
//!
//! [`topic_call`] is a customer's one-off visit under an intention's pseudonym: enter, say
//! something, listen a few seconds, leave.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iroh::address_lookup::MemoryLookup;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, EndpointAddr, EndpointId};
use iroh_gossip::api::{Event, GossipSender};
use iroh_gossip::{Gossip, TopicId};
use n0_future::StreamExt;
use vault_core::{JoinedTopic, MarketFrame, PseudonymKey, Ticket, Topic, decode_market, encode_market};

use crate::endpoint::{NodeConfig, NodeTasks, bind_pseudonymous, endpoint_id};
use crate::error::SyncError;
use crate::keep::random_below;

/// Largest gossip message: a market frame (an `Offers` frame is the largest).
pub(crate) const GOSSIP_MESSAGE_MAX: usize = 16 * 1024;
/// How long entering a topic may take.
const JOIN_WAIT: Duration = Duration::from_secs(15);
/// How often a publisher says its signals again, for members who joined since: just over the
/// 90 seconds for which gossip members drop a message they have seen (identical bytes), so
/// that a repeat travels again through members that already had it.
const REPUBLISH: Duration = Duration::from_secs(100);
/// With relays on, the most a customer's topic waits, at random, before its pseudonym enters:
/// the pseudonyms of one node entering their topics together would be linked by their timing.
const JOIN_SPREAD: Duration = Duration::from_secs(60);
/// New intentions a seller takes from one topic per minute.
const TOPIC_INTENTIONS_PER_MINUTE: u32 = 60;
/// Signals looked at per topic per minute, at most (each pseudonym's are bounded in the vault).
const TOPIC_SIGNALS_PER_MINUTE: u32 = 600;

/// How long a topic's own pseudonym waits before it enters: a random part of [`JOIN_SPREAD`]
/// with relays on; none with relays off (members see the node's address then, which links its
/// pseudonyms anyway).
fn join_delay(relay: bool) -> Duration {
    if relay { random_below(JOIN_SPREAD) } else { Duration::ZERO }
}

/// The wait before a member says its signals again: [`REPUBLISH`] and up to a quarter more, at
/// random, so that one node's topics do not speak in step.
fn republish_after() -> Duration {
    REPUBLISH + random_below(REPUBLISH / 4)
}

/// A gossip stack on an endpoint, with the addresses of the peers to enter topics by.
#[derive(Debug, Clone)]
pub(crate) struct Swarm {
    pub(crate) gossip: Gossip,
    lookup: MemoryLookup,
}

impl Swarm {
    /// Gossip on `endpoint` (to be registered with its router under [`iroh_gossip::ALPN`]).
    pub(crate) fn new(endpoint: &Endpoint) -> Result<Self, SyncError> {
        let lookup = MemoryLookup::new();
        endpoint.address_lookup().map_err(|e| SyncError::Bind(Box::new(e)))?.add(lookup.clone());
        let gossip = Gossip::builder().max_message_size(GOSSIP_MESSAGE_MAX).spawn(endpoint.clone());
        Ok(Self { gossip, lookup })
    }

    /// The endpoint ids of `via`, their addresses made known.
    fn bootstrap(&self, via: &[Ticket]) -> Vec<EndpointId> {
        via.iter()
            .map(|t| {
                let mut addr = EndpointAddr::new(endpoint_id(t.device()));
                for sock in t.addrs() {
                    addr = addr.with_ip_addr(*sock);
                }
                self.lookup.add_endpoint_info(addr);
                endpoint_id(t.device())
            })
            .collect()
    }
}

/// Gossip connections one endpoint serves at once; beyond, a new one is closed at once.
const MAX_GOSSIP_CONNECTIONS: usize = 128;

/// Gossip behind a cap on the connections it holds (its own handler hands a connection to its
/// actor and returns, so the slot is held here until the connection closes).
#[derive(Clone)]
pub(crate) struct CappedGossip {
    gossip: Gossip,
    slots: Arc<tokio::sync::Semaphore>,
    /// On a node's own endpoint: served only while its vault takes intentions on a topic.
    sellers_only: Option<Arc<NodeTasks>>,
}

impl std::fmt::Debug for CappedGossip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CappedGossip").field("sellers_only", &self.sellers_only.is_some()).finish()
    }
}

impl CappedGossip {
    /// On a topic's own endpoint.
    pub(crate) fn new(gossip: Gossip) -> Self {
        Self {
            gossip,
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_GOSSIP_CONNECTIONS)),
            sellers_only: None,
        }
    }

    /// On a node's own endpoint: a connection is served only while the vault has a topic
    /// joined to take intentions (a customer's node serves none there).
    pub(crate) fn sellers_only(gossip: Gossip, shared: Arc<NodeTasks>) -> Self {
        Self { sellers_only: Some(shared), ..Self::new(gossip) }
    }
}

impl ProtocolHandler for CappedGossip {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let seller = |shared: &NodeTasks| {
            shared.vault().topics().list().is_ok_and(|all| all.iter().any(|t| t.intentions))
        };
        if self.sellers_only.as_deref().is_some_and(|shared| !seller(shared)) {
            conn.close(4u32.into(), b"no topics here");
            return Ok(());
        }
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            conn.close(3u32.into(), b"busy");
            return Ok(());
        };
        ProtocolHandler::accept(&self.gossip, conn.clone()).await?;
        conn.closed().await;
        Ok(())
    }

    async fn shutdown(&self) {
        ProtocolHandler::shutdown(&self.gossip).await;
    }
}

fn topic_id(topic: &Topic) -> TopicId {
    TopicId::from_bytes(topic.id())
}

/// A customer's visit to a topic under `key` (an intention's pseudonym): enters by `via`,
/// broadcasts `say`, and returns what it heard for `listen`. Errors when no member of the
/// topic could be reached.
pub async fn topic_call(
    key: &PseudonymKey,
    topic: &Topic,
    via: &[Ticket],
    say: &[MarketFrame],
    listen: Duration,
    relay: bool,
) -> Result<Vec<MarketFrame>, SyncError> {
    let endpoint = bind_pseudonymous(iroh::SecretKey::from_bytes(&key.secret_bytes()), relay).await?;
    let swarm = Swarm::new(&endpoint)?;
    let router = Router::builder(endpoint.clone())
        .accept(iroh_gossip::ALPN, CappedGossip::new(swarm.gossip.clone()))
        .spawn();
    let result = visit(&swarm, topic, via, say, listen).await;
    let _ = router.shutdown().await;
    result
}

async fn visit(
    swarm: &Swarm,
    topic: &Topic,
    via: &[Ticket],
    say: &[MarketFrame],
    listen: Duration,
) -> Result<Vec<MarketFrame>, SyncError> {
    let peers = swarm.bootstrap(via);
    let joined = tokio::time::timeout(JOIN_WAIT, swarm.gossip.subscribe_and_join(topic_id(topic), peers))
        .await
        .map_err(|_| SyncError::Timeout)?
        .map_err(|e| SyncError::Connect(Box::new(e)))?;
    let (sender, mut receiver) = joined.split();
    for frame in say {
        sender.broadcast(encode_market(frame).into()).await.map_err(|e| SyncError::Connect(Box::new(e)))?;
    }
    let mut heard = Vec::new();
    let until = tokio::time::Instant::now() + listen;
    while let Ok(Some(event)) = tokio::time::timeout_at(until, receiver.next()).await {
        if let Ok(Event::Received(message)) = event
            && let Ok(frame) = decode_market(&message.content)
        {
            heard.push(frame);
        }
    }
    Ok(heard)
}

/// Runs the node's topics: joins each topic the vault joined, starts a topic's member again
/// when how it was joined changed (or it stopped), and stops the member of a topic left, until
/// the node stops. `main`: gossip on the node's own endpoint, when it serves as a seller.
pub(crate) async fn run_topics(shared: Arc<NodeTasks>, main: Swarm, config: NodeConfig) {
    // Dropped with this task when the node stops: every topic's member stops with it.
    let mut members = tokio::task::JoinSet::new();
    // Each member with how its topic was joined: joined otherwise since, it starts again.
    type How = (vault_core::Pseudonym, bool, bool, usize);
    let mut running: HashMap<Topic, (How, tokio::task::AbortHandle)> = HashMap::new();
    let mut changes = shared.changes.subscribe();
    loop {
        while members.try_join_next().is_some() {}
        running.retain(|_, (_, handle)| !handle.is_finished());
        let joined = shared.vault().topics().list().unwrap_or_default();
        let wanted: HashSet<Topic> = joined.iter().map(|t| t.topic.clone()).collect();
        running.retain(|topic, (_, handle)| {
            let keep = wanted.contains(topic);
            if !keep {
                handle.abort();
            }
            keep
        });
        for t in joined {
            let how = (t.pseudonym, t.intentions, t.publish, t.via.len());
            if running.get(&t.topic).is_some_and(|(was, _)| *was == how) {
                continue;
            }
            if let Some((_, old)) = running.remove(&t.topic) {
                old.abort();
            }
            let topic = t.topic.clone();
            let (shared, main, config) = (shared.clone(), main.clone(), config.clone());
            let handle = members.spawn(async move {
                let topic = t.topic.clone();
                if let Err(e) = member(shared, main, t, config).await {
                    tracing::info!(%topic, error = %e, "left a topic");
                }
            });
            running.insert(topic, (how, handle));
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
}

/// One topic, for as long as the node runs.
async fn member(
    shared: Arc<NodeTasks>,
    main: Swarm,
    joined: JoinedTopic,
    config: NodeConfig,
) -> Result<(), SyncError> {
    // A seller takes part as itself, on its node's endpoint; a customer under its pseudonym
    // for the topic, on an endpoint of its own.
    let own = if joined.intentions {
        None
    } else {
        let key = shared.vault().topics().key(&joined.topic)?.ok_or(SyncError::Timeout)?;
        tokio::time::sleep(join_delay(config.relay)).await;
        let endpoint =
            bind_pseudonymous(iroh::SecretKey::from_bytes(&key.secret_bytes()), config.relay).await?;
        let swarm = Swarm::new(&endpoint)?;
        let router = Router::builder(endpoint)
            .accept(iroh_gossip::ALPN, CappedGossip::new(swarm.gossip.clone()))
            .spawn();
        Some((swarm, router))
    };
    let swarm = own.as_ref().map_or(&main, |(s, _)| s);
    let peers = swarm.bootstrap(&joined.via);
    let topic = swarm
        .gossip
        .subscribe(topic_id(&joined.topic), peers)
        .await
        .map_err(|e| SyncError::Connect(Box::new(e)))?;
    let (sender, mut receiver) = topic.split();
    let result = async {
        let counts = shared.vault().topics().counts(&joined.topic)?;
        let mut state = Member::new(joined, counts);
        let mut republish = tokio::time::Instant::now() + republish_after();
        let mut neighbours = 0usize;
        loop {
            tokio::select! {
                // Said again now and then for members who joined since; not to nobody.
                () = tokio::time::sleep_until(republish) => {
                    republish = tokio::time::Instant::now() + republish_after();
                    if neighbours > 0 {
                        state.publish(&shared, &sender).await;
                    }
                }
                event = receiver.next() => match event {
                    Some(Ok(Event::Received(message))) => {
                        if let Ok(frame) = decode_market(&message.content) {
                            state.heard(&shared, &sender, frame).await;
                        }
                    }
                    // A new neighbour: the swarm changed, and what this member says reaches it.
                    Some(Ok(Event::NeighborUp(peer))) => {
                        tracing::debug!(topic = %state.joined.topic, %peer, "neighbour up");
                        neighbours += 1;
                        state.publish(&shared, &sender).await;
                    }
                    Some(Ok(Event::NeighborDown(_))) => neighbours = neighbours.saturating_sub(1),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(SyncError::Connect(Box::new(e))),
                    None => return Ok(()),
                },
            }
        }
    }
    .await;
    if let Some((_, router)) = own {
        let _ = router.shutdown().await;
    }
    result
}

/// What one topic's member keeps in memory: rates and what it answered lately.
struct Member {
    joined: JoinedTopic,
    minute: (Instant, u32),
    signal_minute: (Instant, u32),
    polled: HashMap<vault_core::Pseudonym, (Instant, i64)>,
    published: Option<Instant>,
    counts: vault_core::SignalCounts,
}

impl Member {
    fn new(joined: JoinedTopic, counts: vault_core::SignalCounts) -> Self {
        Self {
            joined,
            minute: (Instant::now(), 0),
            signal_minute: (Instant::now(), 0),
            polled: HashMap::new(),
            published: None,
            counts,
        }
    }

    async fn publish(&mut self, shared: &NodeTasks, sender: &GossipSender) {
        if !self.joined.publish || self.published.is_some_and(|at| at.elapsed() < Duration::from_secs(3)) {
            return;
        }
        self.published = Some(Instant::now());
        let signals = shared.vault().topics().my_signals(&self.joined.topic).unwrap_or_default();
        // Never another pseudonym's signals from this one's endpoint (left and joined again).
        let signals: Vec<_> =
            signals.into_iter().filter(|s| s.signal.pseudonym == self.joined.pseudonym).collect();
        tracing::debug!(topic = %self.joined.topic, signals = signals.len(), "publishing");
        for s in signals {
            let _ = sender.broadcast(encode_market(&MarketFrame::Signal(Box::new(s))).into()).await;
        }
    }

    fn admit_intention(&mut self) -> bool {
        if self.minute.0.elapsed() >= Duration::from_secs(60) {
            self.minute = (Instant::now(), 0);
        }
        self.minute.1 += 1;
        self.minute.1 <= TOPIC_INTENTIONS_PER_MINUTE
    }

    /// Whether one more signal may be looked at now: at most [`TOPIC_SIGNALS_PER_MINUTE`] a
    /// minute per topic, whoever names itself in them (pseudonyms cost nothing to make, so a
    /// bound per pseudonym alone would bound nothing).
    fn admit_signal(&mut self) -> bool {
        if self.signal_minute.0.elapsed() >= Duration::from_secs(60) {
            self.signal_minute = (Instant::now(), 0);
        }
        self.signal_minute.1 += 1;
        self.signal_minute.1 <= TOPIC_SIGNALS_PER_MINUTE
    }

    async fn heard(&mut self, shared: &NodeTasks, sender: &GossipSender, frame: MarketFrame) {
        let topic = self.joined.topic.clone();
        tracing::debug!(%topic, frame = ?std::mem::discriminant(&frame), "heard");
        if let MarketFrame::Poll(poll) = &frame {
            // A customer asking for its offers: answered on the topic (it has no address to be
            // called at), at most every 20 seconds per pseudonym, and only while the poll is fresh.
            let now = shared.vault().now();
            let fresh = poll.at.abs_diff(now) <= 600;
            // Only a newer poll than the last answered, and not within 5 s of it: a replayed
            // poll cannot use up the customer's turn.
            let newer = self
                .polled
                .get(&poll.pseudonym)
                .is_none_or(|(at, stamp)| poll.at > *stamp && at.elapsed() >= Duration::from_secs(5));
            if self.joined.intentions && fresh && newer {
                if self.polled.len() > 10_000 {
                    self.polled.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(600));
                }
                self.polled.insert(poll.pseudonym, (Instant::now(), poll.at));
                let offers = shared.vault().market().offers_for(&poll.pseudonym).unwrap_or_default();
                if !offers.is_empty() {
                    let mut offers = offers;
                    offers.truncate(vault_core::MAX_OFFERS_PER_FRAME);
                    let _ = sender.broadcast(encode_market(&MarketFrame::Offers(offers)).into()).await;
                }
            }
            return;
        }
        let result: Result<(), vault_core::StoreError> = (|| {
            match frame {
                MarketFrame::Intention(signed) if self.joined.intentions => {
                    let known = shared.vault().market().precheck(&signed)?;
                    if known.is_none() && self.admit_intention() {
                        let via = format!("topic {topic}");
                        let answer = shared.vault().market_mut().receive(&signed, &via)?;
                        tracing::debug!(%topic, ?answer, "an intention on a topic");
                    }
                }
                MarketFrame::Withdraw(w) if self.joined.intentions => {
                    let _ = shared.vault().market_mut().withdrawn(&w)?;
                }
                MarketFrame::Signal(s) if s.signal.topic == topic && self.admit_signal() => {
                    shared.vault().topics_mut().take_signal(&s, &mut self.counts)?;
                }
                _ => {}
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(%topic, error = %e, "keeping what a topic said failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pseudonym_enters_at_a_random_moment_only_with_relays_on() {
        assert_eq!(join_delay(false), Duration::ZERO);
        let delays: HashSet<Duration> = (0..20).map(|_| join_delay(true)).collect();
        assert!(delays.iter().all(|d| *d < JOIN_SPREAD), "{delays:?}");
        assert!(delays.len() > 10, "not spread at random: {delays:?}");
        for _ in 0..20 {
            let after = republish_after();
            // Never before the 90 s gossip members drop a message they have seen.
            assert!(after >= REPUBLISH && after < REPUBLISH + REPUBLISH / 4, "{after:?}");
        }
    }
}
