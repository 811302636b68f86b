//! `vault topic`: public topics (a category and a place), over which intentions reach sellers
//! the customer does not know, and purchase signals reach whoever tunes in.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum TopicCommand {
    /// Join a topic (coffee, coffee/FR): your node listens there under a pseudonym made for
    /// it alone; --publish also tells it your purchases tagged with the category (coarsely)
    Join(TopicJoinArgs),
    /// The topics you joined, with your pseudonym on each
    List,
    /// Leave a topic: its pseudonym and what was heard there are forgotten
    Leave {
        /// The topic
        topic: String,
    },
    /// What a topic says: most bought items, their ratings, sellers and price bands, each
    /// pseudonym counted once per item; beside what your own network says
    Top(TopicViewArgs),
    /// People on a topic who bought ITEM also bought...
    Also(TopicAlsoArgs),
    /// Vouch for a pseudonym on a topic (--undo to take it back): --vouched views keep only
    /// those you vouch for
    Vouch {
        /// The topic
        topic: String,
        /// The pseudonym
        pseudonym: String,
        /// Take the vouch back
        #[arg(long)]
        undo: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct TopicJoinArgs {
    /// The topic: a category, optionally /PLACE (coffee, coffee/FR, books/FR-IDF)
    pub(crate) topic: String,
    /// A member to enter by (a contact or a ticket: a seller's, or a friend's public node),
    /// repeatable
    #[arg(long = "via", value_name = "PEER")]
    pub(crate) via: Vec<String>,
    /// Take the intentions customers send to the topic (a seller; your node takes part as
    /// itself, and customers may enter the topic by your ticket)
    #[arg(long)]
    pub(crate) intentions: bool,
    /// Publish your purchases tagged with the topic's category: item, seller, rating, price
    /// band, month, the topic's place; never your identity, the exact price or the day
    #[arg(long, conflicts_with = "intentions")]
    pub(crate) publish: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TopicViewArgs {
    /// The topic
    pub(crate) topic: String,
    /// Only pseudonyms you vouched for
    #[arg(long)]
    pub(crate) vouched: bool,
    /// At most this many lines
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
}

#[derive(Debug, Args)]
pub(crate) struct TopicAlsoArgs {
    /// The topic
    pub(crate) topic: String,
    /// The item
    pub(crate) item: String,
    /// Only pseudonyms you vouched for
    #[arg(long)]
    pub(crate) vouched: bool,
}
