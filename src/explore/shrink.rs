//! Shrinking a failing run: fewer decisions, then simpler ones, then a smaller source, keeping
//! only the steps after which **the same check** still fails.
//!
//! 1. Delta debugging (Zeller's ddmin) over the decision list, down to a 1-minimal list: removing
//!    any one decision that is left makes the check pass.
//! 2. Each decision's `at` and every parameter drawn from a range move towards the range's low
//!    end (a binary search for the lowest value that still fails).
//! 3. The fleet's `terminals` and `messages` and the scenario's `duration_ms` shrink the same way,
//!    where the scenario's source has them. A shorter duration is taken only if its run does not
//!    end with traffic in flight (frames offered at the last instant, messages lost at the final
//!    close): there the check may fail because the end cut a message off, which is a different
//!    failure from the one being shrunk.
//! 4. A simpler decision can make another one unnecessary, so removal is tried again; steps 1-4
//!    repeat until nothing changes (at most [`MAX_ROUNDS`] rounds).
//!
//! Every step is one snapshot run; the total is capped by `max_runs` (`--max-shrink-runs`), and a
//! shrink that hit the cap says so.

use super::bounds::Bounds;
use super::invariants::Budgets;
use super::schedule::Decision;
use super::trial;
use crate::gateway::source::SourceSpec;
use crate::scenario::Scenario;

/// Most rounds of removal and simplification.
pub const MAX_ROUNDS: usize = 4;
/// Default cap on the runs one shrink may make (`--max-shrink-runs`).
pub const DEFAULT_MAX_SHRINK_RUNS: usize = 5_000;

/// A shrunk failure.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The scenario, its source and duration simplified where that kept the failure.
    pub scenario: Scenario,
    /// The decisions left.
    pub decisions: Vec<Decision>,
    /// Runs the shrink made.
    pub runs: usize,
    /// The run cap was reached before the shrink finished.
    pub capped: bool,
}

/// Shrinks a failure of `check` seen with `decisions` on `base`.
pub fn shrink(
    base: &Scenario,
    decisions: Vec<Decision>,
    check: &str,
    bounds: &Bounds,
    budgets: Budgets,
    max_runs: usize,
) -> Shrunk {
    let mut s = Shrinker {
        check,
        bounds,
        budgets,
        max_runs,
        runs: 0,
        capped: false,
    };
    let mut sc = base.clone();
    let mut ds = decisions;
    for _ in 0..MAX_ROUNDS {
        let before = (ds.clone(), sc.clone());
        ds = s.ddmin(&sc, ds);
        ds = s.simplify_decisions(&sc, ds);
        sc = s.simplify_scenario(sc, &ds);
        if (ds.clone(), sc.clone()) == before || s.capped {
            break;
        }
    }
    Shrunk {
        scenario: sc,
        decisions: ds,
        runs: s.runs,
        capped: s.capped,
    }
}

struct Shrinker<'a> {
    check: &'a str,
    bounds: &'a Bounds,
    budgets: Budgets,
    max_runs: usize,
    runs: usize,
    capped: bool,
}

impl Shrinker<'_> {
    /// Does `check` still fail with exactly these decisions? A run that cannot be set up (a source
    /// simplified too far) counts as passing: that step is not taken.
    fn fails(&mut self, sc: &Scenario, ds: &[Decision]) -> bool {
        self.trial(sc, ds).is_some_and(|t| t.fails(self.check))
    }

    /// One run of `sc` with `ds`, counted against the cap; `None` when capped or when it cannot
    /// be set up.
    fn trial(&mut self, sc: &Scenario, ds: &[Decision]) -> Option<trial::Trial> {
        if self.runs >= self.max_runs {
            self.capped = true;
            return None;
        }
        self.runs += 1;
        let run = trial::with_schedule(sc, ds).ok()?;
        trial::run(&run, self.budgets).ok()
    }

    /// ddmin: test chunks, then complements, at growing granularity, until the list is 1-minimal.
    fn ddmin(&mut self, sc: &Scenario, mut ds: Vec<Decision>) -> Vec<Decision> {
        if ds.is_empty() || self.fails(sc, &[]) {
            return Vec::new();
        }
        let mut n = 2usize;
        while ds.len() >= 2 {
            let chunks = chunk_bounds(ds.len(), n);
            let mut next = None;
            for &(a, b) in &chunks {
                if self.fails(sc, &ds[a..b]) {
                    next = Some((ds[a..b].to_vec(), 2));
                    break;
                }
            }
            // With two chunks each complement is the other chunk, already tested.
            if next.is_none() && chunks.len() > 2 {
                for &(a, b) in &chunks {
                    let rest: Vec<Decision> = ds[..a].iter().chain(&ds[b..]).cloned().collect();
                    if self.fails(sc, &rest) {
                        next = Some((rest, n.saturating_sub(1).max(2)));
                        break;
                    }
                }
            }
            match next {
                Some((smaller, n2)) => {
                    ds = smaller;
                    n = n2.min(ds.len().max(2));
                }
                None if n >= ds.len() => break,
                None => n = (n * 2).min(ds.len()),
            }
            if self.capped {
                break;
            }
        }
        ds
    }

    /// Moves `at` and every range-drawn parameter of each decision towards its low end.
    fn simplify_decisions(&mut self, sc: &Scenario, mut ds: Vec<Decision>) -> Vec<Decision> {
        for i in 0..ds.len() {
            let fb = &self.bounds.faults[ds[i].bound];
            let keys: Vec<(String, i64)> = ds[i]
                .table
                .keys()
                .filter_map(|k| fb.low(k, self.bounds.at).map(|lo| (k.clone(), lo)))
                .collect();
            for (key, lo) in keys {
                let Some(cur) = ds[i].int(&key) else { continue };
                let best = self.lowest(lo, cur, |s, v| {
                    let mut trial = ds.clone();
                    trial[i] = trial[i].with(&key, v);
                    s.fails(sc, &trial)
                });
                ds[i] = ds[i].with(&key, best);
            }
        }
        ds
    }

    /// The check fails with `ds` on `sc`, and (when there are decisions) not without them: a
    /// source or duration cut so far that the scenario fails on its own is a different failure.
    fn fails_because(&mut self, sc: &Scenario, ds: &[Decision]) -> bool {
        self.fails(sc, ds) && (ds.is_empty() || !self.fails(sc, &[]))
    }

    /// Fewer terminals and messages in a fleet source, then a shorter run.
    fn simplify_scenario(&mut self, mut sc: Scenario, ds: &[Decision]) -> Scenario {
        for key in ["terminals", "messages"] {
            let Some(cur) = source_int(&sc.source, key).filter(|&c| c > 1) else {
                continue;
            };
            let best = self.lowest(1, cur, |s, v| {
                with_source_int(&sc, key, v).is_some_and(|candidate| s.fails_because(&candidate, ds))
            });
            if let Some(smaller) = with_source_int(&sc, key, best) {
                sc = smaller;
            }
        }
        let cur = sc.duration_ms as i64;
        let best = self.lowest(1, cur, |s, v| {
            let mut candidate = sc.clone();
            candidate.duration_ms = v as u64;
            let cut_clean = s
                .trial(&candidate, ds)
                .is_some_and(|t| t.fails(s.check) && !t.ended_in_flight);
            cut_clean && (ds.is_empty() || !s.fails(&candidate, &[]))
        });
        sc.duration_ms = best as u64;
        sc
    }

    /// The lowest value in `lo..=cur` that still fails, by binary search (`cur` is known to fail;
    /// if failing is not monotone in the value this finds a low failing one, not the lowest).
    fn lowest(&mut self, lo: i64, cur: i64, mut fails: impl FnMut(&mut Self, i64) -> bool) -> i64 {
        if cur <= lo {
            return cur;
        }
        if fails(self, lo) {
            return lo;
        }
        let (mut pass, mut fail) = (lo, cur);
        while fail - pass > 1 && !self.capped {
            let mid = pass + (fail - pass) / 2;
            if fails(self, mid) {
                fail = mid;
            } else {
                pass = mid;
            }
        }
        fail
    }
}

/// `n` contiguous chunks of `0..len`, as even as possible.
fn chunk_bounds(len: usize, n: usize) -> Vec<(usize, usize)> {
    let n = n.clamp(1, len.max(1));
    (0..n).map(|i| (i * len / n, (i + 1) * len / n)).collect()
}

fn source_int(src: &SourceSpec, key: &str) -> Option<i64> {
    let v = toml::Value::try_from(src).ok()?;
    v.get("type")?.as_str().filter(|t| *t == "fleet")?;
    v.get(key)?.as_integer()
}

fn with_source_int(sc: &Scenario, key: &str, value: i64) -> Option<Scenario> {
    let mut v = toml::Value::try_from(&sc.source).ok()?;
    v.as_table_mut()?.insert(key.to_string(), toml::Value::Integer(value));
    let mut out = sc.clone();
    out.source = v.try_into().ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_list() {
        assert_eq!(chunk_bounds(5, 2), [(0, 2), (2, 5)]);
        assert_eq!(chunk_bounds(3, 3), [(0, 1), (1, 2), (2, 3)]);
        assert_eq!(chunk_bounds(2, 8), [(0, 1), (1, 2)]);
    }
}
