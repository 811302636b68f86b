//! A grantee that was offline while a granted value came and went never receives it, not even
//! in the history of its copy: through the real binary (`serve`, `sync`, `purchase`, `import`),
//! then by opening the grantee's vault and reading every change its copy holds.

use std::time::Duration;

use vault_core::{GrantId, Passphrase, Vault};
use vault_tests::{TestVault, json, serve, ticket};

fn add_book(v: &TestVault, item: &str) -> String {
    let args = ["purchase", "add", "--item", item, "--seller", "Books", "--price", "9", "--currency", "EUR"];
    json(v, &[&args[..], &["--tag", "books"]].concat())["id"].as_str().unwrap().to_owned()
}

/// Every string and map key written by any change in an Automerge document.
fn history_strings(saved: &[u8]) -> Vec<String> {
    use automerge::legacy::{Key, OpType};
    let mut am = automerge::AutoCommit::load(saved).unwrap();
    let mut out = Vec::new();
    for change in am.get_changes(&[]) {
        for op in change.decode().operations {
            if let Key::Map(k) = &op.key {
                out.push(k.to_string());
            }
            if let OpType::Put(automerge::ScalarValue::Str(s)) = op.action {
                out.push(s.to_string());
            }
        }
    }
    out
}

#[test]
fn a_book_added_and_retracted_while_the_grantee_is_offline_never_reaches_it() {
    let (alice, bob) = (TestVault::new(), TestVault::new());
    add_book(&alice, "Dune");
    alice.ok(&["contact", "add", "bob", &ticket(&bob)]);
    let grant = json(
        &alice,
        &[
            "grant",
            "bob",
            "--fields",
            "purchases",
            "--filter",
            "purchases[tag=books]",
            "--purpose",
            "book club",
        ],
    );
    let id: GrantId = grant["id"].as_str().unwrap().parse().unwrap();
    let (_node, alice_ticket) = serve(&alice);
    bob.ok(&["contact", "add", "alice", &alice_ticket]);
    bob.ok(&["sync", "alice", "--no-relay"]);
    assert_eq!(json(&bob, &["shared"])["shares"][0]["values"]["purchases"].as_object().unwrap().len(), 1);

    // Bob is offline. Alice adds a book and deletes it; adds another and untags it. Her node
    // runs, so each edit reaches the projection on its own.
    let deleted = add_book(&alice, "Deleted-Book-7f3k9");
    std::thread::sleep(Duration::from_millis(1500));
    alice.ok(&["purchase", "rm", &deleted]);
    let untagged = add_book(&alice, "Untagged-Book-2q8w4");
    std::thread::sleep(Duration::from_millis(1500));
    let mut export = json(&alice, &["export"]);
    export["purchases"][&untagged]["tags"] = serde_json::json!(["sf"]);
    let file = alice.tmp.path().join("edited.json");
    std::fs::write(&file, serde_json::to_vec(&export).unwrap()).unwrap();
    alice.ok(&["import", file.to_str().unwrap()]);
    add_book(&alice, "Kept-Book");
    std::thread::sleep(Duration::from_millis(1500));

    bob.ok(&["sync", "alice", "--no-relay"]);
    let shared = json(&bob, &["shared"]);
    let purchases = shared["shares"][0]["values"]["purchases"].as_object().unwrap();
    let items: Vec<&str> = purchases.values().map(|p| p["item"].as_str().unwrap()).collect();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items.contains(&"Dune") && items.contains(&"Kept-Book"));

    // Bob's copy, history included, holds neither retracted book nor their ids.
    let mut vault = Vault::at(&bob.dir).unlock(&Passphrase::new(&bob.passphrase)).unwrap();
    let alice_id = vault.held_mut().list().unwrap()[0].grant.statement().issuer;
    let copy = vault.held_mut().copy(&alice_id, &id).unwrap();
    let history = history_strings(&copy);
    assert!(history.iter().any(|s| s == "Kept-Book"), "the history is read");
    for secret in ["Deleted-Book-7f3k9", "Untagged-Book-2q8w4", deleted.as_str(), untagged.as_str()] {
        assert!(!history.iter().any(|s| s == secret), "{secret} is in bob's copy");
        assert!(!copy.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in the bytes");
    }
}
