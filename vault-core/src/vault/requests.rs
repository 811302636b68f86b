//! What both sides of a consent request share: the request types, where a request stands, and
//! the stored row (the signed request with its status and answer). The holder's side is the
//! [`Inbox`](super::Inbox) (inbox.rs, table `requests_in`), the requester's side the
//! [`Outbox`](super::Outbox) (outbox.rs, table `requests_out`); both are customer state.

use serde::{Deserialize, Serialize};

use super::Vault;
use super::issued::GrantError;
use crate::identity::{IdentityId, Ticket};
use crate::path::{FieldPath, RecordFilter};
use crate::request::{ConsentRequest, Denial, WiderThanAsked};
use crate::statement::{GrantId, RequestId, Signed, StatementError};
use crate::store::StoreError;
use crate::store::sealed::{Key, REQUESTS_IN, Table};
use crate::store::typed::TypedTable;

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestStatus {
    /// Outgoing, not yet delivered to the holder.
    Queued,
    /// Outgoing, the holder's node did not accept it (too many requests).
    NotAccepted,
    /// Waiting for the holder's decision.
    Pending,
    /// Approved: a grant answers it.
    Approved,
    /// Denied by the holder.
    Denied,
}

impl RequestStatus {
    /// A lowercase word for output.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Queued => "queued",
            RequestStatus::NotAccepted => "not-accepted",
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
        }
    }
}

/// A consent request, with where it stands.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// The signed request.
    pub request: Signed<ConsentRequest>,
    /// The other party's petname, when a contact (the requester for incoming requests, the
    /// holder for outgoing ones).
    pub peer_name: Option<String>,
    /// Where it stands.
    pub status: RequestStatus,
    /// When it was received (incoming) or delivered (outgoing), unix seconds.
    pub delivered_at: Option<i64>,
    /// When it was answered, unix seconds.
    pub answered_at: Option<i64>,
    /// The grant that approved it.
    pub grant: Option<GrantId>,
    /// The denial.
    pub denial: Option<Signed<Denial>>,
}

/// A stored request: the signed request, where it stands, and its answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Record {
    request: Vec<u8>,
    pub(super) status: RequestStatus,
    /// How to reach the holder (outgoing requests).
    #[serde(default)]
    pub(super) ticket: Option<String>,
    #[serde(default)]
    pub(super) delivered_at: Option<i64>,
    #[serde(default)]
    pub(super) answered_at: Option<i64>,
    #[serde(default)]
    pub(super) grant: Option<GrantId>,
    #[serde(default)]
    pub(super) denial: Option<Vec<u8>>,
}

impl Record {
    /// A request not yet answered.
    pub(super) fn new(
        signed: &Signed<ConsentRequest>,
        status: RequestStatus,
        ticket: Option<String>,
        delivered_at: Option<i64>,
    ) -> Self {
        let request = signed.to_bytes();
        Self { request, status, ticket, delivered_at, answered_at: None, grant: None, denial: None }
    }

    /// The signed request (`None`: the row is damaged).
    pub(super) fn signed(&self) -> Option<Signed<ConsentRequest>> {
        Signed::<ConsentRequest>::from_stored(&self.request)
    }
}

/// What the holder's vault has of one requested field, so the holder sees what approving
/// would share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    /// The requested field path.
    pub field: FieldPath,
    /// Whether the vault holds a value there.
    pub held: bool,
    /// For purchase paths, how many records would be shared (after the request's filter).
    pub records: Option<usize>,
}

/// What to ask for.
#[derive(Clone, Debug)]
pub struct NewRequest {
    /// Whose data (the one who decides).
    pub holder: IdentityId,
    /// How to reach them.
    pub ticket: Option<Ticket>,
    /// What.
    pub fields: Vec<FieldPath>,
    /// Which purchase records, when not all.
    pub filter: Option<RecordFilter>,
    /// Why (required).
    pub purpose: String,
    /// For how long (seconds).
    pub duration: Option<i64>,
    /// Whether purchase prices are asked for.
    pub prices: bool,
    /// The name this vault gives itself, shown to the holder as unverified.
    pub name: Option<String>,
    /// This vault's ticket, for the holder to add it as a contact from the request.
    pub reply_to: Option<Ticket>,
}

/// How the holder narrows an approval. `None` keeps what was asked.
#[derive(Clone, Debug, Default)]
pub struct Approval {
    /// Fewer or narrower fields.
    pub fields: Option<Vec<FieldPath>>,
    /// Only some purchase records.
    pub filter: Option<RecordFilter>,
    /// Leave prices out.
    pub no_prices: bool,
    /// An earlier expiry (unix seconds).
    pub expires_at: Option<i64>,
}

/// A request could not be made, answered or recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No request with this id.
    #[error("no request with id {0}")]
    Unknown(String),
    /// It was answered before.
    #[error("request {id} was already {}", status.as_str())]
    AlreadyAnswered {
        /// The request.
        id: RequestId,
        /// How it was answered.
        status: RequestStatus,
    },
    /// The approval would grant more than was asked.
    #[error("cannot approve more than was asked: {0}")]
    Wider(#[from] WiderThanAsked),
    /// The requester is a blocked contact.
    #[error("the requester is a blocked contact")]
    Blocked,
    /// The statement does not check out.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// Issuing the grant failed.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The rows of `table` (`requests_in` or `requests_out`), one per request under its id.
const fn rows(table: Table) -> TypedTable<Record> {
    TypedTable::new(table)
}

/// One stored request of `table`.
pub(super) fn get(vault: &Vault, table: Table, id: &RequestId) -> Result<Option<Record>, StoreError> {
    rows(table).get(&vault.store, Key::Id(id.as_bytes()))
}

/// One stored request of `table` with its signed request, which must decode.
pub(super) fn get_signed(
    vault: &Vault,
    table: Table,
    id: &RequestId,
) -> Result<Option<(Signed<ConsentRequest>, Record)>, StoreError> {
    let Some(record) = get(vault, table, id)? else { return Ok(None) };
    let signed = record.signed().ok_or_else(|| StoreError::damaged(&table, id))?;
    Ok(Some((signed, record)))
}

/// Writes a request row of `table`, and logs it for the other devices; call inside a write
/// transaction.
pub(super) fn put(vault: &Vault, table: Table, id: &RequestId, record: &Record) -> Result<(), StoreError> {
    rows(table).put(&vault.store, Key::Id(id.as_bytes()), record)?;
    let incoming = table.name == REQUESTS_IN.name;
    vault.replication().log_request(incoming, id.as_bytes(), record)?;
    Ok(())
}

/// Every row of `table` as stored (for seeding the shared log).
pub(super) fn raw_list(vault: &Vault, table: Table) -> Result<Vec<(Vec<u8>, Record)>, StoreError> {
    Ok(rows(table).list(&vault.store)?.into_iter().map(|(key, record)| (key.id().to_vec(), record)).collect())
}

/// How far along a request is: the further answer wins when two devices' rows merge; equal
/// ranks order by status too, so the choice is the same on every device.
fn rank(status: RequestStatus) -> (u8, u8) {
    match status {
        RequestStatus::Queued => (0, 0),
        RequestStatus::NotAccepted => (0, 1),
        RequestStatus::Pending => (1, 0),
        RequestStatus::Denied => (2, 0),
        RequestStatus::Approved => (3, 0),
    }
}

/// The smaller of two options, `None` only when both are.
fn least<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Merges a request row another device of this identity sent (see replication.rs): the
/// request must verify, be made to (`incoming`) or by this identity, and carry the row's id; a
/// denial must answer it. The row further along wins; what both rows know merges field by
/// field (the smaller value), so every device settles on the same row whatever the order.
/// False when it does not check out.
pub(super) fn merge(
    vault: &Vault,
    table: Table,
    incoming: bool,
    id: &[u8],
    theirs: &Record,
) -> Result<bool, StoreError> {
    let Some(id) = RequestId::from_raw(id) else { return Ok(false) };
    let Ok(signed) = Signed::<ConsentRequest>::from_bytes(&theirs.request) else { return Ok(false) };
    let r = signed.statement();
    let party = if incoming { r.holder } else { r.requester };
    if r.id != id || party != vault.identity() {
        return Ok(false);
    }
    if let Some(denial) = theirs.denial.as_deref() {
        let Ok(d) = Signed::<Denial>::from_bytes(denial) else { return Ok(false) };
        let d = d.statement();
        if d.request != id || d.holder != r.holder || d.requester != r.requester {
            return Ok(false);
        }
    }
    let answered = match theirs.status {
        RequestStatus::Approved => theirs.grant.is_some(),
        RequestStatus::Denied => theirs.denial.is_some(),
        _ => true,
    };
    if !answered {
        return Ok(false);
    }
    let merged = match get(vault, table, &id)? {
        // Kept as the same rules would leave it, so a second merge of it changes nothing.
        None => Record {
            grant: theirs.grant.filter(|_| theirs.status == RequestStatus::Approved),
            denial: theirs.denial.clone().filter(|_| theirs.status == RequestStatus::Denied),
            ..theirs.clone()
        },
        // Another body under a known id: keep the one this device has (the entry is handled).
        Some(mine) if mine.request != theirs.request => return Ok(true),
        Some(mine) => {
            let (winner, other) =
                if rank(theirs.status) > rank(mine.status) { (theirs, &mine) } else { (&mine, theirs) };
            Record {
                request: winner.request.clone(),
                status: winner.status,
                ticket: least(mine.ticket.clone(), theirs.ticket.clone()),
                delivered_at: least(mine.delivered_at, theirs.delivered_at),
                answered_at: least(winner.answered_at, other.answered_at),
                grant: if winner.status == RequestStatus::Approved {
                    least(winner.grant, other.grant.filter(|_| other.status == RequestStatus::Approved))
                } else {
                    None
                },
                denial: if winner.status == RequestStatus::Denied {
                    least(
                        winner.denial.clone(),
                        other.denial.clone().filter(|_| other.status == RequestStatus::Denied),
                    )
                } else {
                    None
                },
            }
        }
    };
    let body = serde_json::to_vec(&merged).expect("serializes");
    vault.store.put(&table, Key::Id(id.as_bytes()), &body)?;
    Ok(true)
}

/// Every request of `table`, newest first.
pub(super) fn list(vault: &Vault, table: Table) -> Result<Vec<(Signed<ConsentRequest>, Record)>, StoreError> {
    let rows = vault.store.list(&table)?;
    let mut out = Vec::with_capacity(rows.len());
    for (raw, body, _) in rows {
        let name = RequestId::from_raw(raw.id()).map_or_else(|| "?".to_owned(), |id| id.to_string());
        let damaged = || StoreError::damaged(&table, &name);
        let record: Record = serde_json::from_slice(&body).map_err(|_| damaged())?;
        let signed = record.signed().ok_or_else(damaged)?;
        out.push((signed, record));
    }
    out.sort_by_key(|(r, _)| std::cmp::Reverse(r.statement().made_at));
    Ok(out)
}

/// A stored request as shown: with the other party's petname (the requester for incoming
/// requests, the holder for outgoing ones).
pub(super) fn info(
    vault: &Vault,
    signed: Signed<ConsentRequest>,
    record: Record,
    incoming: bool,
) -> RequestInfo {
    let r = signed.statement();
    let peer = if incoming { r.requester } else { r.holder };
    RequestInfo {
        peer_name: vault.contacts().petname(&peer),
        status: record.status,
        delivered_at: record.delivered_at,
        answered_at: record.answered_at,
        grant: record.grant,
        denial: record.denial.as_deref().and_then(Signed::<Denial>::from_stored),
        request: signed,
    }
}
