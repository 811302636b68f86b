//! `vault unlock` and `vault lock` through the binary: unlock once, then commands need no
//! passphrase; locked, expired, a node as the agent, and agents that must not be trusted.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use vault_tests::{TestVault, eventually, serve};

/// Runs a command with no passphrase anywhere: only an agent can open the vault.
fn bare(v: &TestVault, args: &[&str]) -> Output {
    v.cmd(args).env_remove("VAULT_PASSPHRASE").env_remove("VAULT_PASSPHRASE_COMMAND").output().unwrap()
}

fn bare_ok(v: &TestVault, args: &[&str]) -> String {
    let out = bare(v, args);
    assert!(out.status.success(), "vault {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn bare_fails(v: &TestVault, args: &[&str]) -> String {
    let out = bare(v, args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "vault {args:?} must fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn agent_dir(v: &TestVault) -> PathBuf {
    v.runtime_dir().join("vault")
}

fn sockets(v: &TestVault) -> Vec<PathBuf> {
    match std::fs::read_dir(agent_dir(v)) {
        // The agent's lock file (`agent-HASH.lock`) stays: it is empty.
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sock"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits (as `eventually` does) for the agent's socket to go.
fn socket_gone(v: &TestVault, what: &str) {
    eventually(what, || sockets(v).is_empty());
}

/// Waits for the agent's process to end.
fn agent_gone(v: &TestVault, what: &str) {
    eventually(what, || agent_pid(v).is_none());
}

/// The process id of the agent serving `v`, from its command line.
fn agent_pid(v: &TestVault) -> Option<u32> {
    let dir = std::fs::canonicalize(&v.dir).unwrap();
    std::fs::read_dir("/proc").unwrap().filter_map(Result::ok).find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let ours = words.contains(&&b"agent-run"[..]) && words.contains(&dir.as_os_str().as_encoded_bytes());
        ours.then_some(pid)
    })
}

#[test]
fn unlock_once_then_commands_need_no_passphrase_until_lock() {
    let ada = TestVault::new();
    let none = bare_fails(&ada, &["profile", "get"]);
    assert!(none.contains("no passphrase") && none.contains("vault unlock"), "{none}");

    let unlocked = ada.json(&["unlock", "--for", "5m"], "unlock");
    assert_eq!((unlocked["by"].as_str(), unlocked["extended"].as_bool()), (Some("agent"), Some(false)));
    let dir = std::fs::symlink_metadata(agent_dir(&ada)).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700, "the agent directory is this user's only");
    let socket = sockets(&ada);
    assert_eq!(socket.len(), 1);
    assert_eq!(std::fs::metadata(&socket[0]).unwrap().permissions().mode() & 0o777, 0o600);

    // The agent never holds the passphrase, not even in its environment.
    let pid = agent_pid(&ada).expect("the agent runs");
    match std::fs::read(format!("/proc/{pid}/environ")) {
        Ok(environ) => {
            let passphrase = ada.passphrase.as_bytes();
            assert!(
                !environ.windows(passphrase.len()).any(|w| w == passphrase),
                "the passphrase reached the agent"
            );
        }
        // Only root reads a non-dumpable process's environment.
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied),
    }

    bare_ok(&ada, &["profile", "set", "name", "Ada"]);
    bare_ok(
        &ada,
        &["purchase", "add", "--item", "Tea", "--seller", "Leaf", "--price", "4.50", "--currency", "EUR"],
    );
    assert!(bare_ok(&ada, &["profile", "get"]).contains("Ada"));
    assert!(bare_ok(&ada, &["verify"]).starts_with("ok"));
    let status = ada.json(&["status"], "status");
    assert_eq!(status["unlock"]["by"], "agent");
    assert!(status["unlock"]["until"].is_string());
    assert!(bare_ok(&ada, &["status"]).contains("unlock:   unlocked until"));

    // Unlocking again while unlocked gives a new end without the passphrase.
    let again: serde_json::Value =
        serde_json::from_str(&bare_ok(&ada, &["--json", "unlock", "--for", "2m"])).unwrap();
    assert_eq!((again["by"].as_str(), again["extended"].as_bool()), (Some("agent"), Some(true)));

    let locked = ada.json(&["lock"], "lock");
    assert_eq!((locked["locked"].as_bool(), locked["by"].as_str()), (Some(true), Some("agent")));
    socket_gone(&ada, "the agent ends and removes its socket");
    agent_gone(&ada, "the agent process ends");
    bare_fails(&ada, &["profile", "get"]);
    assert_eq!(ada.json(&["status"], "status")["unlock"]["until"], serde_json::Value::Null);
    let nothing = ada.json(&["lock"], "lock");
    assert_eq!(nothing["locked"], false);
}

#[test]
fn an_expired_agent_lends_nothing_and_ends() {
    let ada = TestVault::new();
    // Two seconds, not one: ends are whole seconds, and a one-second unlock can be over before
    // a busy machine has started its agent.
    ada.ok(&["unlock", "--for", "2s"]);
    std::thread::sleep(Duration::from_millis(2500));
    let err = bare_fails(&ada, &["profile", "get"]);
    assert!(err.contains("no passphrase"), "{err}");
    socket_gone(&ada, "an expired agent ends");
    assert!(agent_pid(&ada).is_none());
}

#[test]
fn bad_unlocks_are_refused_and_start_nothing() {
    let ada = TestVault::new();
    let wrong = ada.cmd(&["unlock"]).env("VAULT_PASSPHRASE", "not it").output().unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    for bad in ["--for=8d", "--for=0m", "--for=soon", "--for=-5m"] {
        let err = ada.fails(&["unlock", bad], 2);
        assert!(err.contains("duration") || err.contains("at most 7 days"), "{bad}: {err}");
    }
    assert!(sockets(&ada).is_empty(), "no agent was started");
    let none = TestVault::uninitialised();
    assert!(none.fails(&["unlock"], 2).contains("no vault"));
}

#[test]
fn the_running_node_serves_as_the_agent_once_unlocked() {
    let ada = TestVault::new();
    let (_node, _ticket) = serve(&ada);
    // The node holds the key but lends it to nobody until `vault unlock` proves the passphrase.
    bare_fails(&ada, &["profile", "get"]);
    let wrong = ada.cmd(&["unlock"]).env("VAULT_PASSPHRASE", "not it").output().unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    bare_fails(&ada, &["profile", "get"]);
    let unlocked = ada.json(&["unlock", "--for", "2m"], "unlock");
    assert_eq!(unlocked["by"], "node");
    bare_ok(&ada, &["profile", "set", "name", "Ada"]);
    assert_eq!(ada.json(&["status"], "status")["unlock"]["by"], "node");
    let locked = ada.json(&["lock"], "lock");
    assert_eq!(locked["by"], "node");
    bare_fails(&ada, &["profile", "get"]);
    assert_eq!(ada.json(&["status"], "status")["node"]["running"], true, "the node runs on");
}

#[test]
fn an_agent_directory_open_to_others_or_not_a_directory_is_not_used() {
    let ada = TestVault::new();
    ada.ok(&["unlock", "--for", "2m"]);
    std::fs::set_permissions(agent_dir(&ada), std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = bare_fails(&ada, &["profile", "get"]);
    assert!(err.contains("open to other users") && err.contains("not using it"), "{err}");
    assert!(ada.fails(&["unlock"], 2).contains("open to other users"));
    std::fs::set_permissions(agent_dir(&ada), std::fs::Permissions::from_mode(0o700)).unwrap();
    ada.ok(&["lock"]);
    socket_gone(&ada, "the agent removes its socket");

    // A link planted where the directory goes is not followed.
    let bob = TestVault::new();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), agent_dir(&bob)).unwrap();
    assert!(bob.fails(&["unlock"], 2).contains("is not a directory"));
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn an_agent_directory_or_socket_owned_by_another_user_is_not_used() {
    if vault_tests::my_uid() != 0 {
        // Making a file another user's takes root; the permission test above runs for all.
        eprintln!("not root: the other-user agent test needs to chown, and did not run");
        return;
    }
    const NOBODY: u32 = 65534;
    let ada = TestVault::new();
    ada.ok(&["unlock", "--for", "2m"]);
    let socket = sockets(&ada).remove(0);
    std::os::unix::fs::lchown(&socket, Some(NOBODY), None).unwrap();
    let err = bare_fails(&ada, &["profile", "get"]);
    assert!(err.contains("owned by another user (uid 65534)") && err.contains("not using it"), "{err}");
    std::os::unix::fs::lchown(&socket, Some(0), None).unwrap();
    bare_ok(&ada, &["profile", "get"]);

    std::os::unix::fs::lchown(agent_dir(&ada), Some(NOBODY), None).unwrap();
    assert_eq!(std::fs::symlink_metadata(agent_dir(&ada)).unwrap().uid(), NOBODY);
    let err = bare_fails(&ada, &["profile", "get"]);
    assert!(err.contains("agent directory") && err.contains("owned by another user"), "{err}");
    // With the passphrase at hand, the command still works, and says why it did not ask the agent.
    let out = ada.run(&["profile", "get"]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("owned by another user"));
    std::os::unix::fs::lchown(agent_dir(&ada), Some(0), None).unwrap();
    ada.ok(&["lock"]);
    socket_gone(&ada, "the agent removes its socket");
}

#[test]
fn an_agent_ended_by_a_signal_removes_its_socket() {
    let ada = TestVault::new();
    ada.ok(&["unlock", "--for", "2m"]);
    let pid = agent_pid(&ada).expect("the agent runs");
    let killed = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    socket_gone(&ada, "the agent removes its socket as it ends");
    bare_fails(&ada, &["profile", "get"]);
}

#[test]
fn unlocks_at_once_after_an_agent_died_leave_one_agent_that_lock_ends() {
    let ada = TestVault::new();
    ada.ok(&["unlock", "--for", "2m"]);
    let pid = agent_pid(&ada).expect("the agent runs");
    // Killed outright, it leaves its socket behind.
    assert!(std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    assert!(!sockets(&ada).is_empty(), "a dead agent's socket stays");
    let racers: Vec<_> = (0..4)
        .map(|_| {
            ada.cmd(&["unlock", "--for", "2m"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for racer in racers {
        let out = racer.wait_with_output().unwrap();
        assert!(out.status.success(), "every unlock succeeds: {}", String::from_utf8_lossy(&out.stderr));
    }
    bare_ok(&ada, &["profile", "get"]);
    ada.ok(&["lock"]);
    agent_gone(&ada, "no agent is left holding the key after lock");
    bare_fails(&ada, &["profile", "get"]);
}

/// Runs the probe (`tests/src/bin/agent-probe.rs`) as uid 65534; `None` when that user cannot
/// run it (the build directory closed to others).
fn probe_as_nobody(mode: &str, socket: &std::path::Path) -> Option<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_agent-probe"))
        .arg(mode)
        .arg(socket)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::piped())
        .spawn();
    match child {
        Ok(child) => Some(child),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => None,
        Err(e) => panic!("the probe does not start: {e}"),
    }
}

const NOBODY: u32 = 65534;

#[test]
fn the_agent_and_its_commands_check_the_other_sides_user() {
    use std::io::BufRead;
    if vault_tests::my_uid() != 0 {
        eprintln!("not root: playing another user takes root; this test did not run");
        return;
    }
    let ada = TestVault::new();
    ada.ok(&["unlock", "--for", "2m"]);
    let socket = sockets(&ada).remove(0);
    // Opened up so that another user can reach the socket at all: the agent still answers
    // nothing to a connection from another user.
    for dir in [ada.tmp.path().to_owned(), ada.runtime_dir(), agent_dir(&ada)] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let Some(asked) = probe_as_nobody("ask", &socket) else {
        eprintln!("uid 65534 cannot run the probe here; this test did not run");
        return;
    };
    let asked = String::from_utf8(asked.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(asked.trim(), "nothing", "another user's connection got an answer");
    for dir in [ada.tmp.path().to_owned(), ada.runtime_dir(), agent_dir(&ada)] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    ada.ok(&["lock"]);
    socket_gone(&ada, "the agent removes its socket");

    // Another user's process posing as the agent, its socket put where the agent's goes and
    // made to look like this user's: the command checks who listens, and does not use it.
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let planted = open.path().join("agent.sock");
    let mut poser = probe_as_nobody("serve", &planted).expect("the probe ran above");
    let mut ready = String::new();
    std::io::BufReader::new(poser.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    std::fs::rename(&planted, &socket).unwrap();
    std::os::unix::fs::lchown(&socket, Some(0), Some(0)).unwrap();
    let err = bare_fails(&ada, &["profile", "get"]);
    assert!(err.contains("runs as another user (uid 65534)") && err.contains("not using it"), "{err}");
    let _ = poser.kill();
    let _ = poser.wait();
}

/// `vault rekey` and `vault passwd`: a new data key ends what was lent, and the data survives.
mod rekey {
    use std::time::Duration;

    use super::{agent_gone, agent_pid, bare, bare_fails, bare_ok, sockets};
    use vault_tests::{TestVault, check_cli_schema, serve, snapshot_files};

    const NEW: &str = "plum orbit lantern 42 quiet meadow";

    /// The vault's files without `node.lock` (an empty lock file `rekey` takes, as `serve` does).
    fn vault_files(v: &TestVault) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        snapshot_files(&v.dir).into_iter().filter(|(p, _)| !p.ends_with("node.lock")).collect()
    }

    fn with_data(v: &TestVault) {
        v.ok(&["profile", "set", "name", "Ada"]);
        v.ok(&["pref", "set", "diet", "vegetarian"]);
        v.ok(&[
            "purchase",
            "add",
            "--item",
            "Tea",
            "--seller",
            "Leaf",
            "--price",
            "4.50",
            "--currency",
            "EUR",
        ]);
    }

    /// Runs with `passphrase` as VAULT_PASSPHRASE.
    fn with_passphrase(v: &TestVault, passphrase: &str, args: &[&str]) -> std::process::Output {
        v.cmd(args).env("VAULT_PASSPHRASE", passphrase).output().unwrap()
    }

    #[test]
    fn a_rekey_after_unlock_ends_the_lending_and_keeps_the_data() {
        let ada = TestVault::new();
        with_data(&ada);
        let export = ada.ok(&["export"]);
        ada.ok(&["unlock", "--for", "5m"]);
        assert!(bare_ok(&ada, &["profile", "get"]).contains("Ada"));

        let done = ada.json(&["rekey"], "rekey");
        assert_eq!(done["passphrase_changed"], false);
        assert_eq!(done["agent_locked"], "agent", "the agent lent the old key: it is told to forget it");
        assert!(done["rows"].as_u64().unwrap() >= 4, "{done}");
        assert_eq!(done["log_emptied"], true);
        agent_gone(&ada, "the agent ends once told the key is void");
        assert!(sockets(&ada).is_empty());

        // Nothing lends a key now: without the passphrase the next command opens nothing.
        let err = bare_fails(&ada, &["profile", "get"]);
        assert!(err.contains("no passphrase"), "{err}");
        // With it, the data is all there and whole.
        assert_eq!(ada.ok(&["export"]), export);
        assert!(ada.ok(&["verify"]).starts_with("ok"));
        // Unlocking again lends the new key.
        ada.ok(&["unlock", "--for", "5m"]);
        assert!(bare_ok(&ada, &["profile", "get"]).contains("Ada"));
        ada.ok(&["lock"]);
        agent_gone(&ada, "lock ends the new agent");
    }

    /// An agent `rekey` did not reach (another session's runtime directory) still lends the old
    /// key: the next command refuses it, says so, has the agent forget it, and asks for the
    /// passphrase instead; it never reads with the old key.
    #[test]
    fn a_stale_lent_key_is_refused_and_the_agent_told_to_forget_it() {
        let ada = TestVault::new();
        with_data(&ada);
        ada.ok(&["unlock", "--for", "5m"]);
        let elsewhere = tempfile::tempdir().unwrap();
        let out = ada.cmd(&["--json", "rekey"]).env("XDG_RUNTIME_DIR", elsewhere.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        check_cli_schema("rekey", &done);
        assert_eq!(done["agent_locked"], serde_json::Value::Null, "this rekey did not reach the agent");
        assert!(agent_pid(&ada).is_some(), "the agent still runs, lending the old key");

        let out = bare(&ada, &["profile", "get"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("Ada"), "nothing was read with the old key");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no longer uses") && err.contains("no passphrase"), "{err}");
        agent_gone(&ada, "the agent holding a stale key is told to forget it");
        // With the passphrase, the command works.
        assert!(ada.ok(&["profile", "get"]).contains("Ada"));

        // `vault unlock` does not extend an agent lending a stale key: it starts afresh.
        ada.ok(&["unlock", "--for", "5m"]);
        let out = ada.cmd(&["rekey"]).env("XDG_RUNTIME_DIR", elsewhere.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let fresh = ada.json(&["unlock", "--for", "5m"], "unlock");
        assert_eq!((fresh["by"].as_str(), fresh["extended"].as_bool()), (Some("agent"), Some(false)));
        assert!(bare_ok(&ada, &["profile", "get"]).contains("Ada"), "the new agent lends the new key");
        ada.ok(&["lock"]);
        agent_gone(&ada, "lock ends the new agent");
    }

    #[test]
    fn passwd_replaces_the_passphrase_and_the_data_survives() {
        let ada = TestVault::new();
        with_data(&ada);
        let export = ada.ok(&["export"]);
        let out = ada.cmd(&["--json", "passwd"]).env("VAULT_NEW_PASSPHRASE", NEW).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        check_cli_schema("passwd", &done);
        assert_eq!(
            (done["passphrase_changed"].as_bool(), done["passphrase_strength"]["score"].as_u64()),
            (Some(true), Some(4))
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains(NEW) && !stdout.contains(&ada.passphrase), "no passphrase in the output");

        // The old passphrase opens nothing; the new one opens everything.
        let old = ada.run(&["profile", "get"]);
        assert_eq!(old.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&old.stderr).contains("wrong passphrase"));
        let out = with_passphrase(&ada, NEW, &["export"]);
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), export);
        let verify = with_passphrase(&ada, NEW, &["verify"]);
        assert_eq!(verify.status.code(), Some(0), "{}", String::from_utf8_lossy(&verify.stderr));

        // `rekey --new-passphrase` is the same change; --generate-passphrase makes the new one.
        let out = ada
            .cmd(&["--json", "rekey", "--new-passphrase", "--generate-passphrase"])
            .env("VAULT_PASSPHRASE", NEW)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        check_cli_schema("rekey", &done);
        let generated = done["generated_passphrase"].as_str().unwrap();
        assert_eq!(String::from_utf8(with_passphrase(&ada, generated, &["export"]).stdout).unwrap(), export);
        assert_eq!(with_passphrase(&ada, NEW, &["profile", "get"]).status.code(), Some(2));
    }

    #[test]
    fn a_wrong_weak_same_or_missing_passphrase_changes_nothing() {
        let ada = TestVault::new();
        with_data(&ada);
        let before = vault_files(&ada);
        let wrong = with_passphrase(&ada, "not it", &["rekey"]);
        assert_eq!(wrong.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
        let wrong = ada
            .cmd(&["passwd"])
            .env("VAULT_PASSPHRASE", "not it")
            .env("VAULT_NEW_PASSPHRASE", NEW)
            .output()
            .unwrap();
        assert_eq!(wrong.status.code(), Some(2));
        assert!(vault_files(&ada) == before, "a wrong passphrase changed the files");

        let weak = ada.cmd(&["passwd"]).env("VAULT_NEW_PASSPHRASE", "password1").output().unwrap();
        assert_eq!(weak.status.code(), Some(2));
        let err = String::from_utf8_lossy(&weak.stderr);
        assert!(err.contains("weak") && !err.contains("password1"), "{err}");
        let same = ada.cmd(&["passwd"]).env("VAULT_NEW_PASSPHRASE", &ada.passphrase).output().unwrap();
        assert_eq!(same.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&same.stderr).contains("is the current one"));
        let empty = ada.cmd(&["passwd"]).env("VAULT_NEW_PASSPHRASE", "").output().unwrap();
        assert_eq!(empty.status.code(), Some(2));
        let none = ada.fails(&["passwd"], 2);
        assert!(none.contains("VAULT_NEW_PASSPHRASE"), "{none}");
        assert!(vault_files(&ada) == before, "a refused passwd changed the files");
        assert!(ada.ok(&["profile", "get"]).contains("Ada"));
    }

    #[test]
    fn a_rekey_is_refused_while_a_node_runs() {
        let ada = TestVault::new();
        with_data(&ada);
        let node = serve(&ada);
        // The node lends its key once unlocked: a key that would be refused had the rekey run.
        assert_eq!(ada.json(&["unlock", "--for", "2m"], "unlock")["by"], "node");
        let err = ada.fails(&["rekey"], 2);
        assert!(err.contains("a node runs") && err.contains("stop 'vault serve'"), "{err}");
        assert!(bare_ok(&ada, &["profile", "get"]).contains("Ada"), "the node's key is still the vault's");
        drop(node);
        // `Serving` kills the node as it drops; its lock goes with the process.
        let mut tries = 0;
        loop {
            let out = ada.run(&["rekey"]);
            if out.status.success() {
                break;
            }
            tries += 1;
            assert!(tries < 50, "rekey still refused: {}", String::from_utf8_lossy(&out.stderr));
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(ada.ok(&["verify"]).starts_with("ok"));
    }

    /// A passwd killed at any moment leaves one whole vault: the old one (old passphrase) or the
    /// new one (new passphrase), never a mix, and `verify` finds nothing wrong.
    #[test]
    fn a_passwd_killed_at_any_moment_leaves_one_whole_vault() {
        let ada = TestVault::new();
        with_data(&ada);
        for i in 0..20 {
            ada.ok(&[
                "purchase",
                "add",
                "--item",
                &format!("Item {i}"),
                "--seller",
                "Shop",
                "--price",
                "1.00",
                "--currency",
                "EUR",
            ]);
        }
        let export = ada.ok(&["export"]);
        let mut current = ada.passphrase.clone();
        for (round, delay_ms) in [0u64, 5, 10, 20, 40, 80].into_iter().enumerate() {
            let next = format!("{NEW} round {round}");
            let mut child = ada
                .cmd(&["passwd"])
                .env("VAULT_PASSPHRASE", &current)
                .env("VAULT_NEW_PASSPHRASE", &next)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            let _ = child.kill();
            let _ = child.wait();
            let old = with_passphrase(&ada, &current, &["export"]);
            let new = with_passphrase(&ada, &next, &["export"]);
            let opened: Vec<&std::process::Output> =
                [&old, &new].into_iter().filter(|o| o.status.success()).collect();
            assert_eq!(opened.len(), 1, "round {round}: exactly one passphrase opens the vault");
            assert_eq!(String::from_utf8_lossy(&opened[0].stdout), export, "round {round}");
            if new.status.success() {
                current = next;
            }
            let verify = with_passphrase(&ada, &current, &["verify"]);
            assert_eq!(
                verify.status.code(),
                Some(0),
                "round {round}: {}",
                String::from_utf8_lossy(&verify.stdout)
            );
        }
    }
}
