//! The mirror's tables in the seller's PostgreSQL, created and migrated by vault, versioned in
//! `vault.meta` (documented in schemas/mirror/ and docs/seller-database.md). Before writing, the
//! mirror checks that the tables still have the columns it writes: a table changed by hand is
//! named, not written into blindly.

use tokio_postgres::Client;

use crate::MirrorError;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 4;

/// The session-level advisory lock every writing node holds: shared by nodes that write beside
/// each other (this version), alone by a node of a version before several nodes could.
pub(crate) const WRITER_LOCK: i64 = 8_315_178_049_665_788_978;

/// The PostgreSQL schema (namespace) the mirror owns.
pub const NAMESPACE: &str = "vault";

/// Version 1: consents, their values one row per field, a pivot of profile fields.
const V1: &str = include_str!("../../schemas/mirror/v1.sql");
/// Version 2: what vault left out of each consent's values, and what the database refused.
const V2: &str = include_str!("../../schemas/mirror/v2.sql");
/// Version 3: one row per purchase (a view).
const V3: &str = include_str!("../../schemas/mirror/v3.sql");
/// Version 4: several nodes of one seller (erasures kept for good, nodes heard from, where
/// each row's values came from).
const V4: &str = include_str!("../../schemas/mirror/v4.sql");

/// Migrations in order: entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The columns the mirror writes, with their types as `information_schema` names them.
const EXPECTED: &[(&str, &[(&str, &str)])] = &[
    (
        "consents",
        &[
            ("customer", "text"),
            ("grant_id", "text"),
            ("customer_name", "text"),
            ("purpose", "text"),
            ("fields", "ARRAY"),
            ("filter", "text"),
            ("issued_at", "timestamp with time zone"),
            ("expires_at", "timestamp with time zone"),
            ("status", "text"),
            ("ended_at", "timestamp with time zone"),
            ("updated_at", "timestamp with time zone"),
            ("receipt", "jsonb"),
            ("vault_rev", "bigint"),
            ("refused", "jsonb"),
            ("problem", "text"),
            ("node", "text"),
            ("customer_ticket", "text"),
            ("source_device", "text"),
            ("source_epoch", "bigint"),
            ("source_op", "bigint"),
        ],
    ),
    (
        "consent_values",
        &[
            ("customer", "text"),
            ("grant_id", "text"),
            ("path", "text"),
            ("value", "jsonb"),
            ("value_text", "text"),
        ],
    ),
    (
        "erased",
        &[
            ("customer", "text"),
            ("grant_id", "text"),
            ("erased_at", "timestamp with time zone"),
            ("node", "text"),
        ],
    ),
    ("nodes", &[("device", "text"), ("seen_at", "timestamp with time zone")]),
];

/// Creates or migrates the mirror's tables for the vault `owner` (an identity: every node of
/// one seller writes into the same tables), in one transaction under an advisory lock, and
/// checks them. A schema another vault owns, or a newer one, is refused.
pub(crate) async fn prepare(client: &mut Client, owner: &str, attach: bool) -> Result<(), MirrorError> {
    let tx = client.transaction().await?;
    // A migration of a large table takes what it takes.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    // Two vaults (or two nodes) preparing at once: one waits for the other.
    tx.execute("SELECT pg_advisory_xact_lock(8315178049665788977)", &[]).await?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS vault;
         CREATE TABLE IF NOT EXISTS vault.meta (key text PRIMARY KEY, value text NOT NULL);",
    )
    .await?;
    let rows = tx
        .query("SELECT key, value FROM vault.meta WHERE key IN ('schema_version', 'owner', 'detached')", &[])
        .await?;
    let mut meta = Vec::new();
    for r in &rows {
        let (k, v): (Option<String>, Option<String>) = (r.try_get(0)?, r.try_get(1)?);
        meta.push((k.unwrap_or_default(), v.unwrap_or_default()));
    }
    let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    if get("detached").is_some() {
        if !attach {
            return Err(MirrorError::Detached);
        }
        tx.execute("DELETE FROM vault.meta WHERE key = 'detached'", &[]).await?;
    }
    // Before version 4 the owner was one device of the identity (`identity/device`).
    if let Some(other) = get("owner").filter(|o| o.split('/').next() != Some(owner)) {
        return Err(MirrorError::OtherOwner(other));
    }
    let version: i64 = match get("schema_version") {
        Some(v) => v
            .parse()
            .map_err(|_| MirrorError::ChangedByHand(format!("vault.meta schema_version is {v:?}")))?,
        None => 0,
    };
    if version > SCHEMA_VERSION {
        return Err(MirrorError::NewerSchema(version));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await?;
        tracing::info!(version = from + 1, "mirror schema migrated");
    }
    tx.execute(
        "INSERT INTO vault.meta (key, value) VALUES ('schema_version', $1), ('owner', $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&SCHEMA_VERSION.to_string(), &owner],
    )
    .await?;
    check(&tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Every column the mirror writes is there, with its type.
async fn check(tx: &tokio_postgres::Transaction<'_>) -> Result<(), MirrorError> {
    for (table, columns) in EXPECTED {
        let rows = tx
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = 'vault' AND table_name = $1",
                &[table],
            )
            .await?;
        if rows.is_empty() {
            return Err(MirrorError::ChangedByHand(format!("table vault.{table} is missing")));
        }
        let mut found = Vec::new();
        for r in &rows {
            let (name, ty): (Option<String>, Option<String>) = (r.try_get(0)?, r.try_get(1)?);
            found.push((name.unwrap_or_default(), ty.unwrap_or_default()));
        }
        for (column, ty) in *columns {
            match found.iter().find(|(name, _)| name == column) {
                None => {
                    return Err(MirrorError::ChangedByHand(format!(
                        "column vault.{table}.{column} is missing"
                    )));
                }
                Some((_, found_ty)) if found_ty != ty => {
                    return Err(MirrorError::ChangedByHand(format!(
                        "column vault.{table}.{column} is {found_ty}, not {ty}"
                    )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}
