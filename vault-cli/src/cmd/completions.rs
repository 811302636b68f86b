//! `vault completions SHELL` and `vault man [--dir DIR]`: what a shell and `man` need, from
//! the same command definitions as `--help`.

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::app::Outcome;
use crate::cli::{Cli, CompletionsArgs, ManArgs};

pub(crate) fn run(args: &CompletionsArgs) -> Result<Outcome> {
    clap_complete::generate(args.shell, &mut Cli::command(), "vault", &mut std::io::stdout());
    Ok(Outcome::Done)
}

pub(crate) fn man(args: &ManArgs) -> Result<Outcome> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
            eprintln!("wrote the manual pages into {} ('man vault' once it is on MANPATH)", dir.display());
        }
        None => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock())?,
    }
    Ok(Outcome::Done)
}
