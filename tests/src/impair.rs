//! A userspace UDP impairment proxy between two nodes on this machine: loss, delay with jitter,
//! reordering and duplication per direction, a partition that drops everything, and heal.
//!
//! The kernel of the test hosts has no `netem` and no packet filter, so faults are made here,
//! in user space. The proxy has one socket per side: node A dials [`Proxy::addr_of_b`] to reach
//! B, node B dials [`Proxy::addr_of_a`] to reach A; what arrives on one side leaves from the
//! other, so each node sees the other at the proxy (other endpoints of a side, such as a
//! one-shot `sync`, are mapped to sockets of their own, as a NAT does). The decisions (lose, delay by how much,
//! hold back, duplicate) come from a seeded generator per direction: for the same sequence of
//! datagrams the same fates. (Which datagrams QUIC sends, and when, is not deterministic, so a
//! whole run is reproducible in its figures, not bit for bit.)
//!
//! The proxy only helps if it is the only way between the nodes: iroh holepunches to every
//! address a peer advertises (its bound sockets, see `vault-sync`'s endpoint), and on loopback
//! that succeeds and routes around any proxy. Tests therefore bind the two nodes in different
//! address families (A on `127.0.0.1`, B on `[::1]`): a node bound to one family has no socket
//! to reach the other, so the proxy, which bridges the families, is the only path between them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod fate;

pub use fate::{Fate, Impairment, Rng, decide};

/// A direction through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From node A to node B.
    AToB,
    /// From node B to node A.
    BToA,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::AToB => 0,
            Direction::BToA => 1,
        }
    }
}

/// What the proxy did in one direction (or both, summed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams that arrived at the proxy.
    pub received: u64,
    /// Their bytes (UDP payload).
    pub received_bytes: u64,
    /// Datagrams sent on, duplicates included.
    pub forwarded: u64,
    /// Their bytes.
    pub forwarded_bytes: u64,
    /// Datagrams lost on purpose (the loss rate).
    pub lost: u64,
    /// Datagrams dropped by a partition (on arrival, or waiting in the delay line).
    pub partitioned: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Datagrams held back to be overtaken.
    pub reordered: u64,
}

impl std::ops::Add for Counters {
    type Output = Counters;
    fn add(self, o: Counters) -> Counters {
        Counters {
            received: self.received + o.received,
            received_bytes: self.received_bytes + o.received_bytes,
            forwarded: self.forwarded + o.forwarded,
            forwarded_bytes: self.forwarded_bytes + o.forwarded_bytes,
            lost: self.lost + o.lost,
            partitioned: self.partitioned + o.partitioned,
            duplicated: self.duplicated + o.duplicated,
            reordered: self.reordered + o.reordered,
        }
    }
}
#[derive(Debug)]
struct State {
    impairment: [Impairment; 2],
    counters: [Counters; 2],
    rng: [Rng; 2],
    partitioned: bool,
    /// Sockets made for endpoints other than the two nodes' own (see [`Proxy::start`]), by
    /// the endpoint they stand in for.
    mapped: std::collections::HashMap<SocketAddr, Arc<UdpSocket>>,
    /// Their receiving tasks, stopped with the proxy.
    mapped_tasks: Vec<tokio::task::AbortHandle>,
}

/// A datagram on its way: when it is due, the socket it leaves from, where it goes.
type Outgoing = (Instant, Arc<UdpSocket>, SocketAddr, Vec<u8>);

/// A running proxy between node A and node B; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr_of_b: SocketAddr,
    addr_of_a: SocketAddr,
    state: Arc<Mutex<State>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in &self.state().mapped_tasks {
            task.abort();
        }
    }
}

fn loopback_like(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
    }
}

/// One side's listening socket and what it forwards to.
#[derive(Clone, Debug)]
struct Side {
    /// The direction of what arrives here.
    dir: Direction,
    /// Where the node of this side is bound (it is seen at the other side's listening socket).
    node: SocketAddr,
    /// The listening socket of this side: this side's endpoints send here to reach the other
    /// side's node, and get the other side's answers from here.
    listen: Arc<UdpSocket>,
    /// The other side's listening socket.
    other_listen: Arc<UdpSocket>,
    /// The other side's node.
    other_node: SocketAddr,
}

impl Proxy {
    /// Starts a proxy between the nodes bound at `a` and `b`, with no impairment yet; `seed`
    /// seeds both directions. Each side's socket is on loopback in that node's address family.
    ///
    /// The nodes see each other at the proxy ([`Self::addr_of_b`], [`Self::addr_of_a`]). Any
    /// other endpoint of one side (a one-shot `vault sync` binds its own port) gets a socket
    /// of its own on the other side, as a NAT would map it, so that answers find their way back.
    pub async fn start(a: SocketAddr, b: SocketAddr, seed: u64) -> io::Result<Proxy> {
        let facing_a = Arc::new(UdpSocket::bind(loopback_like(a)).await?);
        let facing_b = Arc::new(UdpSocket::bind(loopback_like(b)).await?);
        let state = Arc::new(Mutex::new(State {
            impairment: [Impairment::default(); 2],
            counters: [Counters::default(); 2],
            rng: [Rng::new(seed ^ 0xa2b), Rng::new(seed ^ 0xb2a)],
            partitioned: false,
            mapped: Default::default(),
            mapped_tasks: Vec::new(),
        }));
        let (to_b, to_b_rx) = mpsc::unbounded_channel();
        let (to_a, to_a_rx) = mpsc::unbounded_channel();
        let side_a = Side {
            dir: Direction::AToB,
            node: a,
            listen: facing_a.clone(),
            other_listen: facing_b.clone(),
            other_node: b,
        };
        let side_b = Side {
            dir: Direction::BToA,
            node: b,
            listen: facing_b.clone(),
            other_listen: facing_a.clone(),
            other_node: a,
        };
        let tasks = vec![
            tokio::spawn(listen(side_a, state.clone(), to_b.clone(), to_a.clone())),
            tokio::spawn(listen(side_b, state.clone(), to_a, to_b)),
            tokio::spawn(deliver(Direction::AToB, state.clone(), to_b_rx)),
            tokio::spawn(deliver(Direction::BToA, state.clone(), to_a_rx)),
        ];
        Ok(Proxy { addr_of_b: facing_a.local_addr()?, addr_of_a: facing_b.local_addr()?, state, tasks })
    }

    /// Where node A (and any endpoint on A's side) reaches node B.
    pub fn addr_of_b(&self) -> SocketAddr {
        self.addr_of_b
    }

    /// Where node B (and any endpoint on B's side) reaches node A.
    pub fn addr_of_a(&self) -> SocketAddr {
        self.addr_of_a
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Impairs one direction from now on.
    pub fn set(&self, dir: Direction, imp: Impairment) {
        self.state().impairment[dir.index()] = imp;
    }

    /// Impairs both directions alike from now on.
    pub fn set_both(&self, imp: Impairment) {
        self.state().impairment = [imp; 2];
    }

    /// Drops everything, both ways (datagrams waiting in the delay line too), until [`Self::heal`].
    pub fn partition(&self) {
        self.state().partitioned = true;
    }

    /// Ends a partition.
    pub fn heal(&self) {
        self.state().partitioned = false;
    }

    /// What happened in one direction so far.
    pub fn counters(&self, dir: Direction) -> Counters {
        self.state().counters[dir.index()]
    }

    /// Both directions summed.
    pub fn total(&self) -> Counters {
        let s = self.state();
        s.counters[0] + s.counters[1]
    }
}

/// Decides the fate of a datagram that arrived in direction `dir` and queues its copies.
fn admit(
    state: &Mutex<State>,
    dir: Direction,
    bytes: &[u8],
    from: &Arc<UdpSocket>,
    to: SocketAddr,
    line: &mpsc::UnboundedSender<Outgoing>,
) {
    let now = Instant::now();
    let fate = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let partitioned = s.partitioned;
        let imp = s.impairment[dir.index()];
        let fate = decide(&imp, &mut s.rng[dir.index()]);
        let c = &mut s.counters[dir.index()];
        c.received += 1;
        c.received_bytes += bytes.len() as u64;
        if partitioned {
            c.partitioned += 1;
            return;
        }
        if fate.copies.is_empty() {
            c.lost += 1;
        }
        c.duplicated += fate.copies.len().saturating_sub(1) as u64;
        c.reordered += u64::from(fate.reordered);
        fate
    };
    for delay in fate.copies {
        let _ = line.send((now + delay, from.clone(), to, bytes.to_vec()));
    }
}

/// Receives on one side's listening socket: what this side's node sends leaves from the other
/// side's listening socket; what other endpoints send leaves from a socket mapped to them.
async fn listen(
    side: Side,
    state: Arc<Mutex<State>>,
    onward: mpsc::UnboundedSender<Outgoing>,
    back: mpsc::UnboundedSender<Outgoing>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = side.listen.recv_from(&mut buf).await else { continue };
        let out = if from == side.node {
            side.other_listen.clone()
        } else {
            let known = state.lock().unwrap_or_else(|p| p.into_inner()).mapped.get(&from).cloned();
            match known {
                Some(socket) => socket,
                None => match map(&side, from, &state, back.clone()).await {
                    Ok(socket) => socket,
                    Err(_) => continue,
                },
            }
        };
        admit(&state, side.dir, &buf[..n], &out, side.other_node, &onward);
    }
}

/// A socket on the other side standing in for endpoint `from` of this side: what arrives on
/// it goes back to `from` through this side's listening socket.
async fn map(
    side: &Side,
    from: SocketAddr,
    state: &Arc<Mutex<State>>,
    back: mpsc::UnboundedSender<Outgoing>,
) -> io::Result<Arc<UdpSocket>> {
    let socket = Arc::new(UdpSocket::bind(loopback_like(side.other_node)).await?);
    let (receiving, listen, state2) = (socket.clone(), side.listen.clone(), state.clone());
    let dir = match side.dir {
        Direction::AToB => Direction::BToA,
        Direction::BToA => Direction::AToB,
    };
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, _)) = receiving.recv_from(&mut buf).await else { continue };
            admit(&state2, dir, &buf[..n], &listen, from, &back);
        }
    });
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.mapped_tasks.push(task.abort_handle());
    s.mapped.insert(from, socket.clone());
    Ok(socket)
}

/// A datagram waiting in the delay line: due time, then arrival order (ties keep it).
struct Waiting(Instant, u64, Arc<UdpSocket>, SocketAddr, Vec<u8>);

impl PartialEq for Waiting {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Waiting {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(o.0, o.1))
    }
}

/// Sends the datagrams of one direction when they are due (unless a partition began).
async fn deliver(dir: Direction, state: Arc<Mutex<State>>, mut line: mpsc::UnboundedReceiver<Outgoing>) {
    let mut waiting: BinaryHeap<Reverse<Waiting>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let next_due = waiting.peek().map(|w| w.0.0);
        tokio::select! {
            item = line.recv() => match item {
                Some((at, socket, to, bytes)) => {
                    seq += 1;
                    waiting.push(Reverse(Waiting(at, seq, socket, to, bytes)));
                }
                None => return,
            },
            () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                while waiting.peek().is_some_and(|w| w.0.0 <= now) {
                    let Some(Reverse(Waiting(_, _, socket, to, bytes))) = waiting.pop() else { break };
                    let partitioned = {
                        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                        if s.partitioned {
                            s.counters[dir.index()].partitioned += 1;
                        }
                        s.partitioned
                    };
                    if partitioned {
                        continue;
                    }
                    if socket.send_to(&bytes, to).await.is_ok() {
                        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                        let c = &mut s.counters[dir.index()];
                        c.forwarded += 1;
                        c.forwarded_bytes += bytes.len() as u64;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Node stand-ins: A on IPv4 loopback, B on IPv6 loopback, as the scenario tests bind them.
    async fn ends() -> (UdpSocket, UdpSocket, Proxy) {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("[::1]:0").await.unwrap();
        let proxy = Proxy::start(a.local_addr().unwrap(), b.local_addr().unwrap(), 1).await.unwrap();
        (a, b, proxy)
    }

    /// Sends `n` numbered datagrams from `from` to `to`, paced so that no socket buffer
    /// overflows (a drop there would not be the proxy's).
    async fn send_numbered(from: &UdpSocket, to: SocketAddr, range: std::ops::Range<u32>) {
        for i in range {
            let mut datagram = i.to_be_bytes().to_vec();
            datagram.resize(200, 0);
            from.send_to(&datagram, to).await.unwrap();
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    /// Reads numbered datagrams until none arrives for `quiet`.
    /// The numbers of the datagrams that reach `socket` until `enough` holds of them (checked
    /// between datagrams and whenever none came for a moment); only a hang fails it.
    async fn received_until(socket: &UdpSocket, mut enough: impl FnMut(&[u32]) -> bool) -> Vec<u32> {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while !enough(&out) {
            assert!(start.elapsed() < crate::HANG, "no more datagrams after {} of them", out.len());
            if let Ok(got) = tokio::time::timeout(Duration::from_millis(50), socket.recv_from(&mut buf)).await
            {
                let (n, _) = got.unwrap();
                assert_eq!(n, 200);
                out.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
            }
        }
        out
    }

    /// The datagrams that reach `socket` until none came for `quiet`: for checking that nothing
    /// arrives (a busy machine can only make such a check weaker, never fail it).
    async fn received(socket: &UdpSocket, quiet: Duration) -> Vec<u32> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(Ok((n, _))) = tokio::time::timeout(quiet, socket.recv_from(&mut buf)).await {
            assert_eq!(n, 200);
            out.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
        }
        out
    }

    #[tokio::test]
    async fn loss_is_within_tolerance_and_counted() {
        let (a, b, proxy) = ends().await;
        proxy.set(Direction::AToB, Impairment::lossy(0.2, Duration::ZERO, Duration::ZERO));
        let n = 4000;
        let ((), got) = tokio::join!(
            send_numbered(&a, proxy.addr_of_b(), 0..n),
            received_until(&b, |got| {
                let c = proxy.counters(Direction::AToB);
                c.received == u64::from(n)
                    && c.lost + c.forwarded == c.received
                    && got.len() as u64 == c.forwarded
            })
        );
        let c = proxy.counters(Direction::AToB);
        assert_eq!(c.received, u64::from(n), "every datagram reached the proxy");
        assert_eq!(c.forwarded, got.len() as u64);
        assert_eq!(c.lost + c.forwarded, u64::from(n));
        assert_eq!(c.forwarded_bytes, 200 * c.forwarded);
        let rate = c.lost as f64 / f64::from(n);
        assert!((rate - 0.2).abs() < 0.03, "loss rate {rate}");
        // The other direction is untouched.
        send_numbered(&b, proxy.addr_of_a(), 0..100).await;
        assert_eq!(received_until(&a, |got| got.len() == 100).await, (0..100).collect::<Vec<_>>());
        assert_eq!(proxy.counters(Direction::BToA).lost, 0);
    }

    #[tokio::test]
    async fn a_partition_drops_everything_and_heal_resumes() {
        let (a, b, proxy) = ends().await;
        send_numbered(&a, proxy.addr_of_b(), 0..10).await;
        assert_eq!(received_until(&b, |got| got.len() == 10).await.len(), 10);
        proxy.partition();
        send_numbered(&a, proxy.addr_of_b(), 10..110).await;
        send_numbered(&b, proxy.addr_of_a(), 10..110).await;
        assert!(received(&b, Duration::from_millis(200)).await.is_empty());
        assert!(received(&a, Duration::from_millis(200)).await.is_empty());
        assert_eq!(proxy.total().partitioned, 200);
        proxy.heal();
        send_numbered(&a, proxy.addr_of_b(), 110..160).await;
        assert_eq!(received_until(&b, |got| got.len() == 50).await, (110..160).collect::<Vec<_>>());
        assert_eq!(proxy.counters(Direction::AToB).forwarded, 60);
    }

    #[tokio::test]
    async fn another_endpoint_of_a_side_gets_its_own_mapping_and_its_answers() {
        let (a, b, proxy) = ends().await;
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.send_to(b"from c", proxy.addr_of_b()).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, seen_at) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"from c");
        assert_ne!(seen_at, proxy.addr_of_a(), "c is not node A");
        b.send_to(b"to c", seen_at).await.unwrap();
        let (n, from) = c.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"to c"[..], proxy.addr_of_b()));
        // Node A still reaches B as itself, and both count in A-to-B.
        a.send_to(b"from a", proxy.addr_of_b()).await.unwrap();
        let (_, seen_at) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(seen_at, proxy.addr_of_a());
        assert_eq!(proxy.counters(Direction::AToB).forwarded, 2);
        assert_eq!(proxy.counters(Direction::BToA).forwarded, 1);
    }

    #[tokio::test]
    async fn datagrams_in_flight_at_a_partition_are_dropped() {
        let (a, b, proxy) = ends().await;
        proxy.set_both(Impairment::lossy(0.0, Duration::from_millis(300), Duration::ZERO));
        send_numbered(&a, proxy.addr_of_b(), 0..20).await;
        proxy.partition();
        assert!(received(&b, Duration::from_millis(600)).await.is_empty());
        assert_eq!(proxy.counters(Direction::AToB).partitioned, 20);
    }

    #[tokio::test]
    async fn delay_jitter_reordering_and_duplication() {
        let (a, b, proxy) = ends().await;
        let delay = Duration::from_millis(80);
        proxy.set(
            Direction::AToB,
            Impairment {
                delay,
                jitter: Duration::from_millis(10),
                reorder: 0.2,
                reorder_by: Duration::from_millis(40),
                duplicate: 0.2,
                ..Impairment::default()
            },
        );
        let started = Instant::now();
        a.send_to(&[0u8; 200], proxy.addr_of_b()).await.unwrap();
        let mut buf = [0u8; 256];
        b.recv_from(&mut buf).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(70), "delayed: {:?}", started.elapsed());
        // The first datagram's duplicates, if it had any.
        let _ =
            received_until(&b, |got| got.len() as u64 == proxy.counters(Direction::AToB).duplicated).await;

        let before = proxy.counters(Direction::AToB);
        let n = 1000;
        let ((), got) = tokio::join!(
            send_numbered(&a, proxy.addr_of_b(), 0..n),
            received_until(&b, |got| {
                let c = proxy.counters(Direction::AToB);
                c.received - before.received == u64::from(n)
                    && got.len() as u64 == u64::from(n) + c.duplicated - before.duplicated
            })
        );
        let after = proxy.counters(Direction::AToB);
        let c = Counters {
            duplicated: after.duplicated - before.duplicated,
            reordered: after.reordered - before.reordered,
            ..after
        };
        assert_eq!(c.lost, 0);
        assert_eq!(got.len() as u64, u64::from(n) + c.duplicated, "each copy arrived once");
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique, (0..n).collect::<Vec<_>>(), "every datagram arrived");
        assert!(c.duplicated > 100 && c.duplicated < 300, "duplicates: {}", c.duplicated);
        let overtaken = got.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(c.reordered > 100 && overtaken > 50, "reordered {}, overtaken {overtaken}", c.reordered);
    }
}
