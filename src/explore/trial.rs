//! One run: the scenario with its own faults plus a schedule's, in snapshot mode (paused clock,
//! in-memory pipes, a current-thread runtime of its own), judged by the scenario's `[expect]`
//! checks, the [`invariants`](super::invariants) and a panic catcher.
//!
//! A panic in the runner's own future unwinds out of `block_on` and is caught here; a panic in a
//! spawned task (the gateway's connection handler, the client's driver) is caught by tokio and
//! only seen by the panic hook. The hook this module installs notes the message of any panic on a
//! thread that is inside a run (and hands every other panic to the hook it replaced), so both
//! kinds fail the run with check `panic`.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use super::invariants::{Budgets, Failure, Invariants};
use super::schedule::Decision;
use crate::scenario::Scenario;
use crate::scenario::runner::{self, Mode, RunError};
use crate::transcript::Transcript;

/// What one run gave.
#[derive(Debug, Clone)]
pub struct Trial {
    /// Every check that failed: `panic` first, then the `[expect]` checks in the scenario's order,
    /// then the invariants. Empty: the run passed.
    pub failures: Vec<Failure>,
    /// The transcript, unless the run panicked out of the runner; with its events only from
    /// [`run_transcribed`].
    pub transcript: Option<Transcript>,
    /// The run ended with traffic in flight (see [`Invariants::ended_in_flight`]); false when it
    /// panicked out of the runner.
    pub ended_in_flight: bool,
}

impl Trial {
    /// Whether `check` is among the failures.
    pub fn fails(&self, check: &str) -> bool {
        self.failures.iter().any(|f| f.check == check)
    }
}

thread_local! {
    static IN_RUN: Cell<bool> = const { Cell::new(false) };
    static PANICKED: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_RUN.with(Cell::get) {
                PANICKED.with(|p| {
                    p.borrow_mut()
                        .get_or_insert_with(|| info.to_string().replace('\n', " "));
                });
            } else {
                previous(info);
            }
        }));
    });
}

/// The scenario a schedule turns `base` into: its own faults first (their positions, and so their
/// RNG seeds, stay as in the file), the schedule's after them.
pub fn with_schedule(base: &Scenario, decisions: &[Decision]) -> Result<Scenario, String> {
    let mut sc = base.clone();
    for (i, d) in decisions.iter().enumerate() {
        sc.faults.push(
            d.spec()
                .map_err(|e| format!("decision {} ({}): {e}", i + 1, d.type_name()))?,
        );
    }
    Ok(sc)
}

/// Runs `sc` once in snapshot mode and judges it, keeping no transcript events (a search or
/// shrink run needs only its verdict; rendering every event would cost more than judging it).
/// `Err` when it cannot run at all (its source or a fault cannot be set up): that is the
/// scenario's error, not a finding.
pub fn run(sc: &Scenario, budgets: Budgets) -> Result<Trial, String> {
    run_keeping(sc, budgets, false)
}

/// [`run`], keeping the transcript's events: a reproducer's run, whose transcript is written.
pub fn run_transcribed(sc: &Scenario, budgets: Budgets) -> Result<Trial, String> {
    run_keeping(sc, budgets, true)
}

fn run_keeping(sc: &Scenario, budgets: Budgets, events: bool) -> Result<Trial, String> {
    guarded(
        || runner::run_with(sc, Mode::Snapshot, events, Invariants::default()),
        sc.duration_ms,
        budgets,
    )
}

/// Runs `f` with panics caught (its own and those of tasks it spawns on this thread) and judges
/// the transcript and the invariants it returns.
fn guarded(
    f: impl FnOnce() -> Result<(Transcript, Invariants), RunError>,
    duration_ms: u64,
    budgets: Budgets,
) -> Result<Trial, String> {
    install_hook();
    IN_RUN.with(|f| f.set(true));
    PANICKED.with(|p| p.borrow_mut().take());
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    IN_RUN.with(|f| f.set(false));
    let hooked = PANICKED.with(|p| p.borrow_mut().take());
    let mut failures = Vec::new();
    if let Some(msg) = hooked {
        failures.push(Failure {
            check: "panic".into(),
            detail: msg,
        });
    }
    let transcript = match result {
        Ok(Ok(t)) => Some(t),
        Ok(Err(RunError::Setup { message, .. })) => return Err(message),
        Ok(Err(e)) => return Err(e.to_string()),
        Err(payload) => {
            if failures.is_empty() {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic without a message".into());
                failures.push(Failure {
                    check: "panic".into(),
                    detail: msg,
                });
            }
            None
        }
    };
    let mut ended_in_flight = false;
    if let Some((t, invariants)) = &transcript {
        failures.extend(t.checks.iter().filter(|c| !c.ok).map(|c| Failure {
            check: c.name.clone(),
            detail: c.detail.clone(),
        }));
        failures.extend(invariants.check(duration_ms, budgets));
        ended_in_flight = invariants.ended_in_flight(duration_ms);
    }
    let transcript = transcript.map(|(t, _)| t);
    Ok(Trial {
        failures,
        transcript,
        ended_in_flight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> (Transcript, Invariants) {
        let t = Transcript {
            scenario: "x".into(),
            seed: 1,
            summary: Default::default(),
            checks: Vec::new(),
            events: Vec::new(),
        };
        (t, Invariants::default())
    }

    #[test]
    fn a_panic_in_a_spawned_task_fails_the_run() {
        let t = guarded(
            || {
                let rt = tokio::runtime::Builder::new_current_thread().build()?;
                rt.block_on(async {
                    let _ = tokio::spawn(async { panic!("gateway task broke") }).await;
                });
                Ok(empty())
            },
            10,
            Budgets::default(),
        )
        .unwrap();
        assert_eq!(t.failures.len(), 1, "{:?}", t.failures);
        assert_eq!(t.failures[0].check, "panic");
        assert!(t.failures[0].detail.contains("gateway task broke"), "{:?}", t.failures);
        assert!(t.transcript.is_some());
    }

    #[test]
    fn a_panic_out_of_the_runner_fails_the_run() {
        let t = guarded(|| panic!("runner broke"), 10, Budgets::default()).unwrap();
        assert_eq!(t.failures[0].check, "panic");
        assert!(t.failures[0].detail.contains("runner broke"), "{:?}", t.failures);
        assert!(t.transcript.is_none());
        // The next run on this thread starts clean.
        let ok = guarded(|| Ok(empty()), 10, Budgets::default()).unwrap();
        assert!(ok.failures.is_empty(), "{:?}", ok.failures);
    }
}
