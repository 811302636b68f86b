//! Grants nobody asked for. Anyone holding a vault's ticket can grant it a share, and a seller's
//! ticket is public: unsolicited grants from strangers (not a contact, not answering a request
//! this vault sent) are bounded per stranger and in total, so that strangers cannot fill a
//! seller's vault or its database. A vault can also take grants only from its contacts, or only
//! those answering its own requests ([`AcceptGrants`]).

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};

use super::{Held, ShareStatus};
use crate::grant::Grant;
use crate::identity::IdentityId;
use crate::statement::RequestId;
use crate::store::StoreError;
use crate::vault::Vault;
use crate::vault::settings::Setting;

/// Live shares one stranger's unsolicited grants may hold here, at most.
pub const MAX_UNSOLICITED_PER_STRANGER: usize = 8;
/// Live shares all strangers' unsolicited grants may hold here together, unless the vault says
/// otherwise ([`AcceptGrants::Anyone`]): a seller whose customers volunteer grants sets what its
/// machine and database hold.
pub const DEFAULT_MAX_UNSOLICITED: usize = 100_000;

/// Whose grants this vault takes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptGrants {
    /// Anyone's: contacts and answers to requests without limit beyond the per-issuer cap,
    /// strangers' unsolicited grants within their bounds ([`MAX_UNSOLICITED_PER_STRANGER`] live
    /// shares each, `strangers` in all).
    Anyone {
        /// Live unsolicited shares from all strangers together, at most.
        strangers: usize,
    },
    /// Contacts' grants and answers to this vault's requests only.
    Contacts,
    /// Answers to this vault's requests only.
    Requests,
}

impl Default for AcceptGrants {
    fn default() -> Self {
        AcceptGrants::Anyone { strangers: DEFAULT_MAX_UNSOLICITED }
    }
}

impl AcceptGrants {
    /// The word the CLI uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AcceptGrants::Anyone { .. } => "anyone",
            AcceptGrants::Contacts => "contacts",
            AcceptGrants::Requests => "requests",
        }
    }

    fn stored(self) -> String {
        match self {
            AcceptGrants::Anyone { strangers } => format!("anyone/{strangers}"),
            other => other.as_str().to_owned(),
        }
    }

    fn from_stored(s: &str) -> Option<Self> {
        match s.split_once('/') {
            Some(("anyone", n)) => Some(AcceptGrants::Anyone { strangers: n.parse().ok()? }),
            None if s == "contacts" => Some(AcceptGrants::Contacts),
            None if s == "requests" => Some(AcceptGrants::Requests),
            _ => None,
        }
    }
}

/// What a batch of incoming grants is judged against: the policy, the requests this vault
/// sent, its contacts, and how many live unsolicited shares each stranger holds here.
pub(in crate::vault::held) struct Door {
    policy: AcceptGrants,
    sent: HashSet<RequestId>,
    contacts: HashSet<IdentityId>,
    per_stranger: HashMap<IdentityId, usize>,
    total: usize,
}

impl Door {
    /// Why `grant` is not taken in (`None`: it is), counting it when it is an unsolicited
    /// stranger's.
    pub(in crate::vault::held) fn refuses(&mut self, grant: &Grant) -> Option<&'static str> {
        let answers = grant.request.is_some_and(|r| self.sent.contains(&r));
        let contact = self.contacts.contains(&grant.issuer);
        match self.policy {
            _ if answers => None,
            AcceptGrants::Requests => Some("this vault takes only grants that answer its requests"),
            _ if contact => None,
            AcceptGrants::Contacts => Some("this vault takes grants only from its contacts"),
            AcceptGrants::Anyone { strangers } => {
                let mine = self.per_stranger.entry(grant.issuer).or_default();
                if *mine >= MAX_UNSOLICITED_PER_STRANGER {
                    return Some("this stranger's unsolicited grants are at their limit");
                }
                if self.total >= strangers {
                    return Some("unsolicited grants from strangers are at their limit");
                }
                *mine += 1;
                self.total += 1;
                None
            }
        }
    }
}

impl<V: Deref<Target = Vault>> Held<V> {
    /// Whose grants this vault takes in.
    pub fn accepts(&self) -> Result<AcceptGrants, StoreError> {
        Ok(self
            .vault
            .settings()
            .get(Setting::AcceptGrants)?
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| AcceptGrants::from_stored(&s))
            .unwrap_or_default())
    }

    /// The door as it stands now (one walk over the shares held; call once per batch).
    pub(in crate::vault::held) fn door(&self) -> Result<Door, StoreError> {
        let sent: HashSet<RequestId> =
            self.vault.outbox().list()?.into_iter().map(|r| r.request.statement().id).collect();
        let contacts: HashSet<IdentityId> =
            self.vault.contacts().list()?.into_iter().map(|c| c.identity).collect();
        let mut door =
            Door { policy: self.accepts()?, sent, contacts, per_stranger: HashMap::new(), total: 0 };
        for (id, row) in self.received_each()? {
            if row.record.status != ShareStatus::Live {
                continue;
            }
            let Ok(grant) = row.grant(&id) else { continue };
            let g = grant.statement();
            let answers = g.request.is_some_and(|r| door.sent.contains(&r));
            if !answers && !door.contacts.contains(&g.issuer) {
                *door.per_stranger.entry(g.issuer).or_default() += 1;
                door.total += 1;
            }
        }
        Ok(door)
    }
}

impl<V: DerefMut<Target = Vault>> Held<V> {
    /// Sets whose grants this vault takes in from now on (shares already held stay).
    pub fn set_accepts(&mut self, policy: AcceptGrants) -> Result<(), StoreError> {
        self.vault.write(|v| v.settings().put(Setting::AcceptGrants, policy.stored().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::replica::tests::grant;
    use super::*;
    use crate::identity::Identity;
    use crate::primitives::{KdfParams, Passphrase};
    use crate::statement::GrantId;

    fn door(policy: AcceptGrants, contacts: &[IdentityId], sent: &[RequestId]) -> Door {
        Door {
            policy,
            sent: sent.iter().copied().collect(),
            contacts: contacts.iter().copied().collect(),
            per_stranger: HashMap::new(),
            total: 0,
        }
    }

    #[test]
    fn strangers_are_bounded_each_and_together() {
        let shop = Identity::generate().public();
        let mut d = door(AcceptGrants::default(), &[], &[]);
        let mallory = Identity::generate();
        let taken = (0..10)
            .filter(|_| d.refuses(grant(&mallory, shop, GrantId::random()).statement()).is_none())
            .count();
        assert_eq!(taken, MAX_UNSOLICITED_PER_STRANGER);
        d.total = DEFAULT_MAX_UNSOLICITED;
        let other = Identity::generate();
        assert!(
            d.refuses(grant(&other, shop, GrantId::random()).statement()).is_some(),
            "all strangers together"
        );
    }

    #[test]
    fn contacts_and_answers_pass_the_policy_they_meet() {
        let shop = Identity::generate().public();
        let (friend, stranger) = (Identity::generate(), Identity::generate());
        let answer = RequestId::random();
        let mut answering = grant(&stranger, shop, GrantId::random()).statement().clone();
        answering.request = Some(answer);
        let from_friend = grant(&friend, shop, GrantId::random()).statement().clone();
        let unsolicited = grant(&stranger, shop, GrantId::random()).statement().clone();

        let mut contacts = door(AcceptGrants::Contacts, &[friend.public()], &[answer]);
        assert!(contacts.refuses(&from_friend).is_none());
        assert!(contacts.refuses(&answering).is_none());
        assert!(contacts.refuses(&unsolicited).is_some());
        let mut requests = door(AcceptGrants::Requests, &[friend.public()], &[answer]);
        assert!(requests.refuses(&answering).is_none());
        assert!(requests.refuses(&from_friend).is_some());
        // A contact's grants do not count against the strangers' bounds.
        let mut anyone = door(AcceptGrants::default(), &[friend.public()], &[]);
        for _ in 0..(2 * MAX_UNSOLICITED_PER_STRANGER) {
            assert!(anyone.refuses(grant(&friend, shop, GrantId::random()).statement()).is_none());
        }
    }

    /// Through `accept`, as a node takes in a `Shares` frame: the fifth unsolicited grant of one
    /// stranger is not kept, and the setting holds across handles.
    #[test]
    fn a_stranger_cannot_fill_the_vault_through_accept() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let mallory = Identity::generate();
        let grants: Vec<_> = (0..12).map(|_| grant(&mallory, v.identity(), GrantId::random())).collect();
        v.held_mut().accept(mallory.public(), None, &grants, &[], true).unwrap();
        assert_eq!(v.held_mut().list().unwrap().len(), MAX_UNSOLICITED_PER_STRANGER);

        v.held_mut().set_accepts(AcceptGrants::Requests).unwrap();
        let other = Identity::generate();
        let unasked = grant(&other, v.identity(), GrantId::random());
        v.held_mut().accept(other.public(), None, &[unasked], &[], true).unwrap();
        assert_eq!(v.held_mut().list().unwrap().len(), MAX_UNSOLICITED_PER_STRANGER);
        let again = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(again.held().accepts().unwrap(), AcceptGrants::Requests);
    }
}
