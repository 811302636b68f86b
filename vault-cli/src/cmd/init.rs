//! `vault init`

use anyhow::Result;
use serde_json::json;
use vault_core::{KdfParams, Vault};

use crate::app::{App, Outcome, read_passphrase};
use crate::cli::InitArgs;

/// The key derivation: always the default, unless this is a test build (feature
/// `insecure-test-kdf`) and the hidden `--insecure-fast-kdf` was given.
#[cfg(feature = "insecure-test-kdf")]
fn kdf(args: &InitArgs) -> KdfParams {
    if args.insecure_fast_kdf { KdfParams::INSECURE_FOR_TESTS } else { KdfParams::DEFAULT }
}

#[cfg(not(feature = "insecure-test-kdf"))]
fn kdf(_: &InitArgs) -> KdfParams {
    KdfParams::DEFAULT
}

pub(crate) fn run(app: &App, args: &InitArgs) -> Result<Outcome> {
    if let Some(code) = &args.join {
        return super::device::join(app, code, kdf(args), args.no_relay);
    }
    let options = Vault::at(&app.dir);
    if options.exists() {
        // Refuse before asking for a passphrase.
        return Err(vault_core::CreateError::AlreadyExists(app.dir.clone()).into());
    }
    let kdf = kdf(args);
    let passphrase = read_passphrase("New passphrase: ", true)?;
    let vault = options.kdf(kdf).create(&passphrase)?;
    let ticket = vault.ticket(Vec::new());
    if app.json {
        app.print_json(&json!({
            "dir": app.dir,
            "identity": vault.identity().to_string(),
            "ticket": ticket.to_string(),
        }))?;
    } else {
        app.print(format!(
            "created a vault at {}\nidentity: {}\n\nThe passphrase cannot be recovered: without it the vault cannot be opened.\n\
             This device holds your identity key. Write down its recovery code (`vault device recovery-code`): \
             with it you can link and remove devices if this one is lost.",
            app.dir.display(),
            vault.identity()
        ))?;
    }
    Ok(Outcome::Done)
}
