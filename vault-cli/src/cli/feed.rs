//! `vault feed` and its subcommands: the merged feed, the price comparison, what the network
//! says (sellers, top, also) and the mutes.

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub(crate) struct FeedArgs {
    #[command(subcommand)]
    pub(crate) command: Option<FeedCommand>,
    /// Only purchases shared by this peer (contact name, ticket or identity)
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Only purchases with this tag
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// Only purchases from this seller
    #[arg(long)]
    pub(crate) seller: Option<String>,
    /// What friends paid for an item (case-insensitive match), lowest price first
    #[arg(long)]
    pub(crate) item: Option<String>,
    /// Only purchases on or after this date (YYYY-MM-DD) or within this duration (30d)
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Show at most N purchases [default: all]
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FeedCommand {
    /// What friends paid for ITEM, lowest first (same as --item)
    Compare {
        /// The item (case-insensitive match)
        item: String,
    },
    /// Every seller friends bought from: how many friends, purchases, average rating, price
    /// range per currency, newest review
    Sellers {
        /// Show at most N sellers [default: all]
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// The items most bought (by the most friends) and best rated in your network
    Top {
        /// Only purchases with this tag
        #[arg(long)]
        tag: Option<String>,
        /// Only purchases on or after this date (YYYY-MM-DD) or within this duration (30d)
        #[arg(long)]
        since: Option<String>,
        /// Show at most N items
        #[arg(long, value_name = "N", default_value_t = 10)]
        limit: usize,
    },
    /// Friends who bought ITEM also bought...
    Also {
        /// The item (case-insensitive match)
        item: String,
        /// Show at most N items
        #[arg(long, value_name = "N", default_value_t = 10)]
        limit: usize,
    },
    /// Leave a friend's purchases, or a tag's, out of the feed and its summaries (no argument:
    /// list what is muted)
    Mute(MuteArgs),
    /// Bring a muted friend or tag back
    Unmute(MuteArgs),
}

#[derive(Debug, Args)]
pub(crate) struct MuteArgs {
    /// The friend (contact name, ticket or identity)
    #[arg(conflicts_with = "tag")]
    pub(crate) peer: Option<String>,
    /// A tag instead of a friend
    #[arg(long)]
    pub(crate) tag: Option<String>,
}
