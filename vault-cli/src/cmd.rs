//! One module per subcommand; [`run`] dispatches.

mod accept;
mod audit;
mod breach;
mod completions;
mod contact;
mod demo;
mod device;
mod export;
mod feed;
mod grant;
mod id;
mod import;
mod init;
mod intent;
mod mirror;
mod network;
mod passwd;
mod pref;
mod profile;
mod purchase;
mod reach;
mod recovery;
mod rekey;
mod request;
mod serve;
mod serve_events;
mod shared;
mod status;
mod topic;
mod unlock;
mod verify;

use anyhow::Result;

use crate::app::{App, Outcome};
use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub(crate) fn run(cli: Cli) -> Result<Outcome> {
    if let Command::Completions(args) = &cli.command {
        return completions::run(args);
    }
    if let Command::Man(args) = &cli.command {
        return completions::man(args);
    }
    if let Command::Demo(args) = &cli.command {
        return demo::run(args);
    }
    let app = App::new(&cli.global)?;
    match cli.command {
        Command::Init(args) => init::run(&app, &args),
        Command::Id(args) => id::run(&app, &args),
        Command::Status => status::run(&app),
        Command::Verify => verify::run(&app),
        Command::Unlock(args) => unlock::unlock(&app, &args),
        Command::Lock => unlock::lock(&app),
        Command::Rekey(args) => rekey::run(&app, args.change().as_ref()),
        Command::Passwd(args) => passwd::run(&app, &args),
        Command::AgentRun(args) => unlock::agent_run(&app, &args),
        Command::Profile(command) => profile::run(&app, command),
        Command::Purchase(command) => purchase::run(&app, command),
        Command::Pref(command) => pref::run(&app, command),
        Command::Export(args) => export::run(&app, &args),
        Command::Import(args) => import::run(&app, &args),
        Command::Contact(command) => contact::run(&app, command),
        Command::Device(command) => device::run(&app, command),
        Command::Grant(args) => grant::issue(&app, &args),
        Command::Grants(args) => grant::list(&app, &args),
        Command::Revoke { grant_id } => grant::revoke(&app, &grant_id),
        Command::Audit(args) => audit::run(&app, &args),
        Command::Serve(args) => serve::serve(&app, &args),
        Command::Mirror(command) => mirror::run(&app, command),
        Command::Breach(command) => breach::notify(&app, command),
        Command::Notices(args) => breach::list(&app, &args),
        Command::Sync(args) => serve::sync(&app, &args),
        Command::Intent(command) => intent::run(&app, command),
        Command::Topic(command) => topic::run(&app, command),
        Command::Shared(args) => shared::run(&app, &args),
        Command::Accept(args) => accept::run(&app, &args),
        Command::Request(args) => request::request(&app, &args),
        Command::Follow(args) => request::follow(&app, &args),
        Command::Requests(args) => request::list(&app, &args),
        Command::Approve(args) => request::approve(&app, &args),
        Command::Deny(args) => request::deny(&app, &args),
        Command::Feed(args) => feed::run(&app, &args),
        Command::Demo(_) => unreachable!("handled above"),
        Command::Completions(_) | Command::Man(_) => unreachable!("handled above"),
    }
}
