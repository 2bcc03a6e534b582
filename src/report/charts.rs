//! SVG charts drawn with plotters (SVG backend only, no system fonts: the browser renders the
//! text). Each function returns one `<svg>` element as a string.

use std::io;

use plotters::coord::combinators::IntoLogRange as _;
use plotters::prelude::*;

use crate::metrics::LatencyHistogram;

mod heatmap;
mod latency;

pub(super) use heatmap::{heatmap, HEATMAP_MIN_SECONDS};
pub(super) use latency::{latency_over_time, LatencyPoints, RateLines};

/// Chart size in pixels.
pub(super) const SIZE: (u32, u32) = (560, 320);
/// The size of the charts of a phase's latency over time: taller, with room for a legend.
pub(super) const TALL: (u32, u32) = (SIZE.0, 380);
/// Room right of the plot for half of the last x label.
pub(super) const RIGHT_MARGIN: u32 = 28;
/// Series colours, distinguishable and printable.
pub(super) const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

pub(super) fn chart_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cannot draw a chart: {e}"))
}

/// A linear latency axis: milliseconds, or seconds from 1,000 ms on (never "3000.00 ms"),
/// with as many decimals as its ticks need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LatencyAxis {
    /// `ms` or `s`.
    pub(super) unit: &'static str,
    /// Milliseconds per unit.
    scale: f64,
    /// The top of the axis, in the unit.
    pub(super) max: f64,
    decimals: usize,
}

impl LatencyAxis {
    /// The axis for latencies up to `max_ms`, with a tenth of headroom.
    pub(super) fn for_max_ms(max_ms: f64) -> Self {
        Self::with_headroom(max_ms, 1.1)
    }

    /// The axis for latencies up to `max_ms`, reaching `headroom` times that.
    pub(super) fn with_headroom(max_ms: f64, headroom: f64) -> Self {
        let (unit, scale) = if max_ms >= 1000.0 {
            ("s", 1000.0)
        } else {
            ("ms", 1.0)
        };
        let max = (max_ms / scale * headroom).max(0.01);
        // Plotters puts about ten ticks on an axis: a tenth of the top needs this many decimals.
        let decimals = (-(max / 10.0).log10().floor()).clamp(0.0, 3.0) as usize;
        Self {
            unit,
            scale,
            max,
            decimals,
        }
    }

    /// `ms` milliseconds in the axis's unit.
    pub(super) fn of_ms(&self, ms: f64) -> f64 {
        ms / self.scale
    }

    /// A tick label.
    pub(super) fn label(&self, y: f64) -> String {
        format!("{y:.*}", self.decimals)
    }

    /// The axis title.
    pub(super) fn desc(&self) -> String {
        format!("latency ({})", self.unit)
    }

    /// Room for the widest tick label and the rotated title beside it.
    pub(super) fn label_area(&self) -> u32 {
        label_area(&self.label(self.max))
    }
}

/// Room left of a plot for tick labels as wide as `widest` and the axis title beside them, so
/// that the two never overlap.
pub(super) fn label_area(widest: &str) -> u32 {
    7 * widest.chars().count() as u32 + 34
}

/// An x tick label in seconds: whole seconds unless the axis spans only a few.
pub(super) fn seconds_label(span: f64) -> impl Fn(&f64) -> String {
    move |t| {
        if span >= 5.0 {
            format!("{t:.0}")
        } else {
            format!("{t:.1}")
        }
    }
}

/// The percentile spectrum of a latency histogram, as HdrHistogram's plotter draws it: x is
/// `1 / (1 - q)` on a log axis labelled in percentiles, y the latency in milliseconds.
pub(super) fn spectrum(title: &str, h: &LatencyHistogram) -> io::Result<String> {
    // Percentiles beyond 1 - 1/count say nothing more: stop the axis at the next power of ten.
    let decades = (h.len().max(10) as f64).log10().ceil().min(6.0);
    let x_max = 10f64.powf(decades);
    let points: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| {
            let q = v.quantile_iterated_to();
            let x = if q >= 1.0 {
                x_max
            } else {
                (1.0 / (1.0 - q)).min(x_max)
            };
            (x, v.value_iterated_to() as f64 / 1000.0)
        })
        .collect();
    let axis = LatencyAxis::for_max_ms(h.max() as f64 / 1000.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .margin_right(RIGHT_MARGIN)
            .x_label_area_size(36)
            .y_label_area_size(axis.label_area())
            .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..axis.max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc(axis.desc())
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| axis.label(*y))
            .draw()
            .map_err(chart_error)?;
        let points = points.into_iter().map(|(x, ms)| (x, axis.of_ms(ms)));
        chart
            .draw_series(LineSeries::new(points, COLOURS[0].stroke_width(2)))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// `1 / (1 - q)` as the percentile it stands for: 1 → `0%`, 10 → `90%`, 1000 → `99.9%`.
fn percentile_label(x: f64) -> String {
    let pct = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let decimals = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{pct:.decimals$}%")
}

/// Lines over the seconds of a run. Each line is a name and its `(t, value)` points. Lines
/// are layered: each is drawn wider than the ones after it, so that a line equal to a later one
/// (sends/s under acks/s) still shows as a band around it. A legend names the lines when there
/// are several (with room above the data for it); one line is named by the title.
pub(super) fn over_time(
    title: &str,
    y_desc: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> io::Result<String> {
    let (t_min, t_max) = time_range(lines.iter().flat_map(|(_, p)| p.iter().map(|(t, _)| *t)));
    let y_max = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, v)| *v))
        .fold(0.0, f64::max)
        .max(1.0)
        * if lines.len() > 1 { 1.5 } else { 1.1 };
    let y_label = |y: f64| {
        if y_max < 10.0 {
            format!("{y:.1}")
        } else {
            super::format::count(y.round() as u64)
        }
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .margin_right(RIGHT_MARGIN)
            .x_label_area_size(36)
            .y_label_area_size(label_area(&y_label(y_max)))
            .build_cartesian_2d(t_min..t_max, 0.0..y_max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(y_desc)
            .x_label_formatter(&seconds_label(t_max - t_min))
            .y_label_formatter(&|y| y_label(*y))
            .draw()
            .map_err(chart_error)?;
        for (i, (name, points)) in lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let width = layer_width(i, lines.len());
            let style = colour
                .mix(if width > 2 { 0.55 } else { 1.0 })
                .stroke_width(width);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))
                .map_err(chart_error)?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        if lines.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The stroke width of line `i` of `n`: 2 px for the last, 3 px more for each before it.
fn layer_width(i: usize, n: usize) -> u32 {
    2 + 3 * (n.saturating_sub(i + 1)) as u32
}

/// The time axis: from the first sample to the last (at least one second wide), so that a
/// chart starts where the data does rather than at a made-up (0 s, 0).
pub(super) fn time_range(ts: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = ts.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| {
        (lo.min(t), hi.max(t))
    });
    if lo > hi {
        return (0.0, 1.0);
    }
    (lo, hi.max(lo + 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis_labels() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(10_000.0), "99.99%");
    }

    #[test]
    fn charts_are_svg() {
        let mut h = crate::metrics::new_histogram();
        for v in 1..=1000 {
            h.record(v * 10).unwrap();
        }
        let svg = spectrum("x", &h).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
        let line = vec![(0.0, 0.0), (1.0, 5.0)];
        let svg = over_time("y", "n", &[("a".into(), line.clone())]).unwrap();
        // One line is named by the title: no legend box to hide it.
        assert!(
            svg.contains("polyline") && !svg.contains("\na\n</text>"),
            "{svg}"
        );
        let svg = over_time("y", "n", &[("a".into(), line.clone()), ("b".into(), line)]).unwrap();
        assert!(
            svg.contains("\na\n</text>") && svg.contains("\nb\n</text>"),
            "{svg}"
        );
        let points = vec![(1.0, 1.0, 5.0, 9.0), (2.0, 2.0, 2500.0, 3000.0)];
        let rates = RateLines {
            name: "acks/s",
            achieved: &[(1.0, 10.0), (2.0, 20.0)],
            planned: &[(0.0, 5.0), (1.0, 15.0), (2.0, 30.0)],
        };
        let svg = latency_over_time("z", &points, &rates).unwrap();
        assert!(
            svg.contains("latency (s)")
                && svg.contains("acks/s achieved (right axis)")
                && svg.contains("acks/s planned (right axis)"),
            "{svg}"
        );
        // p50, p99, max and the achieved rate: each a line and its legend's sample.
        let dashes = svg
            .matches("stroke=\"#000000\" stroke-width=\"2\" points=")
            .count();
        assert_eq!(
            svg.matches("stroke-width=\"2\" points=").count() - dashes,
            8,
            "{svg}"
        );
        // The planned rate is dashed: many short segments, in black.
        assert!(dashes > 4, "{svg}");
    }

    #[test]
    fn latency_axes_switch_to_seconds_at_a_thousand_ms_with_short_labels() {
        let a = LatencyAxis::for_max_ms(3000.0);
        assert_eq!((a.unit, a.desc()), ("s", "latency (s)".to_owned()));
        assert_eq!(a.label(a.of_ms(3000.0)), "3.0");
        let a = LatencyAxis::for_max_ms(999.0);
        assert_eq!((a.unit, a.label(500.0)), ("ms", "500".to_owned()));
        assert_eq!(LatencyAxis::for_max_ms(4.0).label(1.5), "1.5");
        assert_eq!(LatencyAxis::for_max_ms(0.3).label(0.05), "0.05");
        // The widest label and the title fit side by side.
        assert!(LatencyAxis::for_max_ms(900_000.0).label_area() >= 7 * 3 + 34);
        assert_eq!(seconds_label(60.0)(&12.0), "12");
        assert_eq!(seconds_label(2.0)(&1.5), "1.5");
    }

    #[test]
    fn a_line_equal_to_a_later_one_is_drawn_wider_beneath_it() {
        assert_eq!(
            (0..4).map(|i| layer_width(i, 4)).collect::<Vec<_>>(),
            [11, 8, 5, 2]
        );
        let same = vec![(1.0, 5.0), (2.0, 7.0)];
        let svg = over_time(
            "r",
            "per second",
            &[("sends/s".into(), same.clone()), ("acks/s".into(), same)],
        )
        .unwrap();
        assert!(svg.contains("stroke-width=\"5\" points="), "{svg}");
        assert!(svg.contains("stroke-width=\"2\" points="), "{svg}");
    }

    #[test]
    fn the_time_axis_starts_at_the_first_sample() {
        assert_eq!(time_range([3.0, 4.0, 9.0].into_iter()), (3.0, 9.0));
        assert_eq!(time_range([5.0].into_iter()), (5.0, 6.0));
        assert_eq!(time_range(std::iter::empty()), (0.0, 1.0));
    }
}
