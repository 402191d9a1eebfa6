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
    /// Stress-test reconnection: N real clients against the gateway through disconnect storms.
    Stress(Box<jt808_harness::stress::StressArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Decode(args) => {
            cli::decode::run(&args, std::io::stdin().lock(), std::io::stdout().lock()).map_err(|e| e.into())
        }
        Command::Stress(args) => match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(rt) => match rt.block_on(jt808_harness::stress::run_cli(*args)) {
                Ok(true) => Ok(()),
                Ok(false) => Err("stress: gates failed".into()),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jt808-harness: {e}");
            ExitCode::FAILURE
        }
    }
}
