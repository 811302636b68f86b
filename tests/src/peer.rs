//! Helpers for tests that play a peer by hand: vaults with the fast test KDF, nodes bound to
//! loopback with relays off, raw iroh endpoints that speak the frames directly (as a hostile
//! peer's own software would).

use std::path::Path;
use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream, presets};
use iroh::{Endpoint, EndpointAddr, RelayMode};
use tokio::io::AsyncReadExt;
use vault_core::{ALPN, DeviceKey, Frame, KdfParams, Passphrase, Ticket, Vault, decode, encode_with_length};
use vault_sync::NodeConfig;

/// A new vault in `dir` with the fast test KDF and passphrase `pw`.
pub fn create(dir: &Path) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
}

/// Opens the vault in `dir` (passphrase `pw`): another process's handle on it, as a command
/// would have.
pub fn open(dir: &Path) -> Vault {
    Vault::at(dir).unlock(&Passphrase::new("pw")).unwrap()
}

/// Waits until `check` holds (polling every 10 ms, up to [`crate::HANG`]); returns how long it
/// took, or panics naming `what`.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while start.elapsed() < crate::HANG {
        if check() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A node configuration bound to loopback, relays off.
pub fn local() -> NodeConfig {
    NodeConfig { bind: Some("127.0.0.1:0".parse().unwrap()), relay: false, ..NodeConfig::default() }
}

/// A bare iroh endpoint on loopback under `device`'s key, with no protocol of its own.
pub async fn raw_endpoint(device: &DeviceKey) -> Endpoint {
    Endpoint::builder(presets::Minimal)
        .relay_mode(RelayMode::Disabled)
        .secret_key(iroh::SecretKey::from_bytes(&device.secret_bytes()))
        .clear_ip_transports()
        .bind_addr("127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap()
}

/// Connects `ep` to the node of `ticket` with the vault protocol.
pub async fn dial(ep: &Endpoint, ticket: &Ticket) -> Connection {
    let mut addr = EndpointAddr::new(iroh::PublicKey::from_bytes(ticket.device().as_bytes()).unwrap());
    for a in ticket.addrs() {
        addr = addr.with_ip_addr(*a);
    }
    ep.connect(addr, ALPN).await.unwrap()
}

/// Writes one frame.
pub async fn send(s: &mut SendStream, f: &Frame) {
    s.write_all(&encode_with_length(f)).await.unwrap();
}

/// Reads one frame; `None` when the stream ends, fails or stays silent for 30 s (a node that
/// answers at all answers well within that, however busy the machine).
pub async fn recv(r: &mut RecvStream) -> Option<Frame> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(30), AsyncReadExt::read_exact(r, &mut len)).await.ok()?.ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    AsyncReadExt::read_exact(r, &mut body).await.ok()?;
    decode(&body).ok()
}
