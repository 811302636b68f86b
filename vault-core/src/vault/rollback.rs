//! Write transactions end on every path: a panic inside a write closure rolls the transaction
//! back and drops what this process cached, so the connection is never left inside
//! `BEGIN IMMEDIATE` holding the file's write lock.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::Vault;

impl Vault {
    /// Ends an abandoned write: rolls back the open transaction (if any), drops the caches and
    /// reloads the document, which may hold a change that never reached the disk.
    fn abandon_write(&mut self) {
        self.store.rollback();
        // Drop operations the closure made in memory first: needs no I/O, so it holds even
        // when the reload below fails (a half-made change must never reach a later save).
        self.doc.automerge().rollback();
        self.doc.take_touched();
        self.drop_caches();
        if let Err(e) = self.reload() {
            tracing::warn!(error = %e, "reloading the document after an abandoned write failed");
        }
    }
}

/// Runs `f` on `vault`; if `f` panics, the write it was making is abandoned (see
/// [`Vault::abandon_write`]) before the panic goes on.
pub(super) fn guarded<T>(vault: &mut Vault, f: impl FnOnce(&mut Vault) -> T) -> T {
    match catch_unwind(AssertUnwindSafe(|| f(vault))) {
        Ok(value) => value,
        Err(panic) => {
            vault.abandon_write();
            resume_unwind(panic)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use crate::primitives::Passphrase;
    use crate::store::StoreError;
    use crate::vault::{AuditEvent, AuditFilter, AuditKind, Vault, new_test_vault};

    #[test]
    fn a_panic_inside_a_write_rolls_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = new_test_vault(dir.path());
        let rows_before = v.access_log().list(&AuditFilter::default()).unwrap().len();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            let _ = v.write(|v| -> Result<(), StoreError> {
                v.access_log().append(&AuditEvent::new(0, AuditKind::PeerRefused))?;
                panic!("peer-driven code failed");
            });
        }));
        assert!(panicked.is_err());
        // Not stuck inside BEGIN IMMEDIATE: this handle and another one can write.
        v.records_mut().set_profile("name", "Ada").unwrap();
        let mut other = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        other.records_mut().set_preference("diet", "vegan").unwrap();
        // The row written before the panic was rolled back.
        let refused = v
            .access_log()
            .list(&AuditFilter::default())
            .unwrap()
            .iter()
            .filter(|e| e.kind == AuditKind::PeerRefused)
            .count();
        assert_eq!(refused, 0);
        assert!(v.access_log().list(&AuditFilter::default()).unwrap().len() >= rows_before);
    }

    #[test]
    fn a_panic_inside_an_edit_leaves_no_half_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = new_test_vault(dir.path());
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            let _ = v.edit(|doc| -> Result<(), crate::vault::EditError> {
                doc.set_profile(&["email"], "half@example.org".into()).unwrap();
                panic!("peer-driven code failed");
            });
        }));
        assert!(panicked.is_err());
        v.records_mut().set_profile("name", "Ada").unwrap();
        assert_eq!(v.records().profile_field("email").unwrap(), None);
        let other = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        assert_eq!(other.records().profile_field("name").unwrap(), Some("Ada".into()));
        assert_eq!(other.records().profile_field("email").unwrap(), None);
    }
}
