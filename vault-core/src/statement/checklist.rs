//! The checklist of a new statement kind or frame (see the module documentation of
//! `statement`), as tests: each fails, naming what is missing, when a step it can see was
//! skipped. It reads the source tree, the known-answer fixture and the fuzz workspace.

use std::fs;
use std::path::{Path, PathBuf};

use crate::protocol::{Ended, Frame, FrameError, decode};
use crate::statement::label;

/// A kind of signed statement, and where its parts are.
struct Kind {
    /// Its name: its file in `statement/`, its fuzz target and seed corpus, its JSON key.
    name: &'static str,
    /// Its type.
    ty: &'static str,
    /// Its signing label.
    label: &'static [u8],
    /// The file that defines it, under `src/`.
    home: &'static str,
}

/// Every kind of signed statement.
const KINDS: &[Kind] = &[
    Kind { name: "grant", ty: "Grant", label: label::GRANT, home: "statement/grant.rs" },
    Kind { name: "revocation", ty: "Revocation", label: label::REVOCATION, home: "statement/revocation.rs" },
    Kind {
        name: "erasure_receipt",
        ty: "ErasureReceipt",
        label: label::ERASURE_RECEIPT,
        home: "statement/erasure_receipt.rs",
    },
    Kind {
        name: "consent_request",
        ty: "ConsentRequest",
        label: label::CONSENT_REQUEST,
        home: "statement/consent_request.rs",
    },
    Kind { name: "denial", ty: "Denial", label: label::DENIAL, home: "statement/denial.rs" },
    Kind {
        name: "breach_notice",
        ty: "BreachNotice",
        label: label::BREACH_NOTICE,
        home: "statement/breach_notice.rs",
    },
    Kind {
        name: "device_roster",
        ty: "DeviceRoster",
        label: label::DEVICE_ROSTER,
        home: "statement/device_roster.rs",
    },
    Kind { name: "key_event", ty: "KeyEvent", label: label::KEY_EVENT, home: "statement/key_event.rs" },
    // With the identities and the tickets that carry it: it names both, and tickets name it.
    Kind {
        name: "device_certificate",
        ty: "DeviceCertificate",
        label: label::DEVICE_CERTIFICATE,
        home: "identity.rs",
    },
];

/// The files of `statement/` that are no kind.
const SHARED: &[&str] = &["checklist.rs", "ids.rs", "json.rs", "label.rs", "rules.rs"];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_kind_has_its_file_and_every_statement_impl_is_a_listed_kind() {
    let src = crate_dir().join("src");
    for kind in KINDS {
        assert!(src.join(kind.home).is_file(), "kind {}: no file src/{}", kind.name, kind.home);
    }
    for entry in fs::read_dir(src.join("statement")).expect("the statement folder") {
        let file = entry.expect("an entry").file_name().to_string_lossy().into_owned();
        let listed = KINDS.iter().any(|k| k.home == format!("statement/{file}"));
        assert!(
            listed || SHARED.contains(&file.as_str()),
            "statement/{file} is neither a kind in checklist::KINDS nor a shared file"
        );
    }
    // Spelled in two pieces so that this file does not find itself.
    let needle = ["impl Statement", " for "].concat();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = 0;
    for path in files {
        let text = read(&path);
        let home = path.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
        for rest in text.split(needle.as_str()).skip(1) {
            let ty: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let kind = KINDS.iter().find(|k| k.ty == ty);
            let kind = kind.unwrap_or_else(|| panic!("{ty} (src/{home}) is a statement missing from KINDS"));
            assert_eq!(kind.home, home, "{ty} is a statement defined outside its file");
            // Its name in messages is its name here, with spaces: the JSON key comes from it.
            let kind_const = format!("const KIND: &'static str = \"{}\";", kind.name.replace('_', " "));
            assert!(text.contains(&kind_const), "src/{home}: {ty}'s KIND is not \"{}\"", kind.name);
            found += 1;
        }
    }
    assert!(found >= 7, "found only {found} statement kinds: the scan is broken");
}

#[test]
fn labels_are_versioned_and_distinct() {
    for (i, kind) in KINDS.iter().enumerate() {
        assert!(kind.label.starts_with(b"vault/v1/"), "{}: label not versioned", kind.name);
        assert!(!kind.label.starts_with(label::BY_DEVICE), "{}: label in the device space", kind.name);
        for other in &KINDS[i + 1..] {
            assert_ne!(kind.label, other.label, "{} and {} share a label", kind.name, other.name);
        }
    }
    // Every label in label.rs is a kind's (and the device prefix).
    let labels = read(&crate_dir().join("src/statement/label.rs"));
    let consts = labels.lines().filter(|l| l.starts_with("pub(crate) const ")).count();
    assert_eq!(consts, KINDS.len() + 1, "a label in label.rs belongs to no kind in KINDS");
}

#[test]
fn every_kind_has_a_fuzz_target_a_seed_corpus_and_a_readme_row() {
    let fuzz = crate_dir().join("../fuzz");
    let manifest = read(&fuzz.join("Cargo.toml"));
    let readme = read(&fuzz.join("README.md"));
    for kind in KINDS {
        let name = kind.name;
        let target = fuzz.join(format!("fuzz_targets/{name}.rs"));
        assert!(target.is_file(), "kind {name}: no fuzz target fuzz/fuzz_targets/{name}.rs");
        assert!(read(&target).contains(kind.ty), "fuzz/fuzz_targets/{name}.rs does not feed {}", kind.ty);
        let bin = format!("[[bin]]\nname = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"\n");
        assert!(manifest.contains(&bin), "kind {name}: no [[bin]] for it in fuzz/Cargo.toml");
        let corpus = fuzz.join(format!("corpus/{name}"));
        let seeds = fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        assert!(seeds > 0, "kind {name}: no seed corpus in fuzz/corpus/{name}/");
        assert!(readme.contains(&format!("`{name}`")), "kind {name}: no row in fuzz/README.md");
    }
}

/// The statement kinds a frame carries. No wildcard arm: a new frame does not compile until it
/// is listed here.
fn carried(frame: &Frame) -> Vec<&'static str> {
    let ended = |e: &Ended| match e {
        Ended::Revoked(_) => Some("revocation"),
        Ended::Expired(_) => None,
    };
    match frame {
        Frame::Hello(_) | Frame::Offer(_) => vec!["device_certificate"],
        Frame::Shares { live, ended: gone } => {
            let grants = (!live.is_empty()).then_some("grant");
            grants.into_iter().chain(gone.iter().filter_map(ended)).collect()
        }
        Frame::Ended(e) => ended(e).into_iter().collect(),
        Frame::Erased(_) => vec!["erasure_receipt"],
        Frame::Request(_) => vec!["consent_request"],
        Frame::Denied(_) => vec!["denial"],
        Frame::Roster(_) => vec!["device_roster"],
        Frame::Notice(_) => vec!["breach_notice"],
        Frame::KeyEvents(_) => vec!["key_event"],
        Frame::ListShares
        | Frame::Open(_)
        | Frame::Sync(_)
        | Frame::Refused
        | Frame::RequestAck { .. }
        | Frame::OfferAck
        | Frame::NoticeAck { .. } => Vec::new(),
    }
}

fn fixture_frames() -> Vec<Frame> {
    let text = include_str!("../../tests/fixtures/frames-v1.txt");
    text.lines()
        .map(|line| {
            let bytes: Vec<u8> = (0..line.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex"))
                .collect();
            decode(&bytes).unwrap_or_else(|e| panic!("frames-v1.txt: a line does not decode ({e}): {line}"))
        })
        .collect()
}

#[test]
fn every_frame_code_has_a_known_answer_line() {
    let text = include_str!("../../tests/fixtures/frames-v1.txt");
    // A code the decoder knows is anything it does not call unknown: a lone type byte is then
    // a whole frame or a truncated one.
    let codes: Vec<u8> = (0..=u8::MAX).filter(|&c| decode(&[c]) != Err(FrameError::UnknownType(c))).collect();
    assert!(codes.len() >= 17, "found only {} frame codes: the probe is broken", codes.len());
    for code in codes {
        let prefix = format!("{code:02x}");
        assert!(
            text.lines().any(|l| l.starts_with(&prefix)),
            "frame code 0x{prefix} has no known-answer line in tests/fixtures/frames-v1.txt \
             (add a sample frame in protocol/tests.rs and its line)"
        );
    }
}

#[test]
fn every_kind_travels_in_a_known_answer_frame() {
    let carried: Vec<&str> = fixture_frames().iter().flat_map(carried).collect();
    for kind in KINDS {
        assert!(
            carried.contains(&kind.name),
            "no frame of tests/fixtures/frames-v1.txt carries a {} (a sample in protocol/tests.rs)",
            kind.name
        );
    }
}
