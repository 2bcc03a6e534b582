//! What each subcommand does. This is the edge: it wires scenario, pki, hub, load and report
//! together and turns errors into `anyhow` with context.

mod capacity;
mod cpu_split;
mod embedded;
mod hub;
pub mod live;
mod merge;
mod pki;
pub mod run;
mod shard;
mod summarize;
mod sweep;
mod verify;

use crate::cli::{Cli, Command, CompareArgs};
use crate::report;
use crate::Outcome;

/// Runs the chosen subcommand.
pub async fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Run(args) => run::command(args).await,
        Command::Merge(args) => merge::command(&args),
        Command::Pki(cmd) => pki::command(cmd),
        Command::Hub(cmd) => hub::command(cmd).await,
        Command::Report(args) => {
            let summary = report::read_summary(&args.dir)?;
            if args.dir.is_dir() {
                report::ResultsDir::open(&args.dir)?.write_reports(&summary)?;
            }
            let mut out = std::io::stdout().lock();
            write_or_broken_pipe(report::write_text(&mut out, &summary))?;
            Ok(Outcome::Success)
        }
        Command::Compare(args) => compare(&args),
    }
}

fn compare(args: &CompareArgs) -> anyhow::Result<Outcome> {
    let base = report::read_summary(&args.base)?;
    let new = report::read_summary(&args.new)?;
    let tolerance = report::Tolerance {
        relative: args.tolerance,
        floor_us: u64::try_from(args.noise_floor.as_micros()).unwrap_or(u64::MAX),
    };
    let comparison = report::compare(&base, &new, tolerance);
    let (base_name, new_name) = (
        args.base.display().to_string(),
        args.new.display().to_string(),
    );
    let mut out = std::io::stdout().lock();
    write_or_broken_pipe(if args.json {
        report::write_comparison_json(&mut out, &comparison, &base_name, &new_name)
    } else {
        report::write_comparison(&mut out, &comparison, &base_name, &new_name)
    })?;
    Ok(if comparison.regressions().next().is_some() {
        Outcome::ChecksFailed
    } else {
        Outcome::Success
    })
}

/// A closed stdout (`| head`) is not an error.
pub(crate) fn write_or_broken_pipe(r: std::io::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
