//! What each subcommand does. This is the edge: it wires scenario, pki, hub, load and report
//! together and turns errors into `anyhow` with context.

mod hub;
mod pki;
pub mod run;

use crate::cli::{Cli, Command};
use crate::Outcome;

/// Runs the chosen subcommand.
pub async fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Run(args) => run::command(args).await,
        Command::Pki(cmd) => pki::command(cmd),
        Command::Hub(cmd) => hub::command(cmd).await,
        Command::Report(args) => {
            let summary = crate::report::read_summary(&args.dir)?;
            let mut out = std::io::stdout().lock();
            write_or_broken_pipe(crate::report::write_text(&mut out, &summary))?;
            Ok(Outcome::Success)
        }
    }
}

/// A closed stdout (`| head`) is not an error.
pub(crate) fn write_or_broken_pipe(r: std::io::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
