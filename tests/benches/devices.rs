//! Devices of one identity, over real iroh endpoints on loopback (relays off):
//!
//! 1. joining: a new device paired with a 10,000-purchase vault (code checked, package sent,
//!    the new vault made and durable), against the bare Automerge sync protocol moving the same
//!    document between two in-memory documents, in the same run;
//! 2. an edit on one device to durable on the other, both nodes running.
//!
//! `cargo bench -p vault-tests --bench devices`

use std::time::{Duration, Instant};

use automerge::AutoCommit;
use automerge::sync::{Message, State, SyncDoc};
use vault_core::{DeviceKey, KdfParams, Passphrase, PurchaseRecord, Vault};
use vault_sync::{Invitation, Node, join};
use vault_tests::bench::{create, local, pct, record, summary};

/// The bare protocol: the whole document from one in-memory Automerge document to an empty one.
fn bare_sync(bytes: &[u8]) -> Duration {
    let mut source = AutoCommit::load(bytes).unwrap();
    let mut target = AutoCommit::new();
    let (mut s1, mut s2) = (State::new(), State::new());
    let start = Instant::now();
    loop {
        let a = source.sync().generate_sync_message(&mut s1);
        if let Some(m) = &a {
            target
                .sync()
                .receive_sync_message(&mut s2, Message::decode(&m.clone().encode()).unwrap())
                .unwrap();
        }
        let b = target.sync().generate_sync_message(&mut s2);
        if let Some(m) = &b {
            source
                .sync()
                .receive_sync_message(&mut s1, Message::decode(&m.clone().encode()).unwrap())
                .unwrap();
        }
        if a.is_none() && b.is_none() {
            return start.elapsed();
        }
    }
}

async fn joining() {
    let dir = tempfile::tempdir().unwrap();
    let mut laptop = create(dir.path());
    let records: Vec<PurchaseRecord> = (0..10_000).map(record).collect();
    for batch in records.chunks(100) {
        laptop.records_mut().add_purchases(batch).unwrap();
    }
    let document = laptop.records_mut().export_automerge();
    let (mut times, mut bare) = (Vec::new(), Vec::new());
    for run in 0..5 {
        bare.push(bare_sync(&document));
        let new_dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let invitation = Invitation::open(&local(), laptop.now()).await.unwrap();
        let code = invitation.code().to_string().parse().unwrap();
        let device = DeviceKey::generate();
        let key = DeviceKey::from_secret_bytes(&device.secret_bytes());
        let name = format!("box-{run}");
        let inviter = invitation.complete(
            Duration::from_secs(30),
            |_| true,
            |joiner| laptop.devices_mut().invite(joiner, &name).map_err(|e| e.to_string()),
        );
        let options = Vault::at(new_dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS);
        let config = local();
        let joiner =
            join(&code, &device, &config, |_| {}, |p| options.join(&Passphrase::new("other"), key, p));
        let (joined, made) = tokio::join!(inviter, joiner);
        joined.unwrap();
        let mut new = made.unwrap().unwrap();
        times.push(start.elapsed());
        assert_eq!(new.records().purchases().len(), 10_000);
        drop(new.records_mut().export_automerge());
    }
    times.sort();
    bare.sort();
    let (t, b) = (pct(&times, 0.5), pct(&bare, 0.5));
    println!(
        "1 a new device joins a 10,000-purchase vault (pairing, package, new vault durable): p50 {t:.2?} \
         (n=5); bare in-memory Automerge sync of the same document: p50 {b:.2?}; ratio {:.2}x",
        t.as_secs_f64() / b.as_secs_f64()
    );
}

async fn edit_to_other_device() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = create(d1.path());
    for i in 0..100 {
        laptop.records_mut().add_purchase(&record(i)).unwrap();
    }
    let device = DeviceKey::generate();
    let laptop_node = Node::spawn(laptop, local()).await.unwrap();
    let p = laptop_node.with_vault(|v| v.devices_mut().invite(device.public(), "box").unwrap());
    let home = Vault::at(d2.path())
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .join(&Passphrase::new("other"), device, p)
        .unwrap();
    let box_node = Node::spawn(home, local()).await.unwrap();
    let mut changes = box_node.changes();
    let mut samples = Vec::new();
    for i in 0..200 {
        let value = format!("e{i}@example.org");
        let start = Instant::now();
        laptop_node.with_vault(|v| v.records_mut().set_profile("email", &value).unwrap());
        loop {
            if box_node.inspect(|v| v.records().profile()["email"] == value.as_str()) {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), changes.changed()).await;
        }
        samples.push(start.elapsed());
    }
    summary("2 an edit on one device to durable on the other (both nodes running)", samples);
    box_node.shutdown().await;
    laptop_node.shutdown().await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let only = args.iter().find_map(|a| a.strip_prefix("only=")).map(str::to_owned);
    let want = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if want("join") {
        rt.block_on(joining());
    }
    if want("edit") {
        rt.block_on(edit_to_other_device());
    }
}
