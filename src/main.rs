//! The fleetbench binary: parse, set up logging and the runtime, run, map the outcome to an
//! exit status (0 success, 1 a check failed, 2 usage, scenario or runtime error).

use std::process::ExitCode;

use std::io::IsTerminal as _;

use clap::Parser as _;
use fleetbench::{cli::Cli, Outcome};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let level = ["warn", "info", "debug", "trace"][usize::from(cli.verbose.min(3))];
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(format!("fleetbench={level}"))
            }),
        )
        .with_writer(fleetbench::report::progress::log_writer)
        // Colour only on a terminal: a log piped to a file or CI keeps no escape codes.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: cannot start the async runtime: {e}");
            }
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(fleetbench::run(cli)) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::ChecksFailed) => ExitCode::from(1),
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(2)
        }
    }
}
