//! The name this vault gives itself to strangers: carried, signed, in its consent and follow
//! requests, and shown to the holder as unverified until the holder names it as a contact.
//! Kept per device (set it on each device that sends requests).

use super::Vault;
use super::settings::Setting;
use crate::statement::{Rule, check_requester_name};
use crate::store::StoreError;

/// A name this vault cannot give itself, or a storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DisplayNameError {
    /// The name breaks a rule (blank, too long, a control character).
    #[error("that name cannot be used: {0}")]
    Rule(#[from] Rule),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Vault {
    /// The name this vault gives itself in its requests, if one was set.
    pub fn display_name(&self) -> Option<String> {
        let bytes = self.settings().get(Setting::DisplayName).ok().flatten()?;
        let name = String::from_utf8(bytes).ok()?;
        // A row that no longer passes (damaged, or rules grown stricter) is not sent.
        check_requester_name(&name).is_ok().then_some(name)
    }

    /// Sets the name this vault gives itself (`None`: none), trimmed.
    pub fn set_display_name(&mut self, name: Option<&str>) -> Result<(), DisplayNameError> {
        let name = name.map(str::trim);
        if let Some(name) = name {
            check_requester_name(name)?;
        }
        self.write(|v| match name {
            Some(name) => v.settings().put(Setting::DisplayName, name.as_bytes()),
            None => v.settings().delete(Setting::DisplayName),
        })?;
        Ok(())
    }
}
