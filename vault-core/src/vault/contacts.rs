//! [`Contacts`]: local petnames for other people's identities, with their tickets, and
//! blocks. Owns the sealed table `contacts` (customer state: a petname is the user's data
//! too, and a block holds on every device). A block lives in the contact's row, so removing a
//! blocked contact is refused.

use serde::{Deserialize, Serialize};

use std::ops::Deref;

use super::Vault;
use crate::identity::{IdentityId, Ticket};
use crate::primitives::random_array;
use crate::store::StoreError;
use crate::store::sealed::Key;

use crate::store::sealed::CONTACTS as TABLE;

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
}

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

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with("vault1")
}

/// The contacts of a vault: `vault.contacts()` to read, `vault.contacts_mut()` to change.
#[derive(Debug)]
pub struct Contacts<V> {
    vault: V,
}

impl<V: Deref<Target = Vault>> Contacts<V> {
    pub(super) fn new(vault: V) -> Self {
        Self { vault }
    }

    fn rows(&self) -> Result<Vec<(Vec<u8>, Contact)>, StoreError> {
        let rows = self.vault.store.list(&TABLE)?;
        rows.into_iter()
            .map(|(key, body, _)| {
                let id = key.id().to_vec();
                let contact = serde_json::from_slice(&body)
                    .map_err(|_| StoreError::Damaged(format!("{TABLE} row (contact)")))?;
                Ok((id, contact))
            })
            .collect()
    }

    /// All contacts, sorted by name.
    pub fn list(&self) -> Result<Vec<Contact>, StoreError> {
        let mut out: Vec<Contact> = self.rows()?.into_iter().map(|(_, c)| c).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// True when `identity` belongs to a blocked contact.
    pub fn is_blocked(&self, identity: &IdentityId) -> Result<bool, StoreError> {
        Ok(self.rows()?.iter().any(|(_, c)| c.blocked && c.identity == *identity))
    }

    /// The petname of an identity, if it is a contact.
    pub fn petname(&self, identity: &IdentityId) -> Option<String> {
        self.rows().ok()?.into_iter().find(|(_, c)| c.identity == *identity).map(|(_, c)| c.name)
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
}

impl Contacts<&mut Vault> {
    fn put(vault: &Vault, id: &[u8], contact: &Contact) -> Result<(), StoreError> {
        vault.store.put(&TABLE, Key::Id(id), &serde_json::to_vec(contact).expect("serializes"))?;
        Ok(())
    }

    /// Adds a contact from a ticket.
    pub fn add(&mut self, name: &str, ticket: &Ticket) -> Result<Contact, ContactError> {
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
                    v.store.delete(&TABLE, Key::Id(&id))?;
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

/// Kept for vault-sync's callers (node.rs, node/refusal_tests.rs); each delegates to
/// [`Contacts`].
impl Vault {
    /// Adds a contact from a ticket. The logic lives in [`Contacts::add`].
    pub fn add_contact(&mut self, name: &str, ticket: &Ticket) -> Result<Contact, ContactError> {
        self.contacts_mut().add(name, ticket)
    }

    /// Blocks a contact. The logic lives in [`Contacts::block`].
    pub fn block_contact(&mut self, name: &str) -> Result<bool, ContactError> {
        self.contacts_mut().block(name)
    }

    /// True when `identity` belongs to a blocked contact. The logic lives in
    /// [`Contacts::is_blocked`].
    pub fn is_blocked(&self, identity: &IdentityId) -> Result<bool, StoreError> {
        self.contacts().is_blocked(identity)
    }
}
