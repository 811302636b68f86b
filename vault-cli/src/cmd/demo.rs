//! `vault demo`: the whole story on this machine, in a temporary directory. Three vaults
//! (Alice the customer, Acme the seller, Bob her friend), each with a real iroh endpoint on
//! loopback, relays off. Every step is checked; the command exits 0 only if all of them pass.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vault_core::{
    Approval, AuditFilter, AuditKind, FeedFilter, GrantStatus, KdfParams, NewRequest, Passphrase, Price,
    PurchaseRecord, RequestStatus, ShareStatus, Vault,
};
use vault_sync::{Node, NodeConfig};

use crate::app::Outcome;
use crate::cli::DemoArgs;
use crate::cmd::audit::describe_event;
use crate::runtime::runtime;

/// How long any one step may take before the demo calls it failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Prints the story and counts the checks.
struct Story {
    step: usize,
    checks: usize,
}

impl Story {
    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n{}. {title}", self.step);
    }

    fn say(&self, text: impl std::fmt::Display) {
        for line in text.to_string().lines() {
            println!("   {line}");
        }
    }

    fn check(&mut self, ok: bool, what: &str) -> Result<()> {
        if !ok {
            println!("   FAILED: {what}");
            bail!("the demo failed at step {}: {what}", self.step);
        }
        self.checks += 1;
        println!("   ok: {what}");
        Ok(())
    }
}

/// Waits until `check` holds on `node`'s vault; returns how long it took.
async fn until<T>(
    node: &Node,
    what: &str,
    mut check: impl FnMut(&mut Vault) -> Option<T>,
) -> Result<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(v) = node.inspect(&mut check) {
            return Ok((v, start.elapsed()));
        }
        if start.elapsed() > STEP_TIMEOUT {
            bail!("timed out after {}s waiting for: {what}", STEP_TIMEOUT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn purchase(
    item: &str,
    seller: &str,
    price: &str,
    date: &str,
    tag: &str,
    rating: i64,
    review: &str,
) -> PurchaseRecord {
    PurchaseRecord::new(
        item.into(),
        seller.into(),
        Price::parse(price, "EUR").expect("a valid price"),
        date.into(),
    )
    .tags(vec![tag.into()])
    .rating(Some(rating))
    .review(Some(review.into()))
}

fn create(dir: &Path, name: &str, passphrase: &Passphrase) -> Result<Vault> {
    Vault::at(dir.join(name))
        .kdf(KdfParams::DEFAULT)
        .create(passphrase)
        .with_context(|| format!("cannot create {name}'s vault"))
}

pub(crate) fn run(args: &DemoArgs) -> Result<Outcome> {
    let temp;
    let dir: PathBuf = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let mut story = Story { step: 0, checks: 0 };
    let started = Instant::now();
    let result = runtime()?.block_on(tell(&mut story, &dir));
    match result {
        Ok(()) => {
            println!(
                "\nAll {} checks passed in {:.1}s.{}",
                story.checks,
                started.elapsed().as_secs_f64(),
                match &args.keep {
                    Some(d) => format!(" The vaults are in {} (passphrase \"demo\").", d.display()),
                    None => " The demo vaults were deleted.".to_owned(),
                }
            );
            Ok(Outcome::Done)
        }
        Err(e) => Err(e),
    }
}

async fn tell(story: &mut Story, dir: &Path) -> Result<()> {
    let passphrase = Passphrase::new("demo");
    let local = NodeConfig { bind: Some("127.0.0.1:0".parse()?), relay: false, ..NodeConfig::default() };

    story.step("Three people, three vaults, each encrypted on its own device");
    let mut alice = create(dir, "alice", &passphrase)?;
    let acme = create(dir, "acme", &passphrase)?;
    let bob = create(dir, "bob", &passphrase)?;
    story.say(format!("Alice (customer)  {}", alice.identity()));
    story.say(format!("Acme  (seller)    {}", acme.identity()));
    story.say(format!("Bob   (friend)    {}", bob.identity()));

    story.step("Alice fills in her profile and logs purchases");
    for (field, value) in [
        ("name", "Alice Martin"),
        ("email", "alice@example.org"),
        ("phone", "+33 6 12 34 56 78"),
        ("address.street", "12 rue des Lilas"),
        ("address.city", "Lyon"),
        ("address.postcode", "69003"),
        ("address.country", "FR"),
    ] {
        alice.records_mut().set_profile(field, value)?;
    }
    alice.records_mut().set_preference("diet", "vegetarian")?;
    alice.records_mut().add_purchase(&purchase(
        "Trail shoes",
        "Acme",
        "89.00",
        "2026-10-02",
        "sport",
        4,
        "Light, a bit narrow",
    ))?;
    alice.records_mut().add_purchase(&purchase(
        "Espresso beans",
        "Roastery",
        "14.50",
        "2026-10-20",
        "food",
        5,
        "Chocolatey",
    ))?;
    let tent = alice.records_mut().add_purchase(&purchase(
        "Tent",
        "Acme",
        "199.00",
        "2026-11-01",
        "sport",
        3,
        "Leaks at the seams",
    ))?;
    story.say("profile: name, email, phone, address; preference: diet; 3 purchases with ratings and reviews");
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(dir.join("alice"))? {
        raw.extend(std::fs::read(entry?.path())?);
    }
    let email = b"alice@example.org";
    story.check(
        !raw.is_empty() && !raw.windows(email.len()).any(|w| w == email),
        "her email is nowhere in plaintext in her vault's files (database and log)",
    )?;

    let alice = Node::spawn(alice, local.clone()).await?;
    let acme = Node::spawn(acme, local.clone()).await?;
    let bob = Node::spawn(bob, local.clone()).await?;
    let (alice_ticket, acme_ticket, bob_ticket) = (alice.ticket(), acme.ticket(), bob.ticket());
    alice.with_vault(|v| -> Result<()> {
        v.contacts_mut().add("acme", &acme_ticket)?;
        v.contacts_mut().add("bob", &bob_ticket)?;
        Ok(())
    })?;
    acme.with_vault(|v| v.contacts_mut().add("alice", &alice_ticket))?;
    bob.with_vault(|v| v.contacts_mut().add("alice", &alice_ticket))?;
    story.say("each runs a node on loopback; they exchanged tickets and gave each other petnames");

    story.step("Acme asks for delivery details: a signed consent request");
    let asked =
        ["profile.email", "profile.address"].iter().map(|f| f.parse()).collect::<Result<Vec<_>, _>>()?;
    let request = acme.with_vault(|v| {
        v.outbox_mut().make(NewRequest {
            holder: alice_ticket.identity(),
            ticket: Some(alice_ticket.clone()),
            fields: asked,
            filter: None,
            purpose: "delivery of your orders".into(),
            duration: Some(90 * 86_400),
            prices: false,
            name: None,
            reply_to: None,
        })
    })?;
    let request_id = request.statement().id;
    story.say("acme: vault request alice --fields profile.email,profile.address --purpose \"delivery of your orders\" --duration 90d");
    let (info, took) = until(&alice, "the request in Alice's inbox", |v| {
        v.inbox().list().ok()?.into_iter().find(|r| r.request.statement().id == request_id)
    })
    .await?;
    story
        .say(format!("Acme's node delivered it in {} ms. Alice's `vault requests` shows:", took.as_millis()));
    for h in alice.inspect(|v| v.inbox().holdings(info.request.statement())) {
        story.say(format!("  {:<18} {}", h.field.to_string(), if h.held { "held" } else { "not set" }));
    }
    story.check(
        info.peer_name.as_deref() == Some("acme") && info.status == RequestStatus::Pending,
        "Alice sees who asks, for what and why",
    )?;

    story.step("Alice approves; Acme receives exactly those fields, live");
    let grant = alice.with_vault(|v| v.inbox_mut().approve(&request_id, Approval::default()))?;
    let grant_id = grant.statement().id;
    story.say(format!("alice: vault approve {request_id}   (grant {grant_id}, for 90 days)"));
    let (values, took) = until(&acme, "Alice's details in Acme's vault", |v| {
        let share = v.held_mut().list().ok()?.into_iter().find(|s| s.grant.statement().id == grant_id)?;
        share.values.filter(|values| !values["profile"]["email"].is_null())
    })
    .await?;
    story.say(format!("arrived in {} ms: {}", took.as_millis(), serde_json::to_string(&values)?));
    story.check(values["profile"]["address"]["city"] == "Lyon", "Acme holds her email and address")?;
    let text = serde_json::to_string(&values)?;
    story.check(
        !text.contains("+33") && !text.contains("Alice Martin") && !text.contains("Tent"),
        "and nothing else: no phone, no name, no purchases",
    )?;
    let status = acme.inspect(|v| {
        v.outbox().list().ok().and_then(|r| r.into_iter().find(|r| r.request.statement().id == request_id))
    });
    story.check(
        status.is_some_and(|r| r.status == RequestStatus::Approved),
        "Acme's request shows as approved, the signed grant is its consent receipt",
    )?;

    story.step("Bob follows Alice's purchase feed");
    let follow = bob.with_vault(|v| {
        v.outbox_mut().make(NewRequest {
            holder: alice_ticket.identity(),
            ticket: Some(alice_ticket.clone()),
            fields: vec![vault_core::FieldPath::Purchases(None)],
            filter: None,
            purpose: "follow your purchases".into(),
            duration: None,
            prices: true,
            name: None,
            reply_to: None,
        })
    })?;
    let follow_id = follow.statement().id;
    story.say("bob: vault follow alice");
    until(&alice, "Bob's follow request", |v| v.inbox().get(&follow_id).ok().flatten()).await?;
    alice.with_vault(|v| v.inbox_mut().approve(&follow_id, Approval::default()))?;
    story.say(format!("alice: vault approve {follow_id}"));
    let (feed, took) = until(&bob, "Alice's purchases in Bob's feed", |v| {
        v.network_mut().feed(&FeedFilter::default()).ok().filter(|f| f.len() == 3)
    })
    .await?;
    story.say(format!("bob: vault feed   (arrived in {} ms)", took.as_millis()));
    for e in &feed {
        story.say(format!(
            "  {}  alice bought {} at {}  {}  rating {}",
            e.date.as_deref().unwrap_or(""),
            e.item.as_deref().unwrap_or(""),
            e.seller.as_deref().unwrap_or(""),
            e.price.as_ref().map(ToString::to_string).unwrap_or_default(),
            e.rating.unwrap_or(0)
        ));
    }
    story.check(
        feed[0].item.as_deref() == Some("Tent"),
        "Bob sees her purchases, newest first, with ratings and reviews",
    )?;

    story.step("Alice buys something; it appears in Bob's feed while both nodes run");
    let started = Instant::now();
    alice.with_vault(|v| {
        v.records_mut().add_purchase(&purchase(
            "Rain jacket",
            "Acme",
            "120.00",
            "2026-11-20",
            "sport",
            5,
            "Dry at last",
        ))
    })?;
    let (jacket, _) = until(&bob, "the new purchase in Bob's feed", |v| {
        v.network_mut()
            .feed(&FeedFilter::default())
            .ok()?
            .into_iter()
            .find(|e| e.item.as_deref() == Some("Rain jacket"))
    })
    .await?;
    story.say(format!(
        "alice: vault purchase add --item \"Rain jacket\" ...   -> in Bob's feed {} ms later",
        started.elapsed().as_millis()
    ));
    story.check(
        jacket.review.as_deref() == Some("Dry at last"),
        "updates arrive live, with the rating and review",
    )?;
    alice.with_vault(|v| v.records_mut().remove_purchase(&tent))?;
    let (feed, _) = until(&bob, "the deleted purchase gone from Bob's feed", |v| {
        v.network_mut()
            .feed(&FeedFilter::default())
            .ok()
            .filter(|f| f.iter().all(|e| e.item.as_deref() != Some("Tent")))
    })
    .await?;
    story.check(feed.len() == 3, "a purchase Alice deletes disappears from Bob's feed")?;
    let compare = bob.inspect(|v| {
        v.network_mut().feed(&FeedFilter { item: Some("jacket".into()), ..FeedFilter::default() })
    })?;
    story.say(format!(
        "bob: vault feed compare jacket   -> alice paid {}",
        compare.first().and_then(|e| e.price.as_ref()).map(ToString::to_string).unwrap_or_default()
    ));

    story.step("Alice changes her mind: she revokes Acme's access");
    alice.with_vault(|v| v.grants_mut().revoke(&grant_id))?;
    story.say(format!("alice: vault revoke {grant_id}"));
    let (share, _) = until(&acme, "Acme's copy erased", |v| {
        v.held_mut().list().ok()?.into_iter().find(|s| {
            s.grant.statement().id == grant_id && s.status == ShareStatus::Revoked && s.values.is_none()
        })
    })
    .await?;
    story.check(share.ended_at.is_some(), "Acme's vault erased its copy and shows the withdrawal")?;
    let (info, _) = until(&alice, "the erasure receipt", |v| {
        v.grants().get(&grant_id).ok().flatten().filter(|i| i.erasure.is_some())
    })
    .await?;
    story.check(info.status == GrantStatus::Revoked, "Alice holds Acme's signed erasure receipt")?;
    story.say("(what Acme received before the revocation cannot be recalled from a dishonest peer; the receipt is its signed word)");

    story.step("Alice's access log tells the story");
    let events = alice.inspect(|v| v.access_log().list(&AuditFilter::default()))?;
    for e in &events {
        if e.kind != AuditKind::SyncServed {
            story.say(alice.inspect(|v| describe_event(v, e)));
        }
    }
    let served = events.iter().filter(|e| e.kind == AuditKind::SyncServed).count();
    story.say(format!("... and {served} syncs served, each with peer, grant, fields and bytes"));
    let has = |k: AuditKind| events.iter().any(|e| e.kind == k);
    story.check(
        [
            AuditKind::RequestReceived,
            AuditKind::RequestApproved,
            AuditKind::GrantIssued,
            AuditKind::SyncServed,
            AuditKind::GrantRevoked,
            AuditKind::ErasureReceipt,
        ]
        .into_iter()
        .all(has),
        "requests, approvals, grants, syncs served, the revocation and the erasure receipt are all logged",
    )?;

    alice.shutdown().await;
    acme.shutdown().await;
    bob.shutdown().await;
    Ok(())
}
