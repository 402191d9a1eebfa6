//! Reconnect backoff: exponential with full jitter, from a seeded RNG. Pure: it returns
//! [`Duration`]s and never sleeps, so the schedule for a seed is a unit test.
//!
//! Delay before retry `n` (0-based, counted since the last connection that stayed up):
//!
//! ```text
//! ceiling(n) = min(max, min * factor^n)
//! delay(n)   = uniform in [0, ceiling(n)], whole ms  ("full jitter")
//! ```
//!
//! Full jitter rather than a fixed exponential schedule because the disconnect this client must
//! survive is usually shared: a gateway restart drops thousands of clients at the same instant, and
//! clients that all retry after exactly 0.5 s, 1 s, 2 s ... arrive together each time. Spreading each
//! retry uniformly below the ceiling breaks up the herd; the exponential ceiling still backs off from
//! a server that stays down.
//!
//! [`Jitter::None`] turns the jitter off (`delay(n) = ceiling(n)` exactly). It exists so a stress run
//! can show what jitter buys: the same storm with and without it, and the attempts-per-second peaks
//! side by side.
//!
//! The count resets only after a connection stayed up for [`BackoffConfig::reset_after`]: a server
//! that accepts and then drops at once must not be hammered at the first, shortest delay forever.

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// Ceiling of the first retry's delay; each later ceiling is `factor` times the one before.
    /// Default 500 ms. Zero makes every retry immediate (used to measure reconnect latency).
    #[serde(with = "crate::codec::reassembly::duration_ms", rename = "min_ms")]
    pub min: Duration,
    /// No delay exceeds this. Default 30 s.
    #[serde(with = "crate::codec::reassembly::duration_ms", rename = "max_ms")]
    pub max: Duration,
    /// Growth of the ceiling per retry. Default 2.0; values below 1.0 are treated as 1.0.
    pub factor: f64,
    /// A connection that stayed up at least this long resets the retry count. Default 10 s.
    #[serde(with = "crate::codec::reassembly::duration_ms", rename = "reset_after_ms")]
    pub reset_after: Duration,
    /// Most retries in a row (since the last connection that stayed up) before giving up.
    /// Default `None`: retry for ever, as a vehicle-monitoring client must.
    pub max_attempts: Option<u32>,
    /// Seed of the jitter RNG (ChaCha8), so a schedule is reproducible. Default 0.
    pub seed: u64,
    /// Whether delays are spread below the ceiling. Default [`Jitter::Full`].
    pub jitter: Jitter,
}

/// How a delay is drawn below its ceiling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// Uniform in `[0, ceiling]` ("full jitter"): clients dropped together come back spread out.
    #[default]
    Full,
    /// Exactly the ceiling: deterministic exponential backoff. Clients dropped together retry
    /// together (a thundering herd); for comparison runs, not for production.
    None,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
            factor: 2.0,
            reset_after: Duration::from_secs(10),
            max_attempts: None,
            seed: 0,
            jitter: Jitter::Full,
        }
    }
}

/// The backoff state of one client. See the module doc.
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    /// How far the jitter RNG (ChaCha8 seeded with `cfg.seed`) has been drawn, in 32-bit words:
    /// the generator is rebuilt there for each delay (a reconnect's worth of work) instead of
    /// held, so an idle client keeps 16 bytes instead of its 300-byte block buffer.
    /// Held as a `u64` (2^64 words is more than any run draws) so the client's task keeps 8-byte
    /// alignment: a `u128` field aligns the whole driver to 16 bytes and pads it.
    drawn: u64,
    /// Retries since the last connection that stayed up.
    retries: u32,
}

impl Backoff {
    /// A fresh schedule.
    pub fn new(cfg: BackoffConfig) -> Backoff {
        Backoff {
            drawn: 0,
            cfg,
            retries: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &BackoffConfig {
        &self.cfg
    }

    /// Retries since the last connection that stayed up (the `n` of the next delay).
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The ceiling of retry `n`: `min(max, min * factor^n)`, saturating instead of overflowing.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = if self.cfg.factor.is_finite() {
            self.cfg.factor.max(1.0)
        } else {
            1.0
        };
        let secs = self.cfg.min.as_secs_f64() * factor.powi(n.min(i32::MAX as u32) as i32);
        match Duration::try_from_secs_f64(secs) {
            Ok(d) => d.min(self.cfg.max),
            Err(_) => self.cfg.max,
        }
    }

    /// The delay before the next retry, or `None` when [`BackoffConfig::max_attempts`] retries in
    /// a row were already made (the caller gives up and says so).
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.cfg.max_attempts.is_some_and(|max| self.retries >= max) {
            return None;
        }
        let ceiling = self.ceiling(self.retries);
        self.retries = self.retries.saturating_add(1);
        // Whole milliseconds: tokio's timers have millisecond resolution and round a finer
        // deadline up, so this is exactly the delay that happens (and what transcripts show).
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        match self.cfg.jitter {
            Jitter::Full => {
                let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed);
                rng.set_word_pos(u128::from(self.drawn));
                let ms = rng.random_range(0..=ceiling_ms);
                self.drawn = u64::try_from(rng.get_word_pos()).unwrap_or(u64::MAX);
                Some(Duration::from_millis(ms))
            }
            Jitter::None => Some(Duration::from_millis(ceiling_ms)),
        }
    }

    /// A connection ended after `uptime`. Returns true when that was long enough to reset the
    /// retry count ([`BackoffConfig::reset_after`]).
    pub fn on_disconnect(&mut self, uptime: Duration) -> bool {
        if uptime >= self.cfg.reset_after {
            self.retries = 0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            min: Duration::from_millis(100),
            max: Duration::from_secs(2),
            factor: 2.0,
            reset_after: Duration::from_secs(5),
            max_attempts: None,
            seed: 7,
            jitter: Jitter::Full,
        }
    }

    #[test]
    fn ceilings_grow_by_factor_and_stop_at_max() {
        let b = Backoff::new(cfg());
        let ms: Vec<u128> = (0..8).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(
            b.ceiling(u32::MAX),
            Duration::from_secs(2),
            "saturates, never overflows"
        );
    }

    #[test]
    fn the_schedule_for_a_seed_is_exact_and_each_delay_is_under_its_ceiling() {
        let mut b = Backoff::new(cfg());
        let got: Vec<u128> = (0..8).map(|_| b.next_delay().unwrap().as_millis()).collect();
        // Pinned: ChaCha8 seeded with 7. A change here changes every transcript with a reconnect.
        assert_eq!(got, EXPECTED_SEED_7);
        let b2 = Backoff::new(cfg());
        for (n, d) in got.iter().enumerate() {
            assert!(*d <= b2.ceiling(n as u32).as_millis(), "delay {n} above its ceiling");
        }
        // Same seed, same schedule; another seed, another one.
        let mut again = Backoff::new(cfg());
        let again: Vec<u128> = (0..8).map(|_| again.next_delay().unwrap().as_millis()).collect();
        assert_eq!(again, got);
        let mut other = Backoff::new(BackoffConfig { seed: 8, ..cfg() });
        let other: Vec<u128> = (0..8).map(|_| other.next_delay().unwrap().as_millis()).collect();
        assert_ne!(other, got);
    }

    const EXPECTED_SEED_7: [u128; 8] = [15, 33, 282, 582, 962, 719, 166, 1699];

    #[test]
    fn a_long_connection_resets_the_count_and_a_short_one_does_not() {
        let mut b = Backoff::new(cfg());
        b.next_delay();
        b.next_delay();
        assert!(!b.on_disconnect(Duration::from_secs(4)));
        assert_eq!(b.retries(), 2);
        assert!(b.on_disconnect(Duration::from_secs(5)));
        assert_eq!(b.retries(), 0);
    }

    #[test]
    fn the_attempt_limit_gives_up_after_that_many_retries_in_a_row() {
        let mut b = Backoff::new(BackoffConfig {
            max_attempts: Some(3),
            ..cfg()
        });
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_some());
        assert_eq!(b.next_delay(), None);
        b.on_disconnect(Duration::from_secs(60));
        assert!(
            b.next_delay().is_some(),
            "a connection that stayed up restores the budget"
        );
    }

    #[test]
    fn without_jitter_every_delay_is_its_ceiling() {
        let mut b = Backoff::new(BackoffConfig {
            jitter: Jitter::None,
            ..cfg()
        });
        let got: Vec<u128> = (0..7).map(|_| b.next_delay().unwrap().as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn min_zero_means_immediate_retries() {
        let mut b = Backoff::new(BackoffConfig {
            min: Duration::ZERO,
            ..cfg()
        });
        for _ in 0..5 {
            assert_eq!(b.next_delay(), Some(Duration::ZERO));
        }
    }
}
