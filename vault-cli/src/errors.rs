//! Error reporting: `error: ...` with its causes, then a `hint: ...` line for common mistakes.

use vault_core::{ContactError, CreateError, EditError, ImportError, OpenError, PathError};

use crate::output::untrusted;

/// Neither VAULT_PASSPHRASE nor a terminal to ask on.
#[derive(Debug, thiserror::Error)]
#[error(
    "no passphrase: standard input is not a terminal and neither VAULT_PASSPHRASE nor VAULT_PASSPHRASE_COMMAND is set"
)]
pub(crate) struct NoPassphrase;

/// `vault passwd` (or `rekey --new-passphrase`) with neither VAULT_NEW_PASSPHRASE nor a
/// terminal to ask on.
#[derive(Debug, thiserror::Error)]
#[error("no new passphrase: standard input is not a terminal and VAULT_NEW_PASSPHRASE is not set")]
pub(crate) struct NoNewPassphrase;

/// `vault rekey` while a node runs on the vault: the node writes with the key it opened with.
#[derive(Debug, thiserror::Error)]
#[error("a node runs on this vault ('vault serve'); its key would go stale, so nothing was changed")]
pub(crate) struct NodeRunning;

/// A lookup that found nothing is a valid "no" (exit 1), but still says what was missing.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn hint(err: &anyhow::Error) -> Option<String> {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<OpenError>() {
            return match e {
                OpenError::NoVault(_) => Some(
                    "run 'vault init' to create one, or point --vault (or VAULT_DIR) at an existing vault"
                        .into(),
                ),
                OpenError::NotAVault(_) => Some("--vault must name a directory made by 'vault init'".into()),
                OpenError::WrongPassphrase => Some(
                    "use the vault's passphrase, from 'vault init' or the last 'vault passwd' (VAULT_PASSPHRASE overrides the prompt)".into(),
                ),
                OpenError::Damaged(_) => {
                    Some("run 'vault verify' to see what is damaged; nothing was modified".into())
                }
                _ => None,
            };
        }
        if let Some(CreateError::AlreadyExists(_)) = cause.downcast_ref::<CreateError>() {
            return Some("nothing was changed; use another --vault directory for a second vault".into());
        }
        if let Some(ContactError::Blocked(name)) = cause.downcast_ref::<ContactError>() {
            return Some(format!("use 'vault contact unblock {name}' first, then remove it"));
        }
        if let Some(ContactError::NoSuchContact(_)) = cause.downcast_ref::<ContactError>() {
            return Some("'vault contact list' shows your contacts; 'vault contact add' adds one".into());
        }
        if cause.downcast_ref::<NoNewPassphrase>().is_some() {
            return Some(
                "scripts set VAULT_NEW_PASSPHRASE (VAULT_PASSPHRASE stays the current one), or pass --generate-passphrase"
                    .into(),
            );
        }
        if cause.downcast_ref::<NodeRunning>().is_some() {
            return Some("stop 'vault serve' first, then start it again after the rekey".into());
        }
        if cause.downcast_ref::<NoPassphrase>().is_some() {
            return Some(
                "'vault unlock' unlocks for a while; scripts may set VAULT_PASSPHRASE or VAULT_PASSPHRASE_COMMAND"
                    .into(),
            );
        }
        if let Some(EditError::Schema(e)) = cause.downcast_ref::<EditError>() {
            return schema_hint(e);
        }
        if let Some(
            PathError::UnknownDerivation { .. }
            | PathError::BadDerivation { .. }
            | PathError::WrongType { .. },
        ) = cause.downcast_ref::<PathError>()
        {
            return Some(
                "over(N) and year read a date (profile.birthday), country an address (profile.address), \
                 prefix(N) the postcode or the phone number, band(B1,B2,...) a price (purchases.*.price)"
                    .into(),
            );
        }
        if let Some(ImportError::UnknownFormat) = cause.downcast_ref::<ImportError>() {
            return Some("import takes files made by 'vault export --format json|automerge'".into());
        }
    }
    None
}

/// What to do about a value the document schema refused: for an unknown profile field, the
/// nearest one and every one (the schema file is not beside an installed binary).
fn schema_hint(e: &vault_core::SchemaError) -> Option<String> {
    let name = e.field().strip_prefix("profile.")?;
    let known = vault_core::profile_fields();
    if known.iter().any(|k| k == name) {
        // A value the field does not take: the message says which rule.
        return None;
    }
    let nearest = known
        .iter()
        .map(|k| (strsim::levenshtein(k, name), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!("did you mean '{k}'? "))
        .unwrap_or_default();
    Some(format!("{nearest}the profile's fields: {}", known.join(", ")))
}

/// Prints an error and its causes on standard error (with `--json`, as one JSON object:
/// `schemas/cli/error.schema.json`). Messages quote input, and some carry a peer's words, so
/// they go through [`untrusted`].
pub(crate) fn report(err: &anyhow::Error, json: bool) {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    let hint = hint(err).map(|h| untrusted(&h).into_owned());
    if json {
        let object = serde_json::json!({ "error": { "message": untrusted(&message), "hint": hint } });
        eprintln!("{object}");
        return;
    }
    eprintln!("error: {}", untrusted(&message));
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
}
