//! What the node's tasks and the dialing side share: how to bind the iroh endpoint, which
//! addresses go in a ticket, and the vault behind its lock.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iroh::endpoint::{QuicTransportConfig, VarInt, presets};
use iroh::{Endpoint, RelayMode};
use tokio::sync::{Semaphore, watch};
use vault_core::Vault;

use crate::error::SyncError;
use crate::limits::{IDLE_CLOSE, IDLE_REFRESH, MAX_CONCURRENT_STREAMS, POLL_INTERVAL};
use crate::peers::PeerBook;

/// How to run the node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Address to bind (default: all interfaces, a random port).
    pub bind: Option<SocketAddr>,
    /// Use iroh's relays and address lookup (production default). Tests and local networks
    /// turn this off.
    pub relay: bool,
    /// Keep live sessions to the issuers of received shares (on by default in `vault serve`).
    pub subscribe: bool,
    /// How often to check the vault file for changes made by other processes.
    pub poll: Duration,
    /// Close a live session to an issuer after this long without a frame either way (`None`:
    /// never); the issuer calls back when it has news.
    pub idle_close: Option<Duration>,
    /// Call a peer whose session went idle again after about this long, news or not.
    pub idle_refresh: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            bind: None,
            relay: true,
            subscribe: true,
            poll: POLL_INTERVAL,
            idle_close: Some(IDLE_CLOSE),
            idle_refresh: IDLE_REFRESH,
        }
    }
}

/// What the node's tasks share: the vault, change notices, budgets, the refusal log.
#[derive(Debug)]
pub(crate) struct NodeTasks {
    /// The vault; every operation holds the lock briefly (they are all short and synchronous).
    pub(crate) vault: Mutex<Vault>,
    /// Bumped whenever the vault changed (here or in another process): the database mirror
    /// and the device sessions wait on it.
    pub(crate) changes: watch::Sender<u64>,
    /// Bumped when what this vault serves to others may have changed (its records, grants,
    /// requests, anything another process wrote), not when only a share it holds from someone
    /// else did: the sessions serving peers wait on this one. On a seller, every customer's
    /// update is a held change; waking every customer's session for each made each update cost
    /// the number of customers.
    pub(crate) served: watch::Sender<u64>,
    /// Bumped when an issuer offered shares (a session waiting on its backoff, or the task
    /// keeping sessions, looks): apart from `changes`, so that one customer's edit does not wake
    /// the task of every other customer.
    pub(crate) offers: watch::Sender<u64>,
    /// Bumped when a peer's session that listened for shares ended: the notifier looks at once
    /// whether that audience must be offered what it missed.
    pub(crate) listening_ended: watch::Sender<u64>,
    /// Bumped when erasure receipts were signed outside a session (by the database mirror):
    /// sessions with their issuers send them.
    pub(crate) receipts: watch::Sender<u64>,
    /// What sessions told whom and which issuers offered shares (see [`crate::notify`]).
    pub(crate) book: Mutex<PeerBook>,
    /// Bytes of frames in flight the whole node may hold ([`vault_core::framing::NODE_BYTE_BUDGET`]).
    pub(crate) in_flight: Arc<Semaphore>,
    /// Bytes of hellos from unauthenticated peers ([`vault_core::framing::HANDSHAKE_BYTE_BUDGET`]).
    pub(crate) handshakes: Arc<Semaphore>,
    /// Asks for a group commit of served messages' records (see [`crate::served`]).
    pub(crate) served_flush: tokio::sync::Notify,
    /// The newest record settled by a group commit.
    pub(crate) served_settled: watch::Sender<u64>,
    /// Which customers this node serves among the identity's nodes (see [`crate::placement`]).
    pub(crate) placement: Mutex<crate::placement::Placement>,
    /// Moves when the nodes up changed: idle sessions with customers another node serves now
    /// let them go (keep.rs).
    pub(crate) placement_moved: watch::Sender<u64>,
    /// Whom the node reaches (see [`crate::reach`]).
    pub(crate) reach: crate::reach::SharedReach,
    /// This node's device.
    pub(crate) me: vault_core::DeviceId,
}

impl NodeTasks {
    /// Anything may have changed: everyone waiting on a change wakes.
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
        self.served.send_modify(|n| *n += 1);
    }

    /// Only what this vault holds from others changed (a share's copy, its status, a receipt,
    /// an answer to this vault's request): the sessions serving peers sleep on.
    pub(crate) fn held_changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn new(vault: Vault) -> Self {
        let (changes, _) = watch::channel(0u64);
        let (served, _) = watch::channel(0u64);
        let (receipts, _) = watch::channel(0u64);
        let (offers, _) = watch::channel(0u64);
        let (listening_ended, _) = watch::channel(0u64);
        let (placement_moved, _) = watch::channel(0u64);
        let (served_settled, _) = watch::channel(vault.serving().served_settled());
        let me = vault.device_key().public();
        NodeTasks {
            vault: Mutex::new(vault),
            changes,
            served,
            offers,
            listening_ended,
            receipts,
            book: Default::default(),
            in_flight: Arc::new(Semaphore::new(vault_core::framing::NODE_BYTE_BUDGET)),
            handshakes: Arc::new(Semaphore::new(vault_core::framing::HANDSHAKE_BYTE_BUDGET)),
            served_flush: Default::default(),
            served_settled,
            placement: Default::default(),
            placement_moved,
            reach: Default::default(),
            me,
        }
    }

    pub(crate) fn placement(&self) -> std::sync::MutexGuard<'_, crate::placement::Placement> {
        self.placement.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn reach(&self) -> std::sync::MutexGuard<'_, crate::reach::Reach> {
        crate::reach::lock(&self.reach)
    }

    pub(crate) fn vault(&self) -> std::sync::MutexGuard<'_, Vault> {
        self.vault.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes a refusal to the access log, at most one row per
    /// [`vault_core::REFUSAL_LOG_INTERVAL`] (vault-core's [`vault_core::RefusalLog`] decides).
    pub(crate) fn log_refused(&self, refused: &vault_core::Refused) {
        let Some(unlogged) = self.book().refusals.due(std::time::Instant::now()) else { return };
        let mut vault = self.vault();
        let event = vault_core::RefusalLog::event(refused, vault.now(), unlogged);
        let _ = vault.access_log_mut().record(&event);
    }

    pub(crate) fn book(&self) -> std::sync::MutexGuard<'_, PeerBook> {
        self.book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(crate) fn transport_config() -> QuicTransportConfig {
    QuicTransportConfig::builder()
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_CONCURRENT_STREAMS))
        // Gossip (public topics) runs one unidirectional stream per topic each way.
        .max_concurrent_uni_streams(VarInt::from_u32(16))
        .keep_alive_interval(Duration::from_secs(5))
        // With segmentation offload, each connection keeps a send buffer of up to ten datagrams
        // for as long as it lives: on a seller with a connection per customer, the largest
        // single item of its memory per customer (a heap profile at 1,000 customers: 18 MB).
        // What goes over a connection here is small (sync messages, statements), so one
        // datagram per send costs little.
        .enable_segmentation_offload(false)
        .build()
}

pub(crate) async fn bind_endpoint(
    secret: &vault_core::DeviceKey,
    config: &NodeConfig,
    alpns: Vec<Vec<u8>>,
) -> Result<Endpoint, SyncError> {
    bind_secret(iroh::SecretKey::from_bytes(&secret.secret_bytes()), config, alpns).await
}

/// Binds an endpoint under `secret_key` (a device's, or an intention's pseudonym's).
pub(crate) async fn bind_secret(
    secret_key: iroh::SecretKey,
    config: &NodeConfig,
    alpns: Vec<Vec<u8>>,
) -> Result<Endpoint, SyncError> {
    let builder = if config.relay {
        Endpoint::builder(presets::N0)
    } else {
        Endpoint::builder(presets::Minimal).relay_mode(RelayMode::Disabled)
    };
    let mut builder = builder
        .secret_key(secret_key)
        .alpns(alpns)
        .transport_config(transport_config())
        .portmapper_config(iroh::endpoint::PortmapperConfig::Disabled);
    if let Some(addr) = config.bind {
        builder = builder.clear_ip_transports().bind_addr(addr).map_err(|e| SyncError::Bind(Box::new(e)))?;
    } else if !config.relay {
        builder = builder
            .clear_ip_transports()
            .bind_addr(SocketAddr::from(([0, 0, 0, 0], 0)))
            .map_err(|e| SyncError::Bind(Box::new(e)))?;
    }
    let endpoint = builder.bind().await.map_err(|e| SyncError::Bind(Box::new(e)))?;
    if config.relay
        && let Some(say) = RELAYS_UNREACHABLE.get().copied()
    {
        let watched = endpoint.clone();
        tokio::spawn(async move {
            if tokio::time::timeout(RELAY_WAIT, watched.online()).await.is_err() && !watched.is_closed() {
                say();
            }
        });
    }
    Ok(endpoint)
}

/// Binds an endpoint that speaks for a pseudonym, for one call. With relays on it goes through
/// a relay only: no local or public addresses of this machine are offered to the peer (iroh's
/// path discovery would tell them), and nothing is published under the pseudonym (the peer is
/// found through DNS, not announced to it). Relays off (local networks, tests), it binds a
/// fresh port and the peer sees that address.
pub(crate) async fn bind_pseudonymous(
    secret_key: iroh::SecretKey,
    relay: bool,
) -> Result<Endpoint, SyncError> {
    if !relay {
        return bind_secret(secret_key, &NodeConfig { relay: false, ..NodeConfig::default() }, Vec::new())
            .await;
    }
    Endpoint::builder(presets::Minimal)
        .relay_mode(RelayMode::Default)
        .address_lookup(iroh::address_lookup::DnsAddressLookup::n0_dns())
        .clear_ip_transports()
        .secret_key(secret_key)
        .transport_config(transport_config())
        .portmapper_config(iroh::endpoint::PortmapperConfig::Disabled)
        .bind()
        .await
        .map_err(|e| SyncError::Bind(Box::new(e)))
}

/// How long relays may take to answer before the program is told they cannot be reached.
const RELAY_WAIT: Duration = Duration::from_secs(5);
/// Called when relays are on and none answered within [`RELAY_WAIT`] (see
/// [`on_relays_unreachable`]).
static RELAYS_UNREACHABLE: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what to do when relays are on and none can be reached within a few seconds of an
/// endpoint binding (a program says so once, in one line, instead of the network stack's
/// repeated warnings). Set once; later calls change nothing.
pub fn on_relays_unreachable(say: fn()) {
    let _ = RELAYS_UNREACHABLE.set(say);
}

/// Direct addresses worth putting in a ticket: the bound sockets, with an unspecified address
/// replaced by loopback (reachable on this machine) .
pub(crate) fn ticket_addrs(endpoint: &Endpoint) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = endpoint.addr().ip_addrs().copied().collect();
    for sock in endpoint.bound_sockets() {
        let sock = if sock.ip().is_unspecified() {
            SocketAddr::new(
                if sock.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() },
                sock.port(),
            )
        } else {
            sock
        };
        if !addrs.contains(&sock) {
            addrs.push(sock);
        }
    }
    addrs
}

/// Converts a vault device id into an iroh endpoint id.
pub(crate) fn endpoint_id(device: vault_core::DeviceId) -> iroh::EndpointId {
    iroh::PublicKey::from_bytes(device.as_bytes()).expect("device ids are valid ed25519 keys")
}

/// Converts an iroh endpoint id into a vault device id.
pub(crate) fn device_id(id: iroh::EndpointId) -> Option<vault_core::DeviceId> {
    vault_core::DeviceId::from_bytes(*id.as_bytes()).ok()
}
