//! Field captures: the capture file format, the recording proxy, pcap import and inspection.
//!
//! - [`format`](mod@format): the `jt808-capture` JSON Lines format (documented there), its streaming reader
//!   and appending writer. Plain `std::io`.
//! - [`record`]: the recording proxy. A WebSocket server between a real client and a real gateway
//!   that relays both ways untouched and writes what passed. The only tokio code in this module.
//! - [`pcap`]: TCP flows of JT808 terminals in a pcap/pcapng file -> a capture (pcap-file +
//!   etherparse, TCP reassembly by sequence number).
//! - [`inspect`](mod@inspect): what a capture holds (connections, terminals, messages per id, rejected frames),
//!   as a table or JSON.
//!
//! - [`redact`](mod@redact): SIM numbers, positions, plates and credentials rewritten so a capture
//!   can be committed; every frame still decodes, timing and record count unchanged.

pub mod format;
pub mod inspect;
pub mod paths;
pub mod pcap;
pub mod prefix;
pub mod record;
pub mod redact;

pub use format::{
    CaptureError, CaptureHeader, CaptureReader, CaptureWriter, FORMAT_NAME, FORMAT_VERSION, Payload, ReaderConfig,
    Record, RecordKind, Side, Truncation,
};
pub use inspect::{Summary, inspect};
pub use pcap::{ConnInfo, ImportOpts, ImportReport, PcapError, SkippedFlow, WsProblem, import_pcap};
pub use record::{PrefixSetting, RecordError, RecordOpts, RecordReport, Recorder};
pub use redact::{RedactError, RedactOpts, RedactReport, Redactor, redact};
