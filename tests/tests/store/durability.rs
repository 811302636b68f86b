//! A command that reports success has made its change durable: processes killed at random
//! points during a stream of writes never lose an acknowledged write, and never leave the vault
//! unreadable. Concurrent writers never lose each other's writes.

use std::time::{Duration, Instant};

use rand::RngExt;
use vault_tests::TestVault;

fn add_args(item: &str) -> Vec<String> {
    ["purchase", "add", "--item", item, "--seller", "Acme", "--price", "1.00", "--currency", "EUR"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn items(v: &TestVault) -> Vec<String> {
    let out = v.run(&["--json", "purchase", "list"]);
    if out.status.code() == Some(1) {
        return Vec::new();
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list["purchases"].as_array().unwrap().iter().map(|p| p["item"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn killed_writers_never_lose_acknowledged_writes() {
    let v = TestVault::new();
    // How long one write takes here, to spread the kills over its whole run. A busy machine
    // changes that as the test goes: the estimate follows what the kills meet (longer after a
    // kill, shorter after a completed write), so that kills land both before and after the
    // commit however fast the machine is.
    let start = Instant::now();
    v.ok(&add_args("warm-up").iter().map(String::as_str).collect::<Vec<_>>());
    let mut typical = start.elapsed().max(Duration::from_millis(5));

    let mut rng = rand::rng();
    let mut acknowledged = vec!["warm-up".to_owned()];
    let (mut killed, mut completed) = (0, 0);
    let mut i = 0;
    while i < 80 || killed == 0 || completed == 0 {
        assert!(
            i < 1000,
            "{completed} writes completed, {killed} killed: the kills never landed on both sides"
        );
        let item = format!("item-{i}");
        let args = add_args(&item);
        let mut child = v
            .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = typical.mul_f64(rng.random_range(0.0..1.3));
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL: no destructors, no flushing
        let out = child.wait_with_output().unwrap();
        if out.status.success() && !out.stdout.is_empty() {
            acknowledged.push(item);
            completed += 1;
            typical = typical.mul_f64(0.9).max(Duration::from_millis(5));
        } else {
            killed += 1;
            typical = typical.mul_f64(1.1);
        }
        // Every few rounds, the vault must open and hold every acknowledged write.
        if i % 10 == 9 {
            let present = items(&v);
            for a in &acknowledged {
                assert!(present.contains(a), "acknowledged write {a} lost after a kill");
            }
        }
        i += 1;
    }
    eprintln!("{completed} writes completed, {killed} killed at a random point");
    assert!(killed > 0 && completed > 0, "the kills should land both before and after the commit");
    let present = items(&v);
    for a in &acknowledged {
        assert!(present.contains(a), "acknowledged write {a} lost");
    }
    let verify: serde_json::Value = serde_json::from_str(&v.ok(&["--json", "verify"])).unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn concurrent_writers_do_not_lose_each_others_writes() {
    let v = TestVault::new();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let cmds: Vec<_> = (0..8).map(|i| add_args(&format!("w{w}-{i}"))).collect();
            let dir = v.dir.clone();
            let pass = v.passphrase.clone();
            std::thread::spawn(move || {
                for args in cmds {
                    let out = std::process::Command::new(vault_tests::vault_bin())
                        .args(&args)
                        .env("VAULT_DIR", &dir)
                        .env("VAULT_PASSPHRASE", &pass)
                        .stdin(std::process::Stdio::null())
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let present = items(&v);
    assert_eq!(present.len(), 32, "{present:?}");
}
