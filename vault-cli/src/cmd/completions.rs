//! `vault completions SHELL`

use anyhow::Result;
use clap::CommandFactory;

use crate::app::Outcome;
use crate::cli::{Cli, CompletionsArgs};

pub(crate) fn run(args: &CompletionsArgs) -> Result<Outcome> {
    clap_complete::generate(args.shell, &mut Cli::command(), "vault", &mut std::io::stdout());
    Ok(Outcome::Done)
}
