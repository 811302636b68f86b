//! The `vault` binary end to end: one module per command or journey, every test driving the real
//! binary against real vault directories (one test binary, one build).

mod bad_input;
mod breach;
mod consent;
mod derived;
mod devices;
mod devices_sharing;
mod field;
mod hostile_text;
mod init_passphrase;
mod intentions;
mod journey;
mod kdf;
mod live_changes;
mod live_grant;
mod mirror;
mod mirror_faults;
mod mirror_nodes;
mod mirror_tls;
mod net_faults;
mod network;
mod passphrase_command;
mod receipt_kantara;
mod sharing;
mod status;
mod strangers;
mod topics;
mod unlock;
