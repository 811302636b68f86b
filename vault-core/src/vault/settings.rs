//! The node's settings: the `node` table, sealed rows stored by name. Every name is a
//! [`Setting`], spelled in this one file; every role that keeps a setting (addresses, stream
//! states, rosters, key events, mutes, stamps, the shared log's bookkeeping) goes through here.

use std::borrow::Cow;

use crate::identity::{DeviceId, IdentityId};
use crate::statement::GrantId;
use crate::store::sealed::{Key, NODE, OwnedKey};
use crate::store::{Store, StoreError};

/// One setting's name.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Setting<'a> {
    /// The addresses the running node is bound to (issued/node.rs).
    Addrs,
    /// What serving streams of a grant persist to resume (issued/serving.rs).
    ServeStates(&'a GrantId),
    /// One serving stream's state as stored before [`Setting::ServeStates`], by epoch.
    LegacyServeState(&'a GrantId, u64),
    /// An identity's key events (key_state.rs).
    KeyEvents(&'a IdentityId),
    /// This identity's signed device roster (roster.rs).
    OwnRoster,
    /// A peer identity's devices, from its rosters (roster.rs).
    DevicesOf(&'a IdentityId),
    /// The feed's mutes (network.rs).
    Mutes,
    /// The database mirror's URL and its last status (held/mirror.rs).
    MirrorUrl,
    /// See [`Setting::MirrorUrl`].
    MirrorStatus,
    /// Whose grants this vault takes in (held/strangers.rs).
    AcceptGrants,
    /// The views of received copies were all built by a vault that conforms them to their
    /// grants (held/views.rs): views stored before are built again.
    ViewsConformed,
    /// How far another device's access log was taken in (replication.rs).
    AuditFrom(&'a DeviceId),
    /// The shared log was seeded with the rows from before it (replication.rs).
    SharedLogSeeded,
    /// This device's incarnation, its forked origins and suspects (replication/fork.rs).
    SharedLogIncarnation,
    /// See [`Setting::SharedLogIncarnation`].
    SharedLogForked,
    /// See [`Setting::SharedLogIncarnation`].
    SharedLogSuspects,
    /// The stamp of a contact row's last write (replication/contacts.rs).
    ContactStamp(&'a [u8]),
    /// The port the node last served on when none was asked for (issued/node.rs).
    ServePort,
    /// How many received shares were taken in: each starts its revisions afresh from it
    /// (held/let_go.rs).
    ReceivedIncarnation,
    /// The name this vault gives itself in its requests (display_name.rs).
    DisplayName,
}

const CONTACT_STAMP: &str = "contact-stamp/";

impl Setting<'_> {
    /// The row's name in the `node` table.
    pub(crate) fn name(&self) -> Cow<'static, str> {
        match self {
            Setting::Addrs => "addrs".into(),
            Setting::ServeStates(id) => format!("serve-states/{id}").into(),
            Setting::LegacyServeState(id, 0) => format!("serve-sync/{id}").into(),
            Setting::LegacyServeState(id, epoch) => format!("serve-sync/{id}/{epoch}").into(),
            Setting::KeyEvents(identity) => format!("key-events/{identity}").into(),
            Setting::OwnRoster => "roster".into(),
            Setting::DevicesOf(identity) => format!("devices-of/{identity}").into(),
            Setting::Mutes => "feed-mutes".into(),
            Setting::MirrorUrl => "mirror-url".into(),
            Setting::MirrorStatus => "mirror-status".into(),
            Setting::AcceptGrants => "accept-grants".into(),
            Setting::ViewsConformed => "views-conformed".into(),
            Setting::AuditFrom(device) => format!("audit-from/{device}").into(),
            Setting::SharedLogSeeded => "shared-log-seeded".into(),
            Setting::SharedLogIncarnation => "shared-log-incarnation".into(),
            Setting::SharedLogForked => "shared-log-forked".into(),
            Setting::SharedLogSuspects => "shared-log-suspects".into(),
            Setting::ReceivedIncarnation => "received-incarnation".into(),
            Setting::ServePort => "serve-port".into(),
            Setting::DisplayName => "display-name".into(),
            Setting::ContactStamp(row) => {
                format!("{CONTACT_STAMP}{}", data_encoding::HEXLOWER.encode(row)).into()
            }
        }
    }
}

impl std::fmt::Display for Setting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// The `node` table of one vault.
pub(crate) struct Settings<'a> {
    pub(super) store: &'a Store,
}

impl Settings<'_> {
    pub(crate) fn get(&self, setting: Setting<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(&NODE, Key::Name(&setting.name()))
    }

    /// Call inside a write transaction.
    pub(crate) fn put(&self, setting: Setting<'_>, value: &[u8]) -> Result<(), StoreError> {
        self.store.put(&NODE, Key::Name(&setting.name()), value)?;
        Ok(())
    }

    /// Call inside a write transaction.
    pub(crate) fn delete(&self, setting: Setting<'_>) -> Result<(), StoreError> {
        self.store.delete(&NODE, Key::Name(&setting.name()))?;
        Ok(())
    }

    /// The rows of every contact with a [`Setting::ContactStamp`].
    pub(crate) fn stamped_contacts(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .store
            .keys(&NODE)?
            .into_iter()
            .filter_map(|key| match key {
                OwnedKey::Name(name) => {
                    data_encoding::HEXLOWER.decode(name.strip_prefix(CONTACT_STAMP)?.as_bytes()).ok()
                }
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are in files already written: changing one loses the setting.
    #[test]
    fn names_are_those_stored_by_earlier_versions() {
        let grant = GrantId::random();
        let identity = crate::identity::Identity::generate().public();
        let device = crate::identity::DeviceKey::generate().public();
        let cases = [
            (Setting::Addrs, "addrs".to_owned()),
            (Setting::ServeStates(&grant), format!("serve-states/{grant}")),
            (Setting::LegacyServeState(&grant, 0), format!("serve-sync/{grant}")),
            (Setting::LegacyServeState(&grant, 3), format!("serve-sync/{grant}/3")),
            (Setting::KeyEvents(&identity), format!("key-events/{identity}")),
            (Setting::OwnRoster, "roster".to_owned()),
            (Setting::DevicesOf(&identity), format!("devices-of/{identity}")),
            (Setting::Mutes, "feed-mutes".to_owned()),
            (Setting::MirrorUrl, "mirror-url".to_owned()),
            (Setting::MirrorStatus, "mirror-status".to_owned()),
            (Setting::AcceptGrants, "accept-grants".to_owned()),
            (Setting::ViewsConformed, "views-conformed".to_owned()),
            (Setting::AuditFrom(&device), format!("audit-from/{device}")),
            (Setting::SharedLogSeeded, "shared-log-seeded".to_owned()),
            (Setting::SharedLogIncarnation, "shared-log-incarnation".to_owned()),
            (Setting::SharedLogForked, "shared-log-forked".to_owned()),
            (Setting::SharedLogSuspects, "shared-log-suspects".to_owned()),
            (Setting::ContactStamp(&[0xab, 0x01]), "contact-stamp/ab01".to_owned()),
        ];
        for (setting, name) in cases {
            assert_eq!(setting.name(), name);
        }
    }
}
