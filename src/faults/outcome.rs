//! What a fault decision did: the log's `what` (the catalogue's last column), as a type. Checks
//! ask it whether the message it acted on is gone ([`Outcome::destroys`]) or may arrive twice
//! ([`Outcome::duplicates`]) instead of matching strings, and a new outcome is one variant here.
//! Its serde form, `Display` and [`Outcome::as_str`] are the snake_case name transcripts show.

use std::fmt;

use serde::{Serialize, Serializer};

/// Declares [`Outcome`] from one list of `Variant = "logged_name"` rows: the enum, its name and
/// [`Outcome::ALL`], so the name a transcript shows cannot drift from the variant.
macro_rules! outcomes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// One fault decision's outcome (the log's `what`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Outcome {
            $($(#[$doc])* #[doc = concat!("`", $name, "`")] $variant,)*
        }

        impl Outcome {
            /// Every outcome, in catalogue order.
            pub const ALL: &[Outcome] = &[$(Outcome::$variant),*];

            /// The snake_case name, as logged.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Outcome::$variant => $name,)*
                }
            }
        }
    };
}

outcomes! {
    Split = "split",
    Coalesce = "coalesce",
    /// A `coalesce` group sent early: `max_wait_ms` passed.
    Flush = "flush",
    Drop = "drop",
    Duplicate = "duplicate",
    Reorder = "reorder",
    /// A held message (reorder, reorder_packet, two-way stall) let go.
    Release = "release",
    DropPacket = "drop_packet",
    DuplicatePacket = "duplicate_packet",
    ReorderPacket = "reorder_packet",
    CorruptChecksum = "corrupt_checksum",
    BreakEscape = "break_escape",
    FlipByte = "flip_byte",
    Truncate = "truncate",
    StrayFlag = "stray_flag",
    Garbage = "garbage",
    WrongLength = "wrong_length",
    WrongVersion = "wrong_version",
    /// `latency` moved a delivery time.
    Delay = "delay",
    /// `bandwidth` moved a delivery time.
    Throttle = "throttle",
    Close = "close",
    Abort = "abort",
    MidFrame = "mid_frame",
    Stall = "stall",
    /// A message a stall holds.
    Held = "held",
    StallEnd = "stall_end",
    /// A message a stall dropped: it held `max_held_bytes` already.
    Overflow = "overflow",
    Refuse = "refuse",
    /// A message a fault held when the connection closed, or one sent after the link closed.
    Undelivered = "undelivered",
    /// The trigger fired on a frame the fault cannot act on.
    NoTarget = "no_target",
}

impl Outcome {
    /// The message this decision acted on is not delivered as it was offered: removed, broken so
    /// the decoder rejects it, cut by a disconnect, or never sent.
    pub fn destroys(self) -> bool {
        use Outcome::*;
        matches!(
            self,
            Drop | DropPacket
                | CorruptChecksum
                | BreakEscape
                | FlipByte
                | Truncate
                | StrayFlag
                | WrongLength
                | Close
                | Abort
                | MidFrame
                | Undelivered
                | Garbage
                | Overflow
        )
    }

    /// The message this decision acted on may legitimately be decoded twice.
    pub fn duplicates(self) -> bool {
        self == Outcome::Duplicate
    }

    /// The message this decision acted on may legitimately be decoded out of its terminal's order:
    /// held back behind later messages (a whole message, or one of its packets, so it completes
    /// only when that packet comes).
    pub fn reorders(self) -> bool {
        matches!(self, Outcome::Reorder | Outcome::ReorderPacket)
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Outcome {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Outcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which outcomes excuse a message from `every_frame_once`: the list checks used to hold as
    /// strings. A change here changes what scenarios accept, so it must be deliberate.
    #[test]
    fn destroying_outcomes_are_the_catalogued_ones() {
        let destroying: Vec<&str> = Outcome::ALL
            .iter()
            .filter(|o| o.destroys())
            .map(|o| o.as_str())
            .collect();
        assert_eq!(
            destroying,
            [
                "drop",
                "drop_packet",
                "corrupt_checksum",
                "break_escape",
                "flip_byte",
                "truncate",
                "stray_flag",
                "garbage",
                "wrong_length",
                "close",
                "abort",
                "mid_frame",
                "overflow",
                "undelivered"
            ]
        );
        let duplicating: Vec<Outcome> = Outcome::ALL.iter().copied().filter(|o| o.duplicates()).collect();
        assert_eq!(duplicating, [Outcome::Duplicate]);
    }

    /// Every outcome is named in the catalogue of the module doc, so a reader of a transcript can
    /// look up any `what` it shows.
    #[test]
    fn every_outcome_is_in_the_catalogue() {
        let doc = include_str!("mod.rs");
        for o in Outcome::ALL {
            assert!(
                doc.contains(&format!("`{o}`")),
                "`{o}` is not in the catalogue of faults/mod.rs"
            );
        }
        assert_eq!(
            serde_json::to_string(&Outcome::StallEnd).expect("serialises"),
            "\"stall_end\""
        );
    }
}
