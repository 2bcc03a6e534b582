//! A latency heat map: seconds across, latency up on a log scale (five buckets a decade), each
//! cell coloured by how many samples of that second fell in that bucket (a log colour scale,
//! with its legend on the right), and the second's p99 drawn over it in red (the title says so:
//! a legend box would hide cells).
//!
//! The rule for when one is drawn: a phase gets a heat map when it has latency in at least
//! [`HEATMAP_MIN_SECONDS`] seconds. Shorter runs show every second's percentiles well enough on
//! the latency-over-time chart; from ten seconds on, a heat map shows what percentiles hide
//! (two populations, a growing tail).

use std::io;

use plotters::coord::combinators::IntoLogRange as _;
use plotters::prelude::*;

use super::{chart_error, seconds_label, COLOURS, RIGHT_MARGIN, TALL as SIZE};
use crate::metrics::TimelineRow;

/// Seconds with latency a phase needs for a heat map.
pub(crate) const HEATMAP_MIN_SECONDS: usize = 10;
/// Latency buckets per decade.
const PER_DECADE: f64 = 5.0;
/// Width of the colour legend at the right, in pixels.
const LEGEND: u32 = 84;
/// The colour scale from few to many samples (viridis, sampled at five points).
const SCALE: [(u8, u8, u8); 5] = [
    (68, 1, 84),
    (59, 82, 139),
    (33, 145, 140),
    (94, 201, 98),
    (253, 231, 37),
];

/// One second's column: its end `t` and the count in each bucket.
struct Column {
    t: f64,
    counts: Vec<u64>,
    p99_ms: f64,
}

/// The grid: bucket `i` spans `10^((lo + i) / PER_DECADE)` ms up to the next.
struct Grid {
    lo: i32,
    buckets: usize,
    columns: Vec<Column>,
    most: u64,
}

impl Grid {
    fn edge(&self, i: usize) -> f64 {
        10f64.powf((self.lo + i as i32) as f64 / PER_DECADE)
    }
}

/// The bucket of `us` microseconds (0 µs counts as 1 µs).
fn bucket(us: u64) -> i32 {
    ((us.max(1) as f64 / 1000.0).log10() * PER_DECADE).floor() as i32
}

/// Each second's histogram of `phase` in buckets; `None` when no second has any.
fn grid(rows: &[TimelineRow], phase: &str) -> io::Result<Option<Grid>> {
    let mut seconds = Vec::new();
    for r in rows {
        let Some(l) = r.latency_of(phase) else {
            continue;
        };
        let h = l.decode().map_err(chart_error)?;
        let cells: Vec<(i32, u64)> = h
            .iter_recorded()
            .map(|v| (bucket(v.value_iterated_to()), v.count_at_value()))
            .collect();
        seconds.push((r.t as f64, cells, l.p99_us as f64 / 1000.0));
    }
    let lo = seconds.iter().flat_map(|s| s.1.iter().map(|c| c.0)).min();
    let hi = seconds.iter().flat_map(|s| s.1.iter().map(|c| c.0)).max();
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(None);
    };
    let buckets = (hi - lo + 1) as usize;
    let columns: Vec<Column> = seconds
        .into_iter()
        .map(|(t, cells, p99_ms)| {
            let mut counts = vec![0; buckets];
            for (b, n) in cells {
                counts[(b - lo) as usize] += n;
            }
            Column { t, counts, p99_ms }
        })
        .collect();
    let most = columns
        .iter()
        .flat_map(|c| c.counts.iter().copied())
        .max()
        .unwrap_or(1);
    Ok(Some(Grid {
        lo,
        buckets,
        columns,
        most,
    }))
}

/// The colour of a cell holding `n` of at most `most` samples (log scale: 1 sample is the
/// darkest, `most` the brightest).
fn colour(n: u64, most: u64) -> RGBColor {
    let f = if most <= 1 {
        1.0
    } else {
        (n.max(1) as f64).ln() / (most as f64).ln()
    };
    let x = f.clamp(0.0, 1.0) * (SCALE.len() - 1) as f64;
    let i = (x.floor() as usize).min(SCALE.len() - 2);
    let w = x - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * w).round() as u8;
    let (a, b) = (SCALE[i], SCALE[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A latency tick label on the log axis: `0.5 ms`, `20 ms`, `2 s`.
fn latency_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{} s", trim(ms / 1000.0))
    } else {
        format!("{} ms", trim(ms))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The heat map of `phase` over `rows`, or `None` when it has latency in no second.
pub(crate) fn heatmap(
    title: &str,
    rows: &[TimelineRow],
    phase: &str,
) -> io::Result<Option<String>> {
    let Some(g) = grid(rows, phase)? else {
        return Ok(None);
    };
    let (t_min, t_max) = time_axis(&g);
    let (y_lo, y_hi) = (g.edge(0), g.edge(g.buckets));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let (plot, legend) = root.split_horizontally(SIZE.0 - LEGEND);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .margin_right(RIGHT_MARGIN / 2)
            .x_label_area_size(36)
            .y_label_area_size(76)
            .build_cartesian_2d(t_min..t_max, (y_lo..y_hi).log_scale())
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("seconds")
            .y_desc("latency (log)")
            .y_labels(12)
            .x_label_formatter(&seconds_label(t_max - t_min))
            .y_label_formatter(&|y| latency_label(*y))
            .draw()
            .map_err(chart_error)?;
        chart.draw_series(cells(&g)).map_err(chart_error)?;
        // The p99 of each run of consecutive seconds (a lone second is a dot).
        let red = COLOURS[3];
        let runs = p99_runs(&g, (y_lo, y_hi));
        let lines = runs.iter().filter(|r| r.len() > 1);
        chart
            .draw_series(lines.map(|r| PathElement::new(r.clone(), red.stroke_width(2))))
            .map_err(chart_error)?;
        let dots = runs.iter().filter(|r| r.len() == 1);
        chart
            .draw_series(dots.map(|r| Circle::new(r[0], 3, red.filled())))
            .map_err(chart_error)?;
        draw_legend(&legend, g.most)?;
        root.present().map_err(chart_error)?;
    }
    Ok(Some(svg))
}

/// The x axis: each second's column is centred on its `t` (where the latency chart draws its
/// point), half a second either side, the first and last whole.
fn time_axis(g: &Grid) -> (f64, f64) {
    let t_min = g.columns.iter().map(|c| c.t).fold(f64::INFINITY, f64::min);
    let t_max = g.columns.iter().map(|c| c.t).fold(0.0, f64::max);
    (t_min - 0.5, t_max + 0.5)
}

/// A filled rectangle per bucket with samples, one column per second centred on its `t`.
fn cells(g: &Grid) -> impl Iterator<Item = Rectangle<(f64, f64)>> + '_ {
    g.columns.iter().flat_map(move |c| {
        c.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(move |(i, n)| {
                Rectangle::new(
                    [(c.t - 0.5, g.edge(i)), (c.t + 0.5, g.edge(i + 1))],
                    colour(*n, g.most).filled(),
                )
            })
    })
}

/// Each second's p99 at its `t` (held within the axis), in runs of consecutive seconds.
fn p99_runs(g: &Grid, (lo, hi): (f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    for (i, c) in g.columns.iter().enumerate() {
        let at = (c.t, c.p99_ms.clamp(lo, hi));
        match runs.last_mut() {
            Some(run) if i > 0 && c.t - g.columns[i - 1].t <= 1.0 => run.push(at),
            _ => runs.push(vec![at]),
        }
    }
    runs
}

/// The colour scale as a bar, labelled with the counts it stands for.
fn draw_legend(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    most: u64,
) -> io::Result<()> {
    const STEPS: i32 = 40;
    let (top, bottom, x) = (60, SIZE.1 as i32 - 70, 8);
    let step = (bottom - top) as f64 / f64::from(STEPS);
    let font = ("sans-serif", 12).into_font();
    area.draw(&Text::new("samples", (x - 4, top - 22), font.clone()))
        .map_err(chart_error)?;
    for k in 0..STEPS {
        // From the top (most) down to the bottom (one sample).
        let f = 1.0 - f64::from(k) / f64::from(STEPS - 1);
        let n = (most as f64).powf(f).round() as u64;
        let y0 = top + (f64::from(k) * step) as i32;
        let y1 = top + (f64::from(k + 1) * step).ceil() as i32;
        area.draw(&Rectangle::new(
            [(x, y0), (x + 16, y1)],
            colour(n, most).filled(),
        ))
        .map_err(chart_error)?;
    }
    let mid = (most as f64).sqrt().round() as u64;
    let labels = [(top, most), ((top + bottom) / 2, mid), (bottom, 1)];
    for (y, n) in labels {
        area.draw(&Text::new(
            super::super::format::count(n),
            (x + 22, y - 6),
            font.clone(),
        ))
        .map_err(chart_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{new_histogram, IntervalLatency};

    fn rows(seconds: u64) -> Vec<TimelineRow> {
        (1..=seconds)
            .map(|t| {
                let mut h = new_histogram();
                for v in 1..=100 {
                    h.record(v * 100 * t).unwrap();
                }
                let mut r = TimelineRow {
                    t,
                    ..TimelineRow::default()
                };
                r.latency
                    .insert("send_response".into(), IntervalLatency::from_histogram(&h));
                r
            })
            .collect()
    }

    #[test]
    fn buckets_are_fifths_of_a_decade_and_every_sample_lands_in_one() {
        assert_eq!(bucket(1_000), 0);
        assert_eq!(bucket(1_600), 1);
        assert_eq!(bucket(10_000), 5);
        assert_eq!(bucket(999), -1);
        assert_eq!(bucket(0), bucket(1));
        let g = grid(&rows(12), "send_response").unwrap().unwrap();
        assert_eq!(g.columns.len(), 12);
        assert!(g
            .columns
            .iter()
            .all(|c| c.counts.iter().sum::<u64>() == 100));
        assert!(
            g.edge(0) <= 0.1 && g.edge(g.buckets) >= 120.0,
            "{}",
            g.edge(g.buckets)
        );
        assert!(grid(&rows(12), "connect_response").unwrap().is_none());
        assert_eq!(time_axis(&g), (0.5, 12.5));
    }

    #[test]
    fn the_p99_line_breaks_at_a_second_without_samples() {
        let mut r = rows(12);
        r.remove(5);
        r.remove(9);
        let g = grid(&r, "send_response").unwrap().unwrap();
        let lens: Vec<usize> = p99_runs(&g, (0.0, 1e9)).iter().map(Vec::len).collect();
        assert_eq!(lens, [5, 4, 1]);
    }

    #[test]
    fn the_colour_scale_runs_from_one_sample_to_the_most() {
        assert_eq!(colour(1, 500), RGBColor(68, 1, 84));
        assert_eq!(colour(500, 500), RGBColor(253, 231, 37));
        assert_eq!(colour(1, 1), RGBColor(253, 231, 37));
        assert_eq!(latency_label(0.5), "0.5 ms");
        assert_eq!(latency_label(2500.0), "2.5 s");
    }

    #[test]
    fn a_heat_map_has_cells_a_p99_line_and_a_legend() {
        let svg = heatmap("h", &rows(12), "send_response").unwrap().unwrap();
        assert!(svg.contains("fill=\"#FDE725\""), "the brightest cell");
        assert!(
            svg.contains("polyline") && svg.contains("\nsamples\n"),
            "{svg}"
        );
    }
}
