//! YCSB's key choosers: zipfian (Gray et al., with YCSB's incremental zeta), scrambled
//! zipfian, skewed latest and uniform, and the FNV hash that spreads key numbers.

use rand::Rng;

/// YCSB's zipfian constant.
pub const ZIPFIAN_CONSTANT: f64 = 0.99;
/// The item count YCSB's scrambled zipfian draws from before hashing.
const SCRAMBLED_ITEMS: u64 = 10_000_000_000;
/// zeta(10^10, 0.99), precomputed by YCSB for `SCRAMBLED_ITEMS`.
const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

/// The 64-bit FNV-1 hash of a number's 8 bytes (YCSB's `Utils.fnvhash64`).
pub fn fnv64(mut v: u64) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for _ in 0..8 {
        h ^= v & 0xff;
        h = h.wrapping_mul(1_099_511_628_211);
        v >>= 8;
    }
    (h as i64).unsigned_abs()
}

/// Sum of 1/i^theta for i in (from, to], added to `start`.
fn zeta(from: u64, to: u64, theta: f64, start: f64) -> f64 {
    (from..to).fold(start, |sum, i| sum + 1.0 / ((i + 1) as f64).powf(theta))
}

/// Draws 0..n with P(i) proportional to 1/(i+1)^theta; n may grow between draws (the
/// zeta constant is extended incrementally, as YCSB does).
#[derive(Debug, Clone)]
pub struct Zipfian {
    theta: f64,
    alpha: f64,
    zeta2: f64,
    zetan: f64,
    count: u64,
    eta: f64,
}

impl Zipfian {
    /// A zipfian chooser over `count` items with YCSB's constant.
    pub fn new(count: u64) -> Zipfian {
        let theta = ZIPFIAN_CONSTANT;
        let count = count.max(1);
        Zipfian::with_zeta(count, theta, zeta(0, count, theta, 0.0))
    }

    fn with_zeta(count: u64, theta: f64, zetan: f64) -> Zipfian {
        let zeta2 = zeta(0, 2, theta, 0.0);
        let mut z = Zipfian {
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta2,
            zetan,
            count,
            eta: 0.0,
        };
        z.eta = z.eta_for(count);
        z
    }

    fn eta_for(&self, count: u64) -> f64 {
        (1.0 - (2.0 / count as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta2 / self.zetan)
    }

    /// The next draw in 0..count (count at least 1).
    pub fn next(&mut self, rng: &mut impl Rng, count: u64) -> u64 {
        let count = count.max(1);
        if count > self.count {
            self.zetan = zeta(self.count, count, self.theta, self.zetan);
            self.count = count;
            self.eta = self.eta_for(count);
        }
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(count - 1);
        }
        let v = (self.count as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(count - 1)
    }
}

/// A key chooser over the records that exist (0..limit).
#[derive(Debug, Clone)]
pub enum KeyChooser {
    /// Every record equally likely.
    Uniform,
    /// Zipfian over a huge space, hashed onto `space` record numbers (YCSB's scrambled
    /// zipfian), so the hot records are spread over the key space. `space` is fixed, so
    /// the hot set does not move as records are inserted; draws of records that do not
    /// exist yet are drawn again, as YCSB does.
    ScrambledZipfian {
        /// The underlying chooser.
        zipfian: Zipfian,
        /// Record numbers the hash spreads over.
        space: u64,
    },
    /// The newest records are hot: limit - 1 - zipfian(limit).
    Latest(Zipfian),
}

impl KeyChooser {
    /// The chooser for a distribution, over `records` initial records; a workload that
    /// `inserts` may grow to twice as many (YCSB sizes it by its expected inserts).
    pub fn new(distribution: super::Distribution, records: u64, inserts: bool) -> KeyChooser {
        match distribution {
            super::Distribution::Uniform => KeyChooser::Uniform,
            super::Distribution::Zipfian => KeyChooser::ScrambledZipfian {
                zipfian: Zipfian::with_zeta(SCRAMBLED_ITEMS, ZIPFIAN_CONSTANT, SCRAMBLED_ZETAN),
                space: records.max(1) * if inserts { 2 } else { 1 },
            },
            super::Distribution::Latest => KeyChooser::Latest(Zipfian::new(records)),
        }
    }

    /// A record number in 0..limit.
    pub fn next(&mut self, rng: &mut impl Rng, limit: u64) -> u64 {
        let limit = limit.max(1);
        match self {
            KeyChooser::Uniform => rng.random_range(0..limit),
            KeyChooser::ScrambledZipfian { zipfian, space } => {
                let mut n = 0;
                for _ in 0..64 {
                    n = fnv64(zipfian.next(rng, SCRAMBLED_ITEMS)) % *space;
                    if n < limit {
                        return n;
                    }
                }
                // The space outgrew its estimate: fold onto the records that exist.
                n % limit
            }
            KeyChooser::Latest(z) => limit - 1 - z.next(rng, limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn zipfian_favours_small_numbers_and_stays_in_range() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut z = Zipfian::new(1000);
        let mut hits = [0u32; 1000];
        for _ in 0..100_000 {
            hits[z.next(&mut rng, 1000) as usize] += 1;
        }
        assert!(
            hits[0] > hits[10] && hits[10] > hits[500],
            "{:?}",
            &hits[..12]
        );
        // With theta 0.99 over 1000 items the first item takes about 13%.
        assert!((10_000..16_000).contains(&hits[0]), "{}", hits[0]);
    }

    #[test]
    fn zipfian_grows_with_the_item_count() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut z = Zipfian::new(10);
        let max = (0..10_000).map(|_| z.next(&mut rng, 1000)).max().unwrap();
        assert!(max > 100 && max < 1000, "{max}");
    }

    #[test]
    fn choosers_stay_below_the_limit() {
        let mut rng = StdRng::seed_from_u64(3);
        for d in [
            super::super::Distribution::Uniform,
            super::super::Distribution::Zipfian,
            super::super::Distribution::Latest,
        ] {
            let mut c = KeyChooser::new(d, 100, true);
            for limit in [1, 7, 100, 150] {
                for _ in 0..1000 {
                    assert!(c.next(&mut rng, limit) < limit, "{d:?}");
                }
            }
        }
    }

    #[test]
    fn latest_prefers_new_records() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut c = KeyChooser::new(super::super::Distribution::Latest, 1000, false);
        let newest = (0..10_000)
            .filter(|_| c.next(&mut rng, 1000) >= 990)
            .count();
        assert!(newest > 3_000, "{newest}");
    }

    #[test]
    fn fnv_matches_ycsb() {
        // YCSB's Utils.fnvhash64(0), as Java computes it.
        assert_eq!(fnv64(0), 6_284_781_860_667_377_211);
        assert_ne!(fnv64(1), fnv64(2));
    }
}
