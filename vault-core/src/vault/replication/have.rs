//! What a device holds of the shared log, as it tells another device in a `Have`.

use serde::{Deserialize, Serialize};

use super::Origin;

/// What a device holds of the shared log (the highest number of each origin's entries, with
/// the digest of that entry, which vouches for every entry before it), and how far it holds
/// the other device's access log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedHave {
    pub(super) log: Vec<(Origin, i64)>,
    pub(super) audit: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) digests: Vec<(Origin, String)>,
}

impl SharedHave {
    /// The encoding sent to another device.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializes")
    }

    /// Reads what another device sent; `None` when it does not decode.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    pub(super) fn of(&self, origin: &Origin) -> i64 {
        self.log.iter().find(|(d, _)| d == origin).map_or(0, |(_, s)| *s)
    }

    /// Believes less: `origin` held only up to `seq` (so what follows is sent again).
    pub(super) fn lower(&mut self, origin: Origin, seq: i64) {
        match self.log.iter_mut().find(|(d, _)| *d == origin) {
            Some((_, s)) => *s = (*s).min(seq),
            None => self.log.push((origin, seq)),
        }
    }

    pub(super) fn set(&mut self, origin: Origin, seq: i64) {
        match self.log.iter_mut().find(|(d, _)| *d == origin) {
            Some((_, s)) => *s = (*s).max(seq),
            None => self.log.push((origin, seq)),
        }
    }
}
