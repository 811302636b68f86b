//! A seller across machines: three nodes of one seller, each on a host of its own (a network
//! namespace), twenty-four customers on three more hosts, one PostgreSQL reached through the
//! lab's bridge (the scenario: `vault_tests::nodes`). The same runs on loopback in
//! `cli::mirror_nodes`.
//!
//! Needs root and iproute2 (`ip netns`): where namespaces cannot be made, the test says why and
//! passes without running (CI runs as root and has them).

use vault_tests::lab::{Lab, PORT};
use vault_tests::nodes::{Hosts, three_nodes_share_the_customers};
use vault_tests::pg::{Gate, OwnCluster, TestCa};

#[test]
fn three_nodes_on_separate_hosts_share_the_customers_and_one_that_stops_costs_nothing() {
    let hosts = ["node0", "node1", "node2", "shoppers0", "shoppers1", "shoppers2"];
    let lab = match Lab::new("10.78.0", &hosts) {
        Ok(lab) => lab,
        Err(why) => {
            eprintln!("skipped: network namespaces cannot be made here ({why}); run as root with iproute2");
            return;
        }
    };
    // The database is on the test's own host; the nodes reach it across the bridge, over TLS
    // with the server's certificate checked, as a seller's machines would.
    let host_addr = lab.link_host().expect("the test's host joined to the lab");
    let cluster = OwnCluster::start();
    let ca = TestCa::new("vault test CA");
    let (cert, key) = ca.server(&[&host_addr]);
    cluster.serve_tls(&cert, &key);
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let db = cluster.db();
    let gate = Gate::start_on(&format!("{host_addr}:0"), db.addr);
    let node = |i: usize| (Some(lab.ns(hosts[i])), format!("{}:{PORT}", lab.addr(i, 0)));
    let hosts = Hosts {
        nodes: [node(0), node(1), node(2)],
        customers: (0..24)
            .map(|i| {
                let host = hosts[3 + i % 3];
                (Some(lab.ns(host)), format!("{}:0", lab.addr_of(host)))
            })
            .collect(),
        db_url: format!("{}?sslmode=verify-full&sslrootcert={}", db.url_via(gate.addr), ca_file.display()),
    };
    three_nodes_share_the_customers(&db, &hosts);
}
