use super::*;

fn options(raw: &str) -> Result<(String, TlsOptions), MirrorError> {
    let (rest, pairs) = split(raw)?;
    let config: tokio_postgres::Config = rest.parse().expect("the rest parses");
    Ok((rest, TlsOptions::from_pairs(&pairs, &config)?))
}

#[test]
fn urls_lose_only_the_tls_options() {
    let (rest, tls) = options(
        "postgres://shop:pw@db.example:5432/crm?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
    )
    .unwrap();
    assert_eq!(rest, "postgres://shop:pw@db.example:5432/crm?connect_timeout=3");
    assert_eq!(tls.mode, SslMode::VerifyFull);
    assert_eq!(tls.root_cert.as_deref(), Some(Path::new("/etc/ca.pem")));

    // A '?' in the password is not the query.
    let (rest, tls) = options("postgres://shop:pw?x@db.example/crm?sslmode=require").unwrap();
    assert_eq!(rest, "postgres://shop:pw?x@db.example/crm");
    assert_eq!(tls.mode, SslMode::Require);
    assert_eq!(tls.root_cert, None);
}

#[test]
fn key_value_strings_lose_only_the_tls_options() {
    let (rest, tls) = options(
        r"host=db.example user=shop password='it\'s a \\ pw' sslmode = verify-ca sslrootcert='/a b/ca.pem' dbname=crm",
    )
    .unwrap();
    let config: tokio_postgres::Config = rest.parse().unwrap();
    assert_eq!(config.get_password(), Some(&br"it's a \ pw"[..]));
    assert_eq!(config.get_dbname(), Some("crm"));
    assert_eq!(config.get_user(), Some("shop"));
    assert_eq!(tls.mode, SslMode::VerifyCa);
    assert_eq!(tls.root_cert.as_deref(), Some(Path::new("/a b/ca.pem")));
    assert!(options("host=db.example user=shop password='unterminated").is_err());
}

#[test]
fn off_this_machine_the_default_checks_everything_and_plain_text_must_be_asked_for() {
    let (_, tls) = options("postgres://shop:pw@db.example/crm").unwrap();
    assert_eq!(tls.mode, SslMode::VerifyFull);
    let (_, tls) = options("postgres://shop:pw@10.0.0.7/crm?sslmode=disable").unwrap();
    assert_eq!(tls.mode, SslMode::Disable);
    for prefer in ["prefer", "allow"] {
        let err = options(&format!("postgres://shop:pw@db.example/crm?sslmode={prefer}")).unwrap_err();
        assert!(err.to_string().contains("plain text"), "{err}");
    }
    // One remote host among local ones is off this machine.
    let err = options("postgres://shop:pw@127.0.0.1,db.example/crm?sslmode=prefer").unwrap_err();
    assert!(err.to_string().contains("plain text"), "{err}");
    // A host that says loopback while the address dialled is not.
    let (_, tls) = options("host=localhost hostaddr=10.0.0.7 user=shop").unwrap();
    assert_eq!(tls.mode, SslMode::VerifyFull);
    assert!(options("postgres://shop:pw@db.example/crm?sslmode=verify-everything").is_err());
    assert!(options("postgres://shop:pw@db.example/crm?sslrootcert=").is_err());
}

#[test]
fn on_loopback_the_default_is_libpqs() {
    for host in ["127.0.0.1", "localhost", "[::1]"] {
        let (_, tls) = options(&format!("postgres://shop:pw@{host}/crm")).unwrap();
        assert_eq!(tls.mode, SslMode::Prefer, "{host}");
    }
}

#[test]
fn a_missing_or_empty_ca_file_is_named() {
    let (_, tls) = options("postgres://shop:pw@db.example/crm?sslrootcert=/nonexistent/ca.pem").unwrap();
    let mut config = tokio_postgres::Config::new();
    let err =
        tls.apply(&mut config, "shop@db.example:5432/crm").err().expect("no connector without its CA file");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("ca.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let (_, tls) = options(&format!(
        "postgres://shop:pw@db.example/crm?sslmode=verify-ca&sslrootcert={}",
        empty.display()
    ))
    .unwrap();
    let err = tls.apply(&mut config, "t").err().expect("no connector without a certificate");
    assert!(err.to_string().contains("no usable certificate"), "{err}");
}

#[test]
fn verify_ca_needs_a_ca_file_of_its_own_given_by_an_absolute_path() {
    let err = options("postgres://shop:pw@db.example/crm?sslmode=verify-ca").unwrap_err();
    assert!(err.to_string().contains("needs sslrootcert"), "{err}");
    let err =
        options("postgres://shop:pw@db.example/crm?sslmode=verify-full&sslrootcert=ca.pem").unwrap_err();
    assert!(err.to_string().contains("absolute path"), "{err}");
}

#[test]
fn an_unchecked_server_off_this_machine_must_bind_the_password_to_the_channel() {
    use tokio_postgres::config::ChannelBinding;
    for (raw, bound) in [
        ("postgres://shop:pw@db.example/crm?sslmode=require", ChannelBinding::Require),
        ("postgres://shop:pw@127.0.0.1/crm?sslmode=require", ChannelBinding::Prefer),
        (
            "postgres://shop:pw@db.example/crm?sslmode=require&channel_binding=disable",
            ChannelBinding::Disable,
        ),
    ] {
        let (rest, tls) = options(raw).unwrap();
        let mut config: tokio_postgres::Config = rest.parse().unwrap();
        assert!(tls.apply(&mut config, "t").unwrap().is_some(), "{raw}");
        assert_eq!(config.get_channel_binding(), bound, "{raw}");
    }
    // A Unix socket never leaves the machine: no TLS there, as libpq.
    let (rest, tls) = options("host=/run/postgresql user=shop sslmode=require").unwrap();
    let mut config: tokio_postgres::Config = rest.parse().unwrap();
    assert!(tls.apply(&mut config, "t").unwrap().is_none());
}
