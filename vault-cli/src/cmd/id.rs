//! `vault id [--qr]`

use anyhow::{Context, Result};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use serde_json::json;

use crate::app::{App, Outcome};
use crate::cli::IdArgs;
use crate::output::untrusted;

pub(crate) fn run(app: &App, args: &IdArgs) -> Result<Outcome> {
    let mut vault = app.unlock()?;
    if args.name.is_some() || args.no_name {
        vault.set_display_name(args.name.as_deref())?;
    }
    let name = vault.display_name();
    let ticket = vault.ticket(vault.serving().node_addrs()).to_string();
    if app.json {
        let mut value = json!({
            "identity": vault.identity().to_string(),
            "device": vault.device_key().public().to_string(),
            "ticket": ticket,
            "identity_key": vault.identity_key().is_some(),
            "rotations": vault.keys().key_log(&vault.identity())?.rotations(),
            "name": name,
        });
        if args.qr {
            value["qr"] = json!(render_qr(&ticket)?);
        }
        app.print_json(&value)?;
    } else {
        app.print(format!("identity: {}\nticket:   {}", vault.identity(), ticket))?;
        match &name {
            Some(name) => app.print(format!("name:     {} (sent with your requests)", untrusted(name)))?,
            None => app.print("name:     none (set one with 'vault id --name NAME')")?,
        }
        if args.qr {
            app.print(render_qr(&ticket)?)?;
        }
    }
    Ok(Outcome::Done)
}

pub(crate) fn render_qr(text: &str) -> Result<String> {
    let code =
        QrCode::new(text.to_ascii_uppercase().as_bytes()).context("the ticket does not fit in a QR code")?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}
