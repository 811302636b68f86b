//! One connection to the mirror's database and the statements it runs: shares written (values
//! replaced whole, in one transaction per batch, never over an erasure or a newer copy another
//! node wrote), what this node wrote read back, erasures of consents this node never held, and
//! the nodes heard from.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tokio_postgres::{Client, NoTls};
use vault_core::{MirrorShare, ShareStatus, consent_receipt};

use crate::{MirrorError, MirrorUrl, schema};

mod nodes;

/// How long reaching the database may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the database holds of a share this node wrote: the vault revision written (each node
/// counts its own), and the petname.
pub(crate) type Written = HashMap<(String, String), (u64, Option<String>)>;

/// Where the values of the rows other nodes wrote came from (source device, epoch, operation),
/// `None` when unknown.
pub(crate) type Theirs = HashMap<(String, String), Option<(String, i64, i64)>>;

/// What became of one share written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its rows are what this node holds.
    Written,
    /// The database refused its values (why): the consent row is kept without them.
    Refused(String),
    /// Not written: the consent was erased here, or another node wrote a newer copy of it.
    Superseded,
}

/// A connection, its schema prepared.
pub(crate) struct Db {
    client: Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Db {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs a connection until it ends.
async fn drive<C: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: C) {
    if let Err(e) = connection.await {
        tracing::debug!(error = %crate::describe_pg(&e), "mirror connection ended");
    }
}

impl Db {
    /// Connects, takes this node's writer lock for the connection's lifetime (one writer per
    /// device: the same vault running twice is refused; the identity's other devices write
    /// beside it), and prepares the schema for the identity `owner`; `attach` clears a
    /// detachment made by `vault mirror off`.
    pub(crate) async fn connect(
        url: &MirrorUrl,
        owner: &str,
        node: &str,
        attach: bool,
    ) -> Result<Db, MirrorError> {
        Self::connect_inner(url, owner, Some(node), attach).await.map_err(|e| e.scrubbed(url))
    }

    /// Connects without this node's writer lock: the connection that says the node is up and
    /// asks which nodes are, beside the one that writes (a long write never delays it).
    pub(crate) async fn connect_watcher(url: &MirrorUrl, owner: &str) -> Result<Db, MirrorError> {
        Self::connect_inner(url, owner, None, false).await.map_err(|e| e.scrubbed(url))
    }

    async fn connect_inner(
        url: &MirrorUrl,
        owner: &str,
        node: Option<&str>,
        attach: bool,
    ) -> Result<Db, MirrorError> {
        let mut config = url.config().clone();
        config.connect_timeout(CONNECT_TIMEOUT).application_name("vault-mirror");
        let tls = url.tls().apply(&mut config, &url.target())?;
        let timed_out = || MirrorError::Unreachable { target: url.target(), why: "timed out".into() };
        let (mut client, task) = match tls {
            None => {
                let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT * 2, config.connect(NoTls))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| MirrorError::connecting(url, e))?;
                (client, tokio::spawn(drive(connection)))
            }
            Some(tls) => {
                let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT * 2, config.connect(tls))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| MirrorError::connecting(url, e))?;
                (client, tokio::spawn(drive(connection)))
            }
        };
        // No wait without end: a node whose connection died mid-transaction holds its locks
        // until the server notices, and nobody waits on them past these.
        client
            .batch_execute(
                "SET lock_timeout = '10s'; SET statement_timeout = '60s';
                 SET idle_in_transaction_session_timeout = '60s'",
            )
            .await?;
        // Nodes of this version write beside each other and hold this lock shared; a node of
        // an older version (which held it alone) cannot write meanwhile, nor these while it does.
        let beside: bool = client
            .query_one("SELECT pg_try_advisory_lock_shared($1)", &[&schema::WRITER_LOCK])
            .await?
            .try_get(0)?;
        if !beside {
            return Err(MirrorError::OlderNode { target: url.target() });
        }
        if let Some(node) = node {
            let locked: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended('vault-mirror-node:' || $1, 0))",
                    &[&node],
                )
                .await?
                .try_get(0)?;
            if !locked {
                return Err(MirrorError::Busy { target: url.target() });
            }
        }
        schema::prepare(&mut client, owner, attach).await?;
        Ok(Db { client, task })
    }

    /// True while the connection is up.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// How many consents the tables hold, every node's.
    pub(crate) async fn count(&self) -> Result<u64, MirrorError> {
        let n: i64 = self.client.query_one("SELECT count(*) FROM vault.consents", &[]).await?.try_get(0)?;
        Ok(n.max(0) as u64)
    }

    /// What the database holds of the rows `node` wrote last, share by share, and where the
    /// values of the others came from (a row another node wrote since is not this node's to
    /// skip, nor to overwrite with an older copy).
    pub(crate) async fn written(&self, node: &str) -> Result<(Written, Theirs), MirrorError> {
        let rows = self
            .client
            .query(
                "SELECT customer, grant_id, vault_rev, customer_name, node, source_device, source_epoch, source_op,
                        problem IS NULL
                 FROM vault.consents",
                &[],
            )
            .await?;
        let (mut mine, mut theirs) = (Written::new(), Theirs::new());
        for r in &rows {
            let (customer, grant, rev, name): (Option<String>, Option<String>, Option<i64>, Option<String>) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let (Some(customer), Some(grant)) = (customer, grant) else {
                return Err(MirrorError::ChangedByHand(
                    "a row of vault.consents has no customer or grant_id".into(),
                ));
            };
            let writer: Option<String> = r.try_get(4)?;
            // A row whose values the database refused holds no copy: this node's is written
            // again (and refused again, or not), another node's is no copy to skip.
            let clean: Option<bool> = r.try_get(8)?;
            if clean != Some(true) {
                if writer.as_deref() != Some(node) {
                    theirs.insert((customer, grant), None);
                }
                continue;
            }
            if writer.as_deref() == Some(node) {
                // A revision the mirror did not write (NULL, negative) is rewritten.
                let rev = rev.and_then(|r| u64::try_from(r).ok()).unwrap_or(u64::MAX);
                mine.insert((customer, grant), (rev, name));
            } else {
                let source: (Option<String>, Option<i64>, Option<i64>) =
                    (r.try_get(5)?, r.try_get(6)?, r.try_get(7)?);
                let source = match source {
                    (Some(d), Some(e), Some(o)) => Some((d, e, o)),
                    _ => None,
                };
                theirs.insert((customer, grant), source);
            }
        }
        Ok((mine, theirs))
    }

    /// Removes every row the mirror wrote and marks the tables detached, in one transaction:
    /// a node still running stops writing into them.
    pub(crate) async fn remove_all(&mut self) -> Result<u64, MirrorError> {
        let tx = self.client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DETACH_LOCK]).await?;
        // Every row of every node goes: no time limit, and room to wait out a write under way.
        tx.batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = '60s'").await?;
        tx.execute("DELETE FROM vault.consent_values", &[]).await?;
        let n = tx.execute("DELETE FROM vault.consents", &[]).await?;
        let left: i64 = tx.query_one("SELECT count(*) FROM vault.consent_values", &[]).await?.try_get(0)?;
        if left != 0 {
            return Err(MirrorError::ChangedByHand(
                "values remain after deleting them (a rule or trigger?)".into(),
            ));
        }
        tx.execute(
            "INSERT INTO vault.meta (key, value) VALUES ('detached', 'true') ON CONFLICT (key) DO UPDATE SET value = 'true'",
            &[],
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Writes shares in one transaction, as node `node`: each consent row upserted, its values
    /// replaced whole (none once withdrawn). Committed when this returns Ok, with what became
    /// of each share, in the order given.
    ///
    /// Each share is written under its own savepoint and its own lock (taken in key order, so
    /// two nodes writing the same shares never deadlock): what one customer sent that the
    /// database refuses (a value it cannot hold, a key that collides) fails that share only; its
    /// consent row is kept without values and names the problem. A withdrawn share's rows are
    /// deleted whatever else fails, and its consent is listed in `vault.erased`: no node writes
    /// its values again. Live values are not written over an erasure, nor over a newer copy
    /// from the same source another node wrote.
    pub(crate) async fn write(
        &mut self,
        node: &str,
        shares: &[MirrorShare],
    ) -> Result<Vec<Outcome>, MirrorError> {
        let tx = self.client.transaction().await?;
        if detached(&tx).await? {
            return Err(MirrorError::Detached);
        }
        let statements = Statements::prepare(&tx).await?;
        let mut order: Vec<(String, String, usize)> = shares
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let g = s.grant.statement();
                (g.issuer.to_string(), g.id.to_string(), i)
            })
            .collect();
        order.sort();
        let mut outcomes: Vec<Option<Outcome>> = shares.iter().map(|_| None).collect();
        for (customer, grant, i) in order {
            let share = &shares[i];
            // Taken outside the savepoint: a rollback to it keeps both.
            lock_share(&tx, &customer, &grant).await?;
            if share.status != ShareStatus::Live {
                tx.execute(&statements.erased, &[&customer, &grant, &node]).await?;
            }
            tx.batch_execute("SAVEPOINT share").await?;
            let outcome = match statements.write(&tx, node, share, None).await {
                Ok(true) => Outcome::Written,
                Ok(false) => Outcome::Superseded,
                Err(e) => {
                    let why = refused_by_database(&e)?;
                    tx.batch_execute("ROLLBACK TO SAVEPOINT share").await?;
                    // The consent row alone, no values, the problem named.
                    let bare = MirrorShare { values: None, ..share.clone() };
                    match statements.write(&tx, node, &bare, Some(&why)).await {
                        Ok(_) => {}
                        Err(e) => {
                            refused_by_database(&e)?;
                            tx.batch_execute("ROLLBACK TO SAVEPOINT share").await?;
                            // Not even the row: an ended consent's rows go all the same (it is
                            // listed erased above); a live one's stay as another node wrote them.
                            if share.status != ShareStatus::Live {
                                statements.delete(&tx, share).await?;
                            }
                        }
                    }
                    tracing::warn!(grant = %share.grant.statement().id, problem = %why, "mirror: the database refused a consent's values");
                    Outcome::Refused(why)
                }
            };
            tx.batch_execute("RELEASE SAVEPOINT share").await?;
            outcomes[i] = Some(outcome);
        }
        tx.commit().await?;
        Ok(outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Superseded)).collect())
    }
}

/// The lock `vault mirror off` takes alone while it empties the tables, and every write takes
/// shared: no write of any node commits across a detachment.
const DETACH_LOCK: i64 = 8_315_178_049_665_788_979;

/// Waits out a detachment under way, then says whether the tables were detached (`vault mirror
/// off` emptied them): no write then.
async fn detached(tx: &tokio_postgres::Transaction<'_>) -> Result<bool, MirrorError> {
    tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&DETACH_LOCK]).await?;
    Ok(tx.query_opt("SELECT value FROM vault.meta WHERE key = 'detached'", &[]).await?.is_some())
}

/// Takes one consent's lock until the transaction ends: nodes writing or erasing the same
/// consent take turns.
async fn lock_share(
    tx: &tokio_postgres::Transaction<'_>,
    customer: &str,
    grant: &str,
) -> Result<(), MirrorError> {
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 1))", &[&customer, &grant])
        .await?;
    Ok(())
}

/// The statements a write runs, prepared once per transaction.
struct Statements {
    upsert_ended: tokio_postgres::Statement,
    upsert_live: tokio_postgres::Statement,
    erased: tokio_postgres::Statement,
    is_erased: tokio_postgres::Statement,
    clear: tokio_postgres::Statement,
    left: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
    drop: tokio_postgres::Statement,
}

/// The consent row's columns and values, shared by both upserts.
const UPSERT: &str = "INSERT INTO vault.consents (customer, grant_id, customer_name, purpose, fields, filter,
         issued_at, expires_at, status, ended_at, updated_at, receipt, vault_rev, refused, problem, node,
         customer_ticket, source_device, source_epoch, source_op)
     VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::bigint), to_timestamp($8::bigint), $9,
         to_timestamp($10::bigint), to_timestamp($11::bigint), $12, $13, $14, $15, $16, $17, $18, $19, $20)
     ON CONFLICT (customer, grant_id) DO UPDATE SET customer_name = EXCLUDED.customer_name,
         status = EXCLUDED.status, ended_at = EXCLUDED.ended_at, updated_at = EXCLUDED.updated_at,
         receipt = EXCLUDED.receipt, vault_rev = EXCLUDED.vault_rev, refused = EXCLUDED.refused,
         problem = EXCLUDED.problem, node = EXCLUDED.node, customer_ticket = EXCLUDED.customer_ticket,
         source_device = EXCLUDED.source_device, source_epoch = EXCLUDED.source_epoch,
         source_op = EXCLUDED.source_op";

impl Statements {
    async fn prepare(tx: &tokio_postgres::Transaction<'_>) -> Result<Self, MirrorError> {
        // A live copy replaces the row while the consent is live there, unless the row holds a
        // newer copy from the same source, or this copy has no source yet (nothing received)
        // and the row has one.
        let live = format!(
            "{UPSERT} WHERE vault.consents.status = 'live' AND (
                 vault.consents.source_device IS NULL
                 OR EXCLUDED.source_device IS NOT NULL AND (
                     vault.consents.source_device <> EXCLUDED.source_device
                     OR (vault.consents.source_epoch, vault.consents.source_op)
                         <= (EXCLUDED.source_epoch, EXCLUDED.source_op)))
             RETURNING true"
        );
        Ok(Self {
            upsert_ended: tx.prepare(&format!("{UPSERT} RETURNING true")).await?,
            upsert_live: tx.prepare(&live).await?,
            erased: tx
                .prepare(
                    "INSERT INTO vault.erased (customer, grant_id, node) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .await?,
            is_erased: tx.prepare("SELECT 1 FROM vault.erased WHERE customer = $1 AND grant_id = $2").await?,
            clear: tx
                .prepare("DELETE FROM vault.consent_values WHERE customer = $1 AND grant_id = $2")
                .await?,
            left: tx
                .prepare("SELECT count(*) FROM vault.consent_values WHERE customer = $1 AND grant_id = $2")
                .await?,
            insert: tx
                .prepare(
                    "INSERT INTO vault.consent_values (customer, grant_id, path, value, value_text)
                     SELECT $1, $2, * FROM unnest($3::text[], $4::jsonb[], $5::text[])",
                )
                .await?,
            drop: tx.prepare("DELETE FROM vault.consents WHERE customer = $1 AND grant_id = $2").await?,
        })
    }

    /// One share: its consent row upserted, its values replaced whole. False when it was not
    /// written: erased here already, or a newer copy is there (see [`Db::write`]).
    async fn write(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        node: &str,
        share: &MirrorShare,
        problem: Option<&str>,
    ) -> Result<bool, MirrorError> {
        let g = share.grant.statement();
        let (customer, grant) = (g.issuer.to_string(), g.id.to_string());
        // An ended share is listed erased by the caller, outside the savepoint.
        let ended = share.status != ShareStatus::Live;
        if !ended && tx.query_opt(&self.is_erased, &[&customer, &grant]).await?.is_some() {
            return Ok(false);
        }
        let fields: Vec<String> = g.fields.iter().map(ToString::to_string).collect();
        let filter = g.filter.as_ref().map(ToString::to_string);
        let status = status(share.status);
        let receipt = receipt(share);
        let rev = i64::try_from(share.rev).unwrap_or(i64::MAX);
        let refused = serde_json::to_value(&share.refused).expect("serializes");
        let ticket = if ended { None } else { share.ticket.as_ref().map(ToString::to_string) };
        let source = share.source.as_ref();
        let source_device = source.map(|s| s.device.to_string());
        let source_epoch = source.map(|s| i64::try_from(s.epoch).unwrap_or(i64::MAX));
        let source_op = source.map(|s| i64::try_from(s.op).unwrap_or(i64::MAX));
        let upsert = if ended { &self.upsert_ended } else { &self.upsert_live };
        let applied = tx
            .query_opt(
                upsert,
                &[
                    &customer,
                    &grant,
                    &share.customer_name,
                    &g.purpose,
                    &fields,
                    &filter,
                    &g.issued_at,
                    &g.expires_at,
                    &status,
                    &share.ended_at,
                    &share.updated_at,
                    &receipt,
                    &rev,
                    &refused,
                    &problem,
                    &node,
                    &ticket,
                    &source_device,
                    &source_epoch,
                    &source_op,
                ],
            )
            .await?
            .is_some();
        if !applied {
            return Ok(false);
        }
        tx.execute(&self.clear, &[&customer, &grant]).await?;
        if share.values.is_none() {
            // The erasure receipt rests on this: check the rows are gone, whatever rules or
            // triggers someone added.
            self.check_gone(tx, &customer, &grant).await?;
        }
        if let Some(values) = &share.values {
            let mut leaves = Vec::new();
            flatten(values, String::new(), &mut leaves);
            if !leaves.is_empty() {
                let paths: Vec<&str> = leaves.iter().map(|(p, _)| p.as_str()).collect();
                let json: Vec<&Value> = leaves.iter().map(|(_, v)| *v).collect();
                let text: Vec<Option<String>> = leaves.iter().map(|(_, v)| as_text(v)).collect();
                tx.execute(&self.insert, &[&customer, &grant, &paths, &json, &text]).await?;
            }
        }
        Ok(true)
    }

    /// Deletes a share's rows, its consent row too: what is left when not even that row can be
    /// written.
    async fn delete(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        share: &MirrorShare,
    ) -> Result<(), MirrorError> {
        let g = share.grant.statement();
        let (customer, grant) = (g.issuer.to_string(), g.id.to_string());
        tx.execute(&self.clear, &[&customer, &grant]).await?;
        self.check_gone(tx, &customer, &grant).await?;
        tx.execute(&self.drop, &[&customer, &grant]).await?;
        Ok(())
    }

    async fn check_gone(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        customer: &str,
        grant: &str,
    ) -> Result<(), MirrorError> {
        let n: i64 = tx.query_one(&self.left, &[&customer, &grant]).await?.try_get(0)?;
        if n != 0 {
            return Err(MirrorError::ChangedByHand(format!(
                "{n} values of grant {grant} remain after deleting them (a rule or trigger?)"
            )));
        }
        Ok(())
    }
}

/// Why the database refused one share's data (a value it cannot hold, a constraint, a limit),
/// or the error itself when it is not about the data (the connection, the server, the tables):
/// that fails the whole round, to be tried again.
fn refused_by_database(e: &MirrorError) -> Result<String, MirrorError> {
    match e {
        MirrorError::Refused { text } => Ok(text.clone()),
        MirrorError::Database(text) => Err(MirrorError::Database(text.clone())),
        MirrorError::Unreachable { target, why } => {
            Err(MirrorError::Unreachable { target: target.clone(), why: why.clone() })
        }
        MirrorError::ChangedByHand(text) => Err(MirrorError::ChangedByHand(text.clone())),
        MirrorError::Detached => Err(MirrorError::Detached),
        other => Err(MirrorError::Database(other.to_string())),
    }
}

fn status(status: ShareStatus) -> &'static str {
    match status {
        ShareStatus::Live => "live",
        ShareStatus::Revoked => "withdrawn",
        ShareStatus::Expired => "expired",
    }
}

/// The consent receipt (Kantara / ISO 27560 shaped) as the seller's records keep it.
fn receipt(share: &MirrorShare) -> Value {
    let state = vault_core::ConsentState::from(share.status);
    let names = vault_core::ReceiptNames { principal: share.customer_name.clone(), controller: None };
    let mut receipt = consent_receipt(&share.grant, state, share.ended_at, &names);
    // The signed statement itself, so the seller's records prove the consent on their own.
    receipt["signed_grant"] = share.grant.to_json();
    receipt
}

/// Every leaf of `value` with its dotted path (`profile.address.city`, `purchases.<id>.price`).
/// A key holding a dot or a backslash has them escaped (`\.`, `\\`), so that no key can pose
/// as a nested path: two leaves never share a path. (The vault leaves such keys out of what it
/// keeps; this holds even if one got through.)
pub(crate) fn flatten<'a>(value: &'a Value, prefix: String, out: &mut Vec<(String, &'a Value)>) {
    let join = |key: &str| {
        let key = if key.contains(['.', '\\']) {
            key.replace('\\', "\\\\").replace('.', "\\.")
        } else {
            key.to_owned()
        };
        if prefix.is_empty() { key } else { format!("{prefix}.{key}") }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(v, join(k), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, join(&i.to_string()), out);
            }
        }
        _ if prefix.is_empty() => {}
        leaf => out.push((prefix, leaf)),
    }
}

/// A leaf as text for plain SQL queries: strings as they are, numbers and booleans written out.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_flatten_to_one_row_per_leaf() {
        let v = json!({"profile": {"email": "a@b.c", "address": {"city": "Lyon"}}, "tags": ["x", 2]});
        let mut out = Vec::new();
        flatten(&v, String::new(), &mut out);
        let paths: Vec<&str> = out.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["profile.address.city", "profile.email", "tags.0", "tags.1"]);
        assert_eq!(as_text(out[3].1).as_deref(), Some("2"));
    }

    #[test]
    fn a_dotted_key_never_shares_a_path_with_a_nested_one() {
        let v = json!({"profile": {"address.city": "Paris", "address": {"city": "Lyon"}, "a\\.b": 1}});
        let mut out = Vec::new();
        flatten(&v, String::new(), &mut out);
        let paths: Vec<&str> = out.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["profile.a\\\\\\.b", "profile.address.city", "profile.address\\.city"]);
    }

    #[test]
    fn derived_values_land_under_their_grant_path() {
        let v = json!({"profile": {"birthday:over(18)": true, "address": {"postcode:prefix(2)": "69"}},
                       "purchases": {"abcd": {"price:band(10,50)": "10 to 50 EUR"}}});
        let mut out = Vec::new();
        flatten(&v, String::new(), &mut out);
        let paths: Vec<&str> = out.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "profile.address.postcode:prefix(2)",
                "profile.birthday:over(18)",
                "purchases.abcd.price:band(10,50)"
            ]
        );
        assert_eq!(as_text(out[1].1).as_deref(), Some("true"));
    }
}
