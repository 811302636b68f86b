//! The checklist of a new statement kind or frame (see the module documentation of
//! `statement`), as tests: each fails, naming what is missing, when a step it can see was
//! skipped. It reads the source tree, the known-answer fixture and the fuzz workspace.

use std::fs;
use std::path::{Path, PathBuf};

use super::{KINDS, label};
use crate::protocol::market::{MarketFrame, decode_market};
use crate::protocol::{Frame, FrameError, decode};

/// A kind of signed statement, and where its parts are.
pub(super) struct Kind {
    /// Its name: its file in `statement/`, its fuzz target and seed corpus, its JSON key.
    pub(super) name: &'static str,
    /// Its type.
    pub(super) ty: &'static str,
    /// Its signing label.
    pub(super) label: &'static [u8],
    /// The file that defines it, under `src/`.
    pub(super) home: &'static str,
}

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
    // Every label written in statement/ is a kind's in KINDS (or the device prefix): a kind
    // left out of KINDS is found by its label.
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src/statement"), &mut files);
    for file in files.into_iter().filter(|f| !f.ends_with("checklist.rs")) {
        let text = read(&file);
        for literal in text.split("b\"vault/v1/").skip(1) {
            let label = format!("vault/v1/{}", &literal[..literal.find('"').unwrap_or(0)]);
            let known =
                KINDS.iter().any(|k| k.label == label.as_bytes()) || label.as_bytes() == label::BY_DEVICE;
            assert!(known, "{}: label {label} belongs to no kind in KINDS", file.display());
        }
    }
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

/// The lines of a known-answer fixture, as bytes.
fn hex_lines(text: &str) -> Vec<(&str, Vec<u8>)> {
    text.lines()
        .map(|line| {
            let bytes = (0..line.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex"))
                .collect();
            (line, bytes)
        })
        .collect()
}

fn fixture_frames() -> Vec<Frame> {
    hex_lines(include_str!("../../tests/fixtures/frames-v1.txt"))
        .into_iter()
        .map(|(line, bytes)| {
            decode(&bytes).unwrap_or_else(|e| panic!("frames-v1.txt: a line does not decode ({e}): {line}"))
        })
        .collect()
}

fn market_fixture_frames() -> Vec<MarketFrame> {
    hex_lines(include_str!("../../tests/fixtures/market-v1.txt"))
        .into_iter()
        .map(|(line, bytes)| {
            decode_market(&bytes)
                .unwrap_or_else(|e| panic!("market-v1.txt: a line does not decode ({e}): {line}"))
        })
        .collect()
}

#[test]
fn every_market_frame_code_has_a_known_answer_line() {
    let text = include_str!("../../tests/fixtures/market-v1.txt");
    let codes: Vec<u8> =
        (0..=u8::MAX).filter(|&c| decode_market(&[c]) != Err(FrameError::UnknownType(c))).collect();
    assert!(codes.len() >= 6, "found only {} market frame codes: the probe is broken", codes.len());
    for code in codes {
        let prefix = format!("{code:02x}");
        assert!(
            text.lines().any(|l| l.starts_with(&prefix)),
            "market frame code 0x{prefix} has no known-answer line in tests/fixtures/market-v1.txt"
        );
    }
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
    let mut carried: Vec<&str> = fixture_frames().iter().flat_map(Frame::statements_carried).collect();
    carried.extend(market_fixture_frames().iter().flat_map(MarketFrame::statements_carried));
    for kind in KINDS {
        assert!(
            carried.contains(&kind.name),
            "no frame of tests/fixtures/frames-v1.txt or market-v1.txt carries a {} (a sample in \
             protocol/tests.rs or protocol/market/tests.rs)",
            kind.name
        );
    }
}
