//! `import-pcap`, `inspect` and `redact`: the capture commands that read one file and write one
//! (or print a summary). Each turns its arguments into the capture module's plain settings
//! ([`ImportOpts`], [`RedactOpts`]) and returns the text to print.

use std::path::PathBuf;

use crate::capture::pcap::{
    DEFAULT_MAX_HTTP_HEADER_BYTES, DEFAULT_MAX_PENDING_BYTES, DEFAULT_MAX_WS_FRAME_BYTES, DEFAULT_MAX_WS_MESSAGE_BYTES,
    DEFAULT_PREFIX_PROBE_MESSAGES,
};
use crate::capture::redact::DEFAULT_MAX_HELD_BYTES;
use crate::capture::{
    CaptureError, ImportOpts, ImportReport, PcapError, RedactError, RedactOpts, RedactReport, import_pcap, inspect,
    redact,
};

/// Arguments of `import-pcap`: a pcap or pcapng file to a capture.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportPcapArgs {
    /// The pcap or pcapng file.
    pub input: PathBuf,
    /// The capture file to write (.jsonl). Must not be the input.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// A platform-side TCP port of raw JT808 flows (repeatable; none: 808, 6808 and 8080-8089).
    /// WebSocket flows are found by their upgrade, on any port.
    #[arg(long = "port", value_name = "N")]
    pub ports: Vec<u16>,
    /// Most out-of-order bytes held per flow direction while waiting for a gap to fill; past it
    /// the gap is given up (and counted).
    #[arg(long, default_value_t = DEFAULT_MAX_PENDING_BYTES)]
    pub max_pending_bytes: usize,
    /// Largest WebSocket frame payload held; a larger frame's message is skipped and reported.
    #[arg(long, default_value_t = DEFAULT_MAX_WS_FRAME_BYTES)]
    pub max_ws_frame_bytes: u64,
    /// Largest WebSocket message (fragments joined) held; a larger one is skipped and reported.
    #[arg(long, default_value_t = DEFAULT_MAX_WS_MESSAGE_BYTES)]
    pub max_ws_message_bytes: usize,
    /// Largest HTTP upgrade request or response looked at; a longer one is not an upgrade.
    #[arg(long, default_value_t = DEFAULT_MAX_HTTP_HEADER_BYTES)]
    pub max_http_header_bytes: usize,
    /// Binary gateway messages per WebSocket connection the envelope prefix is found from.
    #[arg(long, default_value_t = DEFAULT_PREFIX_PROBE_MESSAGES)]
    pub prefix_probe_messages: u64,
    /// Free text for the capture header's "note".
    #[arg(long)]
    pub note: Option<String>,
}

impl ImportPcapArgs {
    /// The import's settings.
    pub fn opts(&self) -> ImportOpts {
        ImportOpts {
            ports: self.ports.clone(),
            max_pending_bytes: self.max_pending_bytes,
            max_ws_frame_bytes: self.max_ws_frame_bytes,
            max_ws_message_bytes: self.max_ws_message_bytes,
            max_http_header_bytes: self.max_http_header_bytes,
            prefix_probe_messages: self.prefix_probe_messages,
            note: self.note.clone(),
            ..ImportOpts::new(self.out.clone())
        }
    }

    /// Runs the import; the report's `Display` is what to print.
    pub fn run(&self) -> Result<ImportReport, PcapError> {
        import_pcap(&self.input, &self.opts())
    }
}

/// Arguments of `inspect`: summarise a capture.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The capture file (.jsonl).
    pub capture: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl InspectArgs {
    /// Runs the command and returns the text to print (a table, or pretty JSON with `--json`).
    pub fn run(&self) -> Result<String, CaptureError> {
        let s = inspect(&self.capture)?;
        if self.json {
            // A Summary holds only strings, numbers and maps with string keys: it always serialises.
            Ok(serde_json::to_string_pretty(&s).unwrap_or_default())
        } else {
            Ok(s.to_string())
        }
    }
}

/// Arguments of `redact`: a capture with SIM numbers, positions and credentials rewritten.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("secret").required(true).args(["key", "key_file"])))]
pub struct RedactArgs {
    /// The capture to redact (.jsonl).
    pub input: PathBuf,
    /// The redacted capture to write (.jsonl); must not be the input.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// The secret key (the same key maps a SIM to the same stand-in every time). Prefer
    /// --key-file: a key on the command line ends up in shell history.
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
    /// Read the key from this file (trailing newline ignored).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Keep frames that cannot be checked as they came (they may still carry personal data).
    #[arg(long)]
    pub keep_undecodable: bool,
    /// Keep the envelope prefix of gateway messages instead of zeroing it.
    #[arg(long)]
    pub keep_prefix: bool,
    /// Most payload bytes held while a frame spanning messages is incomplete.
    #[arg(long, default_value_t = DEFAULT_MAX_HELD_BYTES)]
    pub max_held_bytes: usize,
    /// Free text for the output header's "note" (none: the input's note).
    #[arg(long)]
    pub note: Option<String>,
    /// Redact even when the capture's stated envelope prefix cuts into frames (it is refused
    /// otherwise, naming the first record where it shows).
    #[arg(long)]
    pub allow_prefix_mismatch: bool,
}

impl RedactArgs {
    /// The settings these arguments give (reads --key-file).
    pub fn opts(&self) -> Result<RedactOpts, RedactError> {
        let key = match (&self.key, &self.key_file) {
            (Some(k), _) => k.as_bytes().to_vec(),
            (None, Some(path)) => {
                let mut k = std::fs::read(path).map_err(|source| RedactError::KeyFile {
                    path: path.display().to_string(),
                    source,
                })?;
                while matches!(k.last(), Some(b'\n' | b'\r')) {
                    k.pop();
                }
                k
            }
            (None, None) => Vec::new(),
        };
        Ok(RedactOpts {
            key,
            keep_undecodable: self.keep_undecodable,
            keep_prefix: self.keep_prefix,
            max_held_bytes: self.max_held_bytes,
            note: self.note.clone(),
            allow_prefix_mismatch: self.allow_prefix_mismatch,
        })
    }

    /// Runs the redaction; the report's `Display` is what to print.
    pub fn run(&self) -> Result<RedactReport, RedactError> {
        redact(&self.input, &self.out, &self.opts()?)
    }
}

#[cfg(test)]
mod tests {
    use clap::{Parser, Subcommand};

    use super::*;

    /// The shape the binary wires: one subcommand per options struct.
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        ImportPcap(ImportPcapArgs),
        Inspect(InspectArgs),
        Redact(RedactArgs),
    }

    #[test]
    fn options_structs_parse_as_subcommands() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
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
        assert_eq!(a.opts().ports, [7000, 808]);
        assert_eq!(a.opts().max_pending_bytes, DEFAULT_MAX_PENDING_BYTES);
        let cli = Cli::try_parse_from(["x", "inspect", "c.jsonl", "--json"]).unwrap();
        let Cmd::Inspect(a) = cli.cmd else { panic!() };
        assert!(a.json);
    }

    #[test]
    fn redact_needs_a_key_or_a_key_file() {
        let parse = |argv: &[&str]| {
            Cli::try_parse_from(["x", "redact"].iter().chain(argv)).map(|c| match c.cmd {
                Cmd::Redact(a) => a,
                _ => panic!(),
            })
        };
        let opts = parse(&["in.jsonl", "-o", "out.jsonl", "--key", "s3"])
            .unwrap()
            .opts()
            .unwrap();
        assert_eq!(opts.key, b"s3");
        assert_eq!(opts.max_held_bytes, DEFAULT_MAX_HELD_BYTES);
        assert!(!format!("{opts:?}").contains("s3"), "Debug never shows the key");
        assert!(parse(&["in.jsonl", "-o", "out.jsonl"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "from file\n").unwrap();
        let a = parse(&[
            "in.jsonl",
            "-o",
            "out.jsonl",
            "--key-file",
            key.to_str().unwrap(),
            "--keep-undecodable",
        ])
        .unwrap();
        let opts = a.opts().unwrap();
        assert_eq!(
            (opts.key.as_slice(), opts.keep_undecodable),
            (b"from file".as_slice(), true)
        );
    }
}
