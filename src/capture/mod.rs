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
pub use inspect::{InspectArgs, Summary, inspect};
pub use pcap::{ConnInfo, ImportOpts, ImportPcapArgs, ImportReport, PcapError, SkippedFlow, WsProblem, import_pcap};
pub use record::{PrefixSetting, RecordError, RecordOpts, RecordReport, Recorder};
pub use redact::{RedactArgs, RedactError, RedactOpts, RedactReport, Redactor, redact};

#[cfg(test)]
mod cli_tests {
    use clap::{Parser, Subcommand};

    /// The shape the binary wires: one subcommand per options struct.
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        Record(super::RecordOpts),
        ImportPcap(super::ImportPcapArgs),
        Inspect(super::InspectArgs),
    }

    #[test]
    fn options_structs_parse_as_subcommands() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "x",
            "record",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "ws://10.0.0.5:9001",
            "--out",
            "r.jsonl",
        ])
        .unwrap();
        let Cmd::Record(o) = cli.cmd else { panic!() };
        assert_eq!(
            (
                o.prefix_len,
                o.connect_timeout_ms,
                o.close_grace_ms,
                o.handshake_timeout_ms
            ),
            (super::record::PrefixSetting::Auto, 10_000, 5_000, 10_000)
        );

        let cli = Cli::try_parse_from([
            "x",
            "import-pcap",
            "f.pcapng",
            "-o",
            "c.jsonl",
            "--port",
            "7000",
            "--port",
            "808",
        ])
        .unwrap();
        let Cmd::ImportPcap(a) = cli.cmd else { panic!() };
        assert_eq!(a.opts.ports, [7000, 808]);
        assert_eq!(a.opts.max_pending_bytes, super::pcap::DEFAULT_MAX_PENDING_BYTES);

        let cli = Cli::try_parse_from(["x", "inspect", "c.jsonl", "--json"]).unwrap();
        let Cmd::Inspect(a) = cli.cmd else { panic!() };
        assert!(a.json);
    }
}
