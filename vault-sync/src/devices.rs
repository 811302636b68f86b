//! Replication between the devices of one identity (ALPN `vault/device/1`): the customer's
//! document, by the Automerge sync protocol, the list of devices, the identity's key events
//! (a rotation made on one device reaches every other, and a device whose key it replaced drops
//! it), the newest device roster
//! the identity key signed (so a device without that key can hand it to peers), and the
//! sharing state (grants, contacts, requests, the access log: each side says what it holds,
//! then sends what the other lacks, see vault-core's replication.rs).
//!
//! Only an active device of the identity gets in: its QUIC-authenticated endpoint id must be
//! in this vault's list and not removed. A device removed while connected is cut off at the
//! next change; a device that learns it was removed stops. Every running node keeps a session
//! to each other device it can reach, redialing with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::{Endpoint, EndpointAddr};
use tokio::sync::mpsc;
use vault_core::{
    DeviceId, DeviceRecord, DeviceRoster, DeviceSync, KEY_EVENT_LEN, KeyEvent, MAX_FRAME, MAX_KEY_EVENTS,
    MAX_SHARED_BATCH, MAX_SHARED_HAVE, SharedHave, Signed, decode_events,
};

use crate::endpoint::Shared;
use crate::{HANDSHAKE_TIMEOUT, SyncError, device_id, endpoint_id};

/// The ALPN of sessions between devices of one identity.
pub const DEVICE_ALPN: &[u8] = b"vault/device/1";
/// Largest device list message (the list holds at most `MAX_DEVICES` short records).
const LIST_LIMIT: usize = 256 * 1024;
/// Longest wait between two dials of an unreachable device.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

const TAG_LIST: u8 = 1;
const TAG_DOC: u8 = 2;
const TAG_ROSTER: u8 = 3;
const TAG_HAVE: u8 = 4;
const TAG_SHARED: u8 = 5;
/// The identity's key events, each one's fixed-size wire form after the other.
const TAG_KEYS: u8 = 6;
/// Largest roster message (a roster body is at most 16 KiB, plus signature and certificate).
const ROSTER_LIMIT: usize = 32 * 1024;

/// One message between devices.
enum DeviceMessage {
    List(Vec<DeviceRecord>),
    Doc(Vec<u8>),
    Roster(Signed<DeviceRoster>),
    Keys(Vec<KeyEvent>),
    Have(SharedHave),
    Shared(Vec<u8>),
}

/// Accepts sessions from the other devices of this identity.
#[derive(Debug, Clone)]
pub(crate) struct DeviceListener {
    pub(crate) shared: Arc<Shared>,
}

impl ProtocolHandler for DeviceListener {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let Some(peer) = device_id(conn.remote_id()).filter(|p| admitted(&self.shared, p)) else {
            crate::node::log_refused(
                &self.shared,
                None,
                "a device that is not an active device of this identity",
            );
            conn.close(VarInt::from_u32(2), b"not a device of this identity");
            return Ok(());
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

/// An active device of this identity other than this one, while this one is active too.
fn admitted(shared: &Shared, peer: &DeviceId) -> bool {
    shared.vault().devices().may_sync_with(peer).unwrap_or(false)
}

/// Keeps a session to every other active device of this identity, for as long as the node runs.
pub(crate) async fn keep_devices(shared: Arc<Shared>, endpoint: Endpoint) {
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

async fn keep_one(shared: Arc<Shared>, endpoint: Endpoint, device: DeviceId) {
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
                backoff = Duration::from_millis(500);
                if let Err(e) = session(&shared, device, send, recv).await {
                    tracing::debug!(error = %e, "device session ended");
                }
            }
            conn.close(VarInt::from_u32(0), b"");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One session with another device: both send their device list, then the document's sync
/// messages, until either side ends it or `peer` stops being an active device here.
async fn session(
    shared: &Shared,
    peer: DeviceId,
    mut send: SendStream,
    recv: RecvStream,
) -> Result<(), SyncError> {
    let mut changes = shared.changes.subscribe();
    let mut state = DeviceSync::default();
    let mut list_sent: Option<Vec<u8>> = None;
    let mut keys_sent: Option<Vec<u8>> = None;
    // What the other device holds of the sharing state: unknown until it says.
    let mut theirs: Option<SharedHave> = None;
    let (tx, mut rx) = mpsc::channel(4);
    let reader = tokio::spawn(read_all(recv, tx));
    let result = async {
        let have = {
            let mut vault = shared.vault();
            vault.replication_mut().seed()?;
            vault.replication().have(&peer)?
        };
        write_message(&mut send, TAG_HAVE, &have.to_bytes()).await?;
        loop {
            if !admitted(shared, &peer) {
                return Ok(());
            }
            let list = {
                let mut vault = shared.vault();
                let addrs = vault.serving().node_addrs();
                DeviceRecord::encode_list(&vault.devices_mut().for_peer(&addrs)?)
            };
            // Key events before rosters: a roster signed by a rotated key is judged by them.
            let keys: Vec<u8> =
                shared.vault().keys().own_key_events()?.iter().flat_map(KeyEvent::to_bytes).collect();
            if !keys.is_empty() && keys_sent.as_ref() != Some(&keys) {
                write_message(&mut send, TAG_KEYS, &keys).await?;
                keys_sent = Some(keys);
                list_sent = None;
            }
            if list_sent.as_ref() != Some(&list) {
                write_message(&mut send, TAG_LIST, &list).await?;
                list_sent = Some(list);
                let rosters = shared.vault().devices().rosters_for_devices()?;
                for roster in rosters {
                    write_message(&mut send, TAG_ROSTER, &roster.to_bytes()).await?;
                }
            }
            let outgoing = shared.vault().devices_mut().sync_generate(&mut state)?;
            if let Some(message) = outgoing {
                write_message(&mut send, TAG_DOC, &message).await?;
            }
            // One batch per turn: between two, what the other device sent is read, so two
            // devices catching up with each other never both wait on a full stream.
            let mut more = false;
            if let Some(theirs) = theirs.as_mut() {
                let batch = shared.vault().replication().batch(theirs)?;
                if let Some(batch) = batch {
                    write_message(&mut send, TAG_SHARED, &batch).await?;
                    more = true;
                }
            }
            tokio::select! {
                // What the other device sent comes first: it is read before this side writes
                // its next batch, so two sides catching up never both wait on full streams.
                biased;
                incoming = rx.recv() => match incoming {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(DeviceMessage::List(list))) => {
                        let merged = shared.vault().devices_mut().merge(&peer, &list)?;
                        if merged.wrote {
                            // Other sessions look again at whom they admit.
                            shared.changes.send_modify(|n| *n += 1);
                        }
                        if merged.removed_here {
                            tracing::warn!("this device was removed from its identity on another device");
                            return Ok(());
                        }
                    }
                    Some(Ok(DeviceMessage::Roster(roster))) => {
                        let newer = shared.vault().devices_mut().keep_own_roster(&roster)?;
                        if newer {
                            // Entries of a device this one did not know yet waited: ask again.
                            let have = shared.vault().replication().have(&peer)?;
                            write_message(&mut send, TAG_HAVE, &have.to_bytes()).await?;
                        }
                    }
                    Some(Ok(DeviceMessage::Keys(events))) => {
                        let identity = shared.vault().identity();
                        if shared.vault().keys_mut().accept_key_events(identity, &events)? {
                            shared.changes.send_modify(|n| *n += 1);
                        }
                    }
                    Some(Ok(DeviceMessage::Have(have))) => {
                        // A fork (a device restored from an older copy) shows in what the
                        // other device holds: repaired before anything is sent.
                        let repaired = shared
                            .vault()
                            .replication_mut().take_have(&have)
                            .map_err(|e| SyncError::Protocol(e.to_string()))?;
                        if repaired {
                            shared.changes.send_modify(|n| *n += 1);
                            let mine = shared.vault().replication().have(&peer)?;
                            write_message(&mut send, TAG_HAVE, &mine.to_bytes()).await?;
                        }
                        theirs = Some(have);
                    }
                    Some(Ok(DeviceMessage::Shared(_))) | Some(Ok(DeviceMessage::Doc(_)))
                        if !admitted(shared, &peer) => return Ok(()),
                    Some(Ok(DeviceMessage::Shared(bytes))) => {
                        let mut believed = theirs.take().unwrap_or_default();
                        let changed = shared
                            .vault()
                            .replication_mut().receive(&peer, &mut believed, &bytes)
                            .map_err(|e| SyncError::Protocol(e.to_string()))?;
                        theirs = Some(believed);
                        if changed {
                            shared.changes.send_modify(|n| *n += 1);
                        }
                    }
                    Some(Ok(DeviceMessage::Doc(bytes))) => {
                        let changed = {
                            let mut vault = shared.vault();
                            let changed = vault.devices_mut().sync_receive(&mut state, &bytes)?;
                            if changed {
                                vault.projections_mut().update(None)?;
                            }
                            changed
                        };
                        if changed {
                            shared.changes.send_modify(|n| *n += 1);
                        }
                    }
                },
                _ = changes.changed() => {}
                _ = std::future::ready(()), if more => {}
            }
        }
    }
    .await;
    reader.abort();
    let _ = send.finish();
    result
}

async fn read_all(mut recv: RecvStream, tx: mpsc::Sender<Result<DeviceMessage, SyncError>>) {
    loop {
        let message = read_message(&mut recv).await;
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

async fn write_message(send: &mut SendStream, tag: u8, body: &[u8]) -> Result<(), SyncError> {
    let mut framed = Vec::with_capacity(body.len() + 5);
    framed.extend_from_slice(&((body.len() + 1) as u32).to_be_bytes());
    framed.push(tag);
    framed.extend_from_slice(body);
    send.write_all(&framed).await.map_err(|e| SyncError::Io(Box::new(e)))
}

async fn read_message(recv: &mut RecvStream) -> Result<Option<DeviceMessage>, SyncError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(iroh::endpoint::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(SyncError::Io(Box::new(e))),
    }
    let len = u32::from_be_bytes(len) as usize;
    let mut tag = [0u8];
    if len == 0 {
        return Err(SyncError::Protocol("empty device message".into()));
    }
    recv.read_exact(&mut tag).await.map_err(|e| SyncError::Io(Box::new(e)))?;
    // The limit follows the kind of message, and is checked before anything is allocated.
    let limit = match tag[0] {
        TAG_LIST => LIST_LIMIT,
        TAG_DOC => MAX_FRAME,
        TAG_ROSTER => ROSTER_LIMIT,
        TAG_HAVE => MAX_SHARED_HAVE,
        TAG_SHARED => MAX_SHARED_BATCH,
        TAG_KEYS => MAX_KEY_EVENTS * KEY_EVENT_LEN,
        _ => return Err(SyncError::Protocol("unknown device message".into())),
    };
    if len - 1 > limit {
        return Err(SyncError::Protocol("device message too large".into()));
    }
    let mut body = vec![0u8; len - 1];
    recv.read_exact(&mut body).await.map_err(|e| SyncError::Io(Box::new(e)))?;
    match tag[0] {
        TAG_LIST => DeviceRecord::decode_list(&body)
            .map(|l| Some(DeviceMessage::List(l)))
            .ok_or_else(|| SyncError::Protocol("malformed device list".into())),
        TAG_ROSTER => Signed::<DeviceRoster>::from_bytes(&body)
            .map(|r| Some(DeviceMessage::Roster(r)))
            .map_err(|_| SyncError::Protocol("malformed device roster".into())),
        TAG_HAVE => SharedHave::from_bytes(&body)
            .map(|h| Some(DeviceMessage::Have(h)))
            .ok_or_else(|| SyncError::Protocol("malformed sharing-state summary".into())),
        TAG_SHARED => Ok(Some(DeviceMessage::Shared(body))),
        TAG_KEYS => decode_events(&body)
            .map(|e| Some(DeviceMessage::Keys(e)))
            .map_err(|_| SyncError::Protocol("malformed key events".into())),
        _ => Ok(Some(DeviceMessage::Doc(body))),
    }
}
