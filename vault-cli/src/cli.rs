//! The command line, parsed into plain values (nothing is opened or unlocked here).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod agent;
mod consent;
mod feed;
mod intent;
mod rekey;
mod seller;
mod topic;
pub(crate) use agent::{AgentRunArgs, UnlockArgs};
pub(crate) use consent::{ApproveArgs, DenyArgs, FollowArgs, RequestArgs, RequestsArgs};
pub(crate) use feed::{FeedArgs, FeedCommand, MuteArgs};
pub(crate) use intent::{
    IntentAcceptArgs, IntentAddArgs, IntentCommand, IntentOfferArgs, IntentOffersArgs, IntentWithdrawArgs,
};
pub(crate) use rekey::{NewPassphraseArgs, PasswdArgs, RekeyArgs};
pub(crate) use seller::{BreachCommand, MirrorCommand, NoticesArgs};
pub(crate) use topic::{TopicAlsoArgs, TopicCommand, TopicJoinArgs, TopicViewArgs};

/// A local-first personal data vault: your profile, purchases and preferences, encrypted on
/// your own device.
///
/// The passphrase is read from the terminal, or from VAULT_PASSPHRASE in scripts, or from what
/// VAULT_PASSPHRASE_COMMAND prints (a password manager).
/// Exit codes: 0 ok, 1 a valid "no" (nothing found, verify found problems), 2 error.
#[derive(Debug, Parser)]
#[command(name = "vault", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The vault directory [default: the platform's data directory, e.g. ~/.local/share/vault]
    #[arg(long, global = true, env = "VAULT_DIR", value_name = "DIR")]
    pub(crate) vault: Option<PathBuf>,
    /// Print one JSON document (shapes in schemas/cli/) instead of text
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a new vault (refuses to touch an existing one)
    Init(InitArgs),
    /// Print this vault's identity and ticket
    Id(IdArgs),
    /// Where things stand: identity, node, live grants by peer, requests waiting, erasures
    /// pending, notices, shares received and their freshness
    Status,
    /// Check the whole vault file: structure, every encrypted blob, the document
    Verify,
    /// Unlock for a while: commands use the vault without asking for the passphrase
    Unlock(UnlockArgs),
    /// Lock now: the unlock agent forgets the key (a running node stops lending it)
    Lock,
    /// Give the vault a new data key: every row re-sealed, keys lent before (`vault unlock`)
    /// refused from now on. Stop `vault serve` first
    Rekey(RekeyArgs),
    /// Change the passphrase (with a new data key too, as `vault rekey` gives)
    Passwd(PasswdArgs),
    /// The background agent `vault unlock` starts (not for direct use)
    #[command(hide = true, name = "agent-run")]
    AgentRun(AgentRunArgs),
    /// Read and edit the profile (FIELD is relative: email, address.city)
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Log, list and remove purchases
    #[command(subcommand)]
    Purchase(PurchaseCommand),
    /// Read and edit preferences
    #[command(subcommand)]
    Pref(PrefCommand),
    /// Export everything, to take your data elsewhere (the export is NOT encrypted)
    Export(ExportArgs),
    /// Import a JSON or Automerge export; an Automerge copy of this vault is merged
    Import(ImportArgs),
    /// Manage contacts: petnames for other people's tickets
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Your devices: link a new one, list them, remove a lost one
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Grant PEER a live, read-only copy of some fields, for a stated purpose
    Grant(GrantArgs),
    /// List the grants you issued: who holds what, for what purpose, until when
    Grants(GrantsArgs),
    /// Revoke a grant: nothing more is served; the grantee erases its copy
    Revoke {
        /// The grant id (from `vault grants`)
        grant_id: String,
    },
    /// Read the access log
    Audit(AuditArgs),
    /// Run this vault's node until interrupted: serve your grants, receive your shares live
    Serve(ServeArgs),
    /// Tell the customers whose data you held that it may have been breached (seller side)
    #[command(subcommand)]
    Breach(BreachCommand),
    /// Breach notices sellers sent you, with the grants concerned (or, with --sent, yours)
    Notices(NoticesArgs),
    /// Keep what is shared with you in your own PostgreSQL, erased there before any receipt
    #[command(subcommand)]
    Mirror(MirrorCommand),
    /// Connect to a peer (or every peer that shares with you), exchange, and exit
    Sync(SyncArgs),
    /// Ask PEER for access to some of their fields, for a stated purpose (seller side)
    Request(RequestArgs),
    /// Consent requests: those waiting for your decision (or, with --sent, the ones you made)
    Requests(RequestsArgs),
    /// Approve a request: grant what was asked, or less
    Approve(ApproveArgs),
    /// Deny a request; the requester is told
    Deny(DenyArgs),
    /// Ask PEER to share their purchase feed with you (friend side)
    Follow(FollowArgs),
    /// The purchases shared by everyone you follow, newest first
    Feed(FeedArgs),
    /// Tell sellers what you want without telling them who you are; answer with offers
    /// (seller side)
    #[command(subcommand)]
    Intent(IntentCommand),
    /// Public topics: join one to hear (and tell) what people buy, beyond your friends
    #[command(subcommand)]
    Topic(TopicCommand),
    /// What others share with you: by grant, with purpose, expiry and the signed grant
    Shared(SharedArgs),
    /// Whose grants this vault takes in: anyone (strangers' unsolicited grants bounded), your
    /// contacts, or only answers to your requests
    Accept(AcceptArgs),
    /// Run the whole story on this machine: three vaults, real endpoints on loopback
    Demo(DemoArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print the manual page, or write one per command into --dir
    Man(ManArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContactCommand {
    /// Give a petname to someone's ticket, or to whoever sent you a request (--from-request)
    Add {
        /// The petname (letters, digits, '-', '_', '.')
        name: String,
        /// Their ticket (from their `vault id`); or --from-request
        ticket: Option<String>,
        /// Add whoever sent this request (an id from `vault requests`), reached where its
        /// delivery came from: no ticket needs to be sent some other way
        #[arg(long, value_name = "ID", conflicts_with = "ticket")]
        from_request: Option<String>,
        /// Dial them here instead of at the ticket's addresses (repeatable), e.g. the public
        /// address of a router that forwards a port to their `vault serve --bind`
        #[arg(long = "addr", value_name = "IP:PORT", value_parser = parse_addr)]
        addrs: Vec<std::net::SocketAddr>,
    },
    /// Set the addresses a contact is dialed at, instead of their ticket's (or --clear them)
    Addr {
        /// The petname
        name: String,
        #[arg(
            value_name = "IP:PORT",
            value_parser = parse_addr,
            required_unless_present = "clear",
            help = "Where to dial them, e.g. 203.0.113.7:4433 or [2001:db8::1]:4433"
        )]
        addrs: Vec<std::net::SocketAddr>,
        /// Forget the addresses set by hand: dial the ticket's addresses again
        #[arg(long, conflicts_with = "addrs")]
        clear: bool,
    },
    /// List contacts
    List,
    /// Forget a contact (a blocked one must be unblocked first: the block lives in the contact)
    Rm {
        /// The petname
        name: String,
    },
    /// Block a contact: their connections and requests are refused
    Block {
        /// The petname
        name: String,
    },
    /// Unblock a contact: their connections and requests are accepted again
    Unblock {
        /// The petname
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCommand {
    /// Link a new device: prints a one-time pairing code (valid 10 minutes) and waits for it
    Add {
        /// A name for the new device (letters, digits, '-', '_', '.')
        name: String,
        /// Also show the code as a QR code
        #[arg(long)]
        qr: bool,
        /// Do not use relays or address lookup (local networks and tests)
        #[arg(long)]
        no_relay: bool,
    },
    /// List the devices of this identity
    List,
    /// Remove a device (lost, sold): refused from now on by this device, and by your other
    /// devices when they next sync with this one
    Rm {
        /// The device's name (from `vault device list`)
        name: String,
    },
    /// Show the recovery code once: your identity's next key, to write on paper and keep safe
    /// (this device keeps no copy afterwards)
    RecoveryCode,
    /// Rotate your identity key with the recovery code: its key becomes the identity key here,
    /// the old one signs nothing new anywhere the rotation reaches, and a new code is printed
    /// (a device that held the old key is lost or stolen, or you want to link or remove devices
    /// from here)
    Recover {
        /// The code; by default typed at a hidden prompt, or `-` to read it from standard input
        #[arg(default_value = "")]
        code: String,
    },
    /// Remove the identity key from this device (type the recovery code back to confirm): then
    /// no device holds it, and any device can be removed for good
    ForgetKey,
}

#[derive(Debug, Args)]
pub(crate) struct GrantArgs {
    /// Who receives: a contact name, a ticket or an identity
    pub(crate) peer: String,
    /// Field paths, comma-separated or repeated: profile.email, profile.address, preferences.diet,
    /// purchases, purchases.*.item; or a value derived from one instead of it:
    /// profile.birthday:over(18), profile.birthday:year, profile.address:country,
    /// profile.address.postcode:prefix(2), purchases.*.price:band(10,50,100)
    #[arg(long, required = true, value_delimiter = ',', num_args = 1..)]
    pub(crate) fields: Vec<String>,
    /// Why the peer gets them (shown to both sides, required)
    #[arg(long)]
    pub(crate) purpose: String,
    /// Only some purchase records: purchases[tag=books], purchases[seller=Acme]
    #[arg(long)]
    pub(crate) filter: Option<String>,
    /// When the grant ends: a duration (90d, 12h, 2w) or a date (YYYY-MM-DD, end of that day)
    #[arg(long)]
    pub(crate) expires: Option<String>,
    /// Leave purchase prices out
    #[arg(long)]
    pub(crate) no_prices: bool,
}

#[derive(Debug, Args)]
pub(crate) struct GrantsArgs {
    /// Include revoked and expired grants
    #[arg(long)]
    pub(crate) all: bool,
    /// Only live grants that cover this field path (who sees this value?)
    #[arg(long, value_name = "PATH")]
    pub(crate) field: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to bind, e.g. 127.0.0.1:4433 [default: all interfaces, the port it served on
    /// last]
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Option<std::net::SocketAddr>,
    /// No line per event (a request, a share served, an erasure confirmed): the ticket only
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Do not use relays or address lookup (local networks and tests)
    #[arg(long)]
    pub(crate) no_relay: bool,
    /// Close a session with a peer that shares with you after this long without a word either
    /// way (it calls back when it has news), or `never` [default: 60s]
    #[arg(long, value_name = "DURATION")]
    pub(crate) idle_close: Option<String>,
    /// No longer taken: a URL on the command line shows in the process list (its password
    /// too). Give it on standard input (`vault mirror set`) or in VAULT_MIRROR_URL
    #[arg(long, value_name = "URL", hide = true)]
    pub(crate) mirror: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// The peer: a contact name or a ticket [default: everyone who shares with you]
    pub(crate) peer: Option<String>,
    /// Do not use relays or address lookup (local networks and tests)
    #[arg(long)]
    pub(crate) no_relay: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TableFormat {
    /// One JSON document, each row with its consent receipt
    Json,
    /// Comma-separated values with a header row, the receipt in the last columns
    Csv,
}

#[derive(Debug, Args)]
pub(crate) struct SharedArgs {
    /// Only what this peer shares (contact name, ticket or identity)
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Only shares granted for this purpose (case-insensitive substring)
    #[arg(long)]
    pub(crate) purpose: Option<String>,
    /// Export the list (who consented, to what, until when, with the consent receipt)
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) export: Option<TableFormat>,
    /// Write the export to FILE instead of standard output
    #[arg(short, long, value_name = "FILE", requires = "export")]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Keep the three demo vaults in this directory instead of a temporary one
    #[arg(long, value_name = "DIR")]
    pub(crate) keep: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Only events with this peer (contact name, ticket or identity)
    #[arg(long)]
    pub(crate) peer: Option<String>,
    /// Only events about this grant
    #[arg(long)]
    pub(crate) grant: Option<String>,
    /// Only events on or after this date (YYYY-MM-DD) or within this duration (7d)
    #[arg(long)]
    pub(crate) since: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Join an identity as a new device, with the pairing code `vault device add NAME` printed
    /// on one of its devices. Without CODE (best: out of the process list and shell history)
    /// it is asked for at a hidden prompt, or read from standard input ("-" too)
    #[arg(long, value_name = "CODE", num_args = 0..=1, default_missing_value = "")]
    pub(crate) join: Option<String>,
    /// Do not use relays or address lookup when joining (local networks and tests)
    #[arg(long, requires = "join")]
    pub(crate) no_relay: bool,
    /// Make a strong passphrase (about 125 bits) instead of asking for one, and print it once:
    /// write it down or put it in your password manager
    #[arg(long, conflicts_with_all = ["weak_passphrase_ok", "join"])]
    pub(crate) generate_passphrase: bool,
    /// Accept a passphrase the strength estimate calls weak (refused otherwise)
    #[arg(long)]
    pub(crate) weak_passphrase_ok: bool,
    /// Use a deliberately weak key derivation. Exists only in builds with the
    /// `insecure-test-kdf` feature (the end-to-end tests); release builds have no such option.
    #[cfg(feature = "insecure-test-kdf")]
    #[arg(long, hide = true)]
    pub(crate) insecure_fast_kdf: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// Also show the ticket as a QR code
    #[arg(long)]
    pub(crate) qr: bool,
    /// The name to give yourself in the requests you send ("Acme Shop"): shown to people who
    /// do not have you as a contact, marked unverified. Kept on this device.
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Send requests without a name again
    #[arg(long, conflicts_with = "name")]
    pub(crate) no_name: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// Set a profile field
    Set {
        /// The field: name, email, phone, birthday, address.street, address.city,
        /// address.postcode, address.region, address.country
        field: String,
        /// The value
        value: String,
    },
    /// Show the profile, or one field
    Get {
        /// The field (all fields when omitted)
        field: Option<String>,
    },
    /// Remove a profile field
    Unset {
        /// The field
        field: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PurchaseCommand {
    /// Log a purchase
    Add(PurchaseAddArgs),
    /// List purchases, newest first
    List(PurchaseListArgs),
    /// Remove a purchase
    Rm {
        /// The purchase id (from `purchase list`)
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PurchaseAddArgs {
    /// What was bought
    #[arg(long)]
    pub(crate) item: String,
    /// Who sold it
    #[arg(long)]
    pub(crate) seller: String,
    /// The price in major units, e.g. 12.50
    #[arg(long)]
    pub(crate) price: String,
    /// ISO 4217 currency code, e.g. EUR
    #[arg(long)]
    pub(crate) currency: String,
    /// Date of purchase, YYYY-MM-DD [default: today]
    #[arg(long)]
    pub(crate) date: Option<String>,
    /// Time of day, HH:MM [default: now, when no --date is given]; orders a day's purchases, and
    /// is shared with the purchase (a grant of `purchases` includes it)
    #[arg(long, conflicts_with = "no_time")]
    pub(crate) time: Option<String>,
    /// Record no time of day
    #[arg(long)]
    pub(crate) no_time: bool,
    /// A category
    #[arg(long)]
    pub(crate) category: Option<String>,
    /// A tag (repeat for several)
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// Rating from 1 to 5
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) rating: Option<i64>,
    /// A review
    #[arg(long)]
    pub(crate) review: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PurchaseListArgs {
    /// Only purchases from this seller (case-insensitive)
    #[arg(long)]
    pub(crate) seller: Option<String>,
    /// Only purchases with this tag
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// Only purchases on or after this date (YYYY-MM-DD)
    #[arg(long)]
    pub(crate) since: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PrefCommand {
    /// Set a preference
    Set {
        /// The key: lowercase letters, digits, - and _ (e.g. diet, shoe-size)
        key: String,
        /// The value
        value: String,
    },
    /// Show all preferences, or one
    Get {
        /// The key (all when omitted)
        key: Option<String>,
    },
    /// Remove a preference
    Unset {
        /// The key
        key: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// Plain JSON, shaped as schemas/doc/vault-document.schema.json
    Json,
    /// A standard Automerge document with full history
    Automerge,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The format
    #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
    pub(crate) format: ExportFormat,
    /// Write to FILE (created with owner-only permissions) instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// A file made by `vault export` (JSON or Automerge)
    pub(crate) file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write vault.1 and a page per command (vault-grant.1, ...) into this directory, for
    /// example ~/.local/share/man/man1
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// A contact's address: an IP and a port (names are not resolved: what is stored is dialed).
fn parse_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| "expected IP:PORT, e.g. 203.0.113.7:4433 or [2001:db8::1]:4433".to_owned())
}

#[derive(Debug, Args)]
pub(crate) struct AcceptArgs {
    /// anyone, contacts or requests (without it: say which applies now)
    #[arg(value_parser = ["anyone", "contacts", "requests"])]
    pub(crate) from: Option<String>,
    /// With `anyone`: how many live unsolicited shares all strangers together may hold here
    /// (default 100000; each stranger at most 8)
    #[arg(long, value_name = "N")]
    pub(crate) strangers: Option<usize>,
}
