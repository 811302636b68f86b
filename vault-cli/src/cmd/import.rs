//! `vault import FILE`

use std::io::Read;

use anyhow::{Context, Result, bail};
use serde_json::json;
use vault_core::ImportMode;

use crate::app::{App, Outcome};
use crate::cli::ImportArgs;
use crate::output::untrusted;

/// Larger files are refused rather than read into memory.
const MAX_IMPORT_BYTES: u64 = 1 << 30;

pub(crate) fn run(app: &App, args: &ImportArgs) -> Result<Outcome> {
    let file =
        std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_IMPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        bail!("{} is larger than 1 GiB; refusing to import it", args.file.display());
    }
    let mut vault = app.unlock()?;
    let mode = vault
        .records_mut()
        .import(&bytes)
        .with_context(|| format!("cannot import {}", args.file.display()))?;
    let mode_name = match mode {
        ImportMode::Merged => "merged",
        ImportMode::Values => "values",
    };
    if app.json {
        app.print_json(&json!({ "file": args.file, "mode": mode_name }))?;
    } else {
        let file = args.file.display().to_string();
        match mode {
            ImportMode::Merged => {
                app.print(format!("merged {} into the vault (both histories kept)", untrusted(&file)))?
            }
            ImportMode::Values => app.print(format!("imported the values of {}", untrusted(&file)))?,
        }
    }
    Ok(Outcome::Done)
}
