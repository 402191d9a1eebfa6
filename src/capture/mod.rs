//! Field captures: the capture file format, the recording proxy, pcap import and inspection.
//!
//! - [`format`]: the `jt808-capture` JSON Lines format (documented there), its streaming reader
//!   and appending writer. Plain `std::io`.
//! - [`record`]: the recording proxy. A WebSocket server between a real client and a real gateway
//!   that relays both ways untouched and writes what passed. The only tokio code in this module.
//! - [`pcap`]: TCP flows of JT808 terminals in a pcap/pcapng file -> a capture (pcap-file +
//!   etherparse, TCP reassembly by sequence number).
//! - [`inspect`]: what a capture holds (connections, terminals, messages per id, rejected frames),
//!   as a table or JSON.
//!
//! Redaction (stripping SIM numbers and positions) comes later and rewrites captures with the same
//! reader and writer.

pub mod format;
pub mod inspect;
pub mod pcap;
pub mod record;

pub use format::{
    CaptureError, CaptureHeader, CaptureReader, CaptureWriter, FORMAT_NAME, FORMAT_VERSION, Payload, ReaderConfig,
    Record, RecordKind, Side, Truncation,
};
pub use inspect::{InspectArgs, Summary, inspect};
pub use pcap::{ImportOpts, ImportPcapArgs, ImportReport, PcapError, import_pcap};
pub use record::{RecordError, RecordOpts, RecordReport, Recorder};
