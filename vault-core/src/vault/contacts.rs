//! [`Contacts`]: local petnames for other people's identities, with their tickets, and
//! blocks. Owns the sealed table `contacts` (customer state: a petname is the user's data
//! too, and a block holds on every device). A block lives in the contact's row, so removing a
//! blocked contact is refused.

use std::collections::HashSet;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use std::ops::Deref;

use super::Vault;
use crate::identity::{IdentityId, Ticket};
use crate::primitives::random_array;
use crate::store::StoreError;
use crate::store::sealed::Key;

use crate::store::sealed::CONTACTS as TABLE;
use crate::store::typed::TypedTable;

/// The contacts, one row per contact under a random id.
pub(in crate::vault) const ROWS: TypedTable<Contact> = TypedTable::new(TABLE);

/// Someone this vault knows by a petname.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The petname.
    pub name: String,
    /// Their identity.
    pub identity: IdentityId,
    /// How to reach them (the ticket they gave).
    pub ticket: Option<String>,
    /// Blocked contacts are refused on the network and their requests dropped.
    #[serde(default)]
    pub blocked: bool,
    /// Addresses set by hand (`vault contact add --addr`, `vault contact addr`): when not empty
    /// they replace the ticket's addresses whenever this vault dials the contact (a peer behind
    /// port forwarding; tests routing through a proxy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addrs: Vec<SocketAddr>,
}

/// Addresses a contact may have set by hand, at most (as many as a ticket carries).
const MAX_CONTACT_ADDRS: usize = 16;

/// A contact operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    /// Petnames are 1-64 letters, digits, `-`, `_` or `.`.
    #[error("invalid contact name \"{0}\": use 1-64 letters, digits, '-', '_' or '.'")]
    BadName(String),
    /// The name is taken.
    #[error("a contact named \"{0}\" already exists")]
    Exists(String),
    /// No such contact, and not a ticket or identity either.
    #[error("unknown peer \"{0}\": not a contact name, a ticket or an identity")]
    UnknownPeer(String),
    /// That is this vault's own identity.
    #[error("that ticket is this vault's own")]
    Own,
    /// Removing a blocked contact would unblock it: unblock it first.
    #[error("contact \"{0}\" is blocked; removing it would unblock it")]
    Blocked(String),
    /// No contact by that name.
    #[error("no contact named \"{0}\"")]
    NoSuchContact(String),
    /// An address no one can be dialed at (port 0, or an unspecified or multicast IP).
    #[error("cannot dial address \"{0}\": give the peer's IP and port, e.g. 203.0.113.7:4433")]
    BadAddr(SocketAddr),
    /// More addresses than a ticket carries (16).
    #[error("too many addresses ({0}): at most {MAX_CONTACT_ADDRS}")]
    TooManyAddrs(usize),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A peer named on the command line: a contact, a ticket, or a bare identity.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Their identity.
    pub identity: IdentityId,
    /// How to reach them, when known.
    pub ticket: Option<Ticket>,
    /// Their petname, when they are a contact.
    pub name: Option<String>,
}

pub(in crate::vault) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with("vault1")
}

pub(in crate::vault) fn check_addrs(addrs: &[SocketAddr]) -> Result<(), ContactError> {
    if addrs.len() > MAX_CONTACT_ADDRS {
        return Err(ContactError::TooManyAddrs(addrs.len()));
    }
    match addrs.iter().find(|a| a.port() == 0 || a.ip().is_unspecified() || a.ip().is_multicast()) {
        Some(bad) => Err(ContactError::BadAddr(*bad)),
        None => Ok(()),
    }
}

/// What a node asks of the contacts for every message and every share (who is blocked, a
/// peer's petname), with the contacts table's [`table_mark`](crate::store::Store::table_mark)
/// it was read at: read again only when a contact row changed (or another process wrote), not
/// on every write of the vault.
#[derive(Default)]
pub(crate) struct ContactsIndex {
    blocked: HashSet<IdentityId>,
    names: std::collections::HashMap<IdentityId, String>,
}

/// See [`ContactsIndex`].
pub(crate) type BlockedCache =
    std::cell::RefCell<Option<(crate::store::WriteMark, std::sync::Arc<ContactsIndex>)>>;

/// The contacts of a vault: `vault.contacts()` to read, `vault.contacts_mut()` to change.
#[derive(Debug)]
pub struct Contacts<V> {
    pub(in crate::vault) vault: V,
}

impl<V: Deref<Target = Vault>> Contacts<V> {
    pub(super) fn new(vault: V) -> Self {
        Self { vault }
    }

    pub(super) fn rows(&self) -> Result<Vec<(Vec<u8>, Contact)>, StoreError> {
        Ok(ROWS
            .list(&self.vault.store)?
            .into_iter()
            .map(|(key, contact)| (key.id().to_vec(), contact))
            .collect())
    }

    /// All contacts, sorted by name.
    pub fn list(&self) -> Result<Vec<Contact>, StoreError> {
        let mut out: Vec<Contact> = self.rows()?.into_iter().map(|(_, c)| c).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// True when `identity` belongs to a blocked contact.
    pub fn is_blocked(&self, identity: &IdentityId) -> Result<bool, StoreError> {
        self.with_blocked(|blocked| blocked.contains(identity))
    }

    /// Every blocked identity (one read, for callers that check many peers).
    pub fn blocked(&self) -> Result<HashSet<IdentityId>, StoreError> {
        self.with_blocked(Clone::clone)
    }

    /// Runs `f` on the blocked set (see [`ContactsIndex`]).
    fn with_blocked<T>(&self, f: impl FnOnce(&HashSet<IdentityId>) -> T) -> Result<T, StoreError> {
        Ok(f(&self.index()?.blocked))
    }

    /// The contacts index, read again only when a contact row changed since (a node asks for
    /// every message it serves and every share it mirrors; decrypting every contact each time
    /// made a seller's cost per message grow with its number of contacts).
    fn index(&self) -> Result<std::sync::Arc<ContactsIndex>, StoreError> {
        let mark = self.vault.store.table_mark(&crate::store::sealed::CONTACTS)?;
        if let Some((cached_mark, index)) = &*self.vault.blocked_cache.borrow()
            && *cached_mark == mark
        {
            return Ok(index.clone());
        }
        let mut index = ContactsIndex::default();
        for (_, c) in self.rows()? {
            if c.blocked {
                index.blocked.insert(c.identity);
            }
            index.names.insert(c.identity, c.name);
        }
        let index = std::sync::Arc::new(index);
        *self.vault.blocked_cache.borrow_mut() = Some((mark, index.clone()));
        Ok(index)
    }

    /// The petname of an identity, if it is a contact.
    pub fn petname(&self, identity: &IdentityId) -> Option<String> {
        self.index().ok()?.names.get(identity).cloned()
    }

    /// Resolves a PEER argument: a contact name, a ticket, or an identity.
    pub fn resolve(&self, peer: &str) -> Result<Peer, ContactError> {
        if let Ok(ticket) = peer.parse::<Ticket>() {
            let name = self.petname(&ticket.identity());
            return Ok(Peer { identity: ticket.identity(), ticket: Some(ticket), name });
        }
        if let Some((_, c)) = self.rows()?.into_iter().find(|(_, c)| c.name == peer) {
            let ticket = c.ticket.as_deref().and_then(|t| t.parse().ok());
            return Ok(Peer { identity: c.identity, ticket, name: Some(c.name) });
        }
        if let Ok(identity) = peer.parse::<IdentityId>() {
            return Ok(Peer { identity, ticket: None, name: self.petname(&identity) });
        }
        Err(ContactError::UnknownPeer(peer.chars().take(64).collect()))
    }

    /// The ticket to dial for `ticket`'s identity: its addresses replaced by those set by hand
    /// on that identity's contact, when there are any.
    pub fn dial_ticket(&self, ticket: &Ticket) -> Result<Ticket, StoreError> {
        let set = self
            .rows()?
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c.identity == ticket.identity() && !c.addrs.is_empty());
        Ok(match set {
            Some(c) => Ticket::new(*ticket.certificate(), c.addrs),
            None => ticket.clone(),
        })
    }
}

impl Contacts<&mut Vault> {
    /// Writes a contact row and logs it for the other devices.
    fn put(vault: &Vault, id: &[u8], contact: &Contact) -> Result<(), StoreError> {
        ROWS.put(&vault.store, Key::Id(id), contact)?;
        vault.replication().log_contact(id, vault.now(), Some(contact))
    }

    /// Adds a contact from a ticket.
    pub fn add(&mut self, name: &str, ticket: &Ticket) -> Result<Contact, ContactError> {
        self.add_at(name, ticket, &[])
    }

    /// Adds a contact from a ticket, dialed at `addrs` instead of the ticket's addresses when
    /// `addrs` is not empty (see [`Contact::addrs`]).
    pub fn add_at(
        &mut self,
        name: &str,
        ticket: &Ticket,
        addrs: &[SocketAddr],
    ) -> Result<Contact, ContactError> {
        check_addrs(addrs)?;
        if !valid_name(name) {
            return Err(ContactError::BadName(name.chars().take(64).collect()));
        }
        if ticket.identity() == self.vault.identity() {
            return Err(ContactError::Own);
        }
        self.vault.write(|v| {
            if v.contacts().rows()?.iter().any(|(_, c)| c.name == name) {
                return Err(ContactError::Exists(name.to_owned()));
            }
            let contact = Contact {
                name: name.to_owned(),
                identity: ticket.identity(),
                ticket: Some(ticket.to_string()),
                blocked: false,
                addrs: addrs.to_vec(),
            };
            Self::put(v, &random_array::<16>(), &contact)?;
            Ok(contact)
        })
    }

    /// Removes a contact; false when there is none by that name. A blocked contact is not
    /// removed (the block lives in its row): [`Contacts::unblock`] first.
    pub fn remove(&mut self, name: &str) -> Result<bool, ContactError> {
        self.vault.write(|v| {
            for (id, c) in v.contacts().rows()? {
                if c.name == name {
                    if c.blocked {
                        return Err(ContactError::Blocked(c.name));
                    }
                    ROWS.delete(&v.store, Key::Id(&id))?;
                    v.replication().log_contact(&id, v.now(), None)?;
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Blocks a contact: its connections and requests are refused from now on.
    pub fn block(&mut self, name: &str) -> Result<bool, ContactError> {
        self.set_blocked(name, true)
    }

    /// Unblocks a contact: its connections and requests are accepted again.
    pub fn unblock(&mut self, name: &str) -> Result<bool, ContactError> {
        self.set_blocked(name, false)
    }

    /// Sets the addresses contact `name` is dialed at; empty `addrs` goes back to the ticket's.
    pub fn set_addrs(&mut self, name: &str, addrs: &[SocketAddr]) -> Result<Contact, ContactError> {
        check_addrs(addrs)?;
        self.vault.write(|v| {
            for (id, mut c) in v.contacts().rows()? {
                if c.name == name {
                    c.addrs = addrs.to_vec();
                    Self::put(v, &id, &c)?;
                    return Ok(c);
                }
            }
            Err(ContactError::NoSuchContact(name.chars().take(64).collect()))
        })
    }

    fn set_blocked(&mut self, name: &str, blocked: bool) -> Result<bool, ContactError> {
        self.vault.write(|v| {
            for (id, mut c) in v.contacts().rows()? {
                if c.name == name {
                    c.blocked = blocked;
                    Self::put(v, &id, &c)?;
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use crate::identity::{DeviceKey, Identity, Ticket};
    use crate::primitives::{KdfParams, Passphrase};
    use crate::vault::Vault;

    use super::{ContactError, Contacts};

    #[test]
    fn addresses_set_by_hand_replace_the_tickets_when_dialing() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let bob = Identity::generate();
        let from_ticket: SocketAddr = "192.0.2.1:4433".parse().unwrap();
        let ticket = Ticket::new(bob.certify(DeviceKey::generate().public()), vec![from_ticket]);
        let forwarded: SocketAddr = "203.0.113.7:5000".parse().unwrap();
        v.contacts_mut().add_at("bob", &ticket, &[forwarded]).unwrap();
        let dialed = v.contacts().dial_ticket(&ticket).unwrap();
        assert_eq!(dialed.addrs(), &[forwarded]);
        assert_eq!((dialed.identity(), dialed.device()), (ticket.identity(), ticket.device()));

        let v6: SocketAddr = "[2001:db8::1]:6000".parse().unwrap();
        assert_eq!(v.contacts_mut().set_addrs("bob", &[v6, forwarded]).unwrap().addrs, vec![v6, forwarded]);
        assert_eq!(v.contacts().dial_ticket(&ticket).unwrap().addrs(), &[v6, forwarded]);
        // Another process sees the same.
        let other = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(other.contacts().list().unwrap()[0].addrs, vec![v6, forwarded]);

        // Cleared: the ticket's own addresses again.
        v.contacts_mut().set_addrs("bob", &[]).unwrap();
        assert_eq!(v.contacts().dial_ticket(&ticket).unwrap().addrs(), &[from_ticket]);
        // Someone who is not a contact is dialed at their ticket's addresses.
        let carol =
            Ticket::new(Identity::generate().certify(DeviceKey::generate().public()), vec![from_ticket]);
        assert_eq!(v.contacts().dial_ticket(&carol).unwrap(), carol);
    }

    #[test]
    fn bad_addresses_and_unknown_contacts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let ticket = Ticket::new(Identity::generate().certify(DeviceKey::generate().public()), Vec::new());
        for bad in ["0.0.0.0:4433", "192.0.2.1:0", "[::]:4433", "224.0.0.1:4433"] {
            let addr: SocketAddr = bad.parse().unwrap();
            assert!(
                matches!(v.contacts_mut().add_at("bob", &ticket, &[addr]), Err(ContactError::BadAddr(a)) if a == addr)
            );
        }
        assert!(v.contacts().list().unwrap().is_empty(), "nothing was added");
        let many: Vec<SocketAddr> = (1..=17).map(|p| SocketAddr::from(([192, 0, 2, 1], p))).collect();
        assert!(matches!(
            v.contacts_mut().add_at("bob", &ticket, &many),
            Err(ContactError::TooManyAddrs(17))
        ));
        let err = v.contacts_mut().set_addrs("nobody", &[]).unwrap_err();
        assert!(matches!(&err, ContactError::NoSuchContact(n) if n == "nobody"));
        assert_eq!(err.to_string(), "no contact named \"nobody\"");
    }

    #[test]
    fn the_blocked_set_follows_own_writes_other_handles_and_rollbacks() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let bob = Identity::generate();
        let ticket = Ticket::new(bob.certify(DeviceKey::generate().public()), Vec::new());
        v.contacts_mut().add("bob", &ticket).unwrap();
        assert!(!v.contacts().is_blocked(&bob.public()).unwrap());
        // This handle's own write.
        assert!(v.contacts_mut().block("bob").unwrap());
        assert!(v.contacts().is_blocked(&bob.public()).unwrap());
        // Another handle's commit.
        let mut other = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert!(other.contacts().is_blocked(&bob.public()).unwrap());
        assert!(other.contacts_mut().unblock("bob").unwrap());
        assert!(!v.contacts().is_blocked(&bob.public()).unwrap());
        // A write rolled back leaves the committed state (the mark alone, no cache dropped).
        v.store.begin_write().unwrap();
        let (row, mut contact) = v.contacts().rows().unwrap().remove(0);
        contact.blocked = true;
        Contacts::<&mut Vault>::put(&v, &row, &contact).unwrap();
        assert!(v.contacts().is_blocked(&bob.public()).unwrap(), "seen inside its transaction");
        v.store.rollback();
        assert!(!v.contacts().is_blocked(&bob.public()).unwrap());
        assert!(v.contacts().blocked().unwrap().is_empty());
    }
}
