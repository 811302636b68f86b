//! The consent journey's commands: `vault request`, `follow`, `requests`, `approve`, `deny`.

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// Whose data: a contact name or a ticket
    pub(crate) peer: String,
    /// Field paths, comma-separated or repeated: profile.email, profile.address, purchases, ...;
    /// or a value derived from one instead of it: profile.birthday:over(18), profile.address:country
    #[arg(long, required = true, value_delimiter = ',', num_args = 1..)]
    pub(crate) fields: Vec<String>,
    /// Why you need them (shown to the customer, required)
    #[arg(long)]
    pub(crate) purpose: String,
    /// For how long: 90d, 12h, 2w [default: until the customer revokes]
    #[arg(long)]
    pub(crate) duration: Option<String>,
    /// Only some purchase records: purchases[tag=books]
    #[arg(long)]
    pub(crate) filter: Option<String>,
    /// Do not ask for purchase prices
    #[arg(long)]
    pub(crate) no_prices: bool,
    /// Do not use relays or address lookup (local networks and tests)
    #[arg(long)]
    pub(crate) no_relay: bool,
}

#[derive(Debug, Args)]
pub(crate) struct FollowArgs {
    /// Whose feed: a contact name or a ticket
    pub(crate) peer: String,
    /// Why (shown to them)
    #[arg(long, default_value = "follow your purchases")]
    pub(crate) purpose: String,
    /// Only purchases with this tag
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// For how long: 90d, 12h, 2w [default: until they revoke]
    #[arg(long)]
    pub(crate) duration: Option<String>,
    /// Do not ask for prices
    #[arg(long)]
    pub(crate) no_prices: bool,
    /// Do not use relays or address lookup (local networks and tests)
    #[arg(long)]
    pub(crate) no_relay: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RequestsArgs {
    /// The requests you made, with their answers
    #[arg(long)]
    pub(crate) sent: bool,
    /// Include answered requests
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ApproveArgs {
    /// The request id (from `vault requests`)
    pub(crate) request_id: String,
    /// Grant only these of the requested fields (comma-separated), or values derived from them
    /// (profile.birthday:over(18) where profile.birthday was asked)
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub(crate) fields: Option<Vec<String>>,
    /// End sooner than asked: a duration (30d) or a date (YYYY-MM-DD)
    #[arg(long)]
    pub(crate) expires: Option<String>,
    /// Only some purchase records: purchases[tag=books]
    #[arg(long)]
    pub(crate) filter: Option<String>,
    /// Leave purchase prices out
    #[arg(long)]
    pub(crate) no_prices: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DenyArgs {
    /// The request id (from `vault requests`)
    pub(crate) request_id: String,
    /// Tell the requester why
    #[arg(long)]
    pub(crate) reason: Option<String>,
}
