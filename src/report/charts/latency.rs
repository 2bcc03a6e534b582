//! The latency-over-time chart: a phase's percentiles per second on the left axis, the rate
//! achieved and the rate planned on the right.

use std::io;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{chart_error, label_area, seconds_label, time_range, LatencyAxis, COLOURS, TALL};

/// The axes reach this many times the largest value, so that the legend stays clear of it.
const HEADROOM: f64 = 1.6;

/// One second of a phase's latency, in milliseconds: `(t, p50, p99, max)`.
pub(crate) type LatencyPoint = (f64, f64, f64, f64);
/// One phase's latency over the seconds of a run.
pub(crate) type LatencyPoints = Vec<LatencyPoint>;
/// A line of a latency chart: its name, colour and which figure of a point it draws.
type LatencyLine = (&'static str, RGBColor, fn(&LatencyPoint) -> f64);

/// The rates beside a latency chart: their name (`acks/s`), the achieved `(t, per second)`
/// points and the planned ones (empty when the plan sets no rate per second).
pub(crate) struct RateLines<'a> {
    /// What is counted per second.
    pub(crate) name: &'a str,
    /// Achieved per second.
    pub(crate) achieved: &'a [(f64, f64)],
    /// Planned per second.
    pub(crate) planned: &'a [(f64, f64)],
}

/// A phase's latency per second (a p50 to p99 band, the p99 and max lines) on the left axis,
/// and the achieved and planned rates on the right axis, on one time axis, so that the second
/// latency climbs and the rate it climbed at line up.
pub(crate) fn latency_over_time(
    title: &str,
    latency: &LatencyPoints,
    rate: &RateLines,
) -> io::Result<String> {
    let (t_min, t_max) = time_range(
        latency
            .iter()
            .map(|p| p.0)
            .chain(rate.achieved.iter().map(|p| p.0)),
    );
    let axis =
        LatencyAxis::with_headroom(latency.iter().map(|p| p.3).fold(0.0, f64::max), HEADROOM);
    let r_max = rate
        .achieved
        .iter()
        .chain(rate.planned)
        .filter(|p| p.0 >= t_min && p.0 <= t_max)
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(1.0)
        * HEADROOM;
    let r_label = |y: f64| super::super::format::count(y.round() as u64);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, TALL).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(axis.label_area())
            .right_y_label_area_size(label_area(&r_label(r_max)))
            .build_cartesian_2d(t_min..t_max, 0.0..axis.max)
            .map_err(chart_error)?
            .set_secondary_coord(t_min..t_max, 0.0..r_max);
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(axis.desc())
            .x_label_formatter(&seconds_label(t_max - t_min))
            .y_label_formatter(&|y| axis.label(*y))
            .draw()
            .map_err(chart_error)?;
        chart
            .configure_secondary_axes()
            .y_desc("per second")
            .y_label_formatter(&|y| r_label(*y))
            .draw()
            .map_err(chart_error)?;
        draw_latency(&mut chart, latency, &axis)?;
        draw_rates(&mut chart, rate, (t_min, t_max))?;
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

/// The p50 to p99 band and the p50, max and p99 lines; a second without samples breaks them
/// (no line is drawn through it) and a lone second is a dot.
fn draw_latency(
    chart: &mut DualChart,
    latency: &[LatencyPoint],
    axis: &LatencyAxis,
) -> io::Result<()> {
    let band = COLOURS[0].mix(0.25);
    let runs = runs(latency);
    let outlines = runs.iter().map(|run| {
        let mut outline: Vec<(f64, f64)> = run.iter().map(|p| (p.0, axis.of_ms(p.1))).collect();
        outline.extend(run.iter().rev().map(|p| (p.0, axis.of_ms(p.2))));
        Polygon::new(outline, band.filled())
    });
    chart
        .draw_series(outlines)
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
        let style = colour.stroke_width(2);
        let at = |p: &LatencyPoint| (p.0, axis.of_ms(f(p)));
        let paths = runs
            .iter()
            .filter(|run| run.len() > 1)
            .map(|run| PathElement::new(run.iter().map(at).collect::<Vec<_>>(), style));
        chart
            .draw_series(paths)
            .map_err(chart_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        // A lone second: a dot, as a line needs two.
        let dots = runs
            .iter()
            .filter(|run| run.len() == 1)
            .map(|run| Circle::new(at(&run[0]), 3, colour.filled()));
        chart.draw_series(dots).map_err(chart_error)?;
    }
    Ok(())
}

/// The points in runs of consecutive seconds.
fn runs(latency: &[LatencyPoint]) -> Vec<&[LatencyPoint]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=latency.len() {
        if i == latency.len() || latency[i].0 - latency[i - 1].0 > 1.0 + 1e-9 {
            out.push(&latency[start..i]);
            start = i;
        }
    }
    out
}

type DualChart<'a, 'b> = plotters::chart::DualCoordChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<RangedCoordf64, RangedCoordf64>,
    Cartesian2d<RangedCoordf64, RangedCoordf64>,
>;

/// The achieved rate as a grey line and the planned one dashed, on the right axis; planned
/// points outside the chart's seconds are left out.
fn draw_rates(
    chart: &mut DualChart,
    rate: &RateLines,
    (t_min, t_max): (f64, f64),
) -> io::Result<()> {
    let grey = COLOURS[7];
    chart
        .draw_secondary_series(LineSeries::new(
            rate.achieved.iter().copied(),
            grey.stroke_width(2),
        ))
        .map_err(chart_error)?
        .label(format!("{} achieved (right axis)", rate.name))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(2)));
    let planned: Vec<(f64, f64)> = rate
        .planned
        .iter()
        .copied()
        .filter(|p| p.0 >= t_min && p.0 <= t_max)
        .collect();
    if planned.len() < 2 {
        return Ok(());
    }
    let black = BLACK.stroke_width(2);
    chart
        .draw_secondary_series(DashedLineSeries::new(planned, 6, 4, black))
        .map_err(chart_error)?
        .label(format!("{} planned (right axis)", rate.name))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 7, y)], black));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_without_samples_breaks_the_lines_and_a_lone_second_is_a_dot() {
        let points = vec![
            (1.0, 1.0, 2.0, 3.0),
            (2.0, 1.0, 2.0, 3.0),
            (8.0, 5.0, 9.0, 40.0),
        ];
        let lens: Vec<usize> = runs(&points).iter().map(|r| r.len()).collect();
        assert_eq!(lens, [2, 1]);
        let rates = RateLines {
            name: "connects/s",
            achieved: &[(1.0, 8.0), (8.0, 22.0)],
            planned: &[],
        };
        let svg = latency_over_time("c", &points, &rates).unwrap();
        // p50, max and p99: a dot each at 8 s, and no line from 2 s to 8 s.
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        let lines = svg.matches("stroke-width=\"2\" points=").count();
        // Three latency lines of one run, the achieved rate, and four legend samples.
        assert_eq!(lines, 3 + 1 + 4, "{svg}");
    }
}
