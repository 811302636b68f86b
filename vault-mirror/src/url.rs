//! The mirror's address: a PostgreSQL connection string, whose password must never reach a
//! log, an error or Debug output. Only [`MirrorUrl::redacted`] is ever shown.

use std::fmt;
use std::str::FromStr;

use tokio_postgres::config::Host;
use zeroize::Zeroizing;

use crate::MirrorError;
use crate::tls::TlsOptions;

/// A PostgreSQL connection string (`postgres://user:password@host:port/db` or
/// `host=... user=... password=...`), parsed, with its password kept out of sight.
#[derive(Clone)]
pub struct MirrorUrl {
    raw: Zeroizing<String>,
    config: tokio_postgres::Config,
    tls: TlsOptions,
}

impl MirrorUrl {
    /// Parses a connection string. The error never repeats it (it may hold a password).
    pub fn parse(raw: &str) -> Result<Self, MirrorError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(MirrorError::BadUrl("empty".into()));
        }
        let (rest, tls) = crate::tls::split(raw)?;
        let rest = Zeroizing::new(rest);
        let config = tokio_postgres::Config::from_str(&rest).map_err(|_| {
            MirrorError::BadUrl(
                "it is not a PostgreSQL connection string (postgres://user:password@host:port/db)".into(),
            )
        })?;
        if config.get_hosts().is_empty() {
            return Err(MirrorError::BadUrl("it names no host".into()));
        }
        if config.get_user().is_none() {
            return Err(MirrorError::BadUrl("it names no user".into()));
        }
        let tls = TlsOptions::from_pairs(&tls, &config)?;
        Ok(Self { raw: Zeroizing::new(raw.to_owned()), config, tls })
    }

    /// The string as given, for storing it sealed in the vault.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub(crate) fn tls(&self) -> &TlsOptions {
        &self.tls
    }

    /// The TLS it asks for, in words: `TLS, certificate checked (sslmode=verify-full), CA FILE`.
    pub fn tls_summary(&self) -> String {
        self.tls.describe()
    }

    /// Where it points, rebuilt from the parsed parts with the password replaced by `***`
    /// (never the string as given, whose quoting the parser may read differently): safe to show.
    pub fn redacted(&self) -> String {
        let pw = if self.config.get_password().is_some() { ":***" } else { "" };
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let host = match h {
                    Host::Tcp(h) => h.clone(),
                    #[cfg(unix)]
                    Host::Unix(p) => p.display().to_string(),
                };
                match self.config.get_ports().get(i).or(self.config.get_ports().first()) {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                }
            })
            .collect();
        let user = self.config.get_user().unwrap_or("");
        let db = self.config.get_dbname().unwrap_or(user);
        let mut tls = format!("?sslmode={}", self.tls.mode.name());
        if let Some(ca) = &self.tls.root_cert {
            tls.push_str(&format!("&sslrootcert={}", ca.display()));
        }
        format!("postgres://{user}{pw}@{}/{db}{tls}", hosts.join(","))
    }

    /// Where it points, for error messages: `user@host:port/database`.
    pub fn target(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "?".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let user = self.config.get_user().unwrap_or("?");
        let db = self.config.get_dbname().unwrap_or(user);
        format!("{user}@{host}:{port}/{db}")
    }

    /// The user it connects as.
    pub(crate) fn user(&self) -> &str {
        self.config.get_user().unwrap_or("?")
    }

    /// Replaces the password (and the connection string) wherever it appears in `text`: the last
    /// line of defence for messages that came from elsewhere.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(self.raw.as_str(), &self.redacted());
        if let Some(pw) = self.config.get_password().filter(|p| p.len() >= 3) {
            let pw = String::from_utf8_lossy(pw);
            out = out.replace(pw.as_ref(), "***");
            // Also as it may be written in a URL (percent-encoded).
            let encoded: String = pw
                .bytes()
                .map(
                    |b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") },
                )
                .collect();
            out = out.replace(&encoded, "***");
        }
        out
    }
}

impl fmt::Debug for MirrorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MirrorUrl({})", self.redacted())
    }
}

impl fmt::Display for MirrorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A connection string safe to show: rebuilt from its parsed parts, password as `***`.
pub fn redact(raw: &str) -> String {
    match MirrorUrl::parse(raw) {
        Ok(url) => url.redacted(),
        Err(_) => "(a connection string that does not parse)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for raw in [
            "postgres://shop:s3cret-pw@db.local:5432/crm",
            "postgresql://shop:s3cret-pw@db.local/crm?sslmode=disable",
            "postgres://shop@db.local/crm?password=s3cret-pw",
            "host=db.local user=shop password=s3cret-pw dbname=crm",
            "host=db.local user=shop password = 's3cret-pw with space' dbname=crm",
            "postgres://shop:s3cret/pw@db.local/crm",
            "postgres://shop:s3cret?pw#x@db.local/crm",
            "postgres://shop:s3cret%2Fpw@db.local/crm",
        ] {
            let url = MirrorUrl::parse(raw).unwrap();
            for shown in [url.redacted(), format!("{url:?}"), url.to_string(), url.target()] {
                assert!(!shown.contains("s3cret"), "{shown}");
            }
            assert!(url.redacted().contains("db.local"), "{}", url.redacted());
            assert!(!redact(raw).contains("s3cret"), "{}", redact(raw));
            assert!(!url.scrub(&format!("failed: {raw}")).contains("s3cret"));
        }
        let err = MirrorUrl::parse("postgres://shop:s3cret-pw@db.local:notaport/crm").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn the_target_names_user_host_port_and_database() {
        let url = MirrorUrl::parse("postgres://shop:pw@db.local:6543/crm").unwrap();
        assert_eq!(url.target(), "shop@db.local:6543/crm");
    }
}
