//! Scenario files (`scenarios/*.toml`): one behaviour each, named as a sentence. A scenario says
//! what it shows, its seed, its source (a generated fleet or a capture), the faults, the client's
//! settings, the commands the client sends, and the invariants expected to hold.
//!
//! Unknown keys are rejected; every error names the file, line and column, and the key. Relative
//! paths in a scenario (a capture's `path`) are relative to the scenario file, so a scenario means
//! the same from any working directory ([`Scenario::parse`] resolves them).

pub mod checks;
pub mod external;
pub mod harness;
pub mod observe;
mod render;
pub mod runner;
pub mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::faults::FaultSpec;
use crate::gateway::GatewayConfig;
use crate::gateway::source::SourceSpec;

/// One scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario shows, in a sentence or two (printed by `run`, kept in the snapshot).
    pub description: String,
    /// Seed of every random choice (faults, fleet, client backoff jitter). Default 1.
    #[serde(default = "one")]
    pub seed: u64,
    /// How long the run lasts in virtual time, ms. Default 60,000.
    #[serde(default = "default_duration")]
    pub duration_ms: u64,
    /// What the gateway serves.
    #[serde(default)]
    pub source: SourceSpec,
    /// Gateway settings (prefix_len, limits). Its seed is the scenario's.
    #[serde(default)]
    pub gateway: GatewaySection,
    /// Faults, applied in order.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// The client's settings.
    #[serde(default)]
    pub client: ClientSection,
    /// Commands the client sends.
    #[serde(default)]
    pub commands: Vec<CommandSpec>,
    /// Invariants checked after the run.
    #[serde(default)]
    pub expect: Expectations,
    /// Set by [`Scenario::load`]: the file's stem.
    #[serde(skip)]
    pub name: String,
    /// Set by [`Scenario::load`]: the file.
    #[serde(skip)]
    pub path: PathBuf,
}

fn one() -> u64 {
    1
}
fn default_duration() -> u64 {
    60_000
}

/// The gateway part of a scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// Envelope bytes before every message to the client (the seed's gateway: 18).
    pub prefix_len: usize,
}

impl GatewaySection {
    /// The gateway configuration for a run with `seed`.
    pub fn config(&self, seed: u64) -> GatewayConfig {
        GatewayConfig {
            prefix_len: self.prefix_len,
            seed,
            ..GatewayConfig::default()
        }
    }
}

/// The client's settings in a scenario; each has the client's own default when left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSection {
    /// Envelope bytes to skip at the start of every message.
    pub prefix_len: Option<usize>,
    /// Smallest backoff delay, ms.
    pub backoff_min_ms: Option<u64>,
    /// Largest backoff delay, ms.
    pub backoff_max_ms: Option<u64>,
    /// Backoff growth factor.
    pub backoff_factor: Option<f64>,
    /// A connection up this long resets the backoff, ms.
    pub reset_after_ms: Option<u64>,
    /// Give up after this many failed attempts in a row (default: never).
    pub max_attempts: Option<u32>,
    /// Connect (TCP + handshake) timeout, ms.
    pub connect_timeout_ms: Option<u64>,
    /// WebSocket ping interval, ms.
    pub ping_interval_ms: Option<u64>,
    /// Nothing read for this long means the connection is dead, ms.
    pub idle_timeout_ms: Option<u64>,
    /// Send-queue capacity while disconnected.
    pub queue_capacity: Option<usize>,
    /// A command not confirmed by 0x0001 within this is sent again, ms.
    pub confirm_timeout_ms: Option<u64>,
    /// Most re-sends of one command.
    pub max_resends: Option<u32>,
    /// An incomplete packet group is given up after this, ms.
    pub group_timeout_ms: Option<u64>,
    /// Ask for missing packets with 0x8003 when a group stalls (or expires, without
    /// `retransmit_wait_ms`).
    pub request_missing: Option<bool>,
    /// Keep a group idle for `group_timeout_ms` open this much longer for the packets 0x8003 asks
    /// for, ms (default 0: given up at the timeout).
    pub retransmit_wait_ms: Option<u64>,
    /// Take an unescaped 0x7E inside a frame as data when only that makes a valid frame (devices
    /// that forget the escape; the decoder setting `rejoin_unescaped_flag`). Default false.
    pub rejoin_unescaped_flag: Option<bool>,
    /// An external client process to run the scenario against instead of the built-in client
    /// (live only; `{url}` is replaced by the gateway's URL). See `clients/CONTRACT.md`.
    pub command: Option<Vec<String>>,
}

/// A command the client sends during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// When, ms of virtual time from the start (the client queues it if not connected then).
    pub at_ms: u64,
    /// Message id, e.g. "0x9205".
    #[serde(with = "crate::codec::body::hex_id")]
    pub msg_id: u16,
    /// Terminal it is addressed to.
    pub phone: String,
    /// Header version of the command. Default 2013.
    #[serde(default)]
    pub version: crate::codec::Version,
    /// The body's fields, as the typed body of `msg_id` names them (e.g. 0x9205: channel, start, end,
    /// alarm, av_type, stream_type, storage_type).
    #[serde(default)]
    pub body: Option<toml::Table>,
    /// Or the raw body as hex.
    #[serde(default)]
    pub hex: Option<String>,
    /// Await the answer with `request()` (0x9205 -> 0x1205, 0x9206 -> 0x0001 + 0x1206) instead of
    /// fire-and-forget `send()`.
    #[serde(default)]
    pub request: bool,
}

/// Invariants checked after a run. Each is off unless set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expectations {
    /// Every frame the gateway offered that no fault destroyed was decoded exactly once.
    pub every_frame_once: Option<bool>,
    /// Every packet group was completed, or reported expired with its missing packets.
    pub groups_accounted: Option<bool>,
    /// Number of reconnects, inclusive range `[min, max]`.
    pub reconnects: Option<[u32; 2]>,
    /// Every command sent was confirmed, re-sent only as the at-least-once rule says.
    pub commands_confirmed: Option<bool>,
    /// Messages of each terminal were decoded in the order the gateway offered them.
    pub order_per_terminal: Option<bool>,
    /// Exactly this many frames rejected by the client's decoder.
    pub frames_rejected: Option<u64>,
    /// At least this many messages decoded.
    pub min_messages: Option<u64>,
    /// Every `request = true` command got its answer.
    pub requests_answered: Option<bool>,
    /// A conversation replay (`[source] converse = true`): every command of the recording was
    /// sent by the client under test and answered with the recorded answers.
    pub conversation_complete: Option<bool>,
}

/// A scenario file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type, a missing or unknown key.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong (names the key).
        message: String,
    },
    /// A value that parses but cannot work (e.g. a bad fault spec).
    #[error("{path}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(&text, path)
    }

    /// Parses scenario text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let mut s: Scenario = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |sp| line_col(text, sp.start));
            ScenarioError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        s.name = path
            .file_stem()
            .map_or_else(|| "scenario".into(), |n| n.to_string_lossy().into_owned());
        s.path = path.to_path_buf();
        s.resolve_paths();
        // Every count and duration in range, reported at its key like a parse error.
        if let Some(v) = validate::check(&s).into_iter().next() {
            let (line, column) = validate::offset_of(text, &v.path).map_or((1, 1), |o| line_col(text, o));
            return Err(ScenarioError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: format!("`{}`: {}", v.key(), v.message),
            });
        }
        for (i, c) in s.commands.iter().enumerate() {
            if c.body.is_some() && c.hex.is_some() {
                return Err(ScenarioError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("commands[{i}]: give either `body` or `hex`, not both"),
                });
            }
        }
        Ok(s)
    }

    /// Makes the relative paths of the file relative to its directory: a capture's `path`.
    /// (`[client] command` files are looked up beside the scenario by
    /// [`external::ExternalClient::for_scenario`].)
    fn resolve_paths(&mut self) {
        let dir = self.path.parent().unwrap_or(Path::new("")).to_path_buf();
        if let SourceSpec::Capture(c) = &mut self.source
            && c.path.is_relative()
        {
            c.path = dir.join(&c.path);
        }
    }

    /// The scenario as a file to be written at `file`: relative paths (already resolved against
    /// where it was read) made absolute, so the text means the same wherever it is written (an
    /// explore reproducer goes to `--out`).
    pub fn relocated(&self) -> Scenario {
        let mut sc = self.clone();
        if let SourceSpec::Capture(c) = &mut sc.source
            && c.path.is_relative()
            && let Ok(abs) = std::path::absolute(&c.path)
        {
            c.path = abs;
        }
        sc
    }

    /// Every `*.toml` in a directory (sorted), or the file itself.
    pub fn discover(path: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
        if path.is_dir() {
            let rd = std::fs::read_dir(path).map_err(|source| ScenarioError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let mut v: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            v.sort();
            Ok(v)
        } else {
            Ok(vec![path.to_path_buf()])
        }
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named_with_line_and_column() {
        let text = "description = \"x\"\nseed = 3\n\n[client]\nping_intervl_ms = 5\n";
        let err = Scenario::parse(text, Path::new("scenarios/bad.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("scenarios/bad.toml:5:1: "), "{err}");
        assert!(err.contains("ping_intervl_ms"), "{err}");
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let text = "description = \"x\"\nseed = \"three\"\n";
        let err = Scenario::parse(text, Path::new("s.toml")).unwrap_err().to_string();
        assert!(err.starts_with("s.toml:2:8: "), "{err}");
    }

    fn err(text: &str) -> String {
        Scenario::parse(text, Path::new("s.toml")).unwrap_err().to_string()
    }

    #[test]
    fn an_endless_duration_is_refused_at_its_key() {
        let e = err("description = \"x\"\nduration_ms = 18446744073709551615\n");
        assert!(e.starts_with("s.toml:2:15: `duration_ms`"), "{e}");
        assert!(e.contains("1..=604800000"), "{e}");
    }

    #[test]
    fn a_reversed_range_is_refused_at_its_key() {
        let e = err("description = \"x\"\n[expect]\nreconnects = [3, 1]\n");
        assert!(e.starts_with("s.toml:3:14: `expect.reconnects`"), "{e}");
        assert!(e.contains("min must be <= max"), "{e}");
    }

    #[test]
    fn counts_in_sections_and_arrays_are_refused_at_their_keys() {
        let e = err("description = \"x\"\n[source]\ntype = \"fleet\"\nterminals = 4294967295\n");
        assert!(
            e.starts_with("s.toml:4:13: `source.terminals`: 4294967295 is out of range 1..=100000"),
            "{e}"
        );
        let e = err(
            "description = \"x\"\n[[commands]]\nat_ms = 1\nmsg_id = \"0x8001\"\nphone = \"1\"\n[[commands]]\nat_ms = 999999999999\nmsg_id = \"0x8001\"\nphone = \"1\"\n",
        );
        assert!(e.starts_with("s.toml:7:9: `commands[1].at_ms`"), "{e}");
        let e = err("description = \"x\"\n[client]\nbackoff_min_ms = 5\nbackoff_max_ms = 1\n");
        assert!(e.starts_with("s.toml:4:18: `client.backoff_max_ms`"), "{e}");
    }

    #[test]
    fn missing_description_is_an_error() {
        let err = Scenario::parse("seed = 1\n", Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("description"), "{err}");
    }
}
