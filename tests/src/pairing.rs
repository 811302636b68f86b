//! Pairing a new device through the real binary: `vault device add` on one side, `vault init
//! --join CODE` on the other, the six digits read from one and typed into the other.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStderr, Stdio};

use crate::TestVault;

/// A free UDP port on loopback (for nodes that must come back on the same address).
pub fn free_addr() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

/// `vault device add NAME` on `v`, waiting: the child, its stderr and the code it printed.
pub fn invite(v: &TestVault, name: &str) -> (Child, BufReader<ChildStderr>, String) {
    let mut child = v
        .cmd(&["device", "add", name, "--no-relay"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut code = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut code).unwrap();
    assert!(code.starts_with("vaultpair1"), "the code is the first line: {code:?}");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    (child, stderr, code.trim().to_owned())
}

/// `vault init --join CODE` for the uninitialised `v`.
pub fn start_join(v: &TestVault, code: &str) -> Child {
    v.cmd(&["init", "--join", code, "--no-relay", "--insecure-fast-kdf"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the inviter's stderr up to its question (which ends without a newline).
pub fn prompt_reached(stderr: &mut impl BufRead) {
    read_until(stderr, "Type the six digits", b':');
}

/// Reads the joiner's stderr up to the line with the digits; returns them.
pub fn digits_shown(stderr: &mut impl BufRead) -> String {
    read_until(stderr, "type these digits", b'\n').chars().filter(char::is_ascii_digit).collect()
}

/// Reads `stderr` byte by byte until a piece that contains `marker` and ends with `end`.
pub fn read_until(stderr: &mut impl BufRead, marker: &str, end: u8) -> String {
    let mut piece = Vec::new();
    let mut byte = [0u8];
    loop {
        let n = stderr.read(&mut byte).unwrap();
        assert!(n > 0, "stream ended before {marker:?}; got {:?}", String::from_utf8_lossy(&piece));
        piece.push(byte[0]);
        let text = String::from_utf8_lossy(&piece).into_owned();
        if byte[0] == end && text.contains(marker) {
            return text;
        }
        if byte[0] == b'\n' {
            piece.clear();
        }
    }
}

pub fn finish(child: Child) -> (bool, String) {
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("panicked"), "{text}");
    (out.status.success(), text)
}

pub fn stderr_rest(mut stderr: BufReader<ChildStderr>) -> String {
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    rest
}

/// Pairs `laptop` with the new device `new` under `name`, the digits the new device shows
/// typed on the laptop; returns the code used.
pub fn pair(laptop: &TestVault, new: &TestVault, name: &str) -> String {
    let (mut inviter, mut prompt, code) = invite(laptop, name);
    let mut joiner = start_join(new, &code);
    let mut joiner_err = BufReader::new(joiner.stderr.take().unwrap());
    let shown_there = digits_shown(&mut joiner_err);
    assert_eq!(shown_there.len(), 6);
    prompt_reached(&mut prompt);
    inviter.stdin.take().unwrap().write_all(format!("{shown_there}\n").as_bytes()).unwrap();
    let (ok, text) = finish(joiner);
    assert!(ok, "join failed: {text}{}", stderr_rest(joiner_err));
    let (ok, text) = finish(inviter);
    assert!(ok, "device add failed: {text}{}", stderr_rest(prompt));
    code
}
