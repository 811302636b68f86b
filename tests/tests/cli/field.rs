//! Everyday use, as a newcomer meets it: a node restarted is reached again at the ticket its
//! peers saved, a second `vault serve` on one vault is refused, a failed dial says what to do,
//! and the network stack's own log lines stay out of the terminal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use vault_tests::{Serving, TestVault, json, serve_command};

/// A running `vault serve` (`args`) whose standard error the test reads: the node (killed
/// when dropped), its ticket, and its lines.
fn serve_watched(v: &TestVault, args: &[&str]) -> (Serving, String, Lines) {
    let mut child =
        v.cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("vault serve starts");
    let (stdout, stderr) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let node = Serving(child);
    let mut ticket = String::new();
    BufReader::new(stdout).read_line(&mut ticket).expect("the ticket first");
    (node, ticket.trim().to_owned(), Lines(BufReader::new(stderr)))
}

/// A node's standard error, read line by line.
struct Lines(BufReader<std::process::ChildStderr>);

impl Lines {
    /// Everything read up to the first line with `marker` (or the end), at most [`HANG`] long.
    fn until(&mut self, marker: &str) -> String {
        let mut seen = String::new();
        let deadline = Instant::now() + vault_tests::HANG;
        while !seen.contains(marker) && Instant::now() < deadline {
            let mut line = String::new();
            if self.0.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&line);
        }
        seen
    }
}

/// `vault serve` with no address asked for (relays off), as the README runs it.
fn serve_plain(v: &TestVault) -> (Serving, String) {
    serve_command(v.cmd(&["serve", "--no-relay"]))
}

#[test]
fn a_restarted_node_is_reached_again_at_the_ticket_its_peers_saved() {
    let (ada, bob) = (TestVault::new(), TestVault::new());
    let (node, first) = serve_plain(&ada);
    bob.ok(&["contact", "add", "ada", &first]);
    bob.ok(&["sync", "ada", "--no-relay"]);
    drop(node);

    // Stopped: `vault id` prints the ticket it served with (one ticket, with its addresses).
    assert_eq!(json(&ada, &["id"])["ticket"].as_str(), Some(first.as_str()));
    let (_node, again) = serve_plain(&ada);
    assert_eq!(again, first, "the same port again: the saved ticket still reaches the node");
    bob.ok(&["sync", "ada", "--no-relay"]);
}

#[test]
fn a_node_whose_port_is_taken_serves_on_another_and_says_so() {
    let ada = TestVault::new();
    let (node, first) = serve_plain(&ada);
    drop(node);
    let port: u16 = {
        let ticket: vault_core::Ticket = first.parse().unwrap();
        ticket.addrs()[0].port()
    };
    let _squatter = std::net::UdpSocket::bind(("0.0.0.0", port)).expect("the port is free again");
    let (_node, ticket, mut stderr) = serve_watched(&ada, &["serve", "--no-relay"]);
    assert_ne!(ticket, first, "another port");
    // Said before the line that says where it serves.
    let stderr = stderr.until("Ctrl-C to stop");
    assert!(stderr.contains(&format!("port {port}, where this node served last, is taken")), "{stderr}");
}

#[test]
fn a_second_serve_on_one_vault_is_refused() {
    let ada = TestVault::new();
    let (_node, _) = serve_plain(&ada);
    let stderr = ada.fails(&["serve", "--no-relay"], 2);
    assert!(stderr.contains("another 'vault serve' runs on this vault already"), "{stderr}");
}

#[test]
fn a_peer_that_does_not_answer_gets_a_hint_and_no_library_log_lines() {
    let (ada, bob) = (TestVault::new(), TestVault::new());
    let (node, ticket) = serve_plain(&ada);
    bob.ok(&["contact", "add", "ada", &ticket]);
    drop(node);
    // Relays on (the default), on a machine that may be offline: the network stack's warnings
    // (relay and address lookups failing) stay hidden without VAULT_LOG.
    let (mut cmd, cut_off) = offline(bob.cmd(&["sync", "ada"]));
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("ada is offline, or its address changed"), "{stderr}");
    assert!(stderr.contains("vault contact addr ada HOST:PORT"), "{stderr}");
    // What the library warnings said, once, in one line (surely, when cut off from everything).
    let said = stderr.matches("relay servers cannot be reached").count();
    assert!(said <= 1, "{stderr}");
    if cut_off {
        assert_eq!(said, 1, "{stderr}");
    }
    for line in stderr.lines() {
        assert!(!line.contains("iroh") && !line.contains("WARN"), "a library's log line: {line}\n{stderr}");
    }
}

/// `cmd` in a network namespace with no way out, when one can be made (root: then true); as
/// it is otherwise.
fn offline(cmd: Command) -> (Command, bool) {
    let ns = format!("vt-offline-{}", std::process::id());
    let made = Command::new("ip").args(["netns", "add", &ns]).status().is_ok_and(|s| s.success());
    if !made {
        return (cmd, false);
    }
    let _ = Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]).status();
    let mut wrapped = Command::new("sh");
    wrapped
        .arg("-c")
        .arg("ip netns exec \"$0\" \"$@\"; status=$?; ip netns del \"$0\"; exit $status")
        .arg(&ns);
    wrapped.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    (wrapped, true)
}

/// What `init` makes only its owner can read: the vault file (a copy of it is a copy to guess
/// the passphrase against) and the directory, even one made empty beforehand. A generated
/// passphrase is shown once.
#[cfg(unix)]
#[test]
fn a_new_vault_is_its_owners_alone_and_a_generated_passphrase_is_shown_once() {
    use std::os::unix::fs::PermissionsExt;
    let v = TestVault::uninitialised();
    std::fs::create_dir(&v.dir).unwrap();
    std::fs::set_permissions(&v.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = v.run(&["init", "--generate-passphrase", "--insecure-fast-kdf"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("passphrase: ").count(), 1, "{stdout}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&v.dir), 0o700);
    assert_eq!(mode(&v.db()), 0o600);
}

/// `vault serve` says what happens, a line per event (here a request from a stranger, in the
/// words of `vault audit`, peer text escaped).
#[test]
fn a_node_says_what_it_does() {
    let (ada, shop) = (TestVault::new(), TestVault::new());
    let (_node, ticket, mut stderr) = serve_watched(&ada, &["serve", "--no-relay", "--bind", "127.0.0.1:0"]);
    shop.ok(&["contact", "add", "ada", &ticket]);
    shop.ok(&["request", "ada", "--fields", "profile.email", "--purpose", "order updates", "--no-relay"]);
    let seen = stderr.until("request from");
    assert!(seen.contains("request from"), "{seen}");
}

/// Dates and durations are read by one parser everywhere, with one error that says what works.
#[test]
fn dates_and_durations_read_the_same_everywhere() {
    let (ada, bob) = (TestVault::new(), TestVault::new());
    ada.ok(&["purchase", "add", "--item", "Tea", "--seller", "Acme", "--price", "4.50", "--currency", "EUR"]);
    let listed = json(&ada, &["purchase", "list", "--since", "1d"]);
    assert_eq!(listed["purchases"].as_array().map(Vec::len), Some(1), "{listed}");
    let far = vault_tests::json_or_no(&ada, &["purchase", "list", "--since", "2999-01-01"]);
    assert_eq!(far["purchases"].as_array().map(Vec::len), Some(0), "a date is read too");
    for (args, what) in [
        (vec!["audit", "--since", "last week"], "last week"),
        (vec!["purchase", "list", "--since", "yesterday"], "yesterday"),
    ] {
        let stderr = ada.fails(&args, 2);
        assert!(stderr.contains(&format!("invalid date or duration \"{what}\"")), "{stderr}");
        assert!(stderr.contains("YYYY-MM-DD") && stderr.contains("7d"), "{stderr}");
    }
    ada.ok(&["contact", "add", "bob", &vault_tests::ticket(&bob)]);
    let stderr = ada.fails(
        &["grant", "bob", "--fields", "profile.email", "--purpose", "x", "--expires", "05/12/2027"],
        2,
    );
    assert!(stderr.contains("YYYY-MM-DD"), "{stderr}");
}

/// With `--json`, an error is a JSON object on standard error, for the script that asked.
#[test]
fn with_json_an_error_is_a_json_object() {
    let ada = TestVault::new();
    let stderr = ada.fails(&["--json", "profile", "set", "emial", "ada@example.org"], 2);
    let error: serde_json::Value = serde_json::from_str(stderr.trim()).expect("one JSON object");
    vault_tests::check_cli_schema("error", &error);
    assert!(error["error"]["message"].as_str().unwrap().contains("emial"), "{error}");
}

/// A mistyped profile field gets the nearest one and the list, from the binary itself.
#[test]
fn a_mistyped_field_gets_the_nearest_one() {
    let ada = TestVault::new();
    let stderr = ada.fails(&["profile", "set", "emial", "ada@example.org"], 2);
    assert!(stderr.contains("did you mean 'email'?"), "{stderr}");
    assert!(stderr.contains("address.city"), "every field listed: {stderr}");
    assert!(!stderr.contains("schemas/doc"), "no file that an installed binary lacks: {stderr}");
}

/// A feed whose every friend is muted says so, not that nobody shares; a rating reads the same
/// in every command.
#[test]
fn an_all_muted_feed_says_so_and_ratings_read_alike() {
    let (ada, bob) = (TestVault::new(), TestVault::new());
    ada.ok(&[
        "purchase",
        "add",
        "--item",
        "Tea",
        "--seller",
        "Acme",
        "--price",
        "4.50",
        "--currency",
        "EUR",
        "--rating",
        "4",
    ]);
    assert!(ada.ok(&["purchase", "list"]).contains("****."), "purchase list");
    let (_ada_node, ticket) = vault_tests::serve(&ada);
    let bob_ticket = vault_tests::ticket(&bob);
    ada.ok(&["contact", "add", "bob", &bob_ticket]);
    ada.ok(&["grant", "bob", "--fields", "purchases", "--purpose", "friends"]);
    bob.ok(&["contact", "add", "ada", &ticket]);
    bob.ok(&["sync", "ada", "--no-relay"]);
    assert!(bob.ok(&["feed"]).contains("****."), "feed");
    bob.ok(&["feed", "mute", "ada"]);
    let stderr = bob.fails(&["feed"], 1);
    assert!(stderr.contains("everything in your feed is muted"), "{stderr}");
}

/// The same peer added under a second name is said, not silently kept twice.
#[test]
fn the_same_peer_under_a_second_name_is_said() {
    let (ada, shop) = (TestVault::new(), TestVault::new());
    let ticket = vault_tests::ticket(&shop);
    ada.ok(&["contact", "add", "shop", &ticket]);
    let out = ada.run(&["contact", "add", "acme", &ticket]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(stderr.contains("is already your contact 'shop'"), "{stderr}");
}

#[test]
fn manual_pages_come_with_the_binary() {
    let v = TestVault::uninitialised();
    let top = v.ok(&["man"]);
    assert!(top.contains(".TH vault 1"), "a roff page on stdout: {}", &top[..top.len().min(200)]);
    let dir = tempfile::tempdir().unwrap();
    let out = v.run(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in ["vault.1", "vault-grant.1", "vault-contact-add.1", "vault-serve.1"] {
        assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("agent")), "the hidden command has no page: {pages:?}");
    let grant = std::fs::read_to_string(dir.path().join("vault-grant.1")).unwrap();
    assert!(grant.contains("\\-\\-purpose"), "the options are documented");
}

/// `vault status` says, per peer, what the node saw: connected now, or when last reached and
/// the last error; not that shares "stay live" when nobody can reach the node.
#[test]
fn status_says_per_peer_what_the_node_saw() {
    let (ada, shop) = (TestVault::new(), TestVault::new());
    ada.ok(&["profile", "set", "email", "ada@example.org"]);
    let (ada_node, ada_ticket) = serve_plain(&ada);
    let (_shop_node, shop_ticket) = serve_plain(&shop);
    shop.ok(&["contact", "add", "ada", &ada_ticket]);
    ada.ok(&["contact", "add", "shop", &shop_ticket]);
    ada.ok(&["grant", "shop", "--fields", "profile.email", "--purpose", "orders", "--expires", "30d"]);
    let status = |v: &TestVault| {
        let value = json(v, &["status"]);
        vault_tests::check_cli_schema("status", &value);
        value
    };
    vault_tests::eventually("the shop's node connected to ada", || {
        status(&shop)["node"]["peers"].as_array().is_some_and(|p| p.iter().any(|p| p["connected"] == true))
    });
    let text = shop.ok(&["status"]);
    assert!(text.contains("ada: connected"), "{text}");
    assert!(!text.contains("stay live"), "{text}");

    // Ada's node stops: the shop's node says it lost her, and why.
    drop(ada_node);
    vault_tests::eventually("the shop's node saw ada go", || {
        let peers = status(&shop)["node"]["peers"].clone();
        peers
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["connected"] == false && p["last_error"].is_object()))
    });
    let text = shop.ok(&["status"]);
    assert!(text.contains("ada: last reached") && text.contains("failed"), "{text}");
}

/// Long output on a terminal goes through the pager ($VAULT_PAGER, $PAGER, less); piped, never.
#[test]
fn long_output_is_paged_on_a_terminal_only() {
    let v = TestVault::new();
    for i in 0..30 {
        let item = format!("Item {i}");
        let bought = vault_tests::Bought {
            item: &item,
            seller: "Shop",
            price: "5",
            tag: "misc",
            date: "2026-11-02",
            rating: "4",
            review: "fine",
        };
        vault_tests::buy(&v, &bought);
    }
    let paged = v.dir.join("paged.txt");
    let pager = format!("cat > '{}'", paged.display());
    // A terminal: `script` runs the command on a pseudo-terminal.
    let mut on_tty = Command::new("script");
    on_tty
        .args(["-qec", &format!("'{}' purchase list", vault_tests::vault_bin().display()), "/dev/null"])
        .envs(v.cmd(&[]).get_envs().filter_map(|(k, val)| Some((k.to_owned(), val?.to_owned()))))
        .env("VAULT_PAGER", &pager)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    assert!(on_tty.status().expect("script runs").success());
    let shown = std::fs::read_to_string(&paged).expect("the pager got the list");
    assert_eq!(shown.lines().filter(|l| l.contains("Item")).count(), 30, "{shown}");

    // Piped: printed, the pager not started.
    std::fs::remove_file(&paged).unwrap();
    let piped = v.cmd(&["purchase", "list"]).env("VAULT_PAGER", &pager).output().unwrap();
    assert!(String::from_utf8_lossy(&piped.stdout).lines().count() >= 30);
    assert!(!paged.exists(), "no pager without a terminal");
}
