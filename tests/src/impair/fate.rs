//! What happens to one datagram: the impairment settings of a direction, a seedable generator,
//! and the fate it draws (lost, delayed, held back, duplicated). No sockets here; the proxy in
//! the parent module applies the fates.

use std::time::Duration;

/// What the proxy does to the datagrams of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Impairment {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Delay added to every datagram.
    pub delay: Duration,
    /// The delay varies uniformly by up to this much either way (never below zero).
    pub jitter: Duration,
    /// Probability that a datagram is held back by [`Self::reorder_by`] more, so that later
    /// ones overtake it.
    pub reorder: f64,
    /// How much longer a reordered datagram waits.
    pub reorder_by: Duration,
    /// Probability that a datagram is delivered twice (the copy with its own delay).
    pub duplicate: f64,
}

impl Impairment {
    /// Loss `loss` and a delay of `delay` +- `jitter`, nothing else.
    pub fn lossy(loss: f64, delay: Duration, jitter: Duration) -> Self {
        Self { loss, delay, jitter, ..Self::default() }
    }
}

/// SplitMix64: a small, well-mixed, seedable generator (enough for fault injection; not for
/// anything secret).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// The fate of one datagram: lost, or delivered after each of these delays (two for a
/// duplicate), and whether it was held back.
#[derive(Clone, Debug, PartialEq)]
pub struct Fate {
    /// Delays after which a copy is delivered; empty when lost.
    pub copies: Vec<Duration>,
    /// Whether the first copy was held back to be overtaken.
    pub reordered: bool,
}

/// Decides the fate of one datagram under `imp`. Always draws the same number of values, so
/// that the fates of later datagrams do not depend on the outcomes of earlier ones.
pub fn decide(imp: &Impairment, rng: &mut Rng) -> Fate {
    let (lost, dup, reorder, j1, j2) = (rng.unit(), rng.unit(), rng.unit(), rng.unit(), rng.unit());
    if lost < imp.loss {
        return Fate { copies: Vec::new(), reordered: false };
    }
    let delay = |j: f64| {
        let jitter = imp.jitter.as_secs_f64() * (2.0 * j - 1.0);
        Duration::from_secs_f64((imp.delay.as_secs_f64() + jitter).max(0.0))
    };
    let reordered = reorder < imp.reorder;
    let mut first = delay(j1);
    if reordered {
        first += imp.reorder_by;
    }
    let mut copies = vec![first];
    if dup < imp.duplicate {
        copies.push(delay(j2));
    }
    Fate { copies, reordered }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of impairment at once.
    fn lossy() -> Impairment {
        Impairment {
            loss: 0.2,
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(20),
            reorder: 0.1,
            reorder_by: Duration::from_millis(30),
            duplicate: 0.05,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_fates() {
        let imp = lossy();
        let (mut r1, mut r2, mut r3) = (Rng::new(7), Rng::new(7), Rng::new(8));
        let a: Vec<Fate> = (0..1000).map(|_| decide(&imp, &mut r1)).collect();
        let b: Vec<Fate> = (0..1000).map(|_| decide(&imp, &mut r2)).collect();
        let c: Vec<Fate> = (0..1000).map(|_| decide(&imp, &mut r3)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn rates_and_delays_match_the_settings() {
        let imp = lossy();
        let mut rng = Rng::new(42);
        let n = 100_000;
        let fates: Vec<Fate> = (0..n).map(|_| decide(&imp, &mut rng)).collect();
        let rate = |k: usize| k as f64 / n as f64;
        let lost = fates.iter().filter(|f| f.copies.is_empty()).count();
        let dup = fates.iter().filter(|f| f.copies.len() == 2).count();
        let reordered = fates.iter().filter(|f| f.reordered).count();
        assert!((rate(lost) - 0.2).abs() < 0.01, "loss {}", rate(lost));
        // Duplication and reordering apply to what was not lost.
        assert!((rate(dup) - 0.8 * 0.05).abs() < 0.005, "duplicates {}", rate(dup));
        assert!((rate(reordered) - 0.8 * 0.1).abs() < 0.01, "reordered {}", rate(reordered));
        for f in &fates {
            let extra = if f.reordered { Duration::from_millis(30) } else { Duration::ZERO };
            let first = f.copies.first().map(|d| *d - extra);
            for d in first.iter().chain(f.copies.iter().skip(1)) {
                assert!(*d >= Duration::from_millis(30) && *d <= Duration::from_millis(70), "{d:?}");
            }
        }
        // No impairment: everything goes through at once, once.
        let clean = decide(&Impairment::default(), &mut rng);
        assert_eq!(clean, Fate { copies: vec![Duration::ZERO], reordered: false });
    }
}
