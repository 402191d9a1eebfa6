//! `jt808-harness`: the command line. Thin: parses arguments, calls the library, and turns errors
//! into a message on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use jt808_harness::{capture, cli, client, gateway};

/// Record-and-replay test harness for JT/T 808 (+ JT/T 1078) WebSocket clients.
#[derive(Debug, Parser)]
#[command(name = "jt808-harness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios (default `scenarios/`): the client against the simulated gateway, transcripts
    /// checked against their snapshots.
    Run(cli::run::RunArgs),
    /// Decode hex (arguments or stdin) or a binary stream (--file) to JSON Lines.
    Decode(cli::decode::DecodeArgs),
    /// The reconnecting client: connect to a gateway and print events as JSON Lines.
    Client(client::ClientArgs),
    /// Record a WebSocket feed through a proxy into a capture.
    Record(capture::record::RecordOpts),
    /// Import JT808-over-TCP flows from a pcap/pcapng file into a capture.
    ImportPcap(capture::pcap::ImportPcapArgs),
    /// Summarise a capture.
    Inspect(capture::inspect::InspectArgs),
    /// Serve a generated fleet, a capture or a scenario as a simulated terminal gateway until Ctrl-C.
    Serve(gateway::cli::ServeArgs),
    /// Rewrite phones, positions, plates and credentials of a capture so it can be committed.
    Redact(capture::redact::RedactArgs),
    /// Stress-test reconnection: N real clients against the gateway through disconnect storms.
    Stress(Box<jt808_harness::stress::StressArgs>),
    /// Search fault schedules for a failing run and shrink it to a minimal reproducer scenario.
    Explore(jt808_harness::explore::cli::ExploreArgs),
}

type BoxError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    match dispatch(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // Standard output's reader went away (`... | head -1`): end quietly, as Unix tools do.
        Err(e) if cli::is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jt808-harness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Runs a command; Ok(false) means it ran and reported failures itself.
fn dispatch(command: Command) -> Result<bool, BoxError> {
    match command {
        Command::Run(args) => Ok(cli::run::run(&args)?),
        Command::Decode(args) => {
            cli::decode::run(&args, std::io::stdin().lock(), std::io::stdout().lock())?;
            Ok(true)
        }
        Command::Client(args) => {
            runtime()?.block_on(client::run_cli(args))?;
            Ok(true)
        }
        Command::Record(opts) => {
            let report = runtime()?.block_on(capture::record::run(opts, async {
                let _ = tokio::signal::ctrl_c().await;
            }))?;
            eprintln!("{report}");
            Ok(true)
        }
        Command::ImportPcap(args) => {
            cli::print_quietly(&format!("{}\n", args.run()?))?;
            Ok(true)
        }
        Command::Inspect(args) => {
            cli::print_quietly(&format!("{}\n", args.run()?))?;
            Ok(true)
        }
        Command::Serve(args) => {
            runtime()?.block_on(gateway::cli::run_cli(args))?;
            Ok(true)
        }
        Command::Redact(args) => {
            cli::print_quietly(&format!("{}\n", args.run()?))?;
            Ok(true)
        }
        Command::Stress(args) => Ok(runtime()?.block_on(jt808_harness::stress::run_cli(*args))?),
        Command::Explore(args) => Ok(jt808_harness::explore::cli::run(&args)?),
    }
}
