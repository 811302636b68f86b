//! `vault`: a local-first personal data vault.
//!
//! `main` parses the command line, runs the command and maps the outcome to an exit code:
//! 0 ok, 1 a valid "no" (nothing found, verify found problems), 2 an error.

#![forbid(unsafe_code)]

mod agent;
mod app;
mod cli;
mod cmd;
mod errors;
mod fields;
mod logging;
mod output;
mod pager;
mod runtime;
mod time;

use std::process::ExitCode;

use clap::Parser;

/// A seller's node closes the sessions of customers who went quiet; with the system's
/// allocator most of what they held stayed in the process, freed but kept (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init();
    vault_sync::on_relays_unreachable(|| {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            eprintln!(
                "note: the relay servers cannot be reached (offline, or blocked here): peers are reached only at \
                 the addresses their tickets give, or 'vault contact addr' sets; --no-relay skips the relays"
            );
        });
    });
    let json = cli.global.json;
    match cmd::run(cli) {
        Ok(app::Outcome::Done) => ExitCode::SUCCESS,
        Ok(app::Outcome::No) => ExitCode::from(1),
        Err(err) => {
            if errors::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            errors::report(&err, json);
            ExitCode::from(2)
        }
    }
}
