//! `vault init`, and `vault init --join CODE` (a new device of an existing identity)

use anyhow::{Context, Result, bail};
use serde_json::json;
use vault_core::{DeviceKey, JoinPackage, KdfParams, PairingCode, Passphrase, Vault};
use vault_sync::NodeConfig;
use zeroize::Zeroizing;

use crate::app::{App, Outcome, read_passphrase_checked, read_secret_line};
use crate::cli::InitArgs;
use crate::output::untrusted;
use crate::runtime::runtime;

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
        return join(app, code, kdf(args), args.no_relay, args.weak_passphrase_ok);
    }
    let options = Vault::at(&app.dir);
    if options.exists() {
        // Refuse before asking for a passphrase.
        return Err(vault_core::CreateError::AlreadyExists(app.dir.clone()).into());
    }
    let kdf = kdf(args);
    let generated = if args.generate_passphrase { Some(generate()?) } else { None };
    let passphrase = match &generated {
        Some(text) => Passphrase::new(text.as_str()),
        None => read_passphrase_checked("New passphrase: ", &|p| refuse_weak(p, args.weak_passphrase_ok))?,
    };
    if passphrase.is_empty() {
        // Said plainly, before any estimate.
        return Err(vault_core::CreateError::EmptyPassphrase.into());
    }
    let strength = if generated.is_some() {
        Strength::of(&passphrase)
    } else {
        check_new(&passphrase, args.weak_passphrase_ok)?
    };
    if let (Some(text), false) = (&generated, app.json) {
        // Shown before the vault exists: a vault whose passphrase nobody saw is lost.
        app.print(format!(
            "passphrase: {}\n(shown once: write it down or put it in your password manager)\n",
            text.as_str()
        ))?;
        std::io::Write::flush(&mut std::io::stdout())
            .context("cannot show the generated passphrase; nothing was created")?;
    }
    let vault = options.kdf(kdf).create(&passphrase)?;
    let ticket = vault.ticket(Vec::new());
    if app.json {
        let mut out = json!({
            "dir": app.dir,
            "identity": vault.identity().to_string(),
            "ticket": ticket.to_string(),
            "passphrase_strength": { "score": strength.score, "guesses_log10": strength.guesses_log10 },
        });
        if let Some(text) = &generated {
            out["generated_passphrase"] = json!(text.as_str());
        }
        app.print_json(&out)?;
    } else {
        // A generated passphrase was shown before the vault was made.
        if generated.is_none() && strength.weak() {
            eprintln!("warning: the passphrase is weak: {}", strength.describe());
        }
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

/// `vault init --join CODE`: a new device of an existing identity.
pub(crate) fn join(app: &App, code: &str, kdf: KdfParams, no_relay: bool, weak_ok: bool) -> Result<Outcome> {
    let options = Vault::at(&app.dir);
    if options.exists() {
        return Err(vault_core::CreateError::AlreadyExists(app.dir.clone()).into());
    }
    let code = read_secret_line("Pairing code: ", code, "pairing code")?;
    let code: PairingCode = code.parse()?;
    code.check_fresh(jiff::Timestamp::now().as_second())?;
    let device = DeviceKey::generate();
    let config = NodeConfig { relay: !no_relay, subscribe: false, ..NodeConfig::default() };
    let rt = runtime()?;
    // The code is live (the device that made it waits for it) before anyone types a
    // passphrase: a used, expired or cancelled code fails here.
    let joining = rt.block_on(vault_sync::Joining::connect(&code, &device, &config))?;
    let asked = read_passphrase_checked("New passphrase for this device: ", &|p| refuse_weak(p, weak_ok))
        .and_then(|passphrase| {
            if passphrase.is_empty() {
                return Err(vault_core::CreateError::EmptyPassphrase.into());
            }
            check_new(&passphrase, weak_ok)?;
            Ok(passphrase)
        });
    let passphrase = match asked {
        Ok(passphrase) => passphrase,
        Err(e) => {
            // No attempt at the code was made: it stays usable.
            rt.block_on(joining.cancel());
            return Err(e);
        }
    };
    // The digits go to standard error in every mode: the person compares them.
    let show = |digits: &str| eprintln!("On the other device, type these digits: {digits}");
    let key = DeviceKey::from_secret_bytes(&device.secret_bytes());
    let made = |package: JoinPackage| options.kdf(kdf).join(&passphrase, key, package);
    let vault = rt.block_on(joining.complete(&code, &device, show, made))??;
    let name = vault.devices().list()?.into_iter().find(|d| d.id == device.public()).map(|d| d.name);
    if app.json {
        app.print_json(&json!({
            "dir": app.dir,
            "identity": vault.identity().to_string(),
            "device": device.public().to_string(),
            "name": name,
        }))?;
    } else {
        app.print(format!(
            "joined identity {} as {} at {}\nRun `vault serve` here and on the other device to keep them in sync.",
            vault.identity(),
            untrusted(name.as_deref().unwrap_or("?")),
            app.dir.display()
        ))?;
    }
    Ok(Outcome::Done)
}

/// A passphrase's strength, by the zxcvbn estimator (score 0 to 4 from the estimated guesses;
/// Argon2id makes each guess cost, but a guessable passphrase is still guessed).
pub(crate) struct Strength {
    pub(crate) score: u8,
    pub(crate) guesses_log10: f64,
}

impl Strength {
    pub(crate) fn of(passphrase: &Passphrase) -> Self {
        let estimate = passphrase.with_text(|text| zxcvbn::zxcvbn(text, &["vault"]));
        Self { score: u8::from(estimate.score()), guesses_log10: estimate.guesses_log10() }
    }

    /// Below score 4: guessable in about 10^10 guesses or fewer (a day or two for a rig
    /// trying thousands of Argon2id guesses a second, for 10^8).
    pub(crate) fn weak(&self) -> bool {
        self.score < 4
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "about 10^{:.0} guesses would find it (strength {} of 4)",
            self.guesses_log10.max(0.0),
            self.score
        )
    }
}

/// Refuses a new passphrase the estimate calls weak, unless `weak_ok`.
fn refuse_weak(passphrase: &Passphrase, weak_ok: bool) -> Result<()> {
    let strength = Strength::of(passphrase);
    if strength.weak() && !weak_ok {
        bail!(
            "the passphrase is weak: {}; nothing was created (choose a longer one, let 'vault init --generate-passphrase' make one, or pass --weak-passphrase-ok)",
            strength.describe()
        );
    }
    Ok(())
}

/// Refuses a new passphrase the estimate calls weak, unless `weak_ok` (then warns); returns
/// its strength.
pub(crate) fn check_new(passphrase: &Passphrase, weak_ok: bool) -> Result<Strength> {
    refuse_weak(passphrase, weak_ok)?;
    let strength = Strength::of(passphrase);
    if strength.weak() {
        eprintln!("warning: the passphrase is weak: {}", strength.describe());
    }
    Ok(strength)
}

/// Five groups of five letters and digits from a 32-symbol alphabet with no look-alikes:
/// 125 bits from the system's random source.
pub(crate) fn generate() -> Result<Zeroizing<String>> {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = Zeroizing::new([0u8; 25]);
    getrandom::fill(bytes.as_mut())
        .map_err(|e| anyhow::anyhow!("the system's random source failed: {e}; nothing was created"))?;
    let mut out = Zeroizing::new(String::with_capacity(29));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[usize::from(b & 31)]));
    }
    Ok(out)
}
