//! Grants nobody asked for. Anyone holding a vault's ticket can grant it a share, and a seller's
//! ticket is public: unsolicited grants from strangers (not a contact, not answering a request
//! this vault sent) are bounded per stranger and in total, so that strangers cannot fill a
//! seller's vault or its database. A vault can also take grants only from its contacts, or only
//! those answering its own requests ([`AcceptGrants`]).

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use super::rows::Record;
use super::{Held, ShareStatus};
use crate::grant::Grant;
use crate::identity::IdentityId;
use crate::store::StoreError;
use crate::store::sealed::REQUESTS_OUT;
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

/// What the door says of a grant.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::vault::held) enum Verdict {
    /// Not taken in, and why.
    Refused(&'static str),
    /// Taken in; `unsolicited` when it counts against the strangers' bounds.
    Taken {
        /// A stranger's grant nobody asked for.
        unsolicited: bool,
    },
}

/// Judges one grant: whether it answers a request this vault sent to its issuer, whether its
/// issuer is a contact, and how many live unsolicited shares its issuer and all strangers hold.
pub(in crate::vault::held) fn verdict(
    policy: AcceptGrants,
    answers: bool,
    contact: bool,
    (mine, total): (usize, usize),
) -> Verdict {
    match policy {
        _ if answers => Verdict::Taken { unsolicited: false },
        AcceptGrants::Requests => Verdict::Refused("this vault takes only grants that answer its requests"),
        _ if contact => Verdict::Taken { unsolicited: false },
        AcceptGrants::Contacts => Verdict::Refused("this vault takes grants only from its contacts"),
        AcceptGrants::Anyone { .. } if mine >= MAX_UNSOLICITED_PER_STRANGER => {
            Verdict::Refused("this stranger's unsolicited grants are at their limit")
        }
        AcceptGrants::Anyone { strangers } if total >= strangers => {
            Verdict::Refused("unsolicited grants from strangers are at their limit")
        }
        AcceptGrants::Anyone { .. } => Verdict::Taken { unsolicited: true },
    }
}

/// Live unsolicited shares per stranger and in all, kept as shares change (rows.rs) so that
/// judging a grant does not walk every share.
#[derive(Debug, Default)]
pub(crate) struct StrangerCounts {
    per: HashMap<IdentityId, usize>,
    total: usize,
}

impl StrangerCounts {
    /// A share that counts came (`+1`) or went (`-1`).
    pub(in crate::vault::held) fn add(&mut self, issuer: IdentityId, came: bool) {
        let mine = self.per.entry(issuer).or_default();
        if came {
            *mine += 1;
            self.total += 1;
        } else {
            *mine = mine.saturating_sub(1);
            self.total = self.total.saturating_sub(1);
            if *mine == 0 {
                self.per.remove(&issuer);
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

    /// True when `grant` answers a request this vault sent to its issuer.
    fn answers(&self, grant: &Grant) -> Result<bool, StoreError> {
        Ok(match &grant.request {
            Some(request) => super::super::requests::get(&self.vault, REQUESTS_OUT, request)?
                .and_then(|r| r.signed())
                .is_some_and(|r| r.statement().holder == grant.issuer),
            None => false,
        })
    }

    /// Whether a share held counts against the strangers' bounds: as recorded when it was
    /// taken in, or (a share taken in before that was recorded) as the door would judge it now.
    pub(in crate::vault::held) fn unsolicited(
        &self,
        record: &Record,
        grant: &Grant,
    ) -> Result<bool, StoreError> {
        Ok(match record.unsolicited {
            Some(flag) => flag,
            None => !self.answers(grant)? && self.vault.contacts().petname(&grant.issuer).is_none(),
        })
    }

    /// Judges one grant at the door (no walk over the shares held, except once after they
    /// were read again).
    pub(in crate::vault::held) fn judge(
        &self,
        policy: AcceptGrants,
        grant: &Grant,
    ) -> Result<Verdict, StoreError> {
        let answers = self.answers(grant)?;
        let contact = self.vault.contacts().petname(&grant.issuer).is_some();
        let _ = self.received_rows()?;
        let mut counts = self.vault.held.strangers.borrow_mut();
        let counts = match &mut *counts {
            Some(counts) => counts,
            None => {
                let mut fresh = StrangerCounts::default();
                for (id, row) in self.received_each()? {
                    if row.record.status == ShareStatus::Live
                        && let Ok(g) = row.grant(&id)
                        && self.unsolicited(&row.record, g.statement())?
                    {
                        fresh.add(g.statement().issuer, true);
                    }
                }
                counts.insert(fresh)
            }
        };
        let mine = counts.per.get(&grant.issuer).copied().unwrap_or(0);
        Ok(verdict(policy, answers, contact, (mine, counts.total)))
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

    #[test]
    fn answers_contacts_and_strangers_meet_the_policy_they_meet() {
        let anyone = AcceptGrants::default();
        let taken = Verdict::Taken { unsolicited: false };
        for policy in [anyone, AcceptGrants::Contacts, AcceptGrants::Requests] {
            assert_eq!(verdict(policy, true, false, (99, 1 << 20)), taken, "an answer to a request");
        }
        assert_eq!(verdict(anyone, false, true, (99, 1 << 20)), taken, "a contact, whatever strangers hold");
        assert!(matches!(verdict(AcceptGrants::Requests, false, true, (0, 0)), Verdict::Refused(_)));
        assert!(matches!(verdict(AcceptGrants::Contacts, false, false, (0, 0)), Verdict::Refused(_)));
        assert_eq!(verdict(anyone, false, false, (0, 0)), Verdict::Taken { unsolicited: true });
        let full = MAX_UNSOLICITED_PER_STRANGER;
        assert!(matches!(verdict(anyone, false, false, (full, full)), Verdict::Refused(_)), "this stranger");
        let all = DEFAULT_MAX_UNSOLICITED;
        assert!(matches!(verdict(anyone, false, false, (0, all)), Verdict::Refused(_)), "all strangers");
    }

    /// Through `accept`, as a node takes in a `Shares` frame: a stranger's unsolicited grants
    /// stop at the bound, a share that ends makes room, the counts survive another process's
    /// write (read again), and the setting holds across handles.
    #[test]
    fn a_stranger_cannot_fill_the_vault_through_accept() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let mallory = Identity::generate();
        let grants: Vec<_> = (0..12).map(|_| grant(&mallory, v.identity(), GrantId::random())).collect();
        v.held_mut().accept(mallory.public(), None, &grants, &[], true).unwrap();
        assert_eq!(v.held_mut().list().unwrap().len(), MAX_UNSOLICITED_PER_STRANGER);

        // Another process takes one in meanwhile: still at the bound.
        let mut other = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        let one_more = grant(&mallory, other.identity(), GrantId::random());
        other.held_mut().accept(mallory.public(), None, &[one_more], &[], true).unwrap();
        drop(other);
        let late = grant(&mallory, v.identity(), GrantId::random());
        v.held_mut().accept(mallory.public(), None, &[late], &[], true).unwrap();
        assert_eq!(v.held_mut().list().unwrap().len(), MAX_UNSOLICITED_PER_STRANGER);

        // Shares taken in before the flag was recorded count too (told from contacts and
        // requests when the rows are read again).
        v.write(|v| {
            for (id, row) in v.held().received_each()? {
                let mut record = row.record.clone();
                record.unsolicited = None;
                v.held().put_received_record(&id, &record)?;
            }
            Ok::<(), StoreError>(())
        })
        .unwrap();
        v.held.received_cache.clear();
        let after_upgrade = grant(&mallory, v.identity(), GrantId::random());
        v.held_mut().accept(mallory.public(), None, &[after_upgrade], &[], true).unwrap();
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
