//! `fleetbench merge`: read the shards' summaries (results directories, summary.json files, or
//! logs with one `run --print-summary` line per shard), merge them, judge the thresholds, and
//! write the merged results directory.

use std::path::Path;

use anyhow::Context as _;

use crate::cli::MergeArgs;
use crate::metrics::{merge, ShardSummary, Summary};
use crate::report::{write_text, ResultsDir};
use crate::Outcome;

pub(super) fn command(args: &MergeArgs) -> anyhow::Result<Outcome> {
    let mut shards = Vec::new();
    for input in &args.inputs {
        shards.extend(read_input(input)?);
    }
    let summary = merge(shards).context("cannot merge the shards")?;
    let results = ResultsDir::create_at(&args.out)?;
    results.write_all(&summary)?;
    results.write(
        "plan.json",
        serde_json::to_string_pretty(&summary.scenario)?.as_bytes(),
    )?;
    let mut out = std::io::stdout().lock();
    super::write_or_broken_pipe(write_text(&mut out, &summary))?;
    super::write_or_broken_pipe(std::io::Write::write_all(
        &mut out,
        format!("{:<12}{}\n", "Results", results.path().display()).as_bytes(),
    ))?;
    Ok(super::run::outcome(&summary))
}

/// The summaries in one input: a results directory, a summary.json, or a log whose lines may
/// hold summaries (anything before the first `{` on a line, such as `kubectl logs --prefix`,
/// is skipped).
fn read_input(path: &Path) -> anyhow::Result<Vec<ShardSummary>> {
    let file = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    if let Ok(summary) = serde_json::from_str::<Summary>(&text) {
        return Ok(vec![ShardSummary {
            source: file.display().to_string(),
            summary,
        }]);
    }
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(open) = line.find('{') else { continue };
        let json = &line[open..];
        if !json.contains("\"schema_version\"") {
            continue;
        }
        let source = format!("{}:{}", file.display(), i + 1);
        let summary = serde_json::from_str::<Summary>(json)
            .with_context(|| format!("{source} is not a whole fleetbench summary line"))?;
        found.push(ShardSummary { source, summary });
    }
    anyhow::ensure!(
        !found.is_empty(),
        "{} holds no fleetbench summary: give results directories, summary.json files or logs \
         with `run --print-summary` lines",
        file.display()
    );
    Ok(found)
}
