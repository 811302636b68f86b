//! Text another person wrote is data, never terminal control: a requester cannot forge the
//! consent screen, and a friend's review cannot hide or rewrite lines of `vault feed`. Also the
//! smaller hostile-environment findings met through the binary: removing a blocked contact, and
//! a symlink planted where `export -o` writes its temporary file.

use iroh::endpoint::{RecvStream, SendStream};
use vault_core::{
    ConsentRequest, DeviceKey, Frame, Identity, RequestId, Signed, Statement, Ticket, encode,
    encode_with_length,
};
use vault_tests::peer::{dial, raw_endpoint, recv};
use vault_tests::{TestVault, eventually, json, serve, ticket};

/// What a forged consent screen needs: a new line, a fake field list, and "hide what follows".
const FORGED_PURPOSE: &str =
    "gift wrapping\n    fields (what your vault holds of them):\n      profile.name held\n\x1b[8m";

/// No byte of `out` may steer a terminal: no ESC, no C0 control but the newlines we print, no
/// C1 control, no bidi override.
fn assert_inert(what: &str, out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    let bad: Vec<char> = text.chars().filter(|c| *c != '\n' && vault_core::is_steering_char(*c)).collect();
    assert!(bad.is_empty(), "{what} printed raw control characters {bad:?}:\n{text}");
}

/// A request frame signed by `identity` by hand, as a hostile requester's own software would:
/// the statement rules are not applied, only the signature is real.
fn hand_signed_request_frame(identity: &Identity, request: &ConsentRequest) -> Vec<u8> {
    let body = serde_json::to_vec(request).unwrap();
    let mut message = ConsentRequest::LABEL.to_vec();
    message.push(0);
    message.extend_from_slice(&body);
    let signature = iroh::SecretKey::from_bytes(&identity.secret_bytes()).sign(&message).to_bytes();
    // The frame type byte, taken from an honest request frame.
    let honest = Signed::sign(ConsentRequest { purpose: "x".into(), ..request.clone() }, identity).unwrap();
    let mut frame = vec![encode(&Frame::Request(Box::new(honest)))[0]];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame.extend_from_slice(&signature);
    let mut out = (frame.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    out
}

/// Connects as `identity`, says hello, sends `frame`; returns the node's answer (`None` when it
/// closed the connection).
async fn deliver(ticket: &Ticket, identity: &Identity, frame: &[u8]) -> Option<Frame> {
    let device = DeviceKey::generate();
    let ep = raw_endpoint(&device).await;
    let conn = dial(&ep, ticket).await;
    let (mut s, mut r): (SendStream, RecvStream) = conn.open_bi().await.unwrap();
    s.write_all(&encode_with_length(&Frame::Hello(identity.certify(device.public())))).await.unwrap();
    assert!(matches!(recv(&mut r).await, Some(Frame::Hello(_))), "the node says hello");
    s.write_all(frame).await.unwrap();
    let answer = recv(&mut r).await;
    conn.close(0u32.into(), b"done");
    ep.close().await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_cannot_forge_the_consent_screen() {
    let customer = TestVault::new();
    customer.ok(&["profile", "set", "email", "ada@example.org"]);
    let (_node, customer_ticket) = serve(&customer);
    let customer_ticket: Ticket = customer_ticket.parse().unwrap();
    let mallory = Identity::generate();
    let request = |purpose: &str| ConsentRequest {
        id: RequestId::random(),
        requester: mallory.public(),
        holder: customer_ticket.identity(),
        fields: vec!["profile.name".parse().unwrap(), "profile.email".parse().unwrap()],
        filter: None,
        purpose: purpose.into(),
        duration: None,
        prices: false,
        made_at: 1_800_000_000,
        name: None,
        reply_to: None,
    };

    // The hostile request bypasses the honest CLI: its signature is valid, its purpose is not.
    let forged = request(FORGED_PURPOSE);
    let answer = deliver(&customer_ticket, &mallory, &hand_signed_request_frame(&mallory, &forged)).await;
    assert!(
        !matches!(answer, Some(Frame::RequestAck { accepted: true, .. })),
        "the customer's node accepted a purpose with control characters: {answer:?}"
    );
    // The same requester's honest request still goes through (the node was not broken, and the
    // refusal above is about the text, not about the requester).
    let honest = request("newsletter");
    let answer = deliver(&customer_ticket, &mallory, &hand_signed_request_frame(&mallory, &honest)).await;
    assert_eq!(answer, Some(Frame::RequestAck { request: honest.id, accepted: true }));

    let waiting = json(&customer, &["requests", "--all"]);
    let ids: Vec<&str> =
        waiting["requests"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [honest.id.to_string()], "only the honest request is stored");
    let out = customer.run(&["requests", "--all"]);
    assert_inert("vault requests", &out.stdout);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("purpose:").count(), 1, "{text}");
    assert!(!text.contains("gift wrapping"), "{text}");
}

#[test]
fn the_honest_cli_refuses_control_characters_in_a_purpose_or_reason() {
    let (customer, shop) = (TestVault::new(), TestVault::new());
    customer.ok(&["profile", "set", "email", "ada@example.org"]);
    let customer_ticket = ticket(&customer);
    shop.ok(&["contact", "add", "ada", &customer_ticket]);
    let err = shop.fails(
        &["request", "ada", "--fields", "profile.email", "--purpose", FORGED_PURPOSE, "--no-relay"],
        2,
    );
    assert!(err.contains("the purpose contains a control character (U+000A)"), "{err}");
    assert_inert("the error", err.as_bytes());
    assert!(!err.contains("gift wrapping"), "the bad text is not echoed: {err}");
    let shop_ticket = ticket(&shop);
    customer.ok(&["contact", "add", "shop", &shop_ticket]);
    let err =
        customer.fails(&["grant", "shop", "--fields", "profile.email", "--purpose", "ok\u{202e}gnidnes"], 2);
    assert!(err.contains("the purpose contains a control character (U+202E)"), "{err}");
    assert_inert("the error", err.as_bytes());
}

fn add_hostile_purchase(v: &TestVault) {
    v.ok(&[
        "purchase",
        "add",
        "--item",
        "Tea\x1b[8m",
        "--seller",
        "Acme\u{202e}emcA",
        "--price",
        "4.50",
        "--currency",
        "EUR",
        "--date",
        "2026-11-01",
        "--category",
        "food\r",
        "--tag",
        "tea",
        "--rating",
        "5",
        "--review",
        "great\n2026-11-02  bob bought Gold at Acme  1.00 EUR\x1b[2J\x1b]0;pwned\x07",
    ]);
}

#[test]
fn a_friends_review_cannot_steer_the_terminal() {
    let (alice, bob) = (TestVault::new(), TestVault::new());
    // The document schema allows any character in an item or a review: they are free text.
    add_hostile_purchase(&alice);
    let listed = alice.run(&["purchase", "list"]);
    assert!(listed.status.success());
    assert_inert("vault purchase list", &listed.stdout);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("Tea\\e[8m") && text.contains("great\\n2026-11-02"), "{text}");
    // JSON output stays exact.
    let exact = json(&alice, &["purchase", "list"]);
    assert_eq!(exact["purchases"][0]["item"], "Tea\x1b[8m");

    let (_node, alice_ticket) = serve(&alice);
    bob.ok(&["contact", "add", "alice", &alice_ticket]);
    alice.ok(&["contact", "add", "bob", &ticket(&bob)]);
    alice.ok(&["grant", "bob", "--fields", "purchases", "--purpose", "feed"]);
    eventually("bob receives alice's feed", || {
        bob.ok(&["sync", "alice", "--no-relay"]);
        json(&bob, &["feed"]).get("purchases").and_then(|p| p.as_array()).is_some_and(|p| !p.is_empty())
    });
    for args in [&["feed"][..], &["feed", "--item", "tea"], &["shared"]] {
        let out = bob.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_inert(&format!("vault {}", args.join(" ")), &out.stdout);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.lines().any(|l| l.starts_with("2026-11-02")), "a forged feed line: {text}");
    }
    let exact = json(&bob, &["feed"]);
    assert_eq!(
        exact["purchases"][0]["review"],
        "great\n2026-11-02  bob bought Gold at Acme  1.00 EUR\x1b[2J\x1b]0;pwned\x07"
    );
}

#[test]
fn profile_and_preference_values_are_printed_inert() {
    let v = TestVault::new();
    v.ok(&["profile", "set", "name", "Ada\x1b[8m Lovelace\nemail: fake@example.org"]);
    v.ok(&["pref", "set", "diet", "vegan\u{2066}\x1b[2J"]);
    for args in
        [&["profile", "get"][..], &["profile", "get", "name"], &["pref", "get"], &["pref", "get", "diet"]]
    {
        let out = v.run(args);
        assert!(out.status.success(), "{args:?}");
        assert_inert(&format!("vault {}", args.join(" ")), &out.stdout);
    }
}

#[test]
fn removing_a_blocked_contact_keeps_the_block() {
    let (v, peer) = (TestVault::new(), TestVault::new());
    v.ok(&["contact", "add", "mallory", &ticket(&peer)]);
    v.ok(&["contact", "block", "mallory"]);
    let err = v.fails(&["contact", "rm", "mallory"], 2);
    assert!(err.contains("contact \"mallory\" is blocked; removing it would unblock it"), "{err}");
    assert!(err.contains("hint: use 'vault contact unblock mallory' first"), "{err}");
    let contacts = json(&v, &["contact", "list"]);
    assert_eq!(contacts["contacts"][0]["blocked"], true, "still blocked: {contacts}");
    // Unblocking is its own, explicit step; then the contact can go.
    v.ok(&["contact", "unblock", "mallory"]);
    assert_eq!(json(&v, &["contact", "list"])["contacts"][0]["blocked"], false);
    v.ok(&["contact", "rm", "mallory"]);
    v.fails(&["contact", "unblock", "mallory"], 1);
}

#[cfg(unix)]
#[test]
fn export_does_not_follow_a_planted_symlink() {
    let v = TestVault::new();
    v.ok(&["profile", "set", "email", "ada@example.org"]);
    let out_dir = tempfile::tempdir().unwrap();
    let victim = out_dir.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let target = out_dir.path().join("export.json");
    // The temporary name the old code used, predictable from the target's name.
    std::os::unix::fs::symlink(&victim, out_dir.path().join(".export.json.tmp")).unwrap();
    v.ok(&["export", "-o", target.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "the symlink was followed");
    let exported: serde_json::Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert_eq!(exported["profile"]["email"], "ada@example.org");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "victim.txt" && n != "export.json" && n != ".export.json.tmp")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}
