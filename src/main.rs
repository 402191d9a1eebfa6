//! `jt808-harness`: the command line. Thin: parses arguments and calls the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use jt808_harness::cli;

/// Record-and-replay test harness for JT/T 808 (+ JT/T 1078) WebSocket clients.
#[derive(Debug, Parser)]
#[command(name = "jt808-harness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode hex (arguments or stdin) or a binary stream (--file) to JSON Lines.
    Decode(cli::decode::DecodeArgs),
    /// Serve a generated fleet or a capture as a simulated terminal gateway until Ctrl-C.
    Serve(jt808_harness::gateway::cli::ServeArgs),
}

fn serve(args: jt808_harness::gateway::cli::ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    // Warnings (replay errors, retransmit misses) to stderr; stdout carries the JSON Lines log.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .try_init();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(jt808_harness::gateway::cli::run_cli(args))?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Decode(args) => {
            cli::decode::run(&args, std::io::stdin().lock(), std::io::stdout().lock()).map_err(|e| e.into())
        }
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jt808-harness: {e}");
            ExitCode::FAILURE
        }
    }
}
