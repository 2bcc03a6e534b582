//! `[matrix]`: a sweep. Each axis lists values of one scenario key; the cells are their
//! cartesian product (as a CI matrix makes them), less the combinations that cannot complete a
//! handshake (skipped, with the reason) and those `exclude` names, plus those `include` adds.
//! Each cell is the base scenario with its values applied, validated as a plan of its own.

mod axis;
mod locate;

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Overrides, Plan, Problems, Scenario};
use crate::scenario::{ConfigError, MatrixCellSection, MatrixSection};
pub use axis::Axis;
use axis::{label_part, listed, parse, stated, Settings, Value};
use locate::{At, Seg};

/// Rounds when `[matrix]` does not say.
const DEFAULT_ROUNDS: u32 = 3;
/// Most cells a sweep runs: a product past this is a mistake more often than a plan.
const MAX_CELLS: usize = 64;

/// The order of cells within each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatrixOrder {
    /// Odd rounds in order, even rounds in reverse: each cell's mean place is the same.
    #[default]
    Alternate,
    /// Every round in order.
    Same,
}

/// The cells of a sweep and how they run.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixPlan {
    /// Rounds over every cell.
    pub rounds: u32,
    /// Order within a round.
    pub order: MatrixOrder,
    /// The axes that vary (from the product or an `include`), in label order.
    pub axes: Vec<Axis>,
    /// The cells that run.
    pub cells: Vec<MatrixCell>,
    /// The combinations that do not run, and why.
    pub skipped: Vec<SkippedCell>,
}

/// One cell: its label, its value of each varying axis, its plan.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixCell {
    /// Unique name, e.g. `ecdsa-p256_X25519MLKEM768_aws-lc-rs` (a directory name).
    pub label: String,
    /// Each varying axis and its value in this cell (`MatrixPlan::axes` order).
    pub values: Vec<(Axis, String)>,
    /// The base plan with the cell's values applied.
    pub plan: Plan,
}

/// A combination of the product that does not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedCell {
    /// Its label, as it would have had.
    pub label: String,
    /// Each varying axis and its value.
    pub values: Vec<(Axis, String)>,
    /// Why it does not run.
    pub reason: String,
}

impl MatrixPlan {
    /// The cells' indices in the order round `round` (from 1) runs them.
    pub fn round_order(&self, round: u32) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.cells.len()).collect();
        if self.order == MatrixOrder::Alternate && round.is_multiple_of(2) {
            order.reverse();
        }
        order
    }
}

/// A cell before validation: its values of the varying axes and where it came from.
struct Candidate {
    /// The values the cell states (product or include).
    values: Vec<(Axis, Value)>,
    label: Option<String>,
}

/// The matrix of `s`, when it has one; problems are added to `p`. The cells are validated only
/// when nothing else is wrong (their problems would repeat the base scenario's).
pub(super) fn matrix(
    s: &Scenario,
    text: &str,
    file: &Path,
    default_name: &str,
    overrides: &Overrides,
    p: &mut Problems<'_>,
) -> Option<MatrixPlan> {
    let m = s.matrix.as_ref()?;
    let (rounds, axes, candidates, excludes) = candidates(s, m, At { file, text }, p)?;
    let mut varying: Vec<Axis> = candidates
        .iter()
        .flat_map(|c| c.values.iter().map(|(a, _)| *a))
        .collect();
    varying.sort();
    varying.dedup();
    let base = Settings::base(s);
    let mut plan = MatrixPlan {
        rounds,
        order: m.order.unwrap_or_default(),
        axes: varying.clone(),
        cells: Vec::new(),
        skipped: Vec::new(),
    };
    let in_product: Vec<Axis> = axes.iter().map(|(a, _)| *a).collect();
    let mut seen: Vec<(Settings, String)> = Vec::new();
    for c in candidates {
        let (settings, label, values) = resolve(&c, &base, &varying, &in_product);
        let reason = skip_reason(&settings, &label, &excludes, &seen);
        seen.push((settings.clone(), label.clone()));
        if let Some(reason) = reason {
            plan.skipped.push(SkippedCell {
                label,
                values,
                reason,
            });
        } else if p.errors.is_empty() {
            match Plan::new(&settings.apply(s), text, file, default_name, overrides) {
                Ok(cell) => plan.cells.push(MatrixCell {
                    label,
                    values,
                    plan: cell,
                }),
                Err(e) => p.errors.extend(e.0.into_iter().map(|e| in_cell(e, &label))),
            }
        }
    }
    if plan.cells.is_empty() && p.errors.is_empty() {
        let why: Vec<String> = plan
            .skipped
            .iter()
            .map(|c| format!("{}: {}", c.label, c.reason))
            .collect();
        p.add(
            "matrix",
            format!("leaves no cell to run: {}", why.join("; ")),
        );
    }
    Some(plan)
}

/// Why a cell does not run: an exclusion, an earlier cell with its settings or label, or
/// settings that cannot complete a handshake.
fn skip_reason(
    settings: &Settings,
    label: &str,
    excludes: &[Candidate],
    seen: &[(Settings, String)],
) -> Option<String> {
    let excluded = excludes
        .iter()
        .position(|e| e.values.iter().all(|(a, v)| settings.get(*a) == *v));
    if let Some(i) = excluded {
        return Some(format!("excluded by matrix.exclude[{i}]"));
    }
    if let Some((_, other)) = seen.iter().find(|(s, l)| s == settings || l == label) {
        return Some(format!("the same cell as {other}"));
    }
    settings.unworkable()
}

/// What `[matrix]` parses to: its rounds, axes, every candidate cell (product, then includes)
/// and the exclusions; `None` when a value is bad (added to `p`).
type Parsed = (u32, Vec<(Axis, Vec<Value>)>, Vec<Candidate>, Vec<Candidate>);

fn candidates(s: &Scenario, m: &MatrixSection, at: At<'_>, p: &mut Problems<'_>) -> Option<Parsed> {
    let before = p.errors.len();
    let rounds = m.rounds.unwrap_or(DEFAULT_ROUNDS);
    if !(1..=100).contains(&rounds) {
        p.add("matrix.rounds", format!("{rounds} is not valid: 1 to 100"));
    }
    let axes = axes(m, at, p);
    let includes = entries(m.include.as_deref(), "include", at, p);
    let excludes = entries(m.exclude.as_deref(), "exclude", at, p);
    if s.fleet.ca_dir.is_some() && axes.iter().any(|(a, _)| *a == Axis::CaKeyType) {
        p.add(
            "matrix.ca-key-type",
            "does not apply with fleet.ca-dir: the CA directory's keys fix it",
        );
    }
    if axes.is_empty() && includes.is_empty() {
        let names: Vec<_> = Axis::ALL.iter().map(|a| a.key()).collect();
        p.add(
            "matrix",
            format!(
                "names no cell: list values of {}, or add cells with include",
                names.join(", ")
            ),
        );
    }
    if p.errors.len() > before {
        return None;
    }
    let mut candidates = product(&axes);
    candidates.extend(includes);
    if candidates.len() > MAX_CELLS {
        p.add(
            "matrix",
            format!("makes {} cells, at most {MAX_CELLS}: name fewer values, exclude combinations, or list the cells you want with include", candidates.len()),
        );
        return None;
    }
    Some((rounds, axes, candidates, excludes))
}

/// A candidate's settings (the base's with its values), label and value of each varying axis.
/// The label names the product's axes and those the candidate states (an include's).
fn resolve(
    c: &Candidate,
    base: &Settings,
    varying: &[Axis],
    in_product: &[Axis],
) -> (Settings, String, Vec<(Axis, String)>) {
    let mut settings = base.clone();
    for (a, v) in &c.values {
        settings.set(*a, v);
    }
    let values = varying
        .iter()
        .map(|a| (*a, settings.get(*a).to_string()))
        .collect();
    let label = c.label.clone().unwrap_or_else(|| {
        varying
            .iter()
            .filter(|a| in_product.contains(a) || c.values.iter().any(|(x, _)| x == *a))
            .map(|a| label_part(*a, &settings.get(*a)))
            .collect::<Vec<_>>()
            .join("_")
    });
    (settings, label, values)
}

/// A cell's problem, naming the cell.
fn in_cell(mut e: ConfigError, label: &str) -> ConfigError {
    e.message = format!("in matrix cell {label}: {}", e.message);
    e
}

/// Each listed axis with its parsed values; a bad or repeated value is a problem at its line.
fn axes(m: &MatrixSection, at: At<'_>, p: &mut Problems<'_>) -> Vec<(Axis, Vec<Value>)> {
    let mut out = Vec::new();
    for (axis, raw) in listed(m) {
        let key = axis.key();
        if raw.is_empty() {
            p.add(
                &format!("matrix.{key}"),
                "is empty: list at least one value, or leave the axis out",
            );
            continue;
        }
        let mut values: Vec<Value> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let problem = match parse(axis, r) {
                Ok(v) if values.contains(&v) => Some(format!("{v} is listed twice")),
                Ok(v) => {
                    values.push(v);
                    None
                }
                Err(e) => Some(e),
            };
            if let Some(message) = problem {
                let path = [Seg::Key("matrix"), Seg::Key(key), Seg::Index(i)];
                p.errors
                    .push(at.error(&path, format!("matrix.{key}[{i}]"), message));
            }
        }
        out.push((axis, values));
    }
    out
}

/// The `include` or `exclude` entries, each parsed (with its label, for an include).
fn entries(
    list: Option<&[MatrixCellSection]>,
    name: &'static str,
    at: At<'_>,
    p: &mut Problems<'_>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (i, c) in list.unwrap_or_default().iter().enumerate() {
        let mut values = Vec::new();
        let field = |key: &str| format!("matrix.{name}[{i}].{key}");
        let segs = |key: &'static str| {
            [
                Seg::Key("matrix"),
                Seg::Key(name),
                Seg::Index(i),
                Seg::Key(key),
            ]
        };
        for (axis, raw) in stated(c) {
            match parse(axis, &raw) {
                Ok(v) => values.push((axis, v)),
                Err(e) => p
                    .errors
                    .push(at.error(&segs(axis.key()), field(axis.key()), e)),
            }
        }
        if name == "exclude" && c.label.is_some() {
            p.errors.push(at.error(
                &segs("label"),
                field("label"),
                "only an include names its cell".into(),
            ));
        }
        if let Some(l) = &c.label {
            if l.is_empty()
                || !l
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                || l.starts_with('.')
            {
                let message = format!("{l:?} is not valid: use letters, digits, '-', '_' and '.' (it names the cell's results directory)");
                p.errors
                    .push(at.error(&segs("label"), field("label"), message));
            }
        }
        if stated(c).is_empty() {
            let path = [Seg::Key("matrix"), Seg::Key(name), Seg::Index(i)];
            p.errors.push(at.error(
                &path,
                format!("matrix.{name}[{i}]"),
                "states no axis value".into(),
            ));
        }
        out.push(Candidate {
            values,
            label: c.label.clone(),
        });
    }
    out
}

/// The cartesian product of the axes, the first axis outermost.
fn product(axes: &[(Axis, Vec<Value>)]) -> Vec<Candidate> {
    let mut cells: Vec<Vec<(Axis, Value)>> = if axes.is_empty() {
        Vec::new()
    } else {
        vec![Vec::new()]
    };
    for (axis, values) in axes {
        cells = cells
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((*axis, v.clone()));
                    c
                })
            })
            .collect();
    }
    cells
        .into_iter()
        .map(|values| Candidate {
            values,
            label: None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
