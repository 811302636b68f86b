//! The customer's journey through the CLI, as a user types it: init, profile, purchases,
//! preferences, export and import, with `--json` output checked against schemas/cli/.

use serde_json::json;
use vault_tests::TestVault;

#[test]
fn customer_journey_with_json_output() {
    let v = TestVault::uninitialised();
    let init = v.json(&["init", "--insecure-fast-kdf"], "init");
    let id = v.json(&["id"], "id");
    assert_eq!(init["identity"], id["identity"]);
    let qr = v.json(&["id", "--qr"], "id");
    assert!(qr["qr"].as_str().unwrap().contains('█'));

    v.json(&["profile", "set", "email", "ada@example.org"], "profile-set");
    v.json(&["profile", "set", "address.city", "Lyon"], "profile-set");
    // Global options work after the command too.
    v.ok(&["profile", "set", "name", "Ada Lovelace", "--json"]);
    let profile = v.json(&["profile", "get"], "profile-get");
    assert_eq!(
        profile["profile"],
        json!({"email": "ada@example.org", "name": "Ada Lovelace", "address": {"city": "Lyon"}})
    );
    assert_eq!(v.ok(&["profile", "get", "address.city"]).trim(), "Lyon");

    let tea = v.json(
        &[
            "purchase",
            "add",
            "--item",
            "Green tea",
            "--seller",
            "Acme",
            "--price",
            "4.50",
            "--currency",
            "eur",
            "--date",
            "2026-11-01",
            "--tag",
            "food",
            "--tag",
            "tea",
            "--rating",
            "5",
            "--review",
            "Fresh",
        ],
        "purchase-add",
    );
    assert_eq!(tea["price"], json!({"amount_minor": 450, "currency": "EUR"}));
    let book = v.json(
        &[
            "purchase",
            "add",
            "--item",
            "Dune",
            "--seller",
            "Books & Co",
            "--price",
            "12",
            "--currency",
            "EUR",
            "--date",
            "2026-11-05",
            "--tag",
            "books",
        ],
        "purchase-add",
    );
    let list = v.json(&["purchase", "list"], "purchase-list");
    let ids: Vec<&str> =
        list["purchases"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [book["id"].as_str().unwrap(), tea["id"].as_str().unwrap()], "newest first");
    let books = v.json(&["purchase", "list", "--tag", "books"], "purchase-list");
    assert_eq!(books["purchases"].as_array().unwrap().len(), 1);
    let since = v.json(&["purchase", "list", "--since", "2026-11-02"], "purchase-list");
    assert_eq!(since["purchases"][0]["item"], "Dune");
    // Nothing found is a valid "no": exit 1.
    v.fails(&["purchase", "list", "--seller", "Nobody"], 1);

    v.json(&["pref", "set", "diet", "vegetarian"], "pref-set");
    v.json(&["pref", "set", "shoe-size", "39"], "pref-set");
    assert_eq!(v.json(&["pref", "get", "diet"], "pref-get")["value"], "vegetarian");
    assert_eq!(v.json(&["pref", "unset", "shoe-size"], "pref-unset")["removed"], true);
    v.fails(&["pref", "get", "shoe-size"], 1);
    v.fails(&["pref", "unset", "shoe-size"], 1);

    let rm = v.json(&["purchase", "rm", book["id"].as_str().unwrap()], "purchase-rm");
    assert_eq!(rm["removed"], true);
    v.fails(&["purchase", "rm", book["id"].as_str().unwrap()], 1);

    let verify = v.json(&["verify"], "verify");
    assert_eq!(verify["ok"], true);

    // Export JSON, import into a fresh vault elsewhere: same data.
    let export_path = v.tmp.path().join("export.json");
    let exported = v.json(&["export", "-o", export_path.to_str().unwrap()], "export");
    assert_eq!(exported["format"], "json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&export_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "exports are readable by the owner only");
    }
    let other = TestVault::new();
    let imported = other.json(&["import", export_path.to_str().unwrap()], "import");
    assert_eq!(imported["mode"], "values");
    assert_eq!(other.ok(&["export"]), v.ok(&["export"]));

    // Export Automerge, import into a fresh vault: same data, merged (shared genesis).
    let am_path = v.tmp.path().join("export.automerge");
    v.json(&["export", "--format", "automerge", "-o", am_path.to_str().unwrap()], "export");
    let third = TestVault::new();
    assert_eq!(third.json(&["import", am_path.to_str().unwrap()], "import")["mode"], "merged");
    assert_eq!(third.ok(&["export"]), v.ok(&["export"]));
}

/// Two copies of one vault edited apart come back together without loss through an Automerge
/// export and import.
#[test]
fn automerge_export_merges_copies_edited_apart() {
    let laptop = TestVault::new();
    laptop.ok(&["profile", "set", "name", "Ada"]);
    laptop.ok(&["purchase", "add", "--item", "Tea", "--seller", "Acme", "--price", "3", "--currency", "EUR"]);

    // A copy of the vault (a second device restored from a backup).
    let phone = TestVault::uninitialised();
    std::fs::create_dir_all(&phone.dir).unwrap();
    std::fs::copy(laptop.db(), phone.db()).unwrap();

    laptop.ok(&["profile", "set", "email", "ada@example.org"]);
    laptop.ok(&[
        "purchase",
        "add",
        "--item",
        "Coffee",
        "--seller",
        "Acme",
        "--price",
        "5",
        "--currency",
        "EUR",
    ]);
    phone.ok(&["pref", "set", "diet", "vegan"]);
    phone.ok(&["profile", "set", "address.city", "Lyon"]);
    phone.ok(&[
        "purchase",
        "add",
        "--item",
        "Bread",
        "--seller",
        "Bakery",
        "--price",
        "2.20",
        "--currency",
        "EUR",
    ]);

    let from_phone = phone.tmp.path().join("phone.automerge");
    phone.ok(&["export", "--format", "automerge", "-o", from_phone.to_str().unwrap()]);
    assert_eq!(laptop.json(&["import", from_phone.to_str().unwrap()], "import")["mode"], "merged");

    let merged: serde_json::Value = serde_json::from_str(&laptop.ok(&["export"])).unwrap();
    assert_eq!(
        merged["profile"],
        json!({"name": "Ada", "email": "ada@example.org", "address": {"city": "Lyon"}})
    );
    assert_eq!(merged["preferences"], json!({"diet": "vegan"}));
    let mut items: Vec<&str> =
        merged["purchases"].as_object().unwrap().values().map(|p| p["item"].as_str().unwrap()).collect();
    items.sort();
    assert_eq!(items, ["Bread", "Coffee", "Tea"]);
    assert_eq!(laptop.json(&["verify"], "verify")["ok"], true);
}
