//! Several nodes talking over real endpoints: sharing, late grantees, floods, faulty networks,
//! hostile peers and nodes on separate hosts (one test binary, one build).

mod adversarial;
mod flood;
mod idle;
mod late_grantee;
mod net_faults;
mod seller_nodes;
mod separate_hosts;
mod sharing;
