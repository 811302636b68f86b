//! Serving a grant to a hostile grantee: messages carrying changes are refused before the
//! projection is touched, and accepted messages cost no durable write.

use automerge::sync::{Message, State as SyncState, SyncDoc};
use automerge::{AutoCommit, ROOT, transaction::Transactable};

use crate::identity::{DeviceKey, Identity};
use crate::primitives::{KdfParams, Passphrase};
use crate::vault::{AuditFilter, AuditKind, NewGrant, ServeError, Vault};

fn issuer_with_grant(dir: &std::path::Path, shop: &Identity) -> (Vault, crate::statement::GrantId) {
    let mut v = Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
    v.records_mut().set_profile("email", "ada@example.org").unwrap();
    let grant = v
        .grants_mut()
        .issue(NewGrant {
            audience: shop.public(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            expires_at: None,
            prices: true,
        })
        .unwrap();
    (v, grant.statement().id)
}

#[test]
fn a_grantee_message_writes_nothing_and_changes_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Identity::generate();
    let (mut v, id) = issuer_with_grant(dir.path(), &shop);
    let peer = shop.public();
    let device = DeviceKey::generate().public();
    let mut watcher = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
    let _ = watcher.changed_elsewhere();

    // The grantee's copy, synced the honest way.
    let mut copy = AutoCommit::new();
    let mut state = SyncState::new();
    let mut serving = v.serving_mut().serve_open(&peer, &device, &id).unwrap();
    for _ in 0..4 {
        if let Some(m) = copy.sync().generate_sync_message(&mut state) {
            v.serving_mut().serve_receive(&peer, &device, &id, &mut serving, &m.encode()).unwrap();
        }
        if let Some((m, _)) = v.serving_mut().serve_generate(&peer, &device, &id, &mut serving).unwrap() {
            copy.sync().receive_sync_message(&mut state, Message::decode(&m).unwrap()).unwrap();
        }
    }
    assert_eq!(copy.get_heads(), v.projections_mut().doc(&id).unwrap().unwrap().get_heads());
    // In sync: the grantee's messages from here on are accepted and write nothing.
    let _ = watcher.changed_elsewhere();
    for _ in 0..20 {
        let m = copy.sync().generate_sync_message(&mut SyncState::new()).unwrap();
        v.serving_mut().serve_receive(&peer, &device, &id, &mut serving, &m.encode()).unwrap();
    }
    assert!(!watcher.changed_elsewhere().unwrap(), "a grantee's messages caused durable writes");

    // The grantee edits its copy and sends the change: refused, logged, projection untouched.
    let heads = v.projections_mut().doc(&id).unwrap().unwrap().get_heads();
    copy.put(ROOT, "forged", "yes").unwrap();
    copy.commit();
    let mut pushing = SyncState::new();
    let mut carrying = None;
    for _ in 0..4 {
        let Some(m) = copy.sync().generate_sync_message(&mut pushing) else { break };
        if !m.changes.is_empty() {
            carrying = Some(m);
            break;
        }
        // Learn what the issuer has, as a real grantee would.
        let mut probe = SyncState::new();
        v.projections_mut().doc(&id).unwrap().unwrap().sync().receive_sync_message(&mut probe, m).unwrap();
        let answer =
            v.projections_mut().doc(&id).unwrap().unwrap().sync().generate_sync_message(&mut probe).unwrap();
        copy.sync().receive_sync_message(&mut pushing, answer).unwrap();
    }
    let carrying = carrying.expect("a message carrying the forged change");
    let refused = v.serving_mut().serve_receive(&peer, &device, &id, &mut serving, &carrying.encode());
    assert!(matches!(refused, Err(ServeError::Refused)));
    assert_eq!(v.projections_mut().doc(&id).unwrap().unwrap().get_heads(), heads);
    let refused = v
        .access_log()
        .list(&AuditFilter::default())
        .unwrap()
        .iter()
        .filter(|e| e.kind == AuditKind::ChangeRefused)
        .count();
    assert_eq!(refused, 1);
}

#[test]
fn a_grant_row_put_back_behind_a_running_node_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Identity::generate();
    let (mut node, id) = issuer_with_grant(dir.path(), &shop);
    let peer = shop.public();
    let device = DeviceKey::generate().public();
    // The live grant's row, as a copy of the file taken now would hold it.
    let db = dir.path().join(crate::store::DB_FILE);
    let raw = rusqlite::Connection::open(&db).unwrap();
    let old: Vec<u8> =
        raw.query_row("SELECT blob FROM grants WHERE id = ?1", [id.as_bytes()], |r| r.get(0)).unwrap();
    // Another process revokes; the node catches up and stops serving.
    let mut cli = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
    cli.grants_mut().revoke(&id).unwrap();
    node.refresh().unwrap();
    assert!(node.serving_mut().serve_open(&peer, &device, &id).is_err());
    // Someone with the file puts the un-revoked row back while the node runs.
    raw.execute("UPDATE grants SET blob = ?1 WHERE id = ?2", rusqlite::params![old, id.as_bytes()]).unwrap();
    let err = node.refresh().unwrap_err();
    let cause = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert_eq!(cause, "rows of \"grants\" were removed or replaced");
    assert!(node.serving_mut().serve_open(&peer, &device, &id).is_err(), "the revived grant is not served");
    assert!(node.grants_mut().shares_for(&peer).unwrap().0.is_empty(), "and not listed");
}

/// Group commit (served_log.rs): a served message's record waits in memory, is durable after
/// one commit with every other waiting record, and says so; a commit that cannot happen drops
/// its records and says their messages must not be sent.
#[test]
fn served_messages_are_logged_in_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Identity::generate();
    let (mut v, id) = issuer_with_grant(dir.path(), &shop);
    v.serving_mut().defer_served_log(true);
    let (peer, device) = (shop.public(), DeviceKey::generate().public());
    let served = |v: &mut Vault| {
        v.access_log()
            .list(&AuditFilter::default())
            .unwrap()
            .iter()
            .filter(|e| e.kind == AuditKind::SyncServed)
            .count()
    };

    let mut copy = AutoCommit::new();
    let mut state = SyncState::new();
    let mut serving = v.serving_mut().serve_open(&peer, &device, &id).unwrap();
    let m = copy.sync().generate_sync_message(&mut state).unwrap();
    v.serving_mut().serve_receive(&peer, &device, &id, &mut serving, &m.encode()).unwrap();
    let (m, carries) = v.serving_mut().serve_generate(&peer, &device, &id, &mut serving).unwrap().unwrap();
    assert!(carries);
    let seq = v.serving().served_unlogged().expect("a record waits");
    assert_eq!(v.serving().served_outcome(seq), crate::vault::Logged::Pending);
    let mut other = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
    assert_eq!(served(&mut other), 0, "nothing on disk before the commit");

    assert_eq!(v.serving_mut().flush_served().unwrap(), 1);
    assert_eq!(v.serving().served_outcome(seq), crate::vault::Logged::Durable);
    assert_eq!(v.serving().served_unlogged(), None);
    assert_eq!(served(&mut other), 1, "on disk after it");
    // The stream's state was kept: a new stream on another handle resumes, with nothing to resend.
    copy.sync().receive_sync_message(&mut state, Message::decode(&m).unwrap()).unwrap();
    let mut resumed = other.serving_mut().serve_open(&peer, &device, &id).unwrap();
    let again = other.serving_mut().serve_generate(&peer, &device, &id, &mut resumed).unwrap();
    assert!(again.is_none_or(|(_, carries)| !carries), "resent what the copy holds");

    // A commit that cannot happen (another connection holds the write lock): the record is
    // dropped and its message must not be sent.
    let second = DeviceKey::generate().public();
    let mut serving = v.serving_mut().serve_open(&peer, &second, &id).unwrap();
    let m = AutoCommit::new().sync().generate_sync_message(&mut SyncState::new()).unwrap();
    v.serving_mut().serve_receive(&peer, &second, &id, &mut serving, &m.encode()).unwrap();
    assert!(v.serving_mut().serve_generate(&peer, &second, &id, &mut serving).unwrap().unwrap().1);
    let seq = v.serving().served_unlogged().unwrap();
    let blocker = rusqlite::Connection::open(dir.path().join(crate::store::DB_FILE)).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert!(v.serving_mut().flush_served().is_err());
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(v.serving().served_outcome(seq), crate::vault::Logged::Failed);
    assert_eq!(v.serving().served_unlogged(), None);
    assert_eq!(served(&mut other), 1);
}

/// A message that waited for its log record leaves only if its grant is still served at the
/// epoch it was generated for.
#[test]
fn a_message_generated_before_a_revocation_or_retraction_is_not_current() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Identity::generate();
    let (mut v, id) = issuer_with_grant(dir.path(), &shop);
    let peer = shop.public();
    let epoch = 0; // a new grant's first epoch
    assert!(v.serving_mut().serve_still_current(&peer, &id, epoch));
    assert!(!v.serving_mut().serve_still_current(&peer, &id, epoch + 1), "another epoch");
    assert!(!v.serving_mut().serve_still_current(&Identity::generate().public(), &id, epoch), "another peer");
    v.grants_mut().revoke(&id).unwrap();
    assert!(!v.serving_mut().serve_still_current(&peer, &id, epoch), "revoked");
}
