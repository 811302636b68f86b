//! Writes the seed corpora of the fuzz targets in `fuzz/` from real encoded values: the frames
//! of the known-answer fixture, signed statements made with the fixture keys, tickets and ids,
//! real exports and a real small vault file.
//!
//! ```text
//! cargo run -p vault-core --example fuzz_seeds -- fuzz/corpus
//! ```
//!
//! Deterministic except for the exports and the vault file (random ids, nonces and salts).

use std::error::Error;
use std::fs;
use std::path::PathBuf;

use vault_core::{
    ConsentRequest, DB_FILE, Denial, DeviceKey, ErasureReceipt, Grant, GrantId, Identity, KdfParams,
    Passphrase, Price, PurchaseRecord, RequestId, Revocation, Signed, Statement, Ticket, Vault,
    encode_sync_body,
};

/// The customer's and the shop's keys of the known-answer fixtures (protocol.rs tests).
fn keys() -> (Identity, Identity, DeviceKey) {
    (
        Identity::from_secret_bytes(&[3; 32]),
        Identity::from_secret_bytes(&[4; 32]),
        DeviceKey::from_secret_bytes(&[5; 32]),
    )
}

struct Corpus(PathBuf);

impl Corpus {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) -> Result<(), Box<dyn Error>> {
        let dir = self.0.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)?;
        Ok(())
    }

    fn statement<T: Statement>(
        &self,
        target: &str,
        name: &str,
        statement: T,
        by: &Identity,
    ) -> Result<(), Box<dyn Error>> {
        self.put(target, name, &Signed::sign(statement, by)?.to_bytes())
    }
}

fn hex(line: &str) -> Result<Vec<u8>, Box<dyn Error>> {
    (0..line.len()).step_by(2).map(|i| Ok(u8::from_str_radix(&line[i..i + 2], 16)?)).collect()
}

fn tea() -> Result<PurchaseRecord, Box<dyn Error>> {
    Ok(PurchaseRecord::new("Tea".into(), "Acme".into(), Price::parse("4.50", "EUR")?, "2026-11-01".into())
        .category(Some("food".into()))
        .tags(vec!["food".into(), "gift".into()])
        .rating(Some(5))
        .review(Some("good".into())))
}

fn main() -> Result<(), Box<dyn Error>> {
    let out = std::env::args().nth(1).ok_or("usage: fuzz_seeds OUTPUT_DIR (fuzz/corpus)")?;
    let corpus = Corpus(PathBuf::from(out));
    let (alice, shop, device) = keys();

    // Frames: every line of the known-answer fixture.
    let frames = include_str!("../tests/fixtures/frames-v1.txt");
    for (i, line) in frames.lines().enumerate() {
        corpus.put("frame", &format!("known-answer-{i:02}"), &hex(line.trim())?)?;
    }
    // Rosters and breach notices: the statement their known-answer frame carries (0x0e, 0x0f).
    for (code, target) in [("0e", "device_roster"), ("0f", "breach_notice")] {
        for line in frames.lines().filter(|l| l.starts_with(code)) {
            corpus.put(target, "known-answer", &hex(line.trim())?[1..])?;
        }
    }

    // Market frames, and the offer and the acceptance their known-answer lines carry.
    let market = include_str!("../tests/fixtures/market-v1.txt");
    for (i, line) in market.lines().enumerate() {
        let bytes = hex(line.trim())?;
        corpus.put("market_frame", &format!("known-answer-{i:02}"), &bytes)?;
        match bytes.first() {
            Some(0x44) => corpus.put("offer", "known-answer", &bytes[9..])?,
            Some(0x45) => corpus.put("acceptance", "known-answer", &bytes[65..])?,
            _ => {}
        }
    }

    // Key events: each line of their known-answer fixture, and the chain they make.
    let events = include_str!("../tests/fixtures/key-event-v1.txt");
    let mut chain = Vec::new();
    for (i, line) in events.lines().enumerate() {
        let bytes = hex(line.trim())?;
        corpus.put("key_event", &format!("known-answer-{i:02}"), &bytes)?;
        chain.extend_from_slice(&bytes);
    }
    corpus.put("key_event", "chain", &chain)?;

    // Sync bodies: bare and with an epoch, around real Automerge sync messages.
    let (first, second) = automerge_messages()?;
    corpus.put("sync_body", "first-message", &first)?;
    corpus.put("sync_body", "changes-epoch-0", &second)?;
    corpus.put("sync_body", "changes-epoch-3", &encode_sync_body(3, &second))?;

    // Statements, each kind in its wire form.
    let grant_id = GrantId::from_raw(&[7; 10]).ok_or("id")?;
    let request_id = RequestId::from_raw(&[9; 10]).ok_or("id")?;
    let grant = Grant {
        id: grant_id,
        issuer: alice.public(),
        audience: shop.public(),
        fields: vec!["profile.email".parse()?],
        filter: None,
        purpose: "delivery".into(),
        issued_at: 1_800_000_000,
        expires_at: None,
        prices: true,
        request: None,
    };
    corpus.statement("grant", "known-answer", grant.clone(), &alice)?;
    corpus.statement(
        "grant",
        "feed-filtered-expiring",
        Grant {
            fields: vec!["purchases".parse()?, "purchases.*.item".parse()?, "preferences.diet".parse()?],
            filter: Some("purchases[tag=books]".parse()?),
            expires_at: Some(1_900_000_000),
            prices: false,
            request: Some(request_id),
            ..grant
        },
        &alice,
    )?;
    corpus.statement(
        "revocation",
        "known-answer",
        Revocation { grant: grant_id, issuer: alice.public(), revoked_at: 1_800_000_100 },
        &alice,
    )?;
    corpus.statement(
        "erasure_receipt",
        "known-answer",
        ErasureReceipt {
            grant: grant_id,
            issuer: alice.public(),
            grantee: shop.public(),
            erased_at: 1_800_000_200,
            device: None,
        },
        &shop,
    )?;
    let request = ConsentRequest {
        id: request_id,
        requester: shop.public(),
        holder: alice.public(),
        fields: vec!["profile.email".parse()?],
        filter: None,
        purpose: "delivery".into(),
        duration: Some(90 * 86_400),
        prices: false,
        made_at: 1_800_000_000,
        name: None,
        reply_to: None,
    };
    corpus.statement("consent_request", "known-answer", request.clone(), &shop)?;
    corpus.statement(
        "consent_request",
        "follow-filtered",
        ConsentRequest {
            fields: vec!["purchases".parse()?, "profile.address.city".parse()?],
            filter: Some("purchases[seller=Acme]".parse()?),
            duration: None,
            prices: true,
            ..request
        },
        &shop,
    )?;
    let denial = Denial {
        request: request_id,
        holder: alice.public(),
        requester: shop.public(),
        reason: Some("not now".into()),
        denied_at: 1_800_000_300,
    };
    corpus.statement("denial", "known-answer", denial.clone(), &alice)?;
    corpus.statement("denial", "no-reason", Denial { reason: None, ..denial }, &alice)?;
    let certificate = alice.certify(device.public());
    corpus.put("device_certificate", "known-answer", &certificate.to_bytes())?;

    // Tickets and ids, as users paste them.
    let ticket = Ticket::new(certificate, vec!["127.0.0.1:4433".parse()?, "[::1]:9".parse()?]);
    corpus.put(
        "ticket",
        "known-answer",
        include_str!("../tests/fixtures/ticket-v1.txt").trim().as_bytes(),
    )?;
    corpus.put("ticket", "binary", &ticket.to_bytes())?;
    corpus.put("ticket", "no-address", Ticket::new(certificate, Vec::new()).to_string().as_bytes())?;
    corpus.put("ticket", "identity", alice.public().to_string().as_bytes())?;
    corpus.put("ticket", "grant-id", grant_id.to_string().as_bytes())?;

    // A real small vault: its file (about 116 KB: one page or more per table), and its exports.
    let dir = tempfile::tempdir()?;
    let mut vault =
        Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("fuzz"))?;
    fill(&mut vault)?;
    corpus.put("import_json", "export", &serde_json::to_vec_pretty(&vault.records().export_json())?)?;
    corpus.put("import_automerge", "export", &vault.records_mut().export_automerge())?;
    drop(vault);
    corpus.put("vault_open", "small", &fs::read(dir.path().join(DB_FILE))?)?;
    Ok(())
}

fn fill(vault: &mut Vault) -> Result<(), Box<dyn Error>> {
    vault.records_mut().set_profile("email", "ada@example.org")?;
    vault.records_mut().set_profile("address.city", "Paris")?;
    vault.records_mut().add_purchase(&tea()?)?;
    vault.records_mut().set_preference("diet", "vegan")?;
    Ok(())
}

/// The first two messages of a sync between an empty replica and a small vault document: the
/// replica's heads, then the changes it lacks.
fn automerge_messages() -> Result<(Vec<u8>, Vec<u8>), Box<dyn Error>> {
    use automerge::AutoCommit;
    use automerge::sync::{State, SyncDoc};

    let dir = tempfile::tempdir()?;
    let mut vault =
        Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("fuzz"))?;
    fill(&mut vault)?;
    let mut full = AutoCommit::load(&vault.records_mut().export_automerge())?;
    let mut empty = AutoCommit::new();
    let (mut full_state, mut empty_state) = (State::new(), State::new());
    let first = empty.sync().generate_sync_message(&mut empty_state).ok_or("no first message")?;
    full.sync().receive_sync_message(&mut full_state, first.clone())?;
    let second = full.sync().generate_sync_message(&mut full_state).ok_or("no second message")?;
    Ok((first.encode(), second.encode()))
}
