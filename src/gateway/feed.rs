//! What a gateway session serves: a [`Feed`] yields WebSocket messages (JT808 bytes, envelope
//! prefix not included) on a timeline, and answers what the client sends the way a terminal would.
//! Pure and clock-free: due times are virtual offsets from the gateway's start.

use std::collections::VecDeque;
use std::time::Duration;

use crate::codec::Message;

/// One message of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    /// When it is due, from the gateway's start. An item due while no client is connected is sent
    /// as soon as one is (the gateway buffers for its client).
    pub due: Duration,
    /// The JT808 bytes of one WebSocket message (one or more frames).
    pub bytes: Vec<u8>,
    /// Instead of a message: end the connection here, as a recorded connection ended (a capture
    /// replayed with its connections kept, [`super::replay::ReplayOptions::keep_connections`]).
    /// `bytes` is then empty.
    pub close: Option<FeedClose>,
}

/// How a feed ends the connection it is served on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedClose {
    /// The close code to send; `None`: drop the connection without a close frame, as the
    /// recorded one dropped.
    pub code: Option<u16>,
}

/// A source of frames for one gateway session, plus the terminal behaviour that answers commands.
pub trait Feed: Send {
    /// The next scheduled message, in due order; `None` when the source is exhausted.
    fn next_item(&mut self) -> Option<FeedItem>;

    /// The client sent `msg` at `now`: the terminal's answers (due at `now` or later).
    fn on_client_message(&mut self, msg: &Message, now: Duration) -> Vec<FeedItem>;
}

/// A fixed list of messages (tests, and captures small enough to hold), with no terminal behaviour.
#[derive(Debug, Default)]
pub struct ListFeed {
    items: VecDeque<FeedItem>,
}

impl ListFeed {
    /// Serves `items` in order.
    pub fn new(items: impl IntoIterator<Item = FeedItem>) -> ListFeed {
        ListFeed {
            items: items.into_iter().collect(),
        }
    }
}

impl Feed for ListFeed {
    fn next_item(&mut self) -> Option<FeedItem> {
        self.items.pop_front()
    }

    fn on_client_message(&mut self, _msg: &Message, _now: Duration) -> Vec<FeedItem> {
        Vec::new()
    }
}
