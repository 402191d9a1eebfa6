//! Sans-IO JT/T 808 (2011/2013/2019) with the JT/T 1078 messages. No tokio, no clock reads, no I/O,
//! no randomness: time comes in as an argument, so the client, the gateway, the capture tools and
//! the fuzzers all share this one codec.
//!
//! ```text
//! wire:  7E | header | body | XOR | 7E          (0x7E -> 7D 02, 0x7D -> 7D 01 inside)
//!        └─ deframer ─┘ frame: unescape, check ─┘ header ─┘ reassembly ─┘ body ─┘
//! ```
//!
//! - [`frame`]: escaping, check code, limits.
//! - [`deframer`]: bytes in any chunking -> frames, garbage and rejected frames as items.
//! - [`header`]: 2011/2013/2019 headers, the BCD phone, the sub-packet item.
//! - [`reassembly`]: per-terminal packet groups with limits and expiry.
//! - [`body`]: typed message bodies, decode and encode.
//! - [`message`]: a header with its body; encoding with splitting into packets.
//! - [`decoder`]: all of the above glued into one `push(bytes, now)`.

pub mod body;
pub mod decoder;
pub mod deframer;
pub mod error;
pub mod frame;
pub mod header;
pub mod message;
pub mod reassembly;
pub mod wire;

pub use decoder::{DecodeEvent, Decoder, DecoderConfig};
pub use deframer::{Deframer, DeframerConfig, Item};
pub use error::FrameError;
pub use header::{Header, HeaderQuirk, PacketInfo, Phone, Version, msg_id_hex};
pub use message::Message;
