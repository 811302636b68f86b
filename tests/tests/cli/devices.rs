//! One customer, several devices, through the real binary: pairing (`vault device add` on the
//! laptop, `vault init --join CODE` on the box) with the six digits compared and confirmed,
//! live and offline edits replicated between two `vault serve`s, removal, and the pairing codes
//! that must be refused: wrong, declined, replayed.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use vault_tests::pairing::{finish, free_addr, invite, pair, prompt_reached, start_join, stderr_rest};
use vault_tests::{Serving, TestVault, eventually, json, json_or_no, serve_on};

fn names(v: &TestVault) -> Vec<(String, bool)> {
    v.json(&["device", "list"], "device-list")["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap().to_owned(), d["removed_at"].is_null()))
        .collect()
}

fn profile(v: &TestVault, field: &str) -> Value {
    json(v, &["export", "--format", "json"])["profile"][field].clone()
}

#[test]
fn a_new_device_joins_and_both_stay_in_sync_live_and_after_offline_edits() {
    let laptop = TestVault::new();
    laptop.ok(&["profile", "set", "email", "ada@example.org"]);
    laptop.ok(&[
        "purchase",
        "add",
        "--item",
        "Tea",
        "--seller",
        "Shop",
        "--price",
        "4.20",
        "--currency",
        "EUR",
        "--date",
        "2026-01-02",
    ]);
    let (laptop_addr, box_addr) = (free_addr(), free_addr());
    let serving = serve_on(&laptop, &laptop_addr);

    let home = TestVault::uninitialised();
    pair(&laptop, &home, "home-box");
    // The box holds the customer's document and identity, under its own passphrase.
    assert_eq!(profile(&home, "email"), "ada@example.org");
    assert_eq!(json(&home, &["id"])["identity"], json(&laptop, &["id"])["identity"]);
    assert_ne!(json(&home, &["id"])["device"], json(&laptop, &["id"])["device"]);
    let mut listed = names(&laptop);
    listed.sort();
    assert_eq!(listed, vec![("first".to_owned(), true), ("home-box".to_owned(), true)]);
    assert_eq!(names(&home), names(&laptop));

    // Live: an edit on either side reaches the other while both serve.
    let box_serving = serve_on(&home, &box_addr);
    laptop.ok(&["profile", "set", "email", "ada@laptop.example"]);
    eventually("the laptop's edit on the box", || profile(&home, "email") == "ada@laptop.example");
    home.ok(&["pref", "set", "diet", "vegetarian"]);
    eventually("the box's edit on the laptop", || {
        json(&laptop, &["export", "--format", "json"])["preferences"]["diet"] == "vegetarian"
    });

    // Offline: both stopped, both edited, restarted: they converge to one document.
    drop((serving, box_serving));
    laptop.ok(&["profile", "set", "name", "Ada"]);
    home.ok(&["profile", "set", "address.city", "Paris"]);
    home.ok(&[
        "purchase",
        "add",
        "--item",
        "Bread",
        "--seller",
        "Bakery",
        "--price",
        "3",
        "--currency",
        "EUR",
        "--date",
        "2026-01-03",
    ]);
    let (_a, _) = serve_on(&laptop, &laptop_addr);
    let (_b, _) = serve_on(&home, &box_addr);
    let export = |v: &TestVault| {
        let mut e = json(v, &["export", "--format", "json"]);
        e.as_object_mut().unwrap().remove("exported_at");
        e
    };
    eventually("both devices converge", || {
        let (a, b) = (export(&laptop), export(&home));
        a == b && a["profile"]["address"]["city"] == "Paris" && a["profile"]["name"] == "Ada"
    });
    assert_eq!(export(&laptop)["purchases"].as_object().unwrap().len(), 2);
    let devices = json(&laptop, &["device", "list"])["devices"].clone();
    let seen =
        devices.as_array().unwrap().iter().find(|d| d["name"] == "home-box").unwrap()["last_seen"].clone();
    assert!(seen.is_i64(), "the laptop saw the box: {seen}");
}

#[test]
fn a_removed_device_is_refused_and_its_edits_no_longer_arrive() {
    let laptop = TestVault::new();
    let (laptop_addr, box_addr) = (free_addr(), free_addr());
    let _laptop_serving: Serving = serve_on(&laptop, &laptop_addr).0;
    let home = TestVault::uninitialised();
    pair(&laptop, &home, "box");
    let _box_serving = serve_on(&home, &box_addr).0;
    home.ok(&["profile", "set", "email", "before@example.org"]);
    eventually("in sync before removal", || profile(&laptop, "email") == "before@example.org");

    let out = laptop.ok(&["device", "rm", "box"]);
    assert!(out.contains("cannot be recalled"), "{out}");
    laptop.fails(&["device", "rm", "box"], 2);
    assert!(names(&laptop).contains(&("box".to_owned(), false)), "listed as removed");
    laptop.fails(&["device", "rm", "first"], 2);
    home.ok(&["profile", "set", "email", "after@example.org"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(profile(&laptop, "email"), "before@example.org", "the removed device's edit arrived");
    let audit = json(&laptop, &["audit"]).to_string();
    assert!(audit.contains("not an active device"), "the refusal is in the access log: {audit}");
}

#[test]
fn wrong_declined_and_replayed_codes_are_refused_and_change_nothing() {
    let laptop = TestVault::new();
    let before = names(&laptop);

    // Not a code at all.
    let stranger = TestVault::uninitialised();
    let err = stranger.fails(&["init", "--join", "vault1notacode", "--no-relay", "--insecure-fast-kdf"], 2);
    assert!(err.contains("not a pairing code"), "{err}");
    assert!(!stranger.dir.join(vault_core::DB_FILE).exists());

    // A code with its secret altered: the laptop refuses the proof and voids the code.
    let (inviter, prompt, code) = invite(&laptop, "thief");
    let mut forged: Vec<char> = code.chars().collect();
    let i = 90;
    forged[i] = if forged[i] == 'a' { 'b' } else { 'a' };
    let forged: String = forged.into_iter().collect();
    let (ok, text) = finish(start_join(&stranger, &forged));
    assert!(!ok && text.contains("refused this code"), "{text}");
    let (ok, text) = finish(inviter);
    assert!(!ok && format!("{text}{}", stderr_rest(prompt)).contains("wrong proof"), "{text}");
    assert!(!stranger.dir.join(vault_core::DB_FILE).exists());
    // The true code is void too: nobody is waiting for it any more.
    let (ok, text) = finish(start_join(&stranger, &code));
    assert!(!ok && text.contains("cannot reach the device that made this code"), "{text}");

    // Declined on the laptop.
    let (mut inviter, mut prompt, code) = invite(&laptop, "box");
    let joiner = start_join(&stranger, &code);
    prompt_reached(&mut prompt);
    // A hurried "yes" is not the digits: declined.
    inviter.stdin.take().unwrap().write_all(b"yes\n").unwrap();
    let (ok, text) = finish(joiner);
    assert!(!ok && text.contains("declined"), "{text}");
    let (ok, _) = finish(inviter);
    assert!(!ok);
    assert!(!stranger.dir.join(vault_core::DB_FILE).exists());

    // Used once, never again.
    let first = TestVault::uninitialised();
    let used_code = pair(&laptop, &first, "box");
    let (ok, text) = finish(start_join(&stranger, &used_code));
    assert!(!ok && text.contains("cannot reach"), "{text}");
    assert!(!stranger.dir.join(vault_core::DB_FILE).exists());
    let mut after = before;
    after.push(("box".to_owned(), true));
    after.sort();
    let mut now = names(&laptop);
    now.sort();
    assert_eq!(now, after);
}

#[test]
fn only_the_first_device_holds_the_identity_key_and_grantees_refuse_a_removed_device() {
    let laptop = TestVault::new();
    laptop.ok(&["profile", "set", "email", "ada@example.org"]);
    let (laptop_addr, box_addr) = (free_addr(), free_addr());
    let laptop_serving = serve_on(&laptop, &laptop_addr).0;
    let home = TestVault::uninitialised();
    pair(&laptop, &home, "box");
    let _box_serving = serve_on(&home, &box_addr).0;

    // The box got a certificate, not the identity key: it cannot link devices nor show a code.
    let err = home.fails(&["device", "add", "tablet", "--no-relay"], 2);
    assert!(err.contains("does not hold your identity key"), "{err}");
    home.fails(&["device", "recovery-code"], 2);
    let code = laptop.ok(&["device", "recovery-code"]);
    assert!(code.trim().starts_with("vaultkey1-"), "{code}");
    // A typo'd or foreign code is refused and changes nothing.
    let err = home.fails(&["device", "recover", "vaultkey1-aaaa-bbbb"], 2);
    assert!(err.contains("not a recovery code"), "{err}");
    let foreign = TestVault::new().ok(&["device", "recovery-code"]);
    let err = home.fails(&["device", "recover", foreign.trim()], 2);
    assert!(err.contains("another identity"), "{err}");
    home.fails(&["device", "add", "tablet", "--no-relay"], 2);

    // A shop the laptop shares with syncs, and learns the customer's devices from the roster.
    let shop = TestVault::new();
    let (_shop_serving, _) = serve_on(&shop, &free_addr());
    shop.ok(&["contact", "add", "ada", json(&laptop, &["id"])["ticket"].as_str().unwrap()]);
    let shop_ticket = json(&shop, &["id"])["ticket"].as_str().unwrap().to_owned();
    laptop.ok(&["grant", &shop_ticket, "--fields", "profile.email", "--purpose", "delivery"]);
    shop.ok(&["sync", "ada", "--no-relay"]);
    let box_ticket = json(&home, &["id"])["ticket"].as_str().unwrap().to_owned();
    // With the laptop stopped, the box answers for the customer.
    drop(laptop_serving);
    shop.ok(&["sync", &box_ticket, "--no-relay"]);

    // Removed on the laptop (which holds the identity key): the shop's next sync with the
    // laptop brings the signed removal, and from then on the shop refuses the box, even when
    // asked to dial it and nothing else answers.
    laptop.ok(&["device", "rm", "box"]);
    let laptop_serving = serve_on(&laptop, &laptop_addr).0;
    shop.ok(&["sync", "ada", "--no-relay"]);
    shop.ok(&["sync", &box_ticket, "--no-relay"]); // reaches the laptop instead
    drop(laptop_serving);
    let err = shop.fails(&["sync", &box_ticket, "--no-relay"], 2);
    assert!(err.contains("removed from its identity"), "{err}");
    let _laptop_serving = serve_on(&laptop, &laptop_addr).0;
    let shared = shop.json(&["shared"], "shared");
    assert_eq!(
        shared["shares"][0]["values"]["profile"]["email"], "ada@example.org",
        "the laptop still serves"
    );
}

/// Finding: a removal made on one identity-key holder never reached another. Two devices hold
/// the identity key (the box recovered it); the phone, linked on the laptop, is removed on the
/// box by the name the laptop gave it. The laptop learns the removal, cuts the phone off, and
/// a grant the phone signs afterwards is void there.
#[test]
fn a_removal_on_one_key_holder_reaches_the_other_key_holder() {
    let laptop = TestVault::new();
    let (laptop_addr, box_addr, phone_addr) = (free_addr(), free_addr(), free_addr());
    let _laptop_serving = serve_on(&laptop, &laptop_addr).0;
    let home = TestVault::uninitialised();
    pair(&laptop, &home, "box");
    let _box_serving = serve_on(&home, &box_addr).0;
    let phone = TestVault::uninitialised();
    pair(&laptop, &phone, "phone");
    let phone_serving = serve_on(&phone, &phone_addr).0;
    // The box learns of the phone (and its name) from the laptop.
    eventually("the box knows the phone by name", || names(&home).contains(&("phone".to_owned(), true)));
    laptop.ok(&["profile", "set", "email", "before@example.org"]);
    eventually("the phone in sync", || profile(&phone, "email") == "before@example.org");

    let code = laptop.ok(&["device", "recovery-code"]);
    home.ok(&["device", "recover", code.trim()]);
    // The phone is lost: it goes offline, and the box (now a key holder too) removes it.
    drop(phone_serving);
    home.ok(&["device", "rm", "phone"]);
    eventually("the laptop learns the removal", || names(&laptop).contains(&("phone".to_owned(), false)));

    // The thief's phone comes back: it gets nothing new from the laptop...
    let _phone_serving = serve_on(&phone, &phone_addr).0;
    laptop.ok(&["profile", "set", "email", "after@example.org"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(profile(&phone, "email"), "before@example.org", "the removed phone got the laptop's edit");
    // ...and what it signs is void on the laptop.
    let shop = TestVault::new();
    let shop_ticket = json(&shop, &["id"])["ticket"].as_str().unwrap().to_owned();
    phone.ok(&["grant", &shop_ticket, "--fields", "profile.email", "--purpose", "theft"]);
    std::thread::sleep(Duration::from_secs(2));
    let grants = json_or_no(&laptop, &["grants", "--all"]).to_string();
    assert!(!grants.contains("\"active\""), "a grant by the removed phone is active on the laptop: {grants}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn grant_status(v: &TestVault, id: &str) -> String {
    let grants = json_or_no(v, &["grants", "--all"]);
    let found = grants["grants"].as_array().unwrap().iter().find(|g| g["id"] == id).cloned();
    found.map(|g| g["status"].as_str().unwrap().to_owned()).unwrap_or_default()
}

/// Finding: a device restored from a backup reused the numbers of its sharing-state log, and
/// its other device dropped its new entries as held already: a revocation made on the restored
/// box never reached the laptop. Now the fork is found, the box goes on under a fresh origin,
/// the revocation arrives, the box gets back what it did before the restore, and both say so
/// in the access log.
#[test]
fn a_revocation_on_a_device_restored_from_a_backup_reaches_the_other_device() {
    let laptop = TestVault::new();
    let (laptop_addr, box_addr) = (free_addr(), free_addr());
    let _laptop_serving = serve_on(&laptop, &laptop_addr).0;
    let home = TestVault::uninitialised();
    pair(&laptop, &home, "box");
    let shop = TestVault::new();
    let shop_ticket = json(&shop, &["id"])["ticket"].as_str().unwrap().to_owned();
    let grant = |v: &TestVault, purpose: &str| {
        let args = ["grant", &shop_ticket, "--fields", "profile.email", "--purpose", purpose];
        json(v, &args)["id"].as_str().unwrap().to_owned()
    };
    let g1 = grant(&home, "delivery");
    let box_serving = serve_on(&home, &box_addr).0;
    eventually("the laptop holds G1", || grant_status(&laptop, &g1) == "active");

    // Last week's backup of the box.
    drop(box_serving);
    let backup = home.tmp.path().join("backup");
    copy_dir(&home.dir, &backup);
    let box_serving = serve_on(&home, &box_addr).0;
    let (g2, g3) = (grant(&home, "invoices"), grant(&home, "returns"));
    eventually("the laptop holds the two later grants", || {
        grant_status(&laptop, &g2) == "active" && grant_status(&laptop, &g3) == "active"
    });

    // The box is restored from the backup, and G1 is revoked there.
    drop(box_serving);
    copy_dir(&backup, &home.dir);
    assert_eq!(grant_status(&home, &g2), "", "the restore lost G2 on the box");
    home.ok(&["revoke", &g1]);
    let _box_serving = serve_on(&home, &box_addr).0;
    eventually("the revocation reaches the laptop", || grant_status(&laptop, &g1) == "revoked");
    eventually("the box gets back what it did before the restore", || {
        grant_status(&home, &g2) == "active" && grant_status(&home, &g3) == "active"
    });
    for v in [&laptop, &home] {
        let audit = v.ok(&["audit"]);
        assert!(audit.contains("sharing state sent again"), "the user is told: {audit}");
    }
}

/// Finding: a thief of a device that held the identity key (with its passphrase) could sign as
/// the identity for ever, and lock the customer's other devices out at every peer with a roster
/// that removes them. Three devices and a shop, through the real binary: the phone rotates the
/// identity key with the recovery code (pre-rotation: the code holds the committed next key),
/// the rotation reaches the shop, and from then on the laptop's old key signs nothing the shop
/// takes (a later grant, a roster removing the other devices), while the grant made before the
/// rotation stays and the phone and the desktop go on serving. The laptop is deliberately not
/// removed here, so that the key rule alone refuses the thief (removing it also cuts it off).
#[test]
fn a_rotated_identity_key_voids_what_a_thief_signs_with_the_old_one() {
    let laptop = TestVault::new();
    laptop.ok(&["profile", "set", "email", "ada@example.org"]);
    let (laptop_addr, phone_addr, desktop_addr) = (free_addr(), free_addr(), free_addr());
    let laptop_serving = serve_on(&laptop, &laptop_addr).0;
    let phone = TestVault::uninitialised();
    pair(&laptop, &phone, "phone");
    let phone_serving = serve_on(&phone, &phone_addr).0;
    let desktop = TestVault::uninitialised();
    pair(&laptop, &desktop, "desktop");
    let desktop_serving = serve_on(&desktop, &desktop_addr).0;
    // The laptop's key events come with its rosters: the phone knows the desktop by name then.
    eventually("the phone knows the desktop", || names(&phone).contains(&("desktop".to_owned(), true)));
    let code = laptop.ok(&["device", "recovery-code"]);
    assert!(code.trim().starts_with("vaultkey1-"), "{code}");
    laptop.fails(&["device", "recovery-code"], 2);

    // Before the theft: the shop holds a grant, and the customer's key state and roster.
    let shop = TestVault::new();
    let _shop_serving = serve_on(&shop, &free_addr()).0;
    shop.ok(&["contact", "add", "ada", json(&laptop, &["id"])["ticket"].as_str().unwrap()]);
    let shop_ticket = json(&shop, &["id"])["ticket"].as_str().unwrap().to_owned();
    laptop.ok(&["grant", &shop_ticket, "--fields", "profile.email", "--purpose", "before the theft"]);
    shop.ok(&["sync", "ada", "--no-relay"]);
    let purposes = |v: &TestVault| json(v, &["shared"]).to_string();
    assert!(purposes(&shop).contains("before the theft"));

    // The laptop is stolen, passphrase and all. The customer rotates on the phone, and the
    // rotation reaches the desktop and the shop.
    drop(laptop_serving);
    let new_code = phone.ok(&["device", "recover", code.trim()]);
    assert!(new_code.trim().starts_with("vaultkey1-") && new_code.trim() != code.trim(), "{new_code}");
    phone.ok(&["sync", &shop_ticket, "--no-relay"]);
    assert_eq!(json(&phone, &["id"])["rotations"], 1);
    eventually("the desktop learns of the rotation", || json(&desktop, &["id"])["rotations"] == 1);
    let err = desktop.fails(&["device", "recover", code.trim()], 2);
    assert!(err.contains("used up"), "the used code is refused: {err}");

    // The thief serves the laptop while the customer's devices are off, signs a grant to the
    // shop and removes the customer's other devices, all with the old key.
    drop(phone_serving);
    drop(desktop_serving);
    let _thief_serving = serve_on(&laptop, &laptop_addr).0;
    laptop.ok(&["grant", &shop_ticket, "--fields", "profile.email", "--purpose", "signed by the thief"]);
    laptop.ok(&["device", "rm", "phone"]);
    laptop.ok(&["device", "rm", "desktop"]);
    let _ = shop.run(&["sync", "ada", "--no-relay"]);
    let held = purposes(&shop);
    assert!(!held.contains("signed by the thief"), "the shop took the old key's grant: {held}");
    assert!(held.contains("before the theft"), "the grant made before the rotation is kept: {held}");
    drop(_thief_serving);

    // The customer's devices are not locked out: the phone's new grant reaches the shop, and
    // the desktop still answers for the customer.
    let _phone_serving = serve_on(&phone, &phone_addr).0;
    let _desktop_serving = serve_on(&desktop, &desktop_addr).0;
    phone.ok(&["grant", &shop_ticket, "--fields", "profile.email", "--purpose", "after the rotation"]);
    let phone_ticket = json(&phone, &["id"])["ticket"].as_str().unwrap().to_owned();
    shop.ok(&["sync", &phone_ticket, "--no-relay"]);
    assert!(purposes(&shop).contains("after the rotation"));
    let desktop_ticket = json(&desktop, &["id"])["ticket"].as_str().unwrap().to_owned();
    shop.ok(&["sync", &desktop_ticket, "--no-relay"]);
}

/// Finding: a removed device went on calling itself "this device", syncing and serving, with no
/// word of its removal. Removed while it was off, it learns the removal from the identity key's
/// signed roster the next time it calls another device of its identity: its node stops and says
/// why, and every command on it says so too. It cannot serve or sync again.
#[test]
fn a_removed_device_learns_its_removal_stops_and_says_so() {
    let laptop = TestVault::new();
    let (laptop_addr, box_addr) = (free_addr(), free_addr());
    let _laptop_serving = serve_on(&laptop, &laptop_addr).0;
    let home = TestVault::uninitialised();
    pair(&laptop, &home, "box");
    let out = home.run(&["id"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("removed"), "no word of a removal yet");

    // Removed while the box is off; it comes back and calls the laptop.
    laptop.ok(&["device", "rm", "box"]);
    let mut box_serving = serve_on(&home, &box_addr).0;
    eventually("the box's node stops", || box_serving.0.try_wait().unwrap().is_some());
    let status = box_serving.0.wait().unwrap();
    assert!(!status.success(), "a node stopped by a removal does not exit as a success");

    let this: Vec<Value> = home.json(&["device", "list"], "device-list")["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["this"] == true)
        .cloned()
        .collect();
    assert!(this[0]["removed_at"].is_i64(), "the box lists itself removed: {this:?}");
    let out = home.run(&["id"]);
    assert!(out.status.success(), "reading still works");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("this device was removed from your identity"), "{said}");
    let err = home.fails(&["serve", "--no-relay", "--bind", &box_addr], 2);
    assert!(err.contains("removed from your identity"), "{err}");
    let laptop_ticket = vault_tests::ticket(&laptop);
    let err = home.fails(&["sync", &laptop_ticket, "--no-relay"], 2);
    assert!(err.contains("removed from your identity"), "{err}");
}

/// The stolen-laptop journey: the box takes the identity key with the recovery code (a
/// rotation) and removes the laptop. The laptop, back online, learns both: the rotation (so
/// the roster signed by the new key is believed, and the old key it held is dropped) and its
/// removal; its node stops.
#[test]
fn a_device_removed_after_a_rotation_learns_it_too() {
    let laptop = TestVault::new();
    let (laptop_addr, box_addr) = (free_addr(), free_addr());
    let laptop_serving = serve_on(&laptop, &laptop_addr).0;
    let home = TestVault::uninitialised();
    pair(&laptop, &home, "box");
    let code = laptop.ok(&["device", "recovery-code"]);
    // The box learns the identity's key events from the laptop, then the laptop goes away.
    let _box_serving = serve_on(&home, &box_addr).0;
    eventually("the box recovers the identity key once it has the key events", || {
        home.run(&["device", "recover", code.trim()]).status.success()
    });
    drop(laptop_serving);
    home.ok(&["device", "rm", "first"]);
    let mut laptop_serving = serve_on(&laptop, &laptop_addr).0;
    eventually("the laptop's node stops", || laptop_serving.0.try_wait().unwrap().is_some());
    let out = laptop.run(&["id", "--json"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("this device was removed from your identity"), "{said}");
    let id: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(id["identity_key"], true, "the laptop still holds the rotated-away key: {id}");
}

/// Finding: `init --join` with a used code asked for the new passphrase twice, and failed only
/// afterwards. The code is checked first: a used one fails before any passphrase is asked for,
/// and a live one stays usable when the joiner stops at the passphrase prompt.
#[test]
fn the_code_is_checked_before_the_passphrase_and_survives_a_stop_there() {
    let laptop = TestVault::new();
    let home = TestVault::uninitialised();
    let join_without_passphrase = |v: &TestVault, code: &str| {
        let out = v
            .cmd(&["init", "--join", code, "--no-relay", "--insecure-fast-kdf"])
            .env_remove("VAULT_PASSPHRASE")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let (mut inviter, mut prompt, code) = invite(&laptop, "box");
    let said = join_without_passphrase(&home, &code);
    assert!(said.contains("passphrase"), "stopped at the passphrase: {said}");
    assert!(!home.dir.join(vault_core::DB_FILE).exists());
    // No attempt was made: the same code still pairs.
    let mut joiner = start_join(&home, &code);
    let mut joiner_err = std::io::BufReader::new(joiner.stderr.take().unwrap());
    let digits = vault_tests::pairing::digits_shown(&mut joiner_err);
    prompt_reached(&mut prompt);
    inviter.stdin.take().unwrap().write_all(format!("{digits}\n").as_bytes()).unwrap();
    let (ok, text) = finish(joiner);
    assert!(ok, "{text}{}", stderr_rest(joiner_err));
    assert!(finish(inviter).0);

    // Used now: refused before any passphrase is asked for.
    let other = TestVault::uninitialised();
    let said = join_without_passphrase(&other, &code);
    assert!(said.contains("cannot reach the device that made this code"), "{said}");
    assert!(!said.contains("passphrase"), "asked for a passphrase first: {said}");
}
