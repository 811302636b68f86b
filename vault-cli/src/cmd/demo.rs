//! `vault demo`
use crate::app::Outcome;
use crate::cli::DemoArgs;
use anyhow::Result;
pub(crate) fn run(_args: &DemoArgs) -> Result<Outcome> {
    anyhow::bail!("todo")
}
