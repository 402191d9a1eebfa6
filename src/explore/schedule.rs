//! Drawing a run's schedule: an explicit list of fault decisions, each a flat fault table with
//! every parameter given (no "random" left for the fault's own RNG) and a trigger that fires once
//! (`at = N`, `scope = "run"`). The fault's own RNG is seeded from its position in the list, so a
//! parameter left to it would change when an earlier decision is removed; with everything explicit,
//! removing one decision leaves what the others do to the bytes they see unchanged.
//!
//! # Seeds
//!
//! Run `i` (0-based) of `explore --seed S` draws its schedule from
//! `ChaCha8Rng::seed_from_u64(run_seed(S, i))`, where `run_seed` is splitmix64 of
//! `S + (i + 1) * 0x9E3779B97F4A7C15` (the golden-ratio increment splitmix64 itself uses). The
//! scenario keeps its own `seed` (fleet, backoff jitter, its own faults), so a run is exactly the
//! scenario plus its schedule, and the reproducer is the scenario file plus `[[faults]]`.

use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::bounds::Bounds;
use crate::faults::FaultSpec;

/// One fault decision of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Which `[explore.faults.*]` entry it was drawn from (index into [`Bounds::faults`]).
    pub bound: usize,
    /// The flat fault table, as a scenario's `[[faults]]` holds it.
    pub table: toml::Table,
}

impl Decision {
    /// The fault spec (validated).
    pub fn spec(&self) -> Result<FaultSpec, String> {
        FaultSpec::deserialize(toml::Value::Table(self.table.clone())).map_err(|e| e.message().trim().to_string())
    }

    /// The fault type.
    pub fn type_name(&self) -> &str {
        self.table.get("type").and_then(toml::Value::as_str).unwrap_or("?")
    }

    /// An integer key of the table.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.table.get(key).and_then(toml::Value::as_integer)
    }

    /// The same decision with `key` set to `v`.
    pub fn with(&self, key: &str, v: i64) -> Decision {
        let mut d = self.clone();
        d.table.insert(key.to_string(), toml::Value::Integer(v));
        d
    }
}

/// The seed of run `run` (0-based) of `explore --seed base`; see the module doc.
pub fn run_seed(base: u64, run: u64) -> u64 {
    let mut z = base.wrapping_add(run.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Where a fault type sits in the chain: faults that act on frames whole inside one message come
/// before the faults that cut or join messages (as the catalogue asks), and link faults last.
fn chain_class(type_name: &str) -> u8 {
    match type_name {
        "split" | "coalesce" => 2,
        "latency" | "bandwidth" => 3,
        "disconnect" | "stall" | "refuse" | "drop" | "duplicate" | "reorder" => 1,
        _ => 0,
    }
}

/// The schedule of a run with `seed`: a count from `bounds.decisions`, then each decision's fault
/// and keys, in chain order (stable within a class).
pub fn draw(bounds: &Bounds, seed: u64) -> Vec<Decision> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.random_range(bounds.decisions[0]..=bounds.decisions[1]);
    let mut out: Vec<Decision> = (0..n)
        .map(|_| {
            let bound = rng.random_range(0..bounds.faults.len());
            let table = bounds.faults[bound].draw(&mut rng, bounds.at);
            Decision { bound, table }
        })
        .collect();
    out.sort_by_key(|d| chain_class(d.type_name()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_others_differ() {
        let b = Bounds::survivable();
        assert_eq!(draw(&b, 42), draw(&b, 42));
        let distinct: std::collections::BTreeSet<String> =
            (0..20).map(|i| format!("{:?}", draw(&b, run_seed(1, i)))).collect();
        assert!(distinct.len() > 15, "{}", distinct.len());
    }

    #[test]
    fn every_drawn_decision_is_a_valid_spec_in_chain_order() {
        let b = Bounds::survivable();
        for i in 0..50 {
            let s = draw(&b, run_seed(9, i));
            assert!((1..=8).contains(&s.len()));
            for d in &s {
                d.spec().unwrap();
            }
            let classes: Vec<u8> = s.iter().map(|d| chain_class(d.type_name())).collect();
            assert!(classes.is_sorted(), "{classes:?}");
        }
    }

    #[test]
    fn run_seeds_differ_per_run_and_base() {
        assert_ne!(run_seed(1, 0), run_seed(1, 1));
        assert_ne!(run_seed(1, 0), run_seed(2, 0));
        assert_eq!(run_seed(7, 3), run_seed(7, 3));
    }
}
