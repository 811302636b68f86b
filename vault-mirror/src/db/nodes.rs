//! What several nodes of one seller need of the shared database beside writing their own
//! customers' shares: saying a node is up and learning which are, the customers a node taking
//! over calls, erasures of consents a node never held, and consents past their expiry.

use super::{Db, detached, lock_share};
use crate::MirrorError;

/// The nodes heard from within this long are up (the server's clock, not the nodes').
pub(crate) const NODE_LIVE_SECS: f64 = 6.0;

impl Db {
    /// Erases the rows of a consent this node never held (a customer of another node, or
    /// one this vault lost in a restore), for good: no node writes its values again. Committed
    /// when this returns true; only then may the receipt be signed. For a bare expiry
    /// (`expiry`), only a consent the database shows expired by the server's clock, or does not
    /// hold live: false, and nothing erased, otherwise.
    pub(crate) async fn erase_unheld(
        &mut self,
        node: &str,
        customer: &str,
        grant: &str,
        expiry: bool,
    ) -> Result<bool, MirrorError> {
        let tx = self.client.transaction().await?;
        if detached(&tx).await? {
            return Err(MirrorError::Detached);
        }
        lock_share(&tx, customer, grant).await?;
        if expiry {
            let unexpired = tx
                .query_opt(
                    "SELECT 1 FROM vault.consents WHERE customer = $1 AND grant_id = $2 AND status = 'live'
                       AND (expires_at IS NULL OR expires_at > now())",
                    &[&customer, &grant],
                )
                .await?
                .is_some();
            if unexpired {
                return Ok(false);
            }
        }
        erase_for_good(&tx, node, customer, grant, if expiry { "expired" } else { "withdrawn" }).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Says this node is up, and returns the nodes heard from within [`NODE_LIVE_SECS`] (this
    /// one included), by the server's clock.
    pub(crate) async fn heartbeat(&self, node: &str) -> Result<Vec<String>, MirrorError> {
        self.client
            .execute(
                "INSERT INTO vault.nodes (device, seen_at) VALUES ($1, now())
                 ON CONFLICT (device) DO UPDATE SET seen_at = now()",
                &[&node],
            )
            .await?;
        let rows = self
            .client
            .query(
                "SELECT device FROM vault.nodes WHERE seen_at > now() - make_interval(secs => $1)",
                &[&NODE_LIVE_SECS],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let device: Option<String> = r.try_get(0)?;
            out.extend(device);
        }
        Ok(out)
    }

    /// Erases the values of every consent past its expiry by the server's clock, whichever node
    /// wrote it (one that was never held here, or whose node is down, included), and lists it
    /// as erased for good. Returns how many consents ended.
    pub(crate) async fn erase_expired(&mut self, node: &str) -> Result<u64, MirrorError> {
        let tx = self.client.transaction().await?;
        if detached(&tx).await? {
            return Err(MirrorError::Detached);
        }
        let rows = tx
            .query(
                "SELECT customer, grant_id FROM vault.consents
                 WHERE status = 'live' AND expires_at IS NOT NULL AND expires_at <= now()
                 ORDER BY customer, grant_id LIMIT 256",
                &[],
            )
            .await?;
        let mut n = 0;
        for r in &rows {
            let (customer, grant): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            n += erase_for_good(&tx, node, &customer, &grant, "expired").await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Customers with a live consent here and how each was last reached: what a node taking
    /// over customers calls. With `orphans_of` (the nodes up), only those last written by
    /// another node (one that stopped).
    pub(crate) async fn live_customers(
        &self,
        orphans_of: Option<&[String]>,
    ) -> Result<Vec<(String, String)>, MirrorError> {
        let up: Vec<&str> = orphans_of.unwrap_or_default().iter().map(String::as_str).collect();
        let rows = self
            .client
            .query(
                "SELECT DISTINCT ON (customer) customer, customer_ticket FROM vault.consents
                 WHERE status = 'live' AND customer_ticket IS NOT NULL
                   AND ($1 = false OR node IS NULL OR NOT (node = ANY($2::text[])))
                 ORDER BY customer, updated_at DESC NULLS LAST",
                &[&orphans_of.is_some(), &up],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let (customer, ticket): (Option<String>, Option<String>) = (r.try_get(0)?, r.try_get(1)?);
            if let (Some(c), Some(t)) = (customer, ticket) {
                out.push((c, t));
            }
        }
        Ok(out)
    }
}

impl Db {
    /// Every consent the database records (live or ended), for a breach notice: what each
    /// customer granted, and where the customer was last reached. Rows that do not parse (not
    /// written by a vault) are left out.
    pub(crate) async fn recorded_consents(&self) -> Result<Vec<vault_core::RecordedConsent>, MirrorError> {
        let rows = self
            .client
            .query(
                "SELECT customer, grant_id, fields, purpose, extract(epoch FROM issued_at)::bigint,
                        extract(epoch FROM ended_at)::bigint, customer_ticket
                 FROM vault.consents",
                &[],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let parsed = (|| {
                let customer: String = r.try_get(0).ok()?;
                let grant: String = r.try_get(1).ok()?;
                let fields: Vec<String> = r.try_get(2).ok()?;
                let ticket: Option<String> = r.try_get(6).ok()?;
                Some(vault_core::RecordedConsent {
                    customer: customer.parse().ok()?,
                    grant: grant.parse().ok()?,
                    fields: fields.iter().map(|f| f.parse().ok()).collect::<Option<Vec<_>>>()?,
                    purpose: r.try_get(3).ok()?,
                    issued_at: r.try_get(4).ok()?,
                    ended_at: r.try_get(5).ok()?,
                    ticket: ticket.and_then(|t| t.parse().ok()),
                })
            })();
            out.extend(parsed);
        }
        Ok(out)
    }
}

/// One consent's values gone for good, under its lock: listed in `vault.erased` (no node writes
/// them again), deleted and checked gone, its row marked `status` (`withdrawn`, `expired`) if
/// it was live. Returns how many rows were marked.
async fn erase_for_good(
    tx: &tokio_postgres::Transaction<'_>,
    node: &str,
    customer: &str,
    grant: &str,
    status: &str,
) -> Result<u64, MirrorError> {
    lock_share(tx, customer, grant).await?;
    tx.execute(
        "INSERT INTO vault.erased (customer, grant_id, node) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[&customer, &grant, &node],
    )
    .await?;
    tx.execute(
        "DELETE FROM vault.consent_values WHERE customer = $1 AND grant_id = $2",
        &[&customer, &grant],
    )
    .await?;
    let left: i64 = tx
        .query_one(
            "SELECT count(*) FROM vault.consent_values WHERE customer = $1 AND grant_id = $2",
            &[&customer, &grant],
        )
        .await?
        .try_get(0)?;
    if left != 0 {
        return Err(MirrorError::ChangedByHand(format!(
            "{left} values of grant {grant} remain after deleting them (a rule or trigger?)"
        )));
    }
    Ok(tx
        .execute(
            "UPDATE vault.consents SET status = $4,
                 ended_at = coalesce(ended_at, CASE WHEN $4 = 'expired' THEN expires_at ELSE now() END),
                 updated_at = now(), customer_ticket = NULL, node = $3
             WHERE customer = $1 AND grant_id = $2 AND status = 'live'",
            &[&customer, &grant, &node, &status],
        )
        .await?)
}
