//! Where a gateway's frames come from: a generated fleet or a capture replayed on its own timeline.
//! [`SourceSpec::feeds`] turns the spec into the per-session feed factory [`super::Gateway::new`]
//! takes, checking everything that can be checked before the first client connects.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::converse::{Conversation, ConversationHandle, ConversationReport};
use super::feed::{Feed, ListFeed};
use super::fleet::{Fleet, FleetConfig, FleetError};
use super::replay::{Replay, ReplayErrors, ReplayOptions};
use super::terminal::TerminalSettings;
use crate::capture::prefix::{DEFAULT_CHECK_MESSAGES, PrefixCheckError, check_capture};
use crate::capture::{CaptureError, CaptureReader};

/// The source of a gateway session's feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// A generated fleet of terminals.
    Fleet(FleetConfig),
    /// A capture replayed on its own timeline.
    Capture(CaptureSource),
}

impl Default for SourceSpec {
    fn default() -> Self {
        SourceSpec::Fleet(FleetConfig::default())
    }
}

/// Replay of a capture file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSource {
    /// The capture (JSON Lines, see [`crate::capture`]). Read from a scenario file, a relative path
    /// is relative to that file (`Scenario::parse` resolves it); given to `serve --capture`, to the
    /// working directory.
    pub path: PathBuf,
    /// Playback speed: 1.0 is the capture's own timing, 10.0 ten times faster, 0 as fast as
    /// possible. Default 1.0.
    #[serde(default = "one")]
    pub speed: f64,
    /// How many times to play it (0 = forever). Default 1.
    #[serde(default = "one_u32")]
    pub loops: u32,
    /// How the terminals answer the client's commands.
    #[serde(default)]
    pub terminal: TerminalSettings,
    /// Replay it as a conversation ([`super::converse`]): the recorded answers wait for the
    /// client's matching commands and carry their serials. Needs `loops = 1`. Default false.
    #[serde(default)]
    pub converse: bool,
    /// Keep the capture's connections: close each where the recording closed it, with its close
    /// code, so the client reconnects for the next ([`ReplayOptions::keep_connections`]). Default
    /// false: one stream, whatever the recorded connections.
    #[serde(default)]
    pub keep_connections: bool,
    /// Serve it even when its stated envelope prefix cuts into frames
    /// ([`crate::capture::prefix::check_capture`]). Default false: such a capture is refused.
    #[serde(default)]
    pub allow_prefix_mismatch: bool,
}

impl CaptureSource {
    /// A capture at `path` played once at its own speed, as a monologue.
    pub fn new(path: impl Into<PathBuf>) -> CaptureSource {
        CaptureSource {
            path: path.into(),
            speed: 1.0,
            loops: 1,
            terminal: TerminalSettings::default(),
            converse: false,
            keep_connections: false,
            allow_prefix_mismatch: false,
        }
    }
}

fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}

/// A source that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The fleet settings do not work.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The capture cannot be opened, or its header is not a capture header (the error names the
    /// file).
    #[error("capture source: {0}")]
    Capture(#[from] CaptureError),
    /// The capture's stated envelope prefix cuts into frames.
    #[error("capture source: {0}")]
    Prefix(#[from] PrefixCheckError),
    /// A capture option out of range.
    #[error("capture source {path}: {message}")]
    Invalid {
        /// The capture file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Reads a whole capture once, so a bad line anywhere fails the source at start, naming
/// `file:line:column`, instead of a replay stopping halfway while clients are connected. A last
/// line cut mid-write is not an error (the reader reports it as a truncation). One line is held
/// at a time: a large capture costs time here (the reader's rate), not memory.
fn validate_capture(path: &std::path::Path) -> Result<(), CaptureError> {
    let mut reader = CaptureReader::open(path)?;
    while let Some(record) = reader.next_record() {
        record?;
    }
    Ok(())
}

/// The seed of session `key`'s feed: independent per session, the same for the same scenario seed
/// and key (FNV-1a of the key, mixed with the seed by SplitMix64's finaliser so that neighbouring
/// seeds give unrelated streams).
pub fn session_seed(seed: u64, key: &str) -> u64 {
    let h = fnv1a(key.as_bytes());
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_add(h);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a, 64 bits: a stable hash (unlike std's `DefaultHasher`, fixed across Rust versions), used
/// for seeds and for the payload digests in transcripts. Not cryptographic.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

type MakeFeed = dyn Fn(&str) -> Box<dyn Feed> + Send + Sync;

/// The per-session feed factory of a source, with the shared list of replay errors of all its
/// sessions.
#[derive(Clone)]
pub struct Feeds {
    make: Arc<MakeFeed>,
    errors: ReplayErrors,
    conversations: Conversations,
}

/// The conversation reports of every session of a conversation replay, by session key.
type Conversations = Arc<std::sync::Mutex<std::collections::BTreeMap<String, ConversationHandle>>>;

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl Feeds {
    /// The feed of session `key`.
    pub fn make(&self, key: &str) -> Box<dyn Feed> {
        (self.make)(key)
    }

    /// Errors of the capture replays of every session so far (empty for a fleet).
    pub fn errors(&self) -> ReplayErrors {
        self.errors.clone()
    }

    /// A handle on the conversation reports of every session so far (none unless the source is
    /// a capture replayed with `converse`); read it at the end of a run.
    pub fn conversations(&self) -> ConversationReports {
        ConversationReports(self.conversations.clone())
    }

    /// The factory as [`super::Gateway::new`] takes it.
    pub fn into_factory(self) -> impl Fn(&str) -> Box<dyn Feed> + Send + Sync + 'static {
        move |key: &str| (self.make)(key)
    }
}

/// The conversation reports of a source's sessions (see [`Feeds::conversations`]).
#[derive(Debug, Clone, Default)]
pub struct ConversationReports(Conversations);

impl ConversationReports {
    /// Each session's report, by session key.
    pub fn reports(&self) -> Vec<(String, ConversationReport)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, h)| (k.clone(), h.report())).collect()
    }
}

impl SourceSpec {
    /// Builds the feed factory: every session key gets its own feed, seeded by
    /// [`session_seed`]`(seed, key)`. Fleet settings are validated here, and a capture is opened
    /// and its header read here, so a missing file or a bad header fails before the first client
    /// connects, naming the file; the whole capture is read once here, so a bad line anywhere
    /// fails here too, naming `file:line:column`.
    pub fn feeds(&self, seed: u64) -> Result<Feeds, SourceError> {
        let errors = ReplayErrors::default();
        let conversations = Conversations::default();
        let make: Arc<MakeFeed> = match self {
            SourceSpec::Fleet(cfg) => {
                Fleet::new(cfg.clone(), seed)?;
                let cfg = cfg.clone();
                Arc::new(move |key: &str| -> Box<dyn Feed> {
                    match Fleet::new(cfg.clone(), session_seed(seed, key)) {
                        Ok(f) => Box::new(f),
                        // Validated above; a seed cannot make a valid config invalid.
                        Err(e) => {
                            tracing::error!(session = key, "fleet: {e}");
                            Box::new(ListFeed::default())
                        }
                    }
                })
            }
            SourceSpec::Capture(c) => {
                if !(c.speed.is_finite() && c.speed >= 0.0) {
                    return Err(SourceError::Invalid {
                        path: c.path.clone(),
                        message: format!(
                            "speed {} must be a finite number >= 0 (0 = as fast as possible)",
                            c.speed
                        ),
                    });
                }
                c.terminal.validate().map_err(|message| SourceError::Invalid {
                    path: c.path.clone(),
                    message: format!("terminal: {message}"),
                })?;
                if c.converse && c.loops != 1 {
                    return Err(SourceError::Invalid {
                        path: c.path.clone(),
                        message: format!("converse replays a conversation once: loops must be 1, not {}", c.loops),
                    });
                }
                validate_capture(&c.path)?;
                if !c.allow_prefix_mismatch {
                    check_capture(&c.path, DEFAULT_CHECK_MESSAGES)?;
                }
                let c = c.clone();
                let errors = errors.clone();
                let conversations = conversations.clone();
                Arc::new(move |key: &str| -> Box<dyn Feed> {
                    let opts = ReplayOptions {
                        speed: c.speed,
                        loops: c.loops,
                        terminal: c.terminal.clone(),
                        seed: session_seed(seed, key),
                        keep_connections: c.keep_connections,
                    };
                    let feed: Result<Box<dyn Feed>, CaptureError> = if c.converse {
                        let handle = ConversationHandle::default();
                        let mut map = conversations.lock().unwrap_or_else(|p| p.into_inner());
                        map.insert(key.to_string(), handle.clone());
                        Conversation::open(&c.path, opts, errors.clone(), handle).map(|f| Box::new(f) as Box<dyn Feed>)
                    } else {
                        Replay::open_with(&c.path, opts, errors.clone()).map(|f| Box::new(f) as Box<dyn Feed>)
                    };
                    match feed {
                        Ok(f) => f,
                        // The file was readable at start; it went away or changed since.
                        Err(e) => {
                            tracing::error!(session = key, "{e}");
                            errors.push_open_error(e.to_string());
                            Box::new(ListFeed::default())
                        }
                    }
                })
            }
        };
        Ok(Feeds {
            make,
            errors,
            conversations,
        })
    }
}
