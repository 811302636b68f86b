//! `vault export [--format json|automerge] [-o FILE]`

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::app::{App, Outcome};
use crate::cli::{ExportArgs, ExportFormat};
use crate::output::untrusted;

pub(crate) fn run(app: &App, args: &ExportArgs) -> Result<Outcome> {
    if args.output.is_none() && args.format == ExportFormat::Automerge && std::io::stdout().is_terminal() {
        bail!("refusing to write a binary Automerge document to the terminal; use -o FILE");
    }
    let mut vault = app.unlock()?;
    let spinner = app.spinner("exporting");
    let bytes = match args.format {
        ExportFormat::Json => {
            let mut bytes = serde_json::to_vec_pretty(&vault.records().export_json())?;
            bytes.push(b'\n');
            bytes
        }
        ExportFormat::Automerge => vault.records_mut().export_automerge(),
    };
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let format = match args.format {
        ExportFormat::Json => "json",
        ExportFormat::Automerge => "automerge",
    };
    match &args.output {
        None => {
            std::io::stdout().lock().write_all(&bytes)?;
        }
        Some(path) => {
            write_private(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
            if app.json {
                app.print_json(&json!({ "file": path, "format": format, "bytes": bytes.len() }))?;
            } else {
                eprintln!(
                    "wrote {} ({} bytes, {format}); this file is NOT encrypted: keep it safe",
                    untrusted(&path.display().to_string()),
                    bytes.len()
                );
            }
        }
    }
    Ok(Outcome::Done)
}

/// Writes through a new temporary file in the same directory, readable by the owner only, and
/// renames it into place: a crash never leaves a half-written export under the final name. The
/// temporary file has a random name and is created exclusively (`O_EXCL`, mode 0600), so a file
/// or symlink planted in the directory is never opened, let alone followed.
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".vault-export-").suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
