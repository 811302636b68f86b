//! `vault`: a local-first personal data vault.
//!
//! `main` parses the command line, runs the command and maps the outcome to an exit code:
//! 0 ok, 1 a valid "no" (nothing found, verify found problems), 2 an error.

#![forbid(unsafe_code)]

mod app;
mod cli;
mod cmd;
mod errors;
mod output;
mod time;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing();
    match cmd::run(cli) {
        Ok(app::Outcome::Done) => ExitCode::SUCCESS,
        Ok(app::Outcome::No) => ExitCode::from(1),
        Err(err) => {
            if errors::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            errors::report(&err);
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .init();
}
