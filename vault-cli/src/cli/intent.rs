//! `vault intent`: intentions, told to sellers under a pseudonym (customer side), and the
//! offers that answer them (seller side).

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum IntentCommand {
    /// State what you want, under a pseudonym made for this intention alone, and send it to
    /// the sellers you name: they learn what you want, never who you are
    Add(IntentAddArgs),
    /// Your intentions: where each went, its offers, accepted or withdrawn
    List,
    /// Fetch the offers made to an intention (each seller dialled under its pseudonym), and
    /// list them
    Offers(IntentOffersArgs),
    /// Accept one offer: only that seller learns who you are (your identity and ticket)
    Accept(IntentAcceptArgs),
    /// Withdraw an intention: every seller it reached drops it
    Withdraw(IntentWithdrawArgs),
    /// Intentions sellers' customers sent you, with your offers (seller side)
    Inbox,
    /// Answer an intention with a signed offer (seller side): the customer fetches it
    Offer(IntentOfferArgs),
    /// Forget an intention you received, with your offers to it (seller side)
    Forget {
        /// The intention (its pseudonym, or its first 12 characters)
        intention: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct IntentAddArgs {
    /// What you want: an item or a category ("espresso machine")
    pub(crate) what: String,
    /// A tag (lowercase), repeatable, at most 8
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// The most you would pay, in major units (sent as the 1-2-5 band it falls in: 150 is
    /// "100 to 200"), with --currency
    #[arg(long, requires = "currency")]
    pub(crate) budget: Option<String>,
    /// ISO 4217 currency code of the budget
    #[arg(long, requires = "budget")]
    pub(crate) currency: Option<String>,
    /// Send the budget as that one figure instead of its band
    #[arg(long, requires = "budget")]
    pub(crate) exact_budget: bool,
    /// A coarse place: a country code (FR) or a country and region (FR-IDF)
    #[arg(long)]
    pub(crate) place: Option<String>,
    /// Until when it holds: a date (YYYY-MM-DD) or a duration (7d); sent as a day
    #[arg(long, value_name = "DATE|DURATION")]
    pub(crate) until: String,
    /// A seller to send it to (a contact or a ticket), repeatable
    #[arg(long = "to", value_name = "PEER", required_unless_present = "topic")]
    pub(crate) to: Vec<String>,
    /// Also broadcast it to a public topic (coffee/FR): sellers there you do not know hear it
    #[arg(long)]
    pub(crate) topic: Option<String>,
    /// A member to enter the topic by (a contact or ticket), repeatable [default: those you
    /// joined the topic by]
    #[arg(long = "via", value_name = "PEER", requires = "topic")]
    pub(crate) via: Vec<String>,
    /// Do not use relays (local networks, tests)
    #[arg(long)]
    pub(crate) no_relay: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IntentOffersArgs {
    /// The intention (its pseudonym, or the first characters of it); every open one when left out
    pub(crate) intention: Option<String>,
    /// List what was fetched before, without dialling anyone
    #[arg(long)]
    pub(crate) no_fetch: bool,
    /// Do not use relays (local networks, tests)
    #[arg(long)]
    pub(crate) no_relay: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IntentAcceptArgs {
    /// The intention (its pseudonym, or the first characters of it)
    pub(crate) intention: String,
    /// The offer's id (from `vault intent offers`)
    pub(crate) offer: String,
    /// Do not use relays (local networks, tests)
    #[arg(long)]
    pub(crate) no_relay: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IntentWithdrawArgs {
    /// The intention (its pseudonym, or the first characters of it)
    pub(crate) intention: String,
    /// Do not use relays (local networks, tests)
    #[arg(long)]
    pub(crate) no_relay: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IntentOfferArgs {
    /// The intention (its pseudonym, or the first characters of it, from `vault intent inbox`)
    pub(crate) intention: String,
    /// The price in major units, e.g. 149.00
    #[arg(long)]
    pub(crate) price: String,
    /// ISO 4217 currency code
    #[arg(long)]
    pub(crate) currency: String,
    /// What comes with the price, one line
    #[arg(long, default_value = "")]
    pub(crate) terms: String,
    /// Until when the offer holds: a date or a duration [default: 7d]
    #[arg(long, default_value = "7d", value_name = "DATE|DURATION")]
    pub(crate) until: String,
    /// The name you give yourself in the offer [default: this vault's display name]
    #[arg(long)]
    pub(crate) name: Option<String>,
}
