//! `jt808-harness`: the command line. Thin: parses arguments ([`cli::Cli`]), sets up logging,
//! runs the command ([`cli::dispatch`]) and turns errors into a message on stderr and a non-zero
//! exit.

use std::process::ExitCode;

use clap::Parser;

use jt808_harness::cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    match cli::dispatch(args.command) {
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
