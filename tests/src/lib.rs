//! Helpers for the end-to-end tests in `tests/`: run the real `vault` binary against real
//! vault directories, and check `--json` output against the published schemas.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod bench;
pub mod impair;
pub mod lab;
pub mod nodes;
pub mod pairing;
pub mod peer;
pub mod pg;

use serde_json::Value;

/// How long a test waits for something that should happen before it calls it a hang. The tests
/// check what happens, not how fast: this bound is far above any wait on an idle machine, so
/// that a machine busy with other work (or the other tests of the same binary) cannot fail them.
pub const HANG: Duration = Duration::from_secs(180);

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_owned()
}

/// Path of the `vault` binary, built (once per test process) with the same profile as the tests
/// and with the `insecure-test-kdf` feature, which gives `init` its hidden
/// `--insecure-fast-kdf` (release builds without the feature have no such option).
pub fn vault_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut args =
            vec!["build", "--quiet", "-p", "vault-cli", "--bin", "vault", "--features", "insecure-test-kdf"];
        if !cfg!(debug_assertions) {
            args.push("--release");
        }
        let status =
            Command::new(cargo).args(&args).current_dir(workspace_root()).status().expect("cargo runs");
        assert!(status.success(), "building the vault binary failed");
        // target/debug/deps/<test> -> target/debug/vault
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
        profile_dir.join(format!("vault{}", std::env::consts::EXE_SUFFIX))
    })
}

/// A vault in a temporary directory, driven through the binary.
#[derive(Debug)]
pub struct TestVault {
    /// Keeps the directory alive.
    pub tmp: tempfile::TempDir,
    /// The vault directory.
    pub dir: PathBuf,
    /// Its passphrase.
    pub passphrase: String,
    /// The network namespace its commands run in (`ip netns exec`), if not the test's own.
    pub netns: Option<String>,
}

impl Default for TestVault {
    fn default() -> Self {
        Self::new()
    }
}

impl TestVault {
    /// A vault directory that does not exist yet.
    pub fn uninitialised() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("vault");
        // The unlock agent's directory lives in XDG_RUNTIME_DIR: one per test vault.
        std::fs::create_dir(tmp.path().join("run")).expect("runtime dir");
        Self { tmp, dir, passphrase: "correct horse battery staple".into(), netns: None }
    }

    /// The same vault, its commands run in network namespace `ns` from now on (a host of a
    /// [`lab::Lab`]).
    pub fn in_netns(mut self, ns: String) -> Self {
        self.netns = Some(ns);
        self
    }

    /// A new vault (with the fast, insecure key derivation: tests only).
    pub fn new() -> Self {
        let v = Self::uninitialised();
        v.ok(&["init", "--insecure-fast-kdf"]);
        v
    }

    /// A command for this vault with the passphrase in the environment and no terminal.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(vault_bin());
                cmd
            }
            None => Command::new(vault_bin()),
        };
        cmd.args(args)
            .env("VAULT_DIR", &self.dir)
            .env("VAULT_PASSPHRASE", &self.passphrase)
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env_remove("VAULT_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a command and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("vault runs")
    }

    /// Runs a command that must succeed; returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "vault {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs `--json` command that must succeed, checks its output against
    /// `schemas/cli/<schema>.schema.json`, and returns it.
    pub fn json(&self, args: &[&str], schema: &str) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let value: Value = serde_json::from_str(&self.ok(&full)).expect("one JSON document");
        check_cli_schema(schema, &value);
        value
    }

    /// Runs a command that must fail with `code`; returns standard error.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "vault {args:?}: stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "vault {args:?} panicked: {stderr}");
        stderr
    }

    /// The XDG_RUNTIME_DIR its commands run with (where the unlock agent's socket goes).
    pub fn runtime_dir(&self) -> PathBuf {
        self.tmp.path().join("run")
    }

    /// Path of the database file.
    pub fn db(&self) -> PathBuf {
        self.dir.join(vault_core::DB_FILE)
    }
}

/// Checks `value` against `schemas/cli/<name>.schema.json`.
pub fn check_cli_schema(name: &str, value: &Value) {
    let path = workspace_root().join("schemas/cli").join(format!("{name}.schema.json"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file")).expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "output does not match {name}.schema.json: {errors:?}\n{value:#}");
}

/// Reads every file of a vault directory, for before/after comparisons.
pub fn snapshot_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .map(|e| (e.path(), std::fs::read(e.path()).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A grant of `fields` to `audience` for `purpose`: no filter, no expiry, prices included.
pub fn new_grant(audience: vault_core::IdentityId, fields: &[&str], purpose: &str) -> vault_core::NewGrant {
    vault_core::NewGrant {
        audience,
        fields: fields.iter().map(|f| f.parse().expect("a known field path")).collect(),
        filter: None,
        purpose: purpose.into(),
        expires_at: None,
        prices: true,
    }
}

/// A running `vault serve`, killed when dropped.
#[derive(Debug)]
pub struct Serving(pub Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `vault serve` on loopback (relays off); returns it with the ticket it printed first.
pub fn serve(v: &TestVault) -> (Serving, String) {
    serve_on(v, "127.0.0.1:0")
}

/// Starts `vault serve --bind BIND` (relays off); returns it with the ticket it printed first.
pub fn serve_on(v: &TestVault, bind: &str) -> (Serving, String) {
    serve_command(v.cmd(&["serve", "--no-relay", "--bind", bind]))
}

/// Starts a prepared `vault serve` command (for example one run inside a network namespace);
/// returns it with the ticket it printed first.
/// With `VAULT_TEST_SERVE_LOG=DIR=FILTER` set, each node logs at `FILTER` (as `VAULT_LOG`) to a
/// file in `DIR` named after its vault directory's path, for looking into a failure.
pub fn serve_command(mut cmd: Command) -> (Serving, String) {
    let log = std::env::var("VAULT_TEST_SERVE_LOG").ok().and_then(|v| {
        let (dir, filter) = v.split_once('=')?;
        let vault_dir = cmd.get_envs().find(|(k, _)| *k == "VAULT_DIR")?.1?.to_owned();
        let name = vault_dir.to_string_lossy().trim_matches('/').replace('/', "_");
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(Path::new(dir).join(name)).ok()?;
        Some((filter.to_owned(), file))
    });
    // Without a log asked for, what the node says goes to a file read only if it fails to start.
    static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let said = std::env::temp_dir().join(format!(
        "vault-test-serve-{}-{}.err",
        std::process::id(),
        STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    if let Some((filter, _)) = &log {
        cmd.env("VAULT_LOG", filter);
    }
    // A node that could not start (its port taken for a moment by another process's ephemeral
    // socket, say) is started once more, a second later, before the test fails with its words.
    for attempt in 0..2 {
        let stderr = match &log {
            Some((_, file)) => Stdio::from(file.try_clone().expect("the log file")),
            None => Stdio::from(std::fs::File::create(&said).expect("a file for the node's stderr")),
        };
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().expect("vault serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("a first line");
        if line.starts_with("vault1") {
            let _ = std::fs::remove_file(&said);
            return (Serving(child), line.trim().to_owned());
        }
        let _ = child.kill();
        let _ = child.wait();
        let words = std::fs::read_to_string(&said).unwrap_or_default();
        if attempt == 1 {
            let _ = std::fs::remove_file(&said);
            panic!("the ticket is the first line: {line:?}; the node said: {words}");
        }
        eprintln!("vault serve did not start ({}); once more", words.trim());
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    unreachable!("returned or panicked above")
}

/// Runs a `--json` command that must succeed and parses its output (no schema check).
pub fn json(v: &TestVault, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    serde_json::from_str(&v.ok(&full)).expect("one JSON document")
}

/// A purchase as `vault purchase add` takes it (price in EUR, one tag).
#[derive(Debug)]
pub struct Bought<'a> {
    pub item: &'a str,
    pub seller: &'a str,
    pub price: &'a str,
    pub tag: &'a str,
    pub date: &'a str,
    pub rating: &'a str,
    pub review: &'a str,
}

/// Adds `p` through `vault purchase add`; returns its id.
pub fn buy(v: &TestVault, p: &Bought<'_>) -> String {
    let args = [
        "purchase",
        "add",
        "--item",
        p.item,
        "--seller",
        p.seller,
        "--price",
        p.price,
        "--currency",
        "EUR",
        "--tag",
        p.tag,
        "--date",
        p.date,
        "--rating",
        p.rating,
        "--review",
        p.review,
    ];
    json(v, &args)["id"].as_str().expect("an id").to_owned()
}

/// The vault's ticket, from `vault id`.
pub fn ticket(v: &TestVault) -> String {
    json(v, &["id"])["ticket"].as_str().expect("a ticket").to_owned()
}

/// Polls `check` until it holds, for at most [`HANG`].
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < HANG {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

/// Checks `value` against the JSON Schema at `path` (relative to the workspace root); `$ref`s
/// to sibling schema files resolve against the workspace.
pub fn check_schema(path: &str, value: &Value) {
    let full = workspace_root().join(path);
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&full).expect("schema file")).expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "output does not match {path}: {errors:?}\n{value:#}");
}

/// Runs a `--json` command that may answer "no" (exit 1) and parses its output; `Null` when it
/// printed nothing.
pub fn json_or_no(v: &TestVault, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = v.run(&full);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "vault {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// This test process's user id (from `/proc/self`, Linux).
pub fn my_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").expect("/proc/self").uid()
}

/// `vault requests ARGS --json`, checked against its schema: the requests (none when the
/// command says so with exit 1).
pub fn requests(v: &TestVault, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["--json", "requests"];
    full.extend_from_slice(args);
    let out = v.run(&full);
    if out.status.code() == Some(1) {
        return Vec::new();
    }
    let value: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    check_cli_schema("requests", &value);
    value["requests"].as_array().expect("a list of requests").clone()
}
