//! Another user's side of the unlock agent's tests (`tests/tests/cli/unlock.rs` runs it as uid
//! 65534): `agent-probe ask SOCKET` asks an agent for its key and prints what came back (`key`,
//! `refused` or `nothing`); `agent-probe serve SOCKET` poses as an agent: it listens, prints
//! `ready`, and answers one request with a key.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(socket)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: agent-probe ask|serve SOCKET");
        std::process::exit(2);
    };
    match mode.as_str() {
        "ask" => {
            let mut stream = UnixStream::connect(socket).expect("connect");
            // The agent may close before the request is even written: that is "nothing" too.
            let mut answer = Vec::new();
            if stream.write_all(b"K\0\0").is_ok() {
                let _ = stream.read_to_end(&mut answer);
            }
            println!(
                "{}",
                match answer.first() {
                    Some(b'k') => "key",
                    Some(_) => "refused",
                    None => "nothing",
                }
            );
        }
        "serve" => {
            let listener = UnixListener::bind(socket).expect("bind");
            println!("ready");
            std::io::stdout().flush().expect("flush");
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 3];
            let _ = stream.read_exact(&mut request);
            // A well-formed key of some vault: 16 + 32 + 72 bytes.
            let mut frame = vec![b'k', 0, 120];
            frame.extend_from_slice(&[7u8; 120]);
            let _ = stream.write_all(&frame);
        }
        _ => std::process::exit(2),
    }
}
