//! What a schedule may contain: the `[explore]` table of a scenario file, or the built-in bounds of
//! `--faults random` (faults the client must survive without any visible change).
//!
//! ```toml
//! [explore]
//! decisions = [1, 8]       # decisions per run, inclusive range
//! at = [1, 30]             # the unit (message or frame, run-wide) a decision fires on
//!
//! [explore.faults.corrupt_checksum]   # the table's name is the fault type ...
//! xor = [1, 255]                      # two integers: drawn from that inclusive range
//!
//! [explore.faults.split_escape]       # ... unless it names one with `type`
//! type = "split"
//! mode = ["inside_escape", "next_to_flag"]   # any other array: one element picked
//! cuts = 1024                         # anything else: given as is
//! ```
//!
//! An array of two-integer arrays draws an array (`offsets = [[1, 120]]` gives `offsets = [57]`).
//! Every decision gets `scope = "run"` and an `at` drawn from `at` (a fault table may give its own
//! `at` range, or any other trigger key such as `msg_id`), so it fires exactly once in the run.
//!
//! `Scenario` itself rejects unknown keys, so the `[explore]` table is cut out of the text before
//! the scenario is parsed (its lines blanked, so every error still names the right line), and read
//! on its own from the same text with every other line blanked.

use std::path::Path;

use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::faults::FaultSpec;
use crate::faults::limits::MAX_COUNT;
use crate::scenario::{Scenario, ScenarioError};

/// Most decisions one run may draw.
pub const MAX_DECISIONS: u64 = 1024;
/// Default `decisions` range.
pub const DEFAULT_DECISIONS: [u64; 2] = [1, 8];
/// Default `at` range.
pub const DEFAULT_AT: [u64; 2] = [1, 30];

/// How one parameter of a fault is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// An integer from the inclusive range; shrinks towards the low end.
    Range(i64, i64),
    /// One of these values.
    OneOf(Vec<toml::Value>),
    /// An array, each element drawn.
    List(Vec<Param>),
    /// Exactly this value.
    Fixed(toml::Value),
}

impl Param {
    fn parse(key: &str, v: &toml::Value) -> Result<Param, String> {
        let toml::Value::Array(items) = v else {
            return Ok(Param::Fixed(v.clone()));
        };
        match items.as_slice() {
            [toml::Value::Integer(lo), toml::Value::Integer(hi)] if lo > hi => {
                Err(format!("`{key}` = [{lo}, {hi}] is not a range: low must be <= high"))
            }
            [toml::Value::Integer(lo), toml::Value::Integer(hi)] => Ok(Param::Range(*lo, *hi)),
            [] => Err(format!(
                "`{key}` = []: give a value, a range [low, high] or values to pick from"
            )),
            _ if items.iter().all(|i| i.is_array()) => items
                .iter()
                .map(|i| Param::parse(key, i))
                .collect::<Result<_, _>>()
                .map(Param::List),
            _ => Ok(Param::OneOf(items.clone())),
        }
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> toml::Value {
        match self {
            Param::Range(lo, hi) => toml::Value::Integer(rng.random_range(*lo..=*hi)),
            Param::OneOf(v) => v[rng.random_range(0..v.len())].clone(),
            Param::List(items) => toml::Value::Array(items.iter().map(|p| p.draw(rng)).collect()),
            Param::Fixed(v) => v.clone(),
        }
    }
}

/// One entry of `[explore.faults]`: a fault type and how each of its keys is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultBounds {
    /// The table's name (`split_escape`).
    pub label: String,
    /// The keys of the flat fault table (`type` included), in file order.
    pub params: Vec<(String, Param)>,
}

/// Everything a schedule is drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds {
    /// Decisions per run, inclusive.
    pub decisions: [u64; 2],
    /// Default `at` range.
    pub at: [u64; 2],
    /// The faults to pick from (never empty).
    pub faults: Vec<FaultBounds>,
}

/// The `[explore]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExploreTable {
    decisions: Option<[u64; 2]>,
    at: Option<[u64; 2]>,
    faults: Option<toml::Table>,
}

/// The built-in bounds of `--faults random`: faults that change how bytes travel but never what a
/// client must decode, so every expectation of a scenario must still hold under them.
pub const SURVIVABLE: &str = r#"
decisions = [1, 8]
at = [1, 30]
[faults.split]
mode = "offsets"
offsets = [[1, 120]]
[faults.split_escape]
type = "split"
mode = "inside_escape"
cuts = 1024
[faults.split_flag]
type = "split"
mode = "next_to_flag"
cuts = 1024
[faults.coalesce]
count = [2, 4]
max_wait_ms = [1, 100]
[faults.latency]
ms = [1, 300]
jitter_ms = 0
[faults.duplicate_packet]
index = [1, 4]
in_packet = true
[faults.reorder_packet]
index = [1, 4]
max_wait_ms = [1, 1000]
in_packet = true
"#;

impl Bounds {
    /// The bounds of `--faults random`.
    pub fn survivable() -> Bounds {
        let t: ExploreTable = toml::from_str(SURVIVABLE).expect("built-in bounds parse");
        Bounds::from_table(t).expect("built-in bounds are valid")
    }

    fn from_table(t: ExploreTable) -> Result<Bounds, String> {
        let decisions = t.decisions.unwrap_or(DEFAULT_DECISIONS);
        range_ok("decisions", decisions, 1, MAX_DECISIONS)?;
        let at = t.at.unwrap_or(DEFAULT_AT);
        range_ok("at", at, 1, MAX_COUNT)?;
        let Some(table) = t.faults.filter(|f| !f.is_empty()) else {
            return Err("`faults`: name at least one fault, e.g. [explore.faults.corrupt_checksum]".into());
        };
        let mut faults = Vec::new();
        for (label, v) in table {
            let toml::Value::Table(ft) = v else {
                return Err(format!("`faults.{label}` must be a table of the fault's keys"));
            };
            let mut params = Vec::new();
            if !ft.contains_key("type") {
                params.push(("type".to_string(), Param::Fixed(toml::Value::String(label.clone()))));
            }
            for (k, v) in &ft {
                let p = Param::parse(k, v).map_err(|e| format!("`faults.{label}`: {e}"))?;
                params.push((k.clone(), p));
            }
            faults.push(FaultBounds { label, params });
        }
        let b = Bounds { decisions, at, faults };
        b.check_draws()?;
        Ok(b)
    }

    /// Draws a few decisions of every fault with a fixed RNG and reads each as a fault spec, so a
    /// misspelt key or a parameter out of the fault's range is an error when the file is read.
    fn check_draws(&self) -> Result<(), String> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for fb in &self.faults {
            for _ in 0..16 {
                let table = fb.draw(&mut rng, self.at);
                FaultSpec::deserialize(toml::Value::Table(table))
                    .map_err(|e| format!("`faults.{}`: {}", fb.label, e.message().trim()))?;
            }
        }
        Ok(())
    }
}

impl FaultBounds {
    /// One flat fault table: its keys drawn, `at` and `scope = "run"` added unless given.
    pub fn draw(&self, rng: &mut ChaCha8Rng, at: [u64; 2]) -> toml::Table {
        let mut t = toml::Table::new();
        for (k, p) in &self.params {
            t.insert(k.clone(), p.draw(rng));
        }
        if !t.contains_key("at") {
            t.insert(
                "at".into(),
                toml::Value::Integer(rng.random_range(at[0]..=at[1]) as i64),
            );
        }
        t.entry("scope").or_insert_with(|| toml::Value::String("run".into()));
        t
    }

    /// The low end of `key` when it is drawn from a range (what simplifying moves towards).
    pub fn low(&self, key: &str, at: [u64; 2]) -> Option<i64> {
        match self.params.iter().find(|(k, _)| k == key) {
            Some((_, Param::Range(lo, _))) => Some(*lo),
            Some(_) => None,
            None if key == "at" => Some(at[0] as i64),
            None => None,
        }
    }
}

fn range_ok(key: &str, r: [u64; 2], lo: u64, hi: u64) -> Result<(), String> {
    if r[0] > r[1] {
        return Err(format!(
            "`{key}` = [{}, {}] is not a range: low must be <= high",
            r[0], r[1]
        ));
    }
    if r[0] < lo || r[1] > hi {
        return Err(format!("`{key}` = [{}, {}] is out of range {lo}..={hi}", r[0], r[1]));
    }
    Ok(())
}

/// A scenario file read for exploring: the scenario without its `[explore]` table, and the table.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The scenario, exactly as `run` would read the file without the `[explore]` table.
    pub scenario: Scenario,
    /// The `[explore]` bounds, when the file has them.
    pub bounds: Option<Bounds>,
}

/// Reads a scenario file that may hold an `[explore]` table.
pub fn load(path: &Path) -> Result<Loaded, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// [`load`] on text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Loaded, ScenarioError> {
    let (rest, explore) = split_explore(text);
    let scenario = Scenario::parse(&rest, path)?;
    let bounds = match explore {
        None => None,
        Some(ex) => Some(parse_bounds(&ex, path)?),
    };
    Ok(Loaded { scenario, bounds })
}

fn parse_bounds(text: &str, path: &Path) -> Result<Bounds, ScenarioError> {
    #[derive(Deserialize)]
    struct Doc {
        explore: ExploreTable,
    }
    let doc: Doc = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |sp| crate::scenario::line_col(text, sp.start));
        ScenarioError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: format!("explore: {}", e.message().trim()),
        }
    })?;
    Bounds::from_table(doc.explore).map_err(|m| {
        let line = text.lines().position(is_explore_header).map_or(1, |i| i + 1);
        ScenarioError::Parse {
            path: path.to_path_buf(),
            line,
            column: 1,
            message: format!("explore: {m}"),
        }
    })
}

/// Whether a line opens an `[explore]`, `[explore.*]` or `[[explore.*]]` table.
fn is_explore_header(line: &str) -> bool {
    let l = line.trim_start().trim_start_matches('[').trim_start();
    line.trim_start().starts_with('[')
        && (l.starts_with("explore]") || l.starts_with("explore.") || l.starts_with("explore ]"))
}

/// The text with the `[explore]` tables' lines blanked, and (when there are any) the text with
/// every other line blanked. Both keep every line where it was. A table runs from its header to
/// the next header.
pub fn split_explore(text: &str) -> (String, Option<String>) {
    let mut rest = String::with_capacity(text.len());
    let mut explore = String::new();
    let mut inside = false;
    let mut any = false;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('[') {
            inside = is_explore_header(line);
            any |= inside;
        }
        let nl = if line.ends_with('\n') { "\n" } else { "" };
        if inside {
            rest.push_str(nl);
            explore.push_str(line);
        } else {
            rest.push_str(line);
            explore.push_str(nl);
        }
    }
    (rest, any.then_some(explore))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_explore_table_is_cut_out_keeping_lines() {
        let text = "description = \"x\"\n[explore]\nat = [1, 5]\n[explore.faults.split]\ncuts = 2\n[client]\nping_intervl_ms = 5\n";
        let (rest, ex) = split_explore(text);
        assert_eq!(rest.lines().count(), text.lines().count());
        assert!(!rest.contains("explore"));
        assert!(
            ex.as_deref()
                .is_some_and(|e| e.contains("[explore.faults.split]") && !e.contains("client"))
        );
        let err = parse(text, Path::new("s.toml")).unwrap_err().to_string();
        assert!(err.starts_with("s.toml:7:1: "), "{err}");
    }

    #[test]
    fn bounds_errors_name_the_key() {
        let e = |t: &str| {
            parse(&format!("description = \"x\"\n{t}"), Path::new("s.toml"))
                .unwrap_err()
                .to_string()
        };
        let m = e("[explore]\ndecisions = [3, 1]\n[explore.faults.split]\n");
        assert!(m.contains("decisions") && m.contains("low must be <= high"), "{m}");
        let m = e("[explore]\n[explore.faults.corrupt_checksum]\nxor = [0, 3]\n");
        assert!(
            m.starts_with("s.toml:2:1: ") && m.contains("faults.corrupt_checksum"),
            "{m}"
        );
        let m = e("[explore]\nrunz = 3\n");
        assert!(m.starts_with("s.toml:3:1: ") && m.contains("runz"), "{m}");
        let m = e("[explore.faults.nonsense]\n");
        assert!(m.contains("unknown fault type"), "{m}");
    }

    #[test]
    fn draws_are_explicit_and_fire_once() {
        let b = Bounds::survivable();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for fb in &b.faults {
            let t = fb.draw(&mut rng, b.at);
            assert_eq!(t.get("scope").and_then(|v| v.as_str()), Some("run"));
            assert!(
                t.get("at")
                    .and_then(|v| v.as_integer())
                    .is_some_and(|a| (1..=30).contains(&a))
            );
        }
    }
}
