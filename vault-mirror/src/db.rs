//! One connection to the mirror's database and the statements it runs: shares written (values
//! replaced whole, in one transaction per batch), what is there read back, and rows of shares
//! the vault no longer has removed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use tokio_postgres::{Client, NoTls};
use vault_core::{MirrorShare, ShareStatus, consent_receipt};

use crate::{MirrorError, MirrorUrl, schema};

/// How long reaching the database may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the database holds of a share: the vault revision written, and the petname.
pub(crate) type Written = HashMap<(String, String), (u64, Option<String>)>;

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
    /// Connects, takes the mirror's writer lock for the connection's lifetime (one node per
    /// database), and prepares the schema for vault `owner` (identity and device); `attach`
    /// clears a detachment made by `vault mirror off`.
    pub(crate) async fn connect(url: &MirrorUrl, owner: &str, attach: bool) -> Result<Db, MirrorError> {
        Self::connect_inner(url, owner, attach).await.map_err(|e| e.scrubbed(url))
    }

    async fn connect_inner(url: &MirrorUrl, owner: &str, attach: bool) -> Result<Db, MirrorError> {
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
        let locked: bool =
            client.query_one("SELECT pg_try_advisory_lock($1)", &[&schema::WRITER_LOCK]).await?.try_get(0)?;
        if !locked {
            return Err(MirrorError::Busy { target: url.target() });
        }
        schema::prepare(&mut client, owner, attach).await?;
        Ok(Db { client, task })
    }

    /// True while the connection is up.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// What the database holds, share by share.
    pub(crate) async fn written(&self) -> Result<Written, MirrorError> {
        let rows = self
            .client
            .query("SELECT customer, grant_id, vault_rev, customer_name FROM vault.consents", &[])
            .await?;
        let mut out = Written::new();
        for r in &rows {
            let (customer, grant, rev, name): (Option<String>, Option<String>, Option<i64>, Option<String>) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let (Some(customer), Some(grant)) = (customer, grant) else {
                return Err(MirrorError::ChangedByHand(
                    "a row of vault.consents has no customer or grant_id".into(),
                ));
            };
            // A revision the mirror did not write (NULL, negative) is rewritten.
            let rev = rev.and_then(|r| u64::try_from(r).ok()).unwrap_or(u64::MAX);
            out.insert((customer, grant), (rev, name));
        }
        Ok(out)
    }

    /// Removes every row of shares not in `keep` (customer, grant): shares the vault no longer
    /// has. Returns how many consents went.
    pub(crate) async fn remove_except(
        &mut self,
        keep: &HashSet<(String, String)>,
    ) -> Result<u64, MirrorError> {
        let present = self.written().await?;
        let gone: Vec<&(String, String)> = present.keys().filter(|k| !keep.contains(*k)).collect();
        if gone.is_empty() {
            return Ok(0);
        }
        let (customers, grants): (Vec<&str>, Vec<&str>) =
            gone.iter().map(|(c, g)| (c.as_str(), g.as_str())).unzip();
        let tx = self.client.transaction().await?;
        let n = tx
            .execute(
                "DELETE FROM vault.consents c USING unnest($1::text[], $2::text[]) AS g(customer, grant_id)
                 WHERE c.customer = g.customer AND c.grant_id = g.grant_id",
                &[&customers, &grants],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Removes every row the mirror wrote and marks the tables detached, in one transaction:
    /// a node still running stops writing into them.
    pub(crate) async fn remove_all(&mut self) -> Result<u64, MirrorError> {
        let tx = self.client.transaction().await?;
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

    /// Writes shares in one transaction: each consent row upserted, its values replaced whole
    /// (none once withdrawn). Committed when this returns Ok, with what became of each share
    /// (`None`: written; `Some(why)`: the database refused this share's values).
    ///
    /// Each share is written under its own savepoint: what one customer sent that the database
    /// refuses (a value it cannot hold, a key that collides) fails that share only. Its consent
    /// row is kept without values and names the problem; a withdrawn share's rows are deleted
    /// whatever else fails, so its erasure never waits behind anyone's import.
    pub(crate) async fn write(&mut self, shares: &[MirrorShare]) -> Result<Vec<Option<String>>, MirrorError> {
        let tx = self.client.transaction().await?;
        // `vault mirror off` (which takes this row's lock too) may have emptied the tables.
        let detached = tx
            .query_opt("SELECT value FROM vault.meta WHERE key = 'detached' FOR SHARE", &[])
            .await?
            .is_some();
        if detached {
            return Err(MirrorError::Detached);
        }
        let statements = Statements::prepare(&tx).await?;
        let mut outcomes = Vec::with_capacity(shares.len());
        for share in shares {
            tx.batch_execute("SAVEPOINT share").await?;
            let first = statements.write(&tx, share, None).await;
            let outcome = match first {
                Ok(()) => None,
                Err(e) => {
                    let why = refused_by_database(&e)?;
                    tx.batch_execute("ROLLBACK TO SAVEPOINT share").await?;
                    // The consent row alone, no values, the problem named.
                    let bare = MirrorShare { values: None, ..share.clone() };
                    if let Err(e) = statements.write(&tx, &bare, Some(&why)).await {
                        refused_by_database(&e)?;
                        tx.batch_execute("ROLLBACK TO SAVEPOINT share").await?;
                        statements.delete(&tx, share).await?;
                    }
                    tracing::warn!(grant = %share.grant.statement().id, problem = %why, "mirror: the database refused a consent's values");
                    Some(why)
                }
            };
            tx.batch_execute("RELEASE SAVEPOINT share").await?;
            outcomes.push(outcome);
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// The statements a write runs, prepared once per transaction.
struct Statements {
    upsert: tokio_postgres::Statement,
    clear: tokio_postgres::Statement,
    left: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
    drop: tokio_postgres::Statement,
}

impl Statements {
    async fn prepare(tx: &tokio_postgres::Transaction<'_>) -> Result<Self, MirrorError> {
        Ok(Self {
            upsert: tx
                .prepare(
                    "INSERT INTO vault.consents (customer, grant_id, customer_name, purpose, fields, filter, issued_at,
                         expires_at, status, ended_at, updated_at, receipt, vault_rev, refused, problem)
                     VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::bigint), to_timestamp($8::bigint), $9,
                         to_timestamp($10::bigint), to_timestamp($11::bigint), $12, $13, $14, $15)
                     ON CONFLICT (customer, grant_id) DO UPDATE SET customer_name = EXCLUDED.customer_name,
                         status = EXCLUDED.status, ended_at = EXCLUDED.ended_at, updated_at = EXCLUDED.updated_at,
                         receipt = EXCLUDED.receipt, vault_rev = EXCLUDED.vault_rev, refused = EXCLUDED.refused,
                         problem = EXCLUDED.problem",
                )
                .await?,
            clear: tx.prepare("DELETE FROM vault.consent_values WHERE customer = $1 AND grant_id = $2").await?,
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

    /// One share: its consent row upserted, its values replaced whole.
    async fn write(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        share: &MirrorShare,
        problem: Option<&str>,
    ) -> Result<(), MirrorError> {
        let g = share.grant.statement();
        let (customer, grant) = (g.issuer.to_string(), g.id.to_string());
        let fields: Vec<String> = g.fields.iter().map(ToString::to_string).collect();
        let filter = g.filter.as_ref().map(ToString::to_string);
        let status = status(share.status);
        let receipt = receipt(share);
        let rev = i64::try_from(share.rev).unwrap_or(i64::MAX);
        let refused = serde_json::to_value(&share.refused).expect("serializes");
        tx.execute(
            &self.upsert,
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
            ],
        )
        .await?;
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
        Ok(())
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
