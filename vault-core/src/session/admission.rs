//! Who gets in: the decisions a transport asks before a machine is made, and how refusals are
//! logged. A connection's peer is known only by the device key QUIC authenticated and the
//! certificate it claims in its hello; [`admit_peer`] says whether this vault talks to it, and
//! [`admit_device`] whether a device may join a session between this identity's devices. The
//! transport acts on the answer and adds no rule of its own.

use std::time::{Duration, Instant};

use crate::identity::{CertificateError, DeviceCertificate, DeviceId, IdentityId};
use crate::store::StoreError;
use crate::vault::{AuditEvent, AuditKind};

/// At most one audit row about refused peers per this interval; the row counts the others.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// What an admission decision reads of the vault.
pub trait AdmissionStore {
    /// Whether `device` of `peer` was removed from its identity (its identity key said so).
    fn is_refused_device(&self, peer: &IdentityId, device: &DeviceId) -> Result<bool, StoreError>;
    /// Whether `peer` is a blocked contact.
    fn is_blocked(&self, peer: &IdentityId) -> Result<bool, StoreError>;
    /// Whether `device` is an active device of this identity other than this one, while this
    /// one is active too.
    fn may_sync_with(&self, device: &DeviceId) -> Result<bool, StoreError>;
}

/// Why a peer was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum RefusedWhy {
    /// Its certificate does not verify for the device that connected.
    Certificate(CertificateError),
    /// Its device was removed from its identity.
    RemovedDevice,
    /// It is a blocked contact.
    Blocked,
    /// Not an active device of this identity (device protocol).
    NotOurDevice,
    /// More control requests than allowed.
    TooManyRequests,
}

/// A refused peer: who it claims to be (when proven), the access log's line, and why.
#[derive(Debug)]
pub struct Refused {
    /// The identity, once its certificate verified; `None` while unproven.
    pub peer: Option<IdentityId>,
    /// The access log's detail.
    pub detail: String,
    /// Why.
    pub why: RefusedWhy,
}

impl Refused {
    /// Whether the transport must not answer at all: to a blocked peer this vault looks exactly
    /// like a node that does not answer (it gives up after its handshake timeout), not like a
    /// refusal.
    pub fn answer_nothing(&self) -> bool {
        matches!(self.why, RefusedWhy::Blocked)
    }

    /// The refusal of a peer that sent more control requests than allowed.
    pub fn too_many_requests(peer: IdentityId) -> Self {
        Self { peer: Some(peer), detail: "too many requests".into(), why: RefusedWhy::TooManyRequests }
    }
}

/// Whether this vault talks to the device `remote` (as QUIC authenticated it), whose hello
/// claims `cert`: the certificate must verify for it, its device must not be removed from its
/// identity, and its identity must not be blocked. A store that fails refuses.
pub fn admit_peer<S: AdmissionStore + ?Sized>(
    store: &S,
    remote: DeviceId,
    cert: &DeviceCertificate,
) -> Result<IdentityId, Box<Refused>> {
    if let Err(e) = cert.verify(remote) {
        // The claimed identity is unproven: the log names the device that actually connected.
        return Err(Box::new(Refused {
            peer: None,
            detail: format!("device {remote}: its certificate does not verify for it"),
            why: RefusedWhy::Certificate(e),
        }));
    }
    let peer = cert.identity();
    if store.is_refused_device(&peer, &remote).unwrap_or(true) {
        return Err(Box::new(Refused {
            peer: Some(peer),
            detail: format!("device {remote}: removed from its identity"),
            why: RefusedWhy::RemovedDevice,
        }));
    }
    if store.is_blocked(&peer).unwrap_or(true) {
        return Err(Box::new(Refused {
            peer: Some(peer),
            detail: "blocked contact".into(),
            why: RefusedWhy::Blocked,
        }));
    }
    Ok(peer)
}

/// Whether `remote` (as QUIC authenticated it, `None` when its key is not a device key) may hold
/// a session between this identity's devices.
pub fn admit_device<S: AdmissionStore + ?Sized>(
    store: &S,
    remote: Option<DeviceId>,
) -> Result<DeviceId, Box<Refused>> {
    match remote {
        Some(device) if store.may_sync_with(&device).unwrap_or(false) => Ok(device),
        _ => Err(Box::new(Refused {
            peer: None,
            detail: "a device that is not an active device of this identity".into(),
            why: RefusedWhy::NotOurDevice,
        })),
    }
}

/// When refusals are written to the access log: at most one row per [`REFUSAL_LOG_INTERVAL`]
/// (connections and device keys are free, so refusals are counted and the next row says how
/// many were not written one by one).
#[derive(Debug, Default)]
pub struct RefusalLog {
    /// When the last row was written, and refusals since then not written.
    last: Option<(Instant, u64)>,
}

impl RefusalLog {
    /// Whether a refusal may be written at `now`: `Some(n)` with `n` refusals not written since
    /// the last row, or `None` (counted) within [`REFUSAL_LOG_INTERVAL`] of the last row.
    pub fn due(&mut self, now: Instant) -> Option<u64> {
        match &mut self.last {
            Some((last, unlogged)) if now.duration_since(*last) < REFUSAL_LOG_INTERVAL => {
                *unlogged += 1;
                None
            }
            Some((last, unlogged)) => {
                *last = now;
                Some(std::mem::take(unlogged))
            }
            None => {
                self.last = Some((now, 0));
                Some(0)
            }
        }
    }

    /// The access log's row for `refused` at `at` (unix seconds), `unlogged` others not written.
    pub fn event(refused: &Refused, at: i64, unlogged: u64) -> AuditEvent {
        let mut event = AuditEvent::new(at, AuditKind::PeerRefused);
        event.peer = refused.peer;
        event.detail = Some(if unlogged == 0 {
            refused.detail.clone()
        } else {
            format!("{} (and {unlogged} more refused since the last entry)", refused.detail)
        });
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DeviceKey, Identity};

    #[derive(Default)]
    struct Fake {
        removed: bool,
        blocked: bool,
        failing: bool,
    }

    impl AdmissionStore for Fake {
        fn is_refused_device(&self, _: &IdentityId, _: &DeviceId) -> Result<bool, StoreError> {
            if self.failing { Err(StoreError::DamagedHeader("test")) } else { Ok(self.removed) }
        }
        fn is_blocked(&self, _: &IdentityId) -> Result<bool, StoreError> {
            Ok(self.blocked)
        }
        fn may_sync_with(&self, _: &DeviceId) -> Result<bool, StoreError> {
            Ok(!self.removed)
        }
    }

    #[test]
    fn a_hello_is_admitted_only_with_a_certificate_for_the_device_that_connected() {
        let (identity, device, other) = (Identity::generate(), DeviceKey::generate(), DeviceKey::generate());
        let cert = identity.certify(device.public());
        let peer = admit_peer(&Fake::default(), device.public(), &cert).unwrap();
        assert_eq!(peer, identity.public());
        let refused = admit_peer(&Fake::default(), other.public(), &cert).unwrap_err();
        assert!(matches!(refused.why, RefusedWhy::Certificate(_)));
        assert_eq!(refused.peer, None, "an unproven identity is not named");
        assert!(refused.detail.contains(&other.public().to_string()));
        let removed = admit_peer(&Fake { removed: true, ..Fake::default() }, device.public(), &cert);
        assert!(removed.unwrap_err().detail.ends_with("removed from its identity"));
        let failing = admit_peer(&Fake { failing: true, ..Fake::default() }, device.public(), &cert);
        assert!(matches!(failing.unwrap_err().why, RefusedWhy::RemovedDevice), "a failing store refuses");
        let blocked =
            admit_peer(&Fake { blocked: true, ..Fake::default() }, device.public(), &cert).unwrap_err();
        assert!(blocked.answer_nothing());
        assert_eq!(blocked.detail, "blocked contact");
        assert!(admit_device(&Fake::default(), None).is_err());
        assert!(admit_device(&Fake { removed: true, ..Fake::default() }, Some(device.public())).is_err());
    }

    #[test]
    fn refusals_are_logged_once_an_interval_and_counted() {
        let mut log = RefusalLog::default();
        let start = Instant::now();
        assert_eq!(log.due(start), Some(0));
        assert_eq!(log.due(start + Duration::from_secs(1)), None);
        assert_eq!(log.due(start + Duration::from_secs(2)), None);
        assert_eq!(log.due(start + REFUSAL_LOG_INTERVAL + Duration::from_secs(1)), Some(2));
        let refused = Refused::too_many_requests(Identity::generate().public());
        let event = RefusalLog::event(&refused, 7, 2);
        assert_eq!(
            event.detail.as_deref(),
            Some("too many requests (and 2 more refused since the last entry)")
        );
    }
}
