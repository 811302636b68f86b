use std::time::Instant;
use vault_core::{DeviceKey, KdfParams, Passphrase, Price, PurchaseRecord, Vault};
fn main() {
    let d1 = tempfile::tempdir().unwrap();
    let mut v =
        Vault::at(d1.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
    let recs: Vec<PurchaseRecord> = (0..10_000)
        .map(|i| PurchaseRecord {
            item: format!("item {i}"),
            seller: "Shop".into(),
            price: Price { amount_minor: i * 10, currency: "EUR".into() },
            date: "2026-01-02".into(),
            category: Some("food".into()),
            tags: vec!["a".into()],
            rating: Some(4),
            review: Some("fine".into()),
        })
        .collect();
    for b in recs.chunks(100) {
        v.add_purchases(b).unwrap();
    }
    for _ in 0..3 {
        let t = Instant::now();
        let bytes = v.export_automerge();
        let t_export = t.elapsed();
        let t = Instant::now();
        let am = automerge::AutoCommit::load(&bytes).unwrap();
        let t_load = t.elapsed();
        let t = Instant::now();
        let mut am2 = am.clone();
        let _ = am2.save();
        let t_save = t.elapsed();
        let device = DeviceKey::generate();
        let t = Instant::now();
        let p = v.devices_mut().invite(device.public(), &format!("b{}", t_export.as_nanos())).unwrap();
        let t_invite = t.elapsed();
        let d2 = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let j = Vault::at(d2.path())
            .kdf(KdfParams::INSECURE_FOR_TESTS)
            .join(&Passphrase::new("o"), device, p)
            .unwrap();
        let t_join = t.elapsed();
        drop(j);
        println!(
            "export {t_export:?} load {t_load:?} save {t_save:?} invite {t_invite:?} join {t_join:?} bytes {}",
            bytes.len()
        );
    }
}
