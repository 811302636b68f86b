//! Sealed rows: the only place that reads, writes or deletes a sealed row, and the row-set
//! digest that binds the set of rows (finding: rows deleted, put back or rolled back one by one).
//!
//! Each sealed table is described by a [`Table`]. Every blob is sealed with associated data
//! naming the vault, the table and the row. On top of that, every table has a digest: the XOR
//! of a keyed hash (see [`row_element`]) of (table, row, nonce, tag) over all its rows, kept
//! with the row count in one sealed `manifest` row. Each write updates the manifest in the same
//! transaction (remove the old row's element, add the new one), so the digest always describes
//! the rows the vault wrote. Open and `verify` recompute it ([`Store::check_rows`]): a deleted
//! row, a row put back from an older copy of the file, or a row from another vault changes the
//! digest. The nonce is random per seal, so an older blob of the same row has another element.
//! Rolling back the whole file (manifest and rows together) is not detectable this way.

use rusqlite::{OptionalExtension, params_from_iter};

use super::{Store, StoreError};
use crate::primitives::{DIGEST_LEN, NONCE_BYTES, SymmetricKey, TAG_BYTES, nonce_and_tag, row_element};

/// How a table's rows are keyed, and how the key becomes the row bytes of the associated data.
#[derive(Debug, Clone, Copy)]
enum KeyKind {
    /// A BLOB primary key (random ids); the row bytes are the key.
    Blob(&'static str),
    /// A TEXT primary key; the row bytes are its UTF-8.
    Text(&'static str),
    /// An INTEGER primary key; the row bytes are the big-endian number, or its decimal digits
    /// (`doc_changes`, from before this module).
    Seq { col: &'static str, decimal: bool },
    /// A BLOB group id and an INTEGER sequence; the row bytes are the id then the big-endian
    /// sequence.
    Group(&'static str, &'static str),
    /// The single snapshot row (`id = 1`), whose row bytes are its big-endian generation.
    Snapshot,
}

/// A table of sealed rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table {
    pub(crate) name: &'static str,
    kind: KeyKind,
}

pub(crate) const SECRETS: Table = Table { name: "secrets", kind: KeyKind::Text("name") };
pub(crate) const DOC_SNAPSHOT: Table = Table { name: "doc_snapshot", kind: KeyKind::Snapshot };
pub(crate) const DOC_CHANGES: Table =
    Table { name: "doc_changes", kind: KeyKind::Seq { col: "seq", decimal: true } };
pub(crate) const GRANTS: Table = Table { name: "grants", kind: KeyKind::Blob("id") };
pub(crate) const PROJECTION_CHUNKS: Table =
    Table { name: "projection_chunks", kind: KeyKind::Group("grant_id", "seq") };
pub(crate) const CONTACTS: Table = Table { name: "contacts", kind: KeyKind::Blob("id") };
pub(crate) const AUDIT: Table = Table { name: "audit", kind: KeyKind::Seq { col: "seq", decimal: false } };
pub(crate) const RECEIVED: Table = Table { name: "received", kind: KeyKind::Blob("grant_id") };
pub(crate) const RECEIVED_CHUNKS: Table =
    Table { name: "received_chunks", kind: KeyKind::Group("grant_id", "seq") };
pub(crate) const RECEIVED_VIEWS: Table = Table { name: "received_views", kind: KeyKind::Blob("grant_id") };
pub(crate) const REQUESTS_IN: Table = Table { name: "requests_in", kind: KeyKind::Blob("id") };
pub(crate) const REQUESTS_OUT: Table = Table { name: "requests_out", kind: KeyKind::Blob("id") };
pub(crate) const NODE: Table = Table { name: "node", kind: KeyKind::Text("key") };
pub(crate) const DEVICES: Table = Table { name: "devices", kind: KeyKind::Blob("id") };
pub(crate) const SHARED_LOG: Table = Table { name: "shared_log", kind: KeyKind::Group("origin", "seq") };
pub(crate) const NOTICES_OUT: Table = Table { name: "notices_out", kind: KeyKind::Blob("id") };
pub(crate) const NOTICES_IN: Table = Table { name: "notices_in", kind: KeyKind::Blob("id") };
pub(crate) const INTENTS_OUT: Table = Table { name: "intents_out", kind: KeyKind::Blob("id") };
pub(crate) const INTENTS_IN: Table = Table { name: "intents_in", kind: KeyKind::Blob("id") };
pub(crate) const TOPICS: Table = Table { name: "topics", kind: KeyKind::Blob("id") };
pub(crate) const SIGNALS: Table = Table { name: "signals", kind: KeyKind::Blob("id") };

/// Every sealed table, in the order `verify` reports them.
pub(crate) const ALL_TABLES: &[Table] = &[
    SECRETS,
    DOC_SNAPSHOT,
    DOC_CHANGES,
    GRANTS,
    PROJECTION_CHUNKS,
    CONTACTS,
    AUDIT,
    RECEIVED,
    RECEIVED_CHUNKS,
    RECEIVED_VIEWS,
    REQUESTS_IN,
    REQUESTS_OUT,
    NODE,
    DEVICES,
    SHARED_LOG,
    NOTICES_OUT,
    NOTICES_IN,
    INTENTS_OUT,
    INTENTS_IN,
    TOPICS,
    SIGNALS,
];

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The key of one row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key<'a> {
    /// A BLOB id (`grants`, `contacts`, ...).
    Id(&'a [u8]),
    /// A TEXT name (`secrets`, `node`).
    Name(&'a str),
    /// A sequence number (`audit`, `doc_changes`), or the snapshot's generation.
    Seq(i64),
    /// A group id and a sequence number (`projection_chunks`, `received_chunks`).
    Chunk(&'a [u8], i64),
}

impl Table {
    /// The row bytes bound into the associated data and the digest.
    fn row_bytes(&self, key: Key<'_>) -> Vec<u8> {
        match key {
            Key::Id(id) => id.to_vec(),
            Key::Name(name) => name.as_bytes().to_vec(),
            Key::Seq(seq) if matches!(self.kind, KeyKind::Seq { decimal: true, .. }) => {
                seq.to_string().into_bytes()
            }
            Key::Seq(seq) => seq.to_be_bytes().to_vec(),
            Key::Chunk(id, seq) => [id, &seq.to_be_bytes()[..]].concat(),
        }
    }

    /// A row's name for messages: ids in hex, numbers as they are (never a value).
    fn row_name(key: Key<'_>) -> String {
        match key {
            Key::Id(id) => data_encoding::HEXLOWER.encode(id),
            Key::Name(name) => name.to_owned(),
            Key::Seq(seq) => seq.to_string(),
            Key::Chunk(id, seq) => format!("{}/{seq}", data_encoding::HEXLOWER.encode(id)),
        }
    }

    /// The WHERE clause selecting one row, with its parameters.
    fn where_row(&self, key: Key<'_>) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value as V;
        match (self.kind, key) {
            (KeyKind::Blob(c), Key::Id(id)) => (format!("{c} = ?1"), vec![V::Blob(id.to_vec())]),
            (KeyKind::Text(c), Key::Name(n)) => (format!("{c} = ?1"), vec![V::Text(n.to_owned())]),
            (KeyKind::Seq { col, .. }, Key::Seq(s)) => (format!("{col} = ?1"), vec![V::Integer(s)]),
            (KeyKind::Group(g, s), Key::Chunk(id, seq)) => {
                (format!("{g} = ?1 AND {s} = ?2"), vec![V::Blob(id.to_vec()), V::Integer(seq)])
            }
            (KeyKind::Snapshot, Key::Seq(_)) => ("id = 1".to_owned(), vec![]),
            _ => unreachable!("table {} is keyed otherwise", self.name),
        }
    }

    /// Columns that make up the key, selected in this order by [`Table::key_from_row`].
    fn key_columns(&self) -> String {
        match self.kind {
            KeyKind::Blob(c) | KeyKind::Text(c) => c.to_owned(),
            KeyKind::Seq { col, .. } => col.to_owned(),
            KeyKind::Group(g, s) => format!("{g}, {s}"),
            KeyKind::Snapshot => "generation".to_owned(),
        }
    }

    fn key_from_row(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<OwnedKey> {
        Ok(match self.kind {
            KeyKind::Blob(_) => OwnedKey::Id(row.get(0)?),
            KeyKind::Text(_) => OwnedKey::Name(row.get(0)?),
            KeyKind::Seq { .. } | KeyKind::Snapshot => OwnedKey::Seq(row.get(0)?),
            KeyKind::Group(..) => OwnedKey::Chunk(row.get(0)?, row.get(1)?),
        })
    }

    fn key_len(&self) -> usize {
        if matches!(self.kind, KeyKind::Group(..)) { 2 } else { 1 }
    }
}

/// A row's key as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnedKey {
    Id(Vec<u8>),
    Name(String),
    Seq(i64),
    Chunk(Vec<u8>, i64),
}

impl OwnedKey {
    pub(crate) fn as_key(&self) -> Key<'_> {
        match self {
            OwnedKey::Id(id) => Key::Id(id),
            OwnedKey::Name(n) => Key::Name(n),
            OwnedKey::Seq(s) => Key::Seq(*s),
            OwnedKey::Chunk(id, s) => Key::Chunk(id, *s),
        }
    }

    /// The sequence number of a `Seq` or `Chunk` key.
    pub(crate) fn seq(&self) -> i64 {
        match self {
            OwnedKey::Seq(s) | OwnedKey::Chunk(_, s) => *s,
            _ => 0,
        }
    }

    /// The id of an `Id` or `Chunk` key.
    pub(crate) fn id(&self) -> &[u8] {
        match self {
            OwnedKey::Id(id) | OwnedKey::Chunk(id, _) => id,
            _ => &[],
        }
    }
}

/// The SQL expression selecting a blob's nonce and tag, in that order.
fn nonce_tag_sql() -> String {
    format!("substr(blob, 1, {NONCE_BYTES}), substr(blob, -{TAG_BYTES}, {TAG_BYTES})")
}

impl Store {
    pub(super) fn element(&self, table: &Table, row: &[u8], nonce: &[u8], tag: &[u8]) -> [u8; DIGEST_LEN] {
        row_element(&self.digest_key, table.name, row, nonce, tag)
    }

    /// Runs `f` inside a write transaction: the caller's, or one of its own.
    fn in_write<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.still_writing()?;
        if !self.conn.is_autocommit() {
            return f();
        }
        self.begin_immediate()?;
        match f() {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                self.after_commit();
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Runs `f` inside one read transaction, so that everything it reads is one state of the
    /// file even while other processes write (a no-op inside the caller's transaction).
    pub(crate) fn read_tx<T, E: From<StoreError>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        if !self.conn.is_autocommit() {
            return f();
        }
        self.conn.execute_batch("BEGIN").map_err(StoreError::from)?;
        let result = f();
        let _ = self.conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
        result
    }

    /// The elements of the rows `where_sql` selects, to take them out of the digest.
    pub(super) fn elements_where(
        &self,
        table: &Table,
        where_sql: &str,
        params: &[rusqlite::types::Value],
    ) -> Result<Vec<[u8; DIGEST_LEN]>, StoreError> {
        let sql = format!(
            "SELECT {}, {} FROM {} WHERE {where_sql}",
            table.key_columns(),
            nonce_tag_sql(),
            table.name
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let n = table.key_len();
        let rows = stmt.query_map(params_from_iter(params), |r| {
            Ok((table.key_from_row(r)?, r.get::<_, Vec<u8>>(n)?, r.get::<_, Vec<u8>>(n + 1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, nonce, tag) = row?;
            out.push(self.element(table, &table.row_bytes(key.as_key()), &nonce, &tag));
        }
        Ok(out)
    }

    /// Seals `plaintext` into row `key` of `table` (insert or replace), updating the digest in
    /// the same transaction. Returns the sealed length.
    pub(crate) fn put(&self, table: &Table, key: Key<'_>, plaintext: &[u8]) -> Result<u64, StoreError> {
        self.in_write(|| {
            let (where_sql, where_params) = table.where_row(key);
            let mut changes: Vec<_> = self
                .elements_where(table, &where_sql, &where_params)?
                .into_iter()
                .map(|e| (e, false))
                .collect();
            let row = table.row_bytes(key);
            let blob = self.seal_row(table.name, &row, plaintext);
            let (nonce, tag) = nonce_and_tag(&blob);
            changes.push((self.element(table, &row, nonce, tag), true));
            use rusqlite::types::Value as V;
            let (sql, mut params): (String, Vec<V>) = match (table.kind, key) {
                (KeyKind::Snapshot, Key::Seq(generation)) => (
                    "INSERT INTO doc_snapshot (id, generation, blob) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, blob = excluded.blob"
                        .to_owned(),
                    vec![V::Integer(generation)],
                ),
                (KeyKind::Group(g, s), _) => (
                    format!(
                        "INSERT INTO {t} ({g}, {s}, blob) VALUES (?1, ?2, ?3)
                         ON CONFLICT ({g}, {s}) DO UPDATE SET blob = excluded.blob",
                        t = table.name
                    ),
                    where_params,
                ),
                _ => {
                    let c = table.key_columns();
                    (
                        format!(
                            "INSERT INTO {t} ({c}, blob) VALUES (?1, ?2)
                             ON CONFLICT ({c}) DO UPDATE SET blob = excluded.blob",
                            t = table.name
                        ),
                        where_params,
                    )
                }
            };
            let len = blob.len() as u64;
            params.push(V::Blob(blob));
            self.conn.prepare_cached(&sql)?.execute(params_from_iter(params))?;
            self.update_digest(table, &changes)?;
            Ok(len)
        })
    }

    /// Deletes row `key` of `table`; false when there was none.
    pub(crate) fn delete(&self, table: &Table, key: Key<'_>) -> Result<bool, StoreError> {
        let (where_sql, params) = table.where_row(key);
        self.delete_where(table, &where_sql, params, true).map(|n| n > 0)
    }

    /// Deletes every chunk of group `id` (`projection_chunks`, `received_chunks`).
    pub(crate) fn delete_group(&self, table: &Table, id: &[u8]) -> Result<usize, StoreError> {
        let KeyKind::Group(g, _) = table.kind else { unreachable!("{} has no groups", table.name) };
        self.delete_where(table, &format!("{g} = ?1"), vec![rusqlite::types::Value::Blob(id.to_vec())], true)
    }

    /// Deletes the chunks of group `id` before `seq` (folded into chunk `seq`).
    pub(crate) fn delete_group_before(
        &self,
        table: &Table,
        id: &[u8],
        seq: i64,
    ) -> Result<usize, StoreError> {
        let KeyKind::Group(g, s) = table.kind else { unreachable!("{} has no groups", table.name) };
        use rusqlite::types::Value as V;
        self.delete_where(
            table,
            &format!("{g} = ?1 AND {s} < ?2"),
            vec![V::Blob(id.to_vec()), V::Integer(seq)],
            false,
        )
    }

    /// Deletes every row whose sequence is at most `seq` (`doc_changes` after compaction).
    pub(crate) fn delete_through(&self, table: &Table, seq: i64) -> Result<usize, StoreError> {
        let KeyKind::Seq { col, .. } = table.kind else { unreachable!("{} has no sequence", table.name) };
        self.delete_where(table, &format!("{col} <= ?1"), vec![rusqlite::types::Value::Integer(seq)], false)
    }

    fn delete_where(
        &self,
        table: &Table,
        where_sql: &str,
        params: Vec<rusqlite::types::Value>,
        erasure: bool,
    ) -> Result<usize, StoreError> {
        self.in_write(|| {
            let gone: Vec<_> =
                self.elements_where(table, where_sql, &params)?.into_iter().map(|e| (e, false)).collect();
            let n = self
                .conn
                .prepare_cached(&format!("DELETE FROM {} WHERE {where_sql}", table.name))?
                .execute(params_from_iter(params))?;
            self.update_digest(table, &gone)?;
            if erasure && n > 0 {
                self.erased.set(true);
            }
            Ok(n)
        })
    }

    /// Opens a row read back from `table`, naming it in the error.
    fn open_read(&self, table: &Table, key: Key<'_>, blob: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.open_row(table.name, &table.row_bytes(key), blob).map_err(|_| {
            if self.key_changed() {
                StoreError::KeyChanged
            } else {
                StoreError::Unreadable { table: table.name, row: Table::row_name(key) }
            }
        })
    }

    /// The plaintext of row `key` of `table`, if there is one.
    pub(crate) fn get(&self, table: &Table, key: Key<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_with_len(table, key)?.map(|(_, plain, _)| plain))
    }

    /// Like [`Store::get`] with the sealed length too (the snapshot's size drives compaction).
    pub(crate) fn get_with_len(
        &self,
        table: &Table,
        key: Key<'_>,
    ) -> Result<Option<(OwnedKey, Vec<u8>, u64)>, StoreError> {
        let (where_sql, params) = table.where_row(key);
        let sql = format!("SELECT {}, blob FROM {} WHERE {where_sql}", table.key_columns(), table.name);
        let n = table.key_len();
        let row: Option<(OwnedKey, Vec<u8>)> = self
            .conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(params), |r| Ok((table.key_from_row(r)?, r.get(n)?)))
            .optional()?;
        row.map(|(k, blob)| {
            let plain = self.open_read(table, k.as_key(), &blob)?;
            Ok((k, plain, blob.len() as u64))
        })
        .transpose()
    }

    fn list_where(
        &self,
        table: &Table,
        where_sql: &str,
        params: Vec<rusqlite::types::Value>,
    ) -> Result<Vec<(OwnedKey, Vec<u8>, u64)>, StoreError> {
        self.list_where_limit(table, where_sql, params, usize::MAX)
    }

    fn list_where_limit(
        &self,
        table: &Table,
        where_sql: &str,
        params: Vec<rusqlite::types::Value>,
        limit: usize,
    ) -> Result<Vec<(OwnedKey, Vec<u8>, u64)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {k}, blob FROM {t} WHERE {where_sql} ORDER BY {k} LIMIT {limit}",
            k = table.key_columns(),
            t = table.name
        );
        let n = table.key_len();
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows: Vec<(OwnedKey, Vec<u8>)> = stmt
            .query_map(params_from_iter(params), |r| Ok((table.key_from_row(r)?, r.get(n)?)))?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        rows.into_iter()
            .map(|(k, blob)| {
                let plain = self.open_read(table, k.as_key(), &blob)?;
                Ok((k, plain, blob.len() as u64))
            })
            .collect()
    }

    /// Re-seals every row of every sealed table under a new data key, inside the caller's
    /// transaction, and makes it this store's key. Every row is opened with the current key
    /// first, so a row that key cannot open stops everything (and the store keeps its key).
    /// Digests are not kept up to date: the caller builds the manifest afterwards. Returns how
    /// many rows were re-sealed.
    pub(super) fn reseal_all(&mut self, new: SymmetricKey) -> Result<usize, StoreError> {
        let mut rows = Vec::new();
        for table in ALL_TABLES {
            for (key, plain, _) in self.list(table)? {
                rows.push((table, key, zeroize::Zeroizing::new(plain)));
            }
        }
        let old = self.key.clone();
        self.set_key(new);
        let result = (|| {
            for (table, key, plain) in &rows {
                let blob = self.seal_row(table.name, &table.row_bytes(key.as_key()), plain);
                let (where_sql, mut params) = table.where_row(key.as_key());
                let sql = format!("UPDATE {} SET blob = ?{} WHERE {where_sql}", table.name, params.len() + 1);
                params.push(rusqlite::types::Value::Blob(blob));
                self.conn.prepare_cached(&sql)?.execute(params_from_iter(params))?;
            }
            Ok(rows.len())
        })();
        if result.is_err() {
            self.set_key(old);
        }
        result
    }

    /// Every row of `table`, opened, in key order, with each blob's sealed length.
    pub(crate) fn list(&self, table: &Table) -> Result<Vec<(OwnedKey, Vec<u8>, u64)>, StoreError> {
        self.list_where(table, "1", vec![])
    }

    /// Rows of a sequence table after `seq`, in order.
    pub(crate) fn list_after(
        &self,
        table: &Table,
        seq: i64,
    ) -> Result<Vec<(OwnedKey, Vec<u8>, u64)>, StoreError> {
        let KeyKind::Seq { col, .. } = table.kind else { unreachable!("{} has no sequence", table.name) };
        self.list_where(table, &format!("{col} > ?1"), vec![rusqlite::types::Value::Integer(seq)])
    }

    /// Chunks of group `id` after `seq`, in order.
    pub(crate) fn list_group(
        &self,
        table: &Table,
        id: &[u8],
        after: i64,
    ) -> Result<Vec<(OwnedKey, Vec<u8>, u64)>, StoreError> {
        let KeyKind::Group(g, s) = table.kind else { unreachable!("{} has no groups", table.name) };
        use rusqlite::types::Value as V;
        self.list_where(
            table,
            &format!("{g} = ?1 AND {s} > ?2"),
            vec![V::Blob(id.to_vec()), V::Integer(after)],
        )
    }

    /// At most `limit` rows of one group after `after`, in order.
    pub(crate) fn list_group_limit(
        &self,
        table: &Table,
        id: &[u8],
        after: i64,
        limit: usize,
    ) -> Result<Vec<(OwnedKey, Vec<u8>, u64)>, StoreError> {
        let KeyKind::Group(g, s) = table.kind else { unreachable!("{} has no groups", table.name) };
        use rusqlite::types::Value as V;
        let params = vec![V::Blob(id.to_vec()), V::Integer(after)];
        self.list_where_limit(table, &format!("{g} = ?1 AND {s} > ?2"), params, limit)
    }

    /// At most `limit` rows of a sequence table after `seq`, in order.
    pub(crate) fn list_after_limit(
        &self,
        table: &Table,
        seq: i64,
        limit: usize,
    ) -> Result<Vec<(OwnedKey, Vec<u8>, u64)>, StoreError> {
        let KeyKind::Seq { col, .. } = table.kind else { unreachable!("{} has no sequence", table.name) };
        let params = vec![rusqlite::types::Value::Integer(seq)];
        self.list_where_limit(table, &format!("{col} > ?1"), params, limit)
    }

    /// The highest sequence number of every group of a grouped table, without opening a blob.
    pub(crate) fn group_maxima(&self, table: &Table) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        let KeyKind::Group(g, s) = table.kind else { unreachable!("{} has no groups", table.name) };
        let sql = format!("SELECT {g}, MAX({s}) FROM {} GROUP BY {g} ORDER BY {g}", table.name);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The next sequence number of one group of a grouped table.
    pub(crate) fn next_group_seq(&self, table: &Table, id: &[u8]) -> Result<i64, StoreError> {
        let KeyKind::Group(g, s) = table.kind else { unreachable!("{} has no groups", table.name) };
        let sql = format!("SELECT COALESCE(MAX({s}), 0) + 1 FROM {} WHERE {g} = ?1", table.name);
        Ok(self.conn.query_row(&sql, [id], |r| r.get(0))?)
    }

    /// The keys of `table`, without opening any blob.
    pub(crate) fn keys(&self, table: &Table) -> Result<Vec<OwnedKey>, StoreError> {
        let sql = format!("SELECT {k} FROM {t} ORDER BY {k}", k = table.key_columns(), t = table.name);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let keys = stmt.query_map([], |r| table.key_from_row(r))?.collect::<Result<_, _>>()?;
        Ok(keys)
    }

    /// The next sequence number of a sequence table.
    pub(crate) fn next_seq(&self, table: &Table) -> Result<i64, StoreError> {
        let KeyKind::Seq { col, .. } = table.kind else { unreachable!("{} has no sequence", table.name) };
        let sql = format!("SELECT COALESCE(MAX({col}), 0) + 1 FROM {}", table.name);
        Ok(self.conn.query_row(&sql, [], |r| r.get(0))?)
    }

    /// Tries to open every blob of `table`; returns how many were checked and the errors.
    pub(crate) fn check_blobs(&self, table: &Table) -> Result<(usize, Vec<StoreError>), StoreError> {
        let sql = format!("SELECT {k}, blob FROM {t} ORDER BY {k}", k = table.key_columns(), t = table.name);
        let n = table.key_len();
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let (mut checked, mut problems) = (0, Vec::new());
        while let Some(row) = rows.next()? {
            let key = table.key_from_row(row)?;
            let blob: Vec<u8> = row.get(n)?;
            checked += 1;
            if let Err(e) = self.open_read(table, key.as_key(), &blob) {
                problems.push(e);
            }
        }
        Ok((checked, problems))
    }
}
