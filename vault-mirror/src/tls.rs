//! TLS to the mirror's database. A connection string's `sslmode` and `sslrootcert` are read the
//! way libpq reads them, except where libpq would let customers' data cross a network in plain
//! text without being asked: with no `sslmode`, a database off this machine gets `verify-full`
//! (libpq: `prefer`), and `prefer`/`allow` are refused for one (they fall back to plain text
//! when an attacker on the path says the server has no TLS).
//!
//! | sslmode | encrypted | server's certificate checked |
//! |---|---|---|
//! | `disable` | no | - |
//! | `prefer` (loopback only; the default there) | when the server offers it | no |
//! | `require` | yes | no; against `sslrootcert` when one is named (libpq's rule) |
//! | `verify-ca` | yes | chain to `sslrootcert` (required: any public CA would sign any name) |
//! | `verify-full` (the default off loopback) | yes | chain, and the host name or IP in the URL |
//!
//! Where the certificate goes unchecked off this machine (`require` without a CA file), the
//! password exchange must be bound to the TLS channel (SCRAM-SHA-256-PLUS,
//! `channel_binding=require`), else whoever answers could ask for the password in clear or
//! accept any. A connection over a Unix socket never leaves the machine: TLS is not used there
//! (as libpq ignores `sslmode` for sockets).
//!
//! tokio-postgres reads neither option, so they are split off the string before it parses it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

use crate::MirrorError;

/// How much of TLS a connection asks for (`sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plain text.
    Disable,
    /// TLS when the server offers it, unchecked (loopback only).
    Prefer,
    /// TLS, the certificate unchecked unless a CA file is named.
    Require,
    /// TLS, the certificate's chain checked.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// The name libpq gives it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS a connection string asks for.
#[derive(Debug, Clone)]
pub(crate) struct TlsOptions {
    pub(crate) mode: SslMode,
    /// `sslrootcert`: a PEM file of the CA certificates to trust.
    pub(crate) root_cert: Option<PathBuf>,
    /// Some address is off this machine.
    remote: bool,
    /// Every host is a Unix socket.
    sockets_only: bool,
}

/// The option names this module reads; tokio-postgres is never shown them.
const OURS: [&str; 2] = ["sslmode", "sslrootcert"];

/// Splits `sslmode` and `sslrootcert` off a connection string (URL or `key=value` form): the
/// rest, for tokio-postgres, and the two values (percent- or quote-decoded).
pub(crate) fn split(raw: &str) -> Result<(String, Vec<(String, String)>), MirrorError> {
    let prefix = ["postgresql://", "postgres://"].into_iter().find(|p| raw.starts_with(p));
    match prefix {
        Some(p) => Ok(split_url(raw, p.len())),
        None => split_key_values(raw),
    }
}

fn split_url(raw: &str, after_scheme: usize) -> (String, Vec<(String, String)>) {
    // As tokio-postgres reads it: credentials end at the first '@', the query starts at the
    // first '?' after them.
    let from = raw[after_scheme..].find('@').map_or(after_scheme, |at| after_scheme + at + 1);
    let Some(q) = raw[from..].find('?').map(|q| from + q) else {
        return (raw.to_owned(), Vec::new());
    };
    let (mut kept, mut ours) = (Vec::new(), Vec::new());
    for pair in raw[q + 1..].split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k);
        if OURS.contains(&key.as_str()) {
            ours.push((key, percent_decode(v)));
        } else {
            kept.push(pair);
        }
    }
    let mut rest = raw[..q].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    (rest, ours)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) =
                (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `key = value` pairs, values bare or single-quoted with backslash escapes (libpq's grammar);
/// the rest is rebuilt with every value quoted.
fn split_key_values(raw: &str) -> Result<(String, Vec<(String, String)>), MirrorError> {
    let bad = || {
        MirrorError::BadUrl(
            "it is not a PostgreSQL connection string (postgres://user:password@host:port/db)".into(),
        )
    };
    let mut chars = raw.chars().peekable();
    let (mut kept, mut ours) = (Vec::new(), Vec::new());
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') || key.is_empty() {
            return Err(bad());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = Zeroizing::new(String::new());
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.push(chars.next().ok_or_else(bad)?),
                    Some(c) => value.push(c),
                    None => return Err(bad()),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next().ok_or_else(bad)?);
                } else {
                    value.push(c);
                }
            }
        }
        if OURS.contains(&key.as_str()) {
            ours.push((key, value.to_string()));
        } else {
            let quoted = Zeroizing::new(value.replace('\\', "\\\\").replace('\'', "\\'"));
            kept.push(Zeroizing::new(format!("{key}='{}'", quoted.as_str())));
        }
    }
    let mut rest = String::with_capacity(kept.iter().map(|k| k.len() + 1).sum());
    for (i, pair) in kept.iter().enumerate() {
        if i > 0 {
            rest.push(' ');
        }
        rest.push_str(pair);
    }
    Ok((rest, ours))
}

impl TlsOptions {
    /// Reads the split-off options against the parsed rest of the string.
    pub(crate) fn from_pairs(
        pairs: &[(String, String)],
        config: &tokio_postgres::Config,
    ) -> Result<Self, MirrorError> {
        let mut mode = None;
        let mut root_cert = None;
        for (key, value) in pairs {
            match key.as_str() {
                "sslmode" => {
                    mode = Some(match value.as_str() {
                        "disable" => SslMode::Disable,
                        "allow" | "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        _ => {
                            return Err(MirrorError::BadUrl(
                                "sslmode must be disable, prefer, require, verify-ca or verify-full".into(),
                            ));
                        }
                    })
                }
                _ if value.is_empty() => {
                    return Err(MirrorError::BadUrl("sslrootcert names no file".into()));
                }
                _ if !Path::new(value).is_absolute() => {
                    return Err(MirrorError::BadUrl(
                        "sslrootcert must be an absolute path (the node may run from another directory)"
                            .into(),
                    ));
                }
                _ => root_cert = Some(PathBuf::from(value)),
            }
        }
        let local = all_local(config);
        let mode = mode.unwrap_or(if local { SslMode::Prefer } else { SslMode::VerifyFull });
        if mode == SslMode::Prefer && !local {
            return Err(MirrorError::BadUrl(
                "sslmode=prefer (or allow) falls back to plain text when someone on the network says the \
                 server has no TLS; for a database off this machine use require, verify-ca or verify-full \
                 (or disable, to say plain text is meant)"
                    .into(),
            ));
        }
        if mode == SslMode::VerifyCa && root_cert.is_none() {
            return Err(MirrorError::BadUrl(
                "sslmode=verify-ca needs sslrootcert=FILE: against the system's CAs, a certificate any \
                 public CA issued for any name would pass; use verify-full to check the system's CAs and \
                 the name"
                    .into(),
            ));
        }
        let sockets_only = config.get_hosts().iter().all(|h| !matches!(h, Host::Tcp(_)));
        Ok(Self { mode, root_cert, remote: !local, sockets_only })
    }

    /// Sets `config`'s TLS (mode, channel binding) and returns the connector it uses (`None`:
    /// plain text).
    pub(crate) fn apply(
        &self,
        config: &mut tokio_postgres::Config,
        target: &str,
    ) -> Result<Option<MakeRustlsConnect>, MirrorError> {
        use tokio_postgres::config::{ChannelBinding, SslMode as Pg};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        if self.mode == SslMode::Disable || self.sockets_only {
            config.ssl_mode(Pg::Disable);
            return Ok(None);
        }
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match (self.mode, &self.root_cert) {
            // Both returned or refused before (verify-ca without a CA file when parsed): fail
            // closed should that ever change.
            (SslMode::Disable, _) | (SslMode::VerifyCa, None) => {
                return Err(tls_error(target, "this sslmode cannot be used without sslrootcert"));
            }
            (SslMode::Prefer, _) | (SslMode::Require, None) => {
                // Nobody vouches for the server: only SCRAM bound to this channel keeps the
                // password, and the data, from whoever answers.
                if self.remote && config.get_channel_binding() == ChannelBinding::Prefer {
                    config.channel_binding(ChannelBinding::Require);
                }
                Arc::new(Relaxed { chain: None, algorithms })
            }
            (SslMode::Require | SslMode::VerifyCa, Some(_)) => {
                Arc::new(Relaxed { chain: Some(self.webpki(provider.clone(), target)?), algorithms })
            }
            (SslMode::VerifyFull, _) => self.webpki(provider.clone(), target)?,
        };
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(target, &e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // PostgreSQL 17 checks it when the client sends one (and needs it for direct TLS).
        tls.alpn_protocols = vec![b"postgresql".to_vec()];
        config.ssl_mode(if self.mode == SslMode::Prefer { Pg::Prefer } else { Pg::Require });
        Ok(Some(MakeRustlsConnect::new(tls)))
    }

    fn webpki(
        &self,
        provider: Arc<CryptoProvider>,
        target: &str,
    ) -> Result<Arc<rustls::client::WebPkiServerVerifier>, MirrorError> {
        let roots = match &self.root_cert {
            Some(path) => roots_from_file(path, target)?,
            None => system_roots(target)?,
        };
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| tls_error(target, &format!("the CA certificates cannot be used: {e}")))
    }

    /// How this reads in `mirror show`: `TLS verify-full (CA /etc/ca.pem)`.
    pub(crate) fn describe(&self) -> String {
        let mode = match self.mode {
            SslMode::Disable => "no TLS (sslmode=disable)".to_owned(),
            SslMode::Prefer => "TLS if offered, certificate unchecked (sslmode=prefer)".to_owned(),
            SslMode::Require if self.root_cert.is_none() => {
                "TLS, certificate unchecked (sslmode=require)".to_owned()
            }
            m => format!("TLS, certificate checked (sslmode={})", m.name()),
        };
        match (&self.root_cert, self.mode) {
            (Some(p), SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull) => {
                format!("{mode}, CA {}", p.display())
            }
            _ => mode,
        }
    }
}

/// True when every address the connection may go to is on this machine: the hosts, and the
/// `hostaddr`s that, when given, are dialled in their place (the host then only names the
/// certificate).
fn all_local(config: &tokio_postgres::Config) -> bool {
    config.get_hostaddrs().iter().all(|ip| ip.is_loopback())
        && config.get_hosts().iter().all(|h| match h {
            Host::Tcp(name) => {
                let name = name.trim_start_matches('[').trim_end_matches(']');
                name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            #[cfg(unix)]
            Host::Unix(_) => true,
        })
}

fn tls_error(target: &str, why: &str) -> MirrorError {
    MirrorError::Tls { target: target.to_owned(), why: why.to_owned() }
}

fn roots_from_file(path: &Path, target: &str) -> Result<RootCertStore, MirrorError> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(target, &format!("cannot read the CA file {shown} (sslrootcert): {e}")))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(tls_error(
            target,
            &format!("the CA file {shown} (sslrootcert) holds no usable certificate"),
        ));
    }
    Ok(roots)
}

fn system_roots(target: &str) -> Result<RootCertStore, MirrorError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(tls_error(
            target,
            "this machine has no CA certificates to check the server's against: name the CA's file with \
             sslrootcert=FILE in the connection string",
        ));
    }
    Ok(roots)
}

/// A verifier that checks less than the name: nothing of the certificate (`chain: None`, for
/// `prefer` and `require` without a CA file: encrypted, but an attacker on the path can stand in
/// for the server), or its chain to the trusted CAs and its dates (`verify-ca`). The handshake's
/// signatures are verified either way, so the key exchange is sound.
#[derive(Debug)]
struct Relaxed {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        // webpki checks the chain before the name: a name error means the chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A TLS failure found in a connection error's causes: the certificate or the handshake,
/// named, so that the message says what to fix.
pub(crate) fn tls_failure(e: &tokio_postgres::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    let mut texts = Vec::new();
    while let Some(s) = source {
        // An io::Error hides the error it wraps from `source()`: look inside.
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|e| e as &dyn std::error::Error);
        if let Some(r) =
            [Some(s), inner].into_iter().flatten().find_map(|e| e.downcast_ref::<rustls::Error>())
        {
            return Some(r.to_string());
        }
        texts.push(s.to_string());
        source = s.source();
    }
    texts.into_iter().find(|t| t.contains("TLS"))
}

#[cfg(test)]
mod tests;
