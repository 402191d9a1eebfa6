//! The command line behind the `jt808-harness` binary: every command's argument types (clap) and
//! the code that turns them into the domain modules' plain settings and runs them. Nothing below
//! `cli` knows clap; `main.rs` only parses [`Cli`], sets up logging and maps [`dispatch`]'s result
//! to an exit status.
//!
//! One convention across commands (README, "The CLI"): durations in one form ([`duration`]), the
//! old `--*-ms` names kept as aliases, every default shown by clap as `[default: ...]`, the same
//! name for the same thing (`--prefix-len`, `--seed`, `--json`, `--out`, `--quiet`), every command
//! that listens printing `listening on ws://ADDR` first on stdout, progress as [`progress`] says.
//!
//! - [`run`](mod@run): scenarios against their snapshots; [`paths`] where its relative paths point.
//! - [`serve`]: the simulated gateway; [`record`]: the recording proxy.
//! - [`client`]: the reconnecting client; [`stress`]: reconnection at scale; [`explore`]: fault
//!   schedules searched and shrunk.
//! - [`decode`] (with [`decode_capture`]) and [`capture`]: `decode`, `import-pcap`, `inspect`,
//!   `redact`.

pub mod capture;
pub mod client;
pub mod decode;
pub mod decode_capture;
pub mod duration;
pub mod explore;
pub mod paths;
pub mod progress;
pub mod record;
pub mod run;
pub mod serve;
pub mod stress;

use std::io::{self, Write};

use clap::{Parser, Subcommand};

/// Record-and-replay test harness for JT/T 808 (+ JT/T 1078) WebSocket clients.
#[derive(Debug, Parser)]
#[command(name = "jt808-harness", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios (default: the project's `scenarios/`): the client against the simulated
    /// gateway, transcripts checked against their snapshots.
    Run(run::RunArgs),
    /// Decode hex (arguments or stdin) or a binary stream (--file) to JSON Lines.
    Decode(decode::DecodeArgs),
    /// The reconnecting client: connect to a gateway and print events as JSON Lines.
    Client(client::ClientArgs),
    /// Record a WebSocket feed through a proxy into a capture.
    Record(record::RecordArgs),
    /// Import JT808-over-TCP flows from a pcap/pcapng file into a capture.
    ImportPcap(capture::ImportPcapArgs),
    /// Summarise a capture.
    Inspect(capture::InspectArgs),
    /// Serve a generated fleet, a capture or a scenario as a simulated terminal gateway until Ctrl-C.
    Serve(serve::ServeArgs),
    /// Rewrite phones, positions, plates and credentials of a capture so it can be committed.
    Redact(capture::RedactArgs),
    /// Stress-test reconnection: N real clients against the gateway through disconnect storms.
    Stress(Box<stress::StressArgs>),
    /// Search fault schedules for a failing run and shrink it to a minimal reproducer scenario.
    Explore(explore::ExploreArgs),
}

type BoxError = Box<dyn std::error::Error>;

fn runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Resolves when Ctrl-C comes (or never, when it cannot be waited for: then the process runs
/// until it is killed).
async fn ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!("cannot wait for Ctrl-C ({e}); running until killed");
        std::future::pending::<()>().await;
    }
}

/// Runs a command; Ok(false) means it ran and reported failures itself.
pub fn dispatch(command: Command) -> Result<bool, BoxError> {
    match command {
        Command::Run(args) => Ok(run::run(&args)?),
        Command::Decode(args) => {
            decode::run(&args, io::stdin().lock(), io::stdout().lock())?;
            Ok(true)
        }
        Command::Client(args) => {
            runtime()?.block_on(client::run(args))?;
            Ok(true)
        }
        Command::Record(args) => {
            let report = runtime()?.block_on(record::run(&args, &mut io::stdout(), ctrl_c()))?;
            eprintln!("{report}");
            Ok(true)
        }
        Command::ImportPcap(args) => {
            print_quietly(&format!("{}\n", args.run()?))?;
            Ok(true)
        }
        Command::Inspect(args) => {
            print_quietly(&format!("{}\n", args.run()?))?;
            Ok(true)
        }
        Command::Serve(args) => {
            runtime()?.block_on(serve::serve(args, &mut io::stdout(), ctrl_c()))?;
            Ok(true)
        }
        Command::Redact(args) => {
            print_quietly(&format!("{}\n", args.run()?))?;
            Ok(true)
        }
        Command::Stress(args) => Ok(runtime()?.block_on(stress::run_cli(*args))?),
        Command::Explore(args) => Ok(explore::run(&args)?),
    }
}

/// Writes `text` to standard output. A reader that went away (`inspect F | head -1`) is not an
/// error: the command ends quietly with its own status, as Unix tools do.
pub fn print_quietly(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// True when `error`, or any error it wraps, is a broken pipe: standard output's reader went
/// away, which ends a command quietly rather than as a failure.
pub fn is_broken_pipe(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut e = Some(error);
    while let Some(err) = e {
        if err
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        e = err.source();
    }
    false
}
