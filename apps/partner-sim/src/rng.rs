//! A small seeded pseudo-random generator (xorshift64*), so that a fault sequence can be
//! replayed from its seed. Not for anything that needs real randomness.

/// Xorshift64* (Vigna, 2016): 64 bits of state, good enough to pick faults.
#[derive(Debug, Clone)]
pub struct XorShift64Star {
    state: u64,
}

/// Used instead of a zero seed, which would make the generator return zeros forever.
const NONZERO: u64 = 0x9E37_79B9_7F4A_7C15;

impl XorShift64Star {
    /// A generator started from `seed`; the same seed gives the same sequence.
    pub fn seeded(seed: u64) -> Self {
        let state = if seed == 0 { NONZERO } else { seed };
        XorShift64Star { state }
    }

    /// A generator started from an unpredictable seed.
    pub fn from_entropy() -> Self {
        Self::seeded(uuid::Uuid::new_v4().as_u64_pair().0)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number uniformly drawn from `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift64Star;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let mut a = XorShift64Star::seeded(42);
        let mut b = XorShift64Star::seeded(42);
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
    }

    #[test]
    fn draws_stay_in_the_unit_interval_and_spread_over_it() {
        let mut rng = XorShift64Star::seeded(7);
        let draws: Vec<f64> = (0..10_000).map(|_| rng.next_f64()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below_half = draws.iter().filter(|d| **d < 0.5).count();
        assert!((4_500..5_500).contains(&below_half), "{below_half}");
    }

    #[test]
    fn a_zero_seed_still_gives_changing_numbers() {
        let mut rng = XorShift64Star::seeded(0);
        assert_ne!(rng.next_u64(), rng.next_u64());
    }
}
