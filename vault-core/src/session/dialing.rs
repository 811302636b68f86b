//! Whom the dialing side calls, and whom it believes: which devices of a peer to try (never
//! one its identity key removed), whether the device that answered is the one asked for,
//! which peers to keep a session with, and which audiences to offer shares. The transport dials
//! what these say and nothing else.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::issuer::{ShareSet, share_set};
use crate::identity::{DeviceCertificate, DeviceId, IdentityId, Ticket};
use crate::store::StoreError;
use crate::vault::Vault;

/// A device of the peer a ticket names, in the order to try them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialCandidate {
    /// Dial this device at these addresses.
    Dial {
        /// The device.
        device: DeviceId,
        /// Where it was last seen or set by hand.
        addrs: Vec<SocketAddr>,
    },
    /// A device its identity key removed: not dialed, and the answer if nothing else answers.
    Removed(DeviceId),
}

/// The devices to try for the identity `ticket` names: the ticket's device first (at the
/// addresses set by hand on its contact, when there are any), then the identity's other
/// devices its roster named; a removed one is named, not dialed. Also returns the identity.
///
/// With `spread`, the devices go in this vault's rendezvous order instead ([`crate::dial_order`]
/// keyed by this vault's identity): how a customer reaches the one node of a seller that serves
/// it, and the next when that one does not answer. Only for what any of the peer's devices
/// answers alike (an offer): a roster's addresses are those its devices had when it was signed,
/// so another device than the ticket's may cost a handshake timeout first.
pub fn dial_candidates(
    vault: &Vault,
    ticket: &Ticket,
    spread: bool,
) -> Result<(IdentityId, Vec<DialCandidate>), StoreError> {
    let first = vault.contacts().dial_ticket(ticket)?;
    let identity = first.identity();
    let mut devices = vec![(first.device(), first.addrs().to_vec())];
    for d in vault.devices().devices_of(&identity).unwrap_or_default() {
        if d.device != first.device() && !d.addrs.is_empty() {
            devices.push((d.device, d.addrs));
        }
    }
    if spread && devices.len() > 1 {
        let order =
            crate::dial_order(&vault.identity(), &devices.iter().map(|(d, _)| *d).collect::<Vec<_>>());
        devices.sort_by_key(|(d, _)| order.iter().position(|o| o == d));
    }
    let candidates = devices
        .into_iter()
        .map(|(device, addrs)| {
            if vault.devices().is_refused_device(&identity, &device).unwrap_or(true) {
                DialCandidate::Removed(device)
            } else {
                DialCandidate::Dial { device, addrs }
            }
        })
        .collect();
    Ok((identity, candidates))
}

/// Whether `device` of `identity` may still be dialed: asked again right before each dial, as
/// a removal can arrive while earlier candidates time out.
pub fn may_dial(vault: &Vault, identity: &IdentityId, device: &DeviceId) -> bool {
    !vault.devices().is_refused_device(identity, device).unwrap_or(true)
}

/// The answering device's hello is not the one asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the peer's certificate does not match its ticket")]
pub struct WrongPeer;

/// Whether the hello `their` answered by `device` (as QUIC authenticated it) speaks for it and
/// for `identity`, the identity dialed.
pub fn check_answer(
    their: &DeviceCertificate,
    device: DeviceId,
    identity: IdentityId,
) -> Result<(), WrongPeer> {
    their.verify(device).map_err(|_| WrongPeer)?;
    if their.identity() != identity {
        return Err(WrongPeer);
    }
    Ok(())
}

/// A value that moves whenever [`wanted_peers`] may answer differently (shares taken in or
/// ended, requests, breach notices, contacts): a node recomputes who to keep a session with
/// when it moved, not on every change (a seller's customers edit all day; who the seller keeps
/// a session with changes rarely).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeersMark(u64, crate::store::WriteMark, crate::store::WriteMark, crate::store::WriteMark);

/// The mark of [`wanted_peers`] now (`None`: it cannot be read; recompute).
pub fn peers_mark(vault: &Vault) -> Option<PeersMark> {
    use crate::store::sealed::{CONTACTS, NOTICES_OUT, REQUESTS_OUT};
    Some(PeersMark(
        vault.held().issuers_generation().ok()?,
        vault.table_mark(&REQUESTS_OUT).ok()?,
        vault.table_mark(&NOTICES_OUT).ok()?,
        vault.table_mark(&CONTACTS).ok()?,
    ))
}

/// The peers this vault keeps a session with: issuers of live shares (or of erasure receipts
/// not yet confirmed), issuers that `offers` shares (their ticket is the freshest way to reach
/// them), holders of requests queued or waiting for an answer, and customers of breach
/// notices; never a blocked peer (blocking means no contact, both ways).
pub fn wanted_peers(vault: &Vault, offers: Vec<(IdentityId, Ticket)>) -> Vec<(IdentityId, Option<Ticket>)> {
    let mut peers = vault.held().issuers().unwrap_or_default();
    // Where each peer is in `peers`: a node may have thousands.
    let mut index: HashMap<IdentityId, usize> = peers.iter().enumerate().map(|(i, (p, _))| (*p, i)).collect();
    let mut add =
        |peers: &mut Vec<(IdentityId, Option<Ticket>)>, peer: IdentityId, ticket: Option<Ticket>, fresh| {
            match index.get(&peer) {
                // An offer's ticket is the freshest way to reach its issuer.
                Some(&i) if fresh => peers[i].1 = ticket,
                Some(&i) if peers[i].1.is_none() => peers[i].1 = ticket,
                Some(_) => {}
                None => {
                    index.insert(peer, peers.len());
                    peers.push((peer, ticket));
                }
            }
        };
    for (issuer, ticket) in offers {
        add(&mut peers, issuer, Some(ticket), true);
    }
    for (holder, ticket) in vault.outbox().holders().unwrap_or_default() {
        add(&mut peers, holder, ticket, false);
    }
    for (customer, ticket) in vault.notices().customers().unwrap_or_default() {
        add(&mut peers, customer, ticket, false);
    }
    let blocked = vault.contacts().blocked().unwrap_or_default();
    peers.retain(|(p, _)| !blocked.contains(p));
    peers
}

/// Whether this vault keeps a session with `peer`, and the ticket to reach it at: what
/// [`wanted_peers`] answers for that one peer, without asking about every other (a session
/// that ended asks this before it dials again; a seller has a session per customer).
pub fn wanted_peer(vault: &Vault, peer: &IdentityId, offer: Option<Ticket>) -> Option<Option<Ticket>> {
    if vault.contacts().is_blocked(peer).unwrap_or(false) {
        return None;
    }
    let mut found = vault.held().issuer_ticket(peer).unwrap_or_default();
    if offer.is_some() {
        // An offer's ticket is the freshest way to reach its issuer.
        return Some(offer);
    }
    let others =
        [vault.outbox().holders().unwrap_or_default(), vault.notices().customers().unwrap_or_default()];
    for (who, ticket) in others.into_iter().flatten() {
        if who != *peer {
            continue;
        }
        match &mut found {
            Some(known @ None) => *known = ticket,
            Some(Some(_)) => {}
            None => found = Some(ticket),
        }
    }
    found
}

/// A value that moves whenever consent requests or breach notices were queued or delivered:
/// a node dials the peers with something queued again when it moved.
pub fn outgoing_mark(vault: &Vault) -> Option<(crate::store::WriteMark, crate::store::WriteMark)> {
    use crate::store::sealed::{NOTICES_OUT, REQUESTS_OUT};
    Some((vault.table_mark(&REQUESTS_OUT).ok()?, vault.table_mark(&NOTICES_OUT).ok()?))
}

/// A value that moves whenever [`offer_audiences`] may answer differently, apart from the
/// clock (a grant expiring) and sessions ending: grants issued or ended, contacts, projections.
pub fn offers_mark(vault: &Vault) -> Option<PeersMark> {
    use crate::store::sealed::{CONTACTS, GRANTS, PROJECTION_CHUNKS};
    Some(PeersMark(
        0,
        vault.table_mark(&GRANTS).ok()?,
        vault.table_mark(&CONTACTS).ok()?,
        vault.table_mark(&PROJECTION_CHUNKS).ok()?,
    ))
}

/// What an audience may learn now.
#[derive(Clone, Debug)]
pub struct AudienceNews {
    /// The audience.
    pub audience: IdentityId,
    /// Its contact's ticket.
    pub ticket: Ticket,
    /// The grants a `Shares` answer would list to it, live and ended.
    pub shares: ShareSet,
    /// When some live grant's current values are held by none of the audience's devices this
    /// vault knows of: a fingerprint of those grants' versions (an audience is offered once
    /// per version, so a device that never catches up does not make the node offer forever).
    pub behind: Option<u64>,
    /// Whether `behind` includes values no device of the audience is known to hold: those are
    /// offered again after a session that listened ended without them (it may have closed
    /// before they were sent), unlike what a session tells at once (ended grants, denials).
    pub values_behind: bool,
}

/// The audiences to offer shares to: contacts with a ticket that names them, not blocked, with
/// what each may learn now.
pub fn offer_audiences(vault: &mut Vault) -> Vec<AudienceNews> {
    let contacts = vault.contacts().list().unwrap_or_default();
    let mut out = Vec::new();
    for contact in contacts {
        if contact.blocked {
            continue;
        }
        let Some(ticket) = contact.ticket.as_deref().and_then(|t| t.parse::<Ticket>().ok()) else { continue };
        if ticket.identity() != contact.identity {
            continue;
        }
        let Ok((live, ended)) = vault.grants_mut().shares_for(&contact.identity) else { continue };
        let shares = share_set(&live, &ended);
        let (behind, values_behind) = behind(vault, &contact.identity, &live, &shares);
        out.push(AudienceNews { audience: contact.identity, ticket, shares, behind, values_behind });
    }
    out
}

/// A fingerprint of what the audience may lack (see [`AudienceNews::behind`]): the live grants
/// whose current projection no device of it is known to hold, the ended grants it has not
/// confirmed erased, and the denials of its requests. A session tells the last two; one that
/// closed as they were sent may not have delivered them (a new session tells them again, which
/// is harmless).
fn behind(
    vault: &mut Vault,
    audience: &IdentityId,
    live: &[crate::statement::SignedGrant],
    shares: &ShareSet,
) -> (Option<u64>, bool) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut any = false;
    let mut values = false;
    for grant in live {
        let id = grant.statement().id;
        if let Ok(Some((epoch, heads))) = vault.serving_mut().grantee_behind(&id) {
            any = true;
            values = true;
            (b"values", id.as_bytes(), epoch).hash(&mut hasher);
            for h in heads {
                h.0.hash(&mut hasher);
            }
        }
    }
    for id in &shares.1 {
        any = true;
        (b"ended", id.as_bytes()).hash(&mut hasher);
    }
    for denial in vault.inbox().denials_for(audience).unwrap_or_default() {
        any = true;
        (b"denied", denial.statement().request.as_bytes()).hash(&mut hasher);
    }
    (any.then(|| hasher.finish()), values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::Grant;
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::statement::{GrantId, Signed};

    /// Asking about one peer answers as asking about all does, for that peer.
    #[test]
    fn one_peer_is_answered_as_in_the_whole_list() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let (alice, stranger) = (Identity::generate(), Identity::generate());
        let grant = Grant {
            id: GrantId::random(),
            issuer: alice.public(),
            audience: v.identity(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "test".into(),
            issued_at: v.now() - 10,
            expires_at: None,
            prices: true,
            request: None,
        };
        let grant = Signed::sign(grant, &alice).unwrap();
        v.held_mut().accept(alice.public(), None, &[grant], &[], true).unwrap();
        let all = wanted_peers(&v, Vec::new());
        assert_eq!(all.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![alice.public()]);
        assert_eq!(wanted_peer(&v, &alice.public(), None), Some(None));
        assert_eq!(wanted_peer(&v, &stranger.public(), None), None);
    }

    /// An audience is behind on what it has not confirmed: values it was never sent, then a
    /// revocation (a new fingerprint, so it is offered again); nothing for a contact with no
    /// grant.
    #[test]
    fn an_audience_is_behind_on_values_never_sent_and_on_a_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        v.records_mut().set_profile("email", "ada@example.org").unwrap();
        let (shop, friend) = (Identity::generate(), Identity::generate());
        let device = crate::identity::DeviceKey::generate();
        for (name, who) in [("shop", &shop), ("friend", &friend)] {
            let ticket = Ticket::new(who.certify(device.public()), Vec::new());
            v.contacts_mut().add(name, &ticket).unwrap();
        }
        let grant = crate::vault::NewGrant {
            audience: shop.public(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "receipts".into(),
            expires_at: None,
            prices: true,
        };
        let id = v.grants_mut().issue(grant).unwrap().statement().id;
        v.projections_mut().update(None).unwrap();
        let behind_of = |v: &mut Vault, who: &Identity| {
            offer_audiences(v).into_iter().find(|n| n.audience == who.public()).map(|n| n.behind)
        };
        assert_eq!(behind_of(&mut v, &friend), Some(None), "no grant, nothing to miss");
        let values = behind_of(&mut v, &shop).flatten().expect("never sent its values");
        assert_eq!(behind_of(&mut v, &shop).flatten(), Some(values), "the same until something changes");
        v.grants_mut().revoke(&id).unwrap();
        let revoked = behind_of(&mut v, &shop).flatten().expect("a revocation not confirmed");
        assert_ne!(revoked, values);
    }
}
