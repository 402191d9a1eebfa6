//! Gateway sessions and their lifetime. A session is what outlives a connection: its feed resumes
//! where the last connection stopped, its fault counters keep counting. It is keyed by the request
//! path of the handshake, which any peer chooses, so sessions are also what a hostile or merely
//! numerous set of peers can pile up. Hence three rules:
//!
//! - a session costs little until it is used: its feed and its frame describer are built on first
//!   use, not when the handshake names the path;
//! - a session no connection holds expires after [`super::GatewayConfig::session_idle_ms`] (kept
//!   in an index ordered by the time it became idle, so expiry costs `O(log n)`, not a scan);
//! - at most [`super::GatewayConfig::max_sessions`] exist; a handshake that would create one more
//!   is refused (the caller answers HTTP 503 and logs it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::feed::{Feed, FeedItem};
use crate::codec::Message;
use crate::codec::deframer::Deframer;
use crate::faults::Pipeline;

/// Builds the feed of a session from its key.
pub(super) type FeedFactory = dyn Fn(&str) -> Box<dyn Feed> + Send + Sync;

/// One session's state.
pub(super) struct Session {
    key: Arc<str>,
    /// Built on first use ([`Session::feed`]).
    feed: Option<Box<dyn Feed>>,
    head: Option<FeedItem>,
    exhausted: bool,
    /// Terminal replies waiting for their due time, by (due, seq).
    replies: BTreeMap<(Duration, u64), FeedItem>,
    seq: u64,
    pub(super) pipeline: Pipeline,
    pub(super) offered: u64,
    /// Follows the feed's byte stream so frames split across items are named where they complete;
    /// built with the first item described. Boxed: only a full log describes frames, and a
    /// deframer inline (192 bytes) would be held by every session of a gateway that logs less.
    describer: Option<Box<Deframer>>,
    /// The live connection and how to tell it that it has been replaced.
    pub(super) active: Option<(u64, Arc<super::conn::Signal>)>,
    /// Connections holding the session: accepted handshakes whose connection has not ended.
    holders: u32,
    /// Since when no connection holds it (its expiry clock runs); `None` while held.
    idle_since: Option<Duration>,
}

impl Session {
    /// The session's key (its URL path), shared with whoever names it.
    pub(super) fn key(&self) -> &Arc<str> {
        &self.key
    }

    fn feed(&mut self, make: &FeedFactory) -> &mut dyn Feed {
        let key = &self.key;
        self.feed.get_or_insert_with(|| make(key)).as_mut()
    }

    /// When the next item (feed or reply) is due, `None` when there is none.
    pub(super) fn peek_due(&mut self, make: &FeedFactory) -> Option<Duration> {
        if self.head.is_none() && !self.exhausted {
            self.head = self.feed(make).next_item();
            self.exhausted = self.head.is_none();
        }
        let head = self.head.as_ref().map(|i| i.due);
        let reply = self.replies.keys().next().map(|k| k.0);
        match (head, reply) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the next terminal reply is due, `None` when none waits.
    pub(super) fn peek_reply(&self) -> Option<Duration> {
        self.replies.keys().next().map(|k| k.0)
    }

    /// The next item due at or before `now`: replies before feed items at equal times; with
    /// `replies_only` (a paused feed) only replies.
    pub(super) fn pop_due(&mut self, make: &FeedFactory, now: Duration, replies_only: bool) -> Option<FeedItem> {
        if replies_only {
            return match self.peek_reply() {
                Some(due) if due <= now => self.replies.pop_first().map(|(_, v)| v),
                _ => None,
            };
        }
        let due = self.peek_due(make)?;
        if due > now {
            return None;
        }
        let reply_first = match (self.replies.keys().next(), &self.head) {
            (Some(k), Some(h)) => k.0 <= h.due,
            (Some(_), None) => true,
            _ => false,
        };
        if reply_first {
            let reply = self.replies.pop_first().map(|(_, v)| v);
            super::conn::release_if_empty(&mut self.replies);
            reply
        } else {
            self.head.take()
        }
    }

    /// The terminal reads `msg`; its answers are scheduled.
    pub(super) fn on_client_message(&mut self, make: &FeedFactory, msg: &Message, now: Duration) {
        for r in self.feed(make).on_client_message(msg, now) {
            self.seq += 1;
            self.replies.insert((r.due, self.seq), r);
        }
    }

    /// The frames in an item about to be offered, continuing the feed's byte stream.
    pub(super) fn describe(&mut self, bytes: &[u8]) -> Vec<super::FrameDesc> {
        super::describe_stream(self.describer.get_or_insert_with(Box::default), bytes)
    }
}

/// Why a handshake cannot have a session.
#[derive(Debug)]
pub(super) enum ClaimError {
    /// [`super::GatewayConfig::max_sessions`] sessions exist and the path names none of them.
    Full {
        /// The limit.
        limit: usize,
    },
    /// The session's fault pipeline cannot be built.
    Pipeline(String),
}

/// Every session, and the idle ones by the time they became idle.
#[derive(Default)]
pub(super) struct Sessions {
    map: HashMap<Arc<str>, Arc<Mutex<Session>>>,
    idle: BTreeSet<(Duration, Arc<str>)>,
}

impl Sessions {
    /// How many sessions exist.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every session (for [`super::Gateway::idle`]).
    pub(super) fn all(&self) -> Vec<Arc<Mutex<Session>>> {
        self.map.values().cloned().collect()
    }

    /// The session of `key`, created (idle, so that it expires even if the handshake is refused)
    /// unless `limit` sessions exist already.
    pub(super) fn get_or_create(
        &mut self,
        key: &str,
        now: Duration,
        limit: usize,
        pipeline: impl FnOnce() -> Result<Pipeline, String>,
    ) -> Result<Arc<Mutex<Session>>, ClaimError> {
        if let Some(s) = self.map.get(key) {
            return Ok(s.clone());
        }
        if self.map.len() >= limit {
            return Err(ClaimError::Full { limit });
        }
        let key: Arc<str> = Arc::from(key);
        let s = Arc::new(Mutex::new(Session {
            key: key.clone(),
            feed: None,
            head: None,
            exhausted: false,
            replies: BTreeMap::new(),
            seq: 0,
            pipeline: pipeline().map_err(ClaimError::Pipeline)?,
            offered: 0,
            describer: None,
            active: None,
            holders: 0,
            idle_since: Some(now),
        }));
        self.idle.insert((now, key.clone()));
        self.map.insert(key, s.clone());
        Ok(s)
    }

    /// A connection now holds `s` (its handshake was accepted): the expiry clock stops.
    pub(super) fn hold(&mut self, s: &mut Session) {
        if let Some(t) = s.idle_since.take() {
            self.idle.remove(&(t, s.key.clone()));
        }
        s.holders += 1;
    }

    /// A connection holding `s` ended at `now`; the last one starts the expiry clock.
    pub(super) fn release(&mut self, s: &mut Session, now: Duration) {
        s.holders = s.holders.saturating_sub(1);
        if s.holders == 0 && s.idle_since.is_none() {
            s.idle_since = Some(now);
            self.idle.insert((now, s.key.clone()));
        }
    }

    /// Removes every session idle for at least `idle` at `now`, returning their keys and idle
    /// times, in expiry order.
    pub(super) fn expire(&mut self, now: Duration, idle: Duration) -> Vec<(Arc<str>, Duration)> {
        let mut gone = Vec::new();
        while let Some((since, _)) = self.idle.first()
            && since.saturating_add(idle) <= now
        {
            let Some((since, key)) = self.idle.pop_first() else {
                break;
            };
            self.map.remove(&key);
            gone.push((key, now - since));
        }
        gone
    }

    /// When the next idle session expires.
    pub(super) fn next_expiry(&self, idle: Duration) -> Option<Duration> {
        self.idle.first().map(|(since, _)| since.saturating_add(idle))
    }
}
