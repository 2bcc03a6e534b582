//! `fleetbench run` on a scenario with `[matrix]`: every cell runs against the same kind of
//! target for the same load, in rounds that alternate the cells' order (so that a noisy
//! neighbour hurts them alike); each run is an ordinary results directory under
//! `results/<name>-<UTC>/cells/<cell>/round-<K>/`, and the sweep writes `comparison.txt`,
//! `comparison.json` and `comparison.html` beside them.

use std::io::Write as _;
use std::path::Path;
use std::time::SystemTime;

use super::run::{run_measured, RunOptions};
use crate::report::sweep::{self, CellRun, Sweep, SweepCell};
use crate::report::{progress_line, write_sweep_html, write_sweep_text, ResultsDir};
use crate::scenario::{MatrixCell, MatrixPlan, Plan};
use crate::Outcome;

/// What `run`'s command line adds to a sweep: `--server-pid` and `--print-summary`.
#[derive(Debug, Clone, Copy)]
pub(super) struct SweepArgs {
    pub(super) server_pid: Option<u32>,
    pub(super) print_summary: bool,
}

/// Runs every cell of `matrix` for `plan`'s rounds and writes the comparison; exit 1 when any
/// cell's run failed (named in the output) or the sweep was interrupted.
pub(super) async fn run(
    plan: &Plan,
    matrix: &MatrixPlan,
    options: &RunOptions,
    args: SweepArgs,
) -> anyhow::Result<Outcome> {
    for (set, flag, why) in [
        (
            options.shard.is_some(),
            "--shard",
            "a sweep runs every cell on this host",
        ),
        (
            options.start_at.is_some(),
            "--start-at",
            "a sweep starts each run when the last ends",
        ),
        (
            options.metrics.is_some(),
            "--metrics",
            "each cell's run is its own; read its results directory",
        ),
        (
            args.print_summary,
            "--print-summary",
            "each cell's summary.json is in its results directory",
        ),
    ] {
        anyhow::ensure!(
            !set,
            "{flag} does not apply to a scenario with [matrix]: {why}"
        );
    }
    let started = SystemTime::now();
    let dir = ResultsDir::create(&options.results_root, &plan.name, started)?;
    let mut sweep = outline(plan, matrix, started);
    let total = matrix.cells.len() * matrix.rounds as usize;
    let mut done = 0;
    'rounds: for round in 1..=matrix.rounds {
        for i in matrix.round_order(round) {
            if options.interrupt.is_cancelled() {
                sweep.interrupted = Some(format!("interrupted after {} of {total} runs", done));
                break 'rounds;
            }
            done += 1;
            let cell = &matrix.cells[i];
            if !options.quiet {
                let line = progress_line(done, total, round, matrix.rounds, &cell.label);
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            let run = run_cell(cell, round, dir.path(), options, args.server_pid).await;
            sweep.cells[i].runs.push(run);
        }
    }
    let mut text = Vec::new();
    write_sweep_text(&mut text, &sweep)?;
    dir.write("comparison.txt", &text)?;
    let json = serde_json::to_string_pretty(&sweep::to_json(&sweep))?;
    dir.write("comparison.json", json.as_bytes())?;
    let mut html = Vec::new();
    write_sweep_html(&mut html, &sweep)?;
    dir.write("comparison.html", &html)?;
    text.extend_from_slice(format!("{:<12}{}\n", "Results", dir.path().display()).as_bytes());
    super::write_or_broken_pipe(std::io::stdout().lock().write_all(&text))?;
    Ok(if sweep::passed(&sweep) {
        Outcome::Success
    } else {
        Outcome::ChecksFailed
    })
}

/// The sweep before any run: its cells (no runs yet) and what was skipped.
fn outline(plan: &Plan, matrix: &MatrixPlan, started: SystemTime) -> Sweep {
    let values = |v: &[(crate::scenario::Axis, String)]| {
        v.iter()
            .map(|(a, v)| (a.key().to_owned(), v.clone()))
            .collect::<Vec<_>>()
    };
    Sweep {
        name: plan.name.clone(),
        description: plan.description.clone(),
        started_at: humantime::format_rfc3339_seconds(started).to_string(),
        rounds: matrix.rounds,
        order: match matrix.order {
            crate::scenario::MatrixOrder::Alternate => "alternate",
            crate::scenario::MatrixOrder::Same => "same",
        }
        .into(),
        axes: matrix.axes.iter().map(|a| a.key().to_owned()).collect(),
        cells: matrix
            .cells
            .iter()
            .map(|c| SweepCell {
                label: c.label.clone(),
                values: values(&c.values),
                offered_groups: c.plan.tls.groups.clone(),
                runs: Vec::new(),
            })
            .collect(),
        skipped: matrix
            .skipped
            .iter()
            .map(|s| sweep::SkippedCell {
                label: s.label.clone(),
                values: sweep::values_map(&values(&s.values)),
                reason: s.reason.clone(),
            })
            .collect(),
        interrupted: None,
    }
}

/// One run of one cell, its results directory renamed to `cells/<label>/round-<K>`.
async fn run_cell(
    cell: &MatrixCell,
    round: u32,
    sweep_dir: &Path,
    options: &RunOptions,
    server_pid: Option<u32>,
) -> CellRun {
    let mut plan = cell.plan.clone();
    plan.name = format!("{}-{}", plan.name, cell.label);
    let cell_dir = sweep_dir.join("cells").join(&cell.label);
    let options = RunOptions {
        results_root: cell_dir.clone(),
        ..options.clone()
    };
    match run_measured(&plan, &options, server_pid).await {
        Ok(report) => {
            let named = cell_dir.join(format!("round-{round}"));
            let dir = match std::fs::rename(&report.dir, &named) {
                Ok(()) => named,
                Err(e) => {
                    tracing::warn!(
                        "cannot rename {} to round-{round}: {e}",
                        report.dir.display()
                    );
                    report.dir
                }
            };
            CellRun {
                round,
                dir: dir.strip_prefix(sweep_dir).ok().map(Path::to_owned),
                summary: Some(report.summary),
                error: None,
            }
        }
        Err(e) => {
            tracing::warn!("sweep cell {} round {round} did not run: {e:#}", cell.label);
            CellRun {
                round,
                dir: None,
                summary: None,
                error: Some(format!("{e:#}")),
            }
        }
    }
}
