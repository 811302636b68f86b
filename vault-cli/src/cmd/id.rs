//! `vault id [--qr]`

use anyhow::{Context, Result};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use serde_json::json;

use crate::app::{App, Outcome};
use crate::cli::IdArgs;

pub(crate) fn run(app: &App, args: &IdArgs) -> Result<Outcome> {
    let vault = app.unlock()?;
    let ticket = vault.ticket(vault.serving().node_addrs()).to_string();
    if app.json {
        let mut value = json!({
            "identity": vault.identity().to_string(),
            "device": vault.device_key().public().to_string(),
            "ticket": ticket,
            "identity_key": vault.identity_key().is_some(),
            "rotations": vault.keys().key_log(&vault.identity())?.rotations(),
        });
        if args.qr {
            value["qr"] = json!(render_qr(&ticket)?);
        }
        app.print_json(&value)?;
    } else {
        app.print(format!("identity: {}\nticket:   {}", vault.identity(), ticket))?;
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
