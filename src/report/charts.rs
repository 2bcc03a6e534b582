//! SVG charts drawn with plotters (SVG backend only, no system fonts: the browser renders the
//! text). Each function returns one `<svg>` element as a string.

use std::io;

use plotters::coord::combinators::IntoLogRange as _;
use plotters::prelude::*;

use crate::metrics::LatencyHistogram;

/// Chart size in pixels.
const SIZE: (u32, u32) = (560, 320);
/// Series colours, distinguishable and printable.
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn chart_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cannot draw a chart: {e}"))
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
    let y_max = (h.max() as f64 / 1000.0 * 1.1).max(0.01);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .draw()
            .map_err(chart_error)?;
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

/// Lines over the seconds of a run. Each line is a name and its `(t, value)` points.
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
        * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(t_min..t_max, 0.0..y_max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(y_desc)
            .y_label_formatter(&|y| {
                if y_max < 10.0 {
                    format!("{y:.1}")
                } else {
                    super::format::count(y.round() as u64)
                }
            })
            .draw()
            .map_err(chart_error)?;
        for (i, (name, points)) in lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(chart_error)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        if !lines.is_empty() {
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

/// The time axis: from the first sample to the last (at least one second wide), so that a
/// chart starts where the data does rather than at a made-up (0 s, 0).
fn time_range(ts: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = ts.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| {
        (lo.min(t), hi.max(t))
    });
    if lo > hi {
        return (0.0, 1.0);
    }
    (lo, hi.max(lo + 1.0))
}

/// One second of a phase's latency, in milliseconds: `(t, p50, p99, max)`.
pub(super) type LatencyPoint = (f64, f64, f64, f64);
/// One phase's latency over the seconds of a run.
pub(super) type LatencyPoints = Vec<LatencyPoint>;
/// A line of a latency chart: its name, colour and which figure of a point it draws.
type LatencyLine = (&'static str, RGBColor, fn(&LatencyPoint) -> f64);

/// A phase's latency per second (a p50 to p99 band, the p99 and max lines) on the left axis,
/// and an achieved rate (`rate`: its name and `(t, per second)` points) on the right axis, on
/// one time axis, so that the second latency climbs and the rate it climbed at line up.
pub(super) fn latency_over_time(
    title: &str,
    latency: &LatencyPoints,
    rate: (&str, &[(f64, f64)]),
) -> io::Result<String> {
    let (t_min, t_max) = time_range(
        latency
            .iter()
            .map(|p| p.0)
            .chain(rate.1.iter().map(|p| p.0)),
    );
    let worst_ms = latency.iter().map(|p| p.3).fold(0.0, f64::max);
    // Seconds past two of them, so that tick labels stay short.
    let (unit, scale) = if worst_ms >= 2000.0 {
        ("s", 1000.0)
    } else {
        ("ms", 1.0)
    };
    let y_max = (worst_ms / scale * 1.1).max(0.01);
    let r_max = rate.1.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .right_y_label_area_size(56)
            .build_cartesian_2d(t_min..t_max, 0.0..y_max)
            .map_err(chart_error)?
            .set_secondary_coord(t_min..t_max, 0.0..r_max);
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(format!("latency ({unit})"))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .draw()
            .map_err(chart_error)?;
        chart
            .configure_secondary_axes()
            .y_desc("per second")
            .y_label_formatter(&|y| super::format::count(y.round() as u64))
            .draw()
            .map_err(chart_error)?;
        let band = COLOURS[0].mix(0.25);
        let mut outline: Vec<(f64, f64)> = latency.iter().map(|p| (p.0, p.1 / scale)).collect();
        outline.extend(latency.iter().rev().map(|p| (p.0, p.2 / scale)));
        chart
            .draw_series(std::iter::once(Polygon::new(outline, band.filled())))
            .map_err(chart_error)?
            .label("p50 to p99")
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 18, y + 4)], band.filled()));
        let lines: [LatencyLine; 3] = [
            // The p99 drawn after the max, so that it shows where the two meet.
            ("p50", COLOURS[0], |p| p.1),
            ("max", COLOURS[3], |p| p.3),
            ("p99", COLOURS[1], |p| p.2),
        ];
        for (name, colour, f) in lines {
            chart
                .draw_series(LineSeries::new(
                    latency.iter().map(|p| (p.0, f(p) / scale)),
                    colour.stroke_width(2),
                ))
                .map_err(chart_error)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        let grey = COLOURS[7];
        chart
            .draw_secondary_series(LineSeries::new(
                rate.1.iter().copied(),
                grey.stroke_width(2),
            ))
            .map_err(chart_error)?
            .label(format!("{} (right axis)", rate.0))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(2))
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
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
        let svg = over_time("y", "n", &[("a".into(), vec![(0.0, 0.0), (1.0, 5.0)])]).unwrap();
        assert!(
            svg.contains("polyline") && svg.contains("\na\n</text>"),
            "{svg}"
        );
        let points = vec![(1.0, 1.0, 5.0, 9.0), (2.0, 2.0, 2500.0, 3000.0)];
        let svg = latency_over_time("z", &points, ("acks/s", &[(1.0, 10.0), (2.0, 20.0)])).unwrap();
        assert!(
            svg.contains("latency (s)") && svg.contains("acks/s (right axis)"),
            "{svg}"
        );
        // p50, p99, max and the rate: each a line and its legend's sample.
        assert_eq!(
            svg.matches("stroke-width=\"2\" points=").count(),
            8,
            "{svg}"
        );
    }

    #[test]
    fn the_time_axis_starts_at_the_first_sample() {
        assert_eq!(time_range([3.0, 4.0, 9.0].into_iter()), (3.0, 9.0));
        assert_eq!(time_range([5.0].into_iter()), (5.0, 6.0));
        assert_eq!(time_range(std::iter::empty()), (0.0, 1.0));
    }
}
