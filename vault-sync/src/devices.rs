//! Carries the device protocol (ALPN `vault/device/1`) between the devices of one identity:
//! what is said, and who is admitted, is vault-core's [`DeviceSession`]; this module accepts,
//! dials, and moves its messages. Every running node keeps a session to each other device it
//! can reach, redialing with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::{Endpoint, EndpointAddr};
use tokio::sync::mpsc;
use vault_core::{DEVICE_ALPN, DeviceAction, DeviceId, DeviceMessage, DeviceSession};

use crate::endpoint::{NodeTasks, device_id, endpoint_id};
use crate::error::SyncError;
use crate::frame::{read_device_message, write_device_message};
use crate::limits::HANDSHAKE_TIMEOUT;

/// Longest wait between two dials of an unreachable device.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A session that lasted this long met the other device: the backoff starts over.
const SESSION_MET: Duration = Duration::from_secs(5);

/// Accepts sessions from the other devices of this identity.
#[derive(Debug, Clone)]
pub(crate) struct DeviceListener {
    pub(crate) shared: Arc<NodeTasks>,
}

impl ProtocolHandler for DeviceListener {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let remote = device_id(conn.remote_id());
        let admitted = vault_core::admit_device(&*self.shared.vault(), remote);
        let peer = match admitted {
            Ok(peer) => peer,
            Err(refused) => {
                self.shared.log_refused(&refused);
                if let Some(device) = remote {
                    tell_removed(&self.shared, &conn, &device).await;
                }
                conn.close(VarInt::from_u32(2), b"not a device of this identity");
                return Ok(());
            }
        };
        let streams = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi()).await;
        if let Ok(Ok((send, recv))) = streams
            && let Err(e) = session(&self.shared, peer, send, recv).await
        {
            tracing::debug!(error = %e, "device session ended");
        }
        conn.close(VarInt::from_u32(0), b"");
        Ok(())
    }
}

/// A removed device is told of its removal at most once per this interval.
const TELL_REMOVED_EVERY: Duration = Duration::from_secs(60);
/// At most this much of what a removed device sends while it is told is read (and dropped).
const TELL_REMOVED_DRAIN: usize = 64 * 1024;

/// Hands a removed device of this identity that called the identity key's word that it was
/// removed: the identity's key events (a roster signed after a rotation is judged by them),
/// then the roster naming it removed. It checks both before it believes them. Meanwhile what
/// it sends is read, so that its writes never keep it from reading. Nothing for any other
/// device; at most once a minute per device, and at most [`HANDSHAKE_TIMEOUT`] each time.
async fn tell_removed(shared: &NodeTasks, conn: &Connection, device: &DeviceId) {
    let now = std::time::Instant::now();
    let recently = |book: &crate::peers::PeerBook| {
        book.told_removed.get(device).is_some_and(|at| now.duration_since(*at) < TELL_REMOVED_EVERY)
    };
    if recently(&shared.book()) {
        return;
    }
    // Only a device this identity lists as removed gets a notice (and a place below: strangers'
    // keys are free, they must not take the places).
    let (keys, roster) = {
        let vault = shared.vault();
        let Ok(Some(roster)) = vault.devices().removal_notice(device) else { return };
        let Ok(keys) = vault.keys().own_key_events() else { return };
        (keys, roster)
    };
    {
        let mut book = shared.book();
        if recently(&book) {
            return;
        }
        book.told_removed.retain(|_, at| now.duration_since(*at) < TELL_REMOVED_EVERY);
        if book.told_removed.len() >= vault_core::MAX_DEVICES {
            return;
        }
        book.told_removed.insert(*device, now);
    }
    let told = async {
        let (mut send, mut recv) = conn.accept_bi().await.ok()?;
        if !keys.is_empty() {
            write_device_message(&mut send, &DeviceMessage::Keys(keys)).await.ok()?;
        }
        write_device_message(&mut send, &DeviceMessage::Roster(roster)).await.ok()?;
        send.finish().ok()?;
        // Until the removed device hangs up: what it sent is read and dropped.
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while let Ok(Some(n)) = recv.read(&mut sink).await {
            read += n;
            if read > TELL_REMOVED_DRAIN {
                break;
            }
        }
        Some(())
    };
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, told).await;
}

/// An active device of this identity other than this one, while this one is active too.
fn admitted(shared: &NodeTasks, peer: &DeviceId) -> bool {
    DeviceSession::admits(&*shared.vault(), peer)
}

/// Keeps a session to every other active device of this identity, for as long as the node runs.
pub(crate) async fn keep_devices(shared: Arc<NodeTasks>, endpoint: Endpoint) {
    let mut changes = shared.changes.subscribe();
    let mut running: HashMap<DeviceId, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let others = shared.vault().devices().others().unwrap_or_default();
        running.retain(|_, task| !task.is_finished());
        for device in others {
            running
                .entry(device.id)
                .or_insert_with(|| tokio::spawn(keep_one(shared.clone(), endpoint.clone(), device.id)));
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(MAX_BACKOFF) => {}
        }
    }
}

async fn keep_one(shared: Arc<NodeTasks>, endpoint: Endpoint, device: DeviceId) {
    let mut backoff = Duration::from_millis(500);
    while admitted(&shared, &device) {
        let addrs = shared
            .vault()
            .devices()
            .list()
            .ok()
            .and_then(|l| l.into_iter().find(|d| d.id == device))
            .map(|d| d.addrs)
            .unwrap_or_default();
        let mut addr = EndpointAddr::new(endpoint_id(device));
        for sock in addrs {
            addr = addr.with_ip_addr(sock);
        }
        let dialed = tokio::time::timeout(HANDSHAKE_TIMEOUT, endpoint.connect(addr, DEVICE_ALPN)).await;
        if let Ok(Ok(conn)) = dialed {
            if let Ok((send, recv)) = conn.open_bi().await {
                let began = std::time::Instant::now();
                if let Err(e) = session(&shared, device, send, recv).await {
                    tracing::debug!(error = %e, "device session ended");
                }
                // A session that lasted is a device met: call again soon if it ends. One turned
                // away at once (the other refused this device) waits out the backoff.
                if began.elapsed() >= SESSION_MET {
                    backoff = Duration::from_millis(500);
                }
            }
            conn.close(VarInt::from_u32(0), b"");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One session with another device, driven by a [`DeviceSession`]: writes what it says, feeds
/// it what the other device sends, until either side ends it.
async fn session(
    shared: &NodeTasks,
    peer: DeviceId,
    mut send: SendStream,
    recv: RecvStream,
) -> Result<(), SyncError> {
    let mut changes = shared.changes.subscribe();
    let mut machine = DeviceSession::new(peer);
    let (tx, mut rx) = mpsc::channel(4);
    let reader = tokio::spawn(read_all(recv, tx));
    let result = async {
        let start = machine.start(&mut *shared.vault())?;
        if perform(shared, &mut send, start).await? {
            return Ok(());
        }
        loop {
            let turn = machine.turn(&mut *shared.vault())?;
            if perform(shared, &mut send, turn.actions).await? {
                return Ok(());
            }
            let actions = tokio::select! {
                // What the other device sent comes first: it is read before this side writes
                // its next batch, so two sides catching up never both wait on full streams.
                biased;
                incoming = rx.recv() => match incoming {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(message)) => machine.on_message(&mut *shared.vault(), message)?,
                },
                _ = changes.changed() => Vec::new(),
                _ = std::future::ready(()), if turn.more => Vec::new(),
            };
            if perform(shared, &mut send, actions).await? {
                return Ok(());
            }
        }
    }
    .await;
    reader.abort();
    let _ = send.finish();
    result
}

/// Does what the machine said, in order; whether the session ends.
async fn perform(
    shared: &NodeTasks,
    send: &mut SendStream,
    actions: Vec<DeviceAction>,
) -> Result<bool, SyncError> {
    for action in actions {
        match action {
            DeviceAction::Send(message) => write_device_message(send, &message).await?,
            DeviceAction::Changed => shared.changed(),
            DeviceAction::End => return Ok(true),
        }
    }
    Ok(false)
}

async fn read_all(mut recv: RecvStream, tx: mpsc::Sender<Result<DeviceMessage, SyncError>>) {
    loop {
        let message = read_device_message(&mut recv).await;
        let end = !matches!(message, Ok(Some(_)));
        let item = match message {
            Ok(Some(m)) => Ok(m),
            Ok(None) => break,
            Err(e) => Err(e),
        };
        if tx.send(item).await.is_err() || end {
            break;
        }
    }
}
