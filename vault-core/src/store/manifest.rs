//! The sealed manifest: the count and row-set digest of every sealed table (see
//! [`sealed`](super::sealed) for what the digest binds and why).

use std::collections::BTreeMap;

use rusqlite::OptionalExtension;

use super::sealed::{ALL_TABLES, Table};
use super::{Store, StoreError};
use crate::primitives::DIGEST_LEN;

/// The count and digest of one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TableDigest {
    pub(crate) count: u64,
    pub(crate) digest: [u8; DIGEST_LEN],
}

impl TableDigest {
    fn toggle(&mut self, element: &[u8; DIGEST_LEN], add: bool) {
        for (d, e) in self.digest.iter_mut().zip(element) {
            *d ^= e;
        }
        self.count = if add { self.count.wrapping_add(1) } else { self.count.wrapping_sub(1) };
    }
}

/// The sealed manifest: the digest of every sealed table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) tables: BTreeMap<String, TableDigest>,
}

const MANIFEST_VERSION: u8 = 1;
pub(super) const MANIFEST_TABLE: &str = "manifest";

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![MANIFEST_VERSION];
        out.extend_from_slice(&(self.tables.len() as u32).to_be_bytes());
        for (name, t) in &self.tables {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&t.count.to_be_bytes());
            out.extend_from_slice(&t.digest);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&version, mut rest) = bytes.split_first()?;
        if version != MANIFEST_VERSION {
            return None;
        }
        let n = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        rest = &rest[4..];
        let mut tables = BTreeMap::new();
        for _ in 0..n {
            let (&len, r) = rest.split_first()?;
            let name = std::str::from_utf8(r.get(..len as usize)?).ok()?.to_owned();
            let r = &r[len as usize..];
            let count = u64::from_be_bytes(r.get(..8)?.try_into().ok()?);
            let digest: [u8; DIGEST_LEN] = r.get(8..8 + DIGEST_LEN)?.try_into().ok()?;
            rest = &r[8 + DIGEST_LEN..];
            tables.insert(name, TableDigest { count, digest });
        }
        rest.is_empty().then_some(Self { tables })
    }
}

impl Store {
    pub(crate) fn read_manifest(&self) -> Result<Option<Manifest>, StoreError> {
        let blob: Option<Vec<u8>> =
            self.conn.query_row("SELECT blob FROM manifest WHERE id = 1", [], |r| r.get(0)).optional()?;
        let Some(blob) = blob else { return Ok(None) };
        let plain = self.open_row(MANIFEST_TABLE, b"1", &blob).map_err(|_| {
            if self.key_changed() {
                StoreError::KeyChanged
            } else {
                StoreError::Unreadable { table: MANIFEST_TABLE, row: "1".into() }
            }
        })?;
        Manifest::decode(&plain)
            .map(Some)
            .ok_or(StoreError::Unreadable { table: MANIFEST_TABLE, row: "1".into() })
    }

    pub(crate) fn write_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let blob = self.seal_row(MANIFEST_TABLE, b"1", &manifest.encode());
        self.conn.execute(
            "INSERT INTO manifest (id, blob) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET blob = excluded.blob",
            [blob],
        )?;
        Ok(())
    }

    /// Applies `changes` (element, added) to `table`'s digest in the manifest. Call inside the
    /// write transaction that changes the rows.
    pub(super) fn update_digest(
        &self,
        table: &Table,
        changes: &[([u8; DIGEST_LEN], bool)],
    ) -> Result<(), StoreError> {
        *self.table_writes.borrow_mut().entry(table.name).or_default() += 1;
        if changes.is_empty() {
            return Ok(());
        }
        let mut manifest = self.read_manifest()?.ok_or(StoreError::Integrity { table: MANIFEST_TABLE })?;
        let entry = manifest.tables.entry(table.name.to_owned()).or_default();
        for (element, add) in changes {
            entry.toggle(element, *add);
        }
        self.write_manifest(&manifest)
    }

    /// The digest of `table` as its rows are now, computed from every row's nonce and tag.
    fn compute_digest(&self, table: &Table) -> Result<TableDigest, StoreError> {
        let mut digest = TableDigest::default();
        for element in self.elements_where(table, "1", &[])? {
            digest.toggle(&element, true);
        }
        Ok(digest)
    }

    /// Recomputes every table's digest and compares it with the sealed manifest; returns the
    /// tables whose rows are not the ones the vault wrote. Call inside one read transaction.
    pub(crate) fn check_rows(&self) -> Result<Vec<&'static str>, StoreError> {
        let Some(manifest) = self.read_manifest()? else {
            return Ok(vec![MANIFEST_TABLE]);
        };
        let mut bad = Vec::new();
        for table in ALL_TABLES {
            let expected = manifest.tables.get(table.name).copied().unwrap_or_default();
            if self.compute_digest(table)? != expected {
                bad.push(table.name);
            }
        }
        Ok(bad)
    }

    /// Writes a manifest describing the rows as they are now (a new vault, or a vault from
    /// before the manifest existed). Call inside a write transaction.
    pub(crate) fn build_manifest(&self) -> Result<(), StoreError> {
        let mut manifest = Manifest::default();
        for table in ALL_TABLES {
            manifest.tables.insert(table.name.to_owned(), self.compute_digest(table)?);
        }
        self.write_manifest(&manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::{KdfParams, LABEL_WRAP, Passphrase, derive_wrapping_key, seal};
    use crate::store::sealed::{GRANTS, Key, PROJECTION_CHUNKS};
    use crate::store::{DB_FILE, UnlockFailure, wrap_ad};
    use proptest::prelude::*;

    fn store(dir: &std::path::Path) -> Store {
        Store::create(&dir.join(DB_FILE), &Passphrase::new("pw"), KdfParams::INSECURE_FOR_TESTS).unwrap()
    }

    #[test]
    fn manifest_roundtrips() {
        let mut m = Manifest::default();
        m.tables.insert("grants".into(), TableDigest { count: 3, digest: [7; DIGEST_LEN] });
        m.tables.insert("audit".into(), TableDigest { count: 0, digest: [0; DIGEST_LEN] });
        assert_eq!(Manifest::decode(&m.encode()), Some(m.clone()));
        assert_eq!(Manifest::decode(&m.encode()[1..]), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8),
        Delete(u8),
        DeleteGroup,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(0u8..6).prop_map(Op::Put), (0u8..6).prop_map(Op::Delete), Just(Op::DeleteGroup)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Any sequence of writes through the store keeps the digest right; then any single
        /// deletion, or a stale copy of a row put back, is detected.
        #[test]
        fn digest_follows_writes_and_catches_tampering(ops in proptest::collection::vec(op(), 1..24),
                                                      victim in any::<prop::sample::Index>(),
                                                      stale in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            let s = store(dir.path());
            let mut stale_rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            for op in &ops {
                match op {
                    Op::Put(i) => {
                        let before: Option<Vec<u8>> = s.conn.query_row(
                            "SELECT blob FROM grants WHERE id = ?1", [vec![*i]], |r| r.get(0)).optional().unwrap();
                        if let Some(b) = before { stale_rows.push((vec![*i], b)); }
                        s.put(&GRANTS, Key::Id(&[*i]), b"grant").unwrap();
                        s.put(&PROJECTION_CHUNKS, Key::Chunk(&[1], i64::from(*i)), b"chunk").unwrap();
                    }
                    Op::Delete(i) => {
                        let before: Option<Vec<u8>> = s.conn.query_row(
                            "SELECT blob FROM grants WHERE id = ?1", [vec![*i]], |r| r.get(0)).optional().unwrap();
                        if let Some(b) = before { stale_rows.push((vec![*i], b)); }
                        s.delete(&GRANTS, Key::Id(&[*i])).unwrap();
                    }
                    Op::DeleteGroup => { s.delete_group(&PROJECTION_CHUNKS, &[1]).unwrap(); }
                }
                prop_assert!(s.check_rows().unwrap().is_empty());
            }
            let ids: Vec<Vec<u8>> = s.conn.prepare("SELECT id FROM grants").unwrap()
                .query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
            if stale && !stale_rows.is_empty() {
                let (id, blob) = victim.get(&stale_rows).clone();
                s.conn.execute("INSERT OR REPLACE INTO grants (id, blob) VALUES (?1, ?2)",
                               rusqlite::params![id, blob]).unwrap();
            } else if !ids.is_empty() {
                let id = victim.get(&ids).clone();
                s.conn.execute("DELETE FROM grants WHERE id = ?1", [id]).unwrap();
            } else {
                return Ok(());
            }
            prop_assert_eq!(s.check_rows().unwrap(), vec!["grants"]);
        }
    }

    /// The schema of a vault from before the manifest: its tables and later ones dropped, their
    /// migrations forgotten.
    const LEGACY: &str = "DROP TABLE manifest; DROP TABLE IF EXISTS devices; DROP TABLE IF EXISTS shared_log;
         DROP TABLE IF EXISTS notices_out; DROP TABLE IF EXISTS notices_in;
         DROP TABLE IF EXISTS intents_out; DROP TABLE IF EXISTS intents_in;
         DROP TABLE IF EXISTS topics; DROP TABLE IF EXISTS signals;
         DELETE FROM migrations WHERE version >= 5;";

    /// Turns a new vault into one from before the manifest: no manifest table, key wrapped
    /// under the old label.
    fn make_legacy(path: &std::path::Path) {
        let conn = rusqlite::Connection::open(path).unwrap();
        let get = |k: &str| -> Vec<u8> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0)).unwrap()
        };
        let vault_id: [u8; 16] = get("vault_id").try_into().unwrap();
        let params: KdfParams = serde_json::from_slice(&get("kdf")).unwrap();
        let kek = derive_wrapping_key(&Passphrase::new("pw"), &get("salt"), params).unwrap();
        let store = Store::open(path, &Passphrase::new("pw")).unwrap();
        let wrapped = seal(&kek, &wrap_ad(LABEL_WRAP, &vault_id, &params), store.key.expose());
        drop(store);
        conn.execute_batch(LEGACY).unwrap();
        conn.execute("UPDATE meta SET value = ?1 WHERE key = 'wrapped_key'", [wrapped]).unwrap();
    }

    /// An attacker with a copy of the file from before the manifest puts its wrapped key back
    /// and drops the manifest, hoping that tampered rows get accepted as the new baseline.
    #[test]
    fn an_old_wrapped_key_put_back_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let s = store(dir.path());
        s.put(&GRANTS, Key::Id(b"g1"), b"grant one").unwrap();
        s.put(&GRANTS, Key::Id(b"g2"), b"grant two").unwrap();
        drop(s);
        make_legacy(&path);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let old_wrapped: Vec<u8> =
            conn.query_row("SELECT value FROM meta WHERE key = 'wrapped_key'", [], |r| r.get(0)).unwrap();
        // First open migrates.
        let s = Store::open(&path, &Passphrase::new("pw")).unwrap();
        assert_eq!(s.get(&GRANTS, Key::Id(b"g2")).unwrap().as_deref(), Some(&b"grant two"[..]));
        drop(s);
        // The attack: a grant row deleted, the manifest dropped, the old wrapped key back.
        conn.execute("DELETE FROM grants WHERE id = ?1", [b"g2".to_vec()]).unwrap();
        conn.execute_batch(LEGACY).unwrap();
        conn.execute("UPDATE meta SET value = ?1 WHERE key = 'wrapped_key'", [old_wrapped]).unwrap();
        drop(conn);
        match Store::open(&path, &Passphrase::new("pw")) {
            Err(UnlockFailure::Store(StoreError::Unreadable { table: "secrets" | "grants", .. })) => {}
            other => panic!("the old key must open nothing, got {:?}", other.map(|_| "a store")),
        }
    }

    #[test]
    fn a_vault_from_before_the_manifest_gets_one_on_first_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let s = store(dir.path());
        s.put(&GRANTS, Key::Id(b"g1"), b"grant").unwrap();
        drop(s);
        make_legacy(&path);
        let s = Store::open(&path, &Passphrase::new("pw")).unwrap();
        assert!(s.check_rows().unwrap().is_empty());
        s.put(&PROJECTION_CHUNKS, Key::Chunk(b"g1", 1), b"chunk").unwrap();
        drop(s);
        // From now on the manifest is required: deleting it is damage, not an old vault.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("DELETE FROM manifest", []).unwrap();
        let s = Store::open(&path, &Passphrase::new("pw")).unwrap();
        assert_eq!(s.check_rows().unwrap(), vec![MANIFEST_TABLE]);
        assert!(matches!(Store::open(&path, &Passphrase::new("nope")), Err(UnlockFailure::WrongPassphrase)));
    }
}
