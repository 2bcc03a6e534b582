//! `capacity.html`: the curve of a capacity search as two charts (achieved rate and p99
//! against the offered rate; held trials green, failed red, the knee marked) and its table.

use std::io::{self, Write};

use plotters::prelude::*;

use super::super::charts::{chart_error, label_area, LatencyAxis, COLOURS, RIGHT_MARGIN, SIZE};
use super::super::format::{micros, rate};
use super::super::html::{esc, write_head};
use super::{Capacity, Trial};

const HELD: RGBColor = COLOURS[2];
const FAILED: RGBColor = COLOURS[3];

/// Writes the HTML report of a search.
pub fn write_capacity_html(w: &mut impl Write, c: &Capacity) -> io::Result<()> {
    let word = if c.passed { "PASSED" } else { "FAILED" };
    let knee = c.knee.map_or_else(|| "none held".to_owned(), rate);
    let style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
        td,th{padding:2px 10px;text-align:right}td:not(:last-child){white-space:nowrap}\
        .held{color:#2ca02c}.failed{color:#d62728}";
    write_head(w, &format!("{} capacity", c.scenario), style)?;
    writeln!(
        w,
        "<h1>{word}: {} capacity of {}</h1><p>Knee (highest offered rate that held): \
         <b>{knee}</b>. Limit: {}.</p>",
        esc(&c.search),
        esc(&c.scenario),
        esc(c.limit.words())
    )?;
    for v in &c.verdict {
        let seen = v.observed.map_or_else(|| "none".to_owned(), rate);
        let mark = if v.passed { "passed" } else { "FAILED" };
        writeln!(
            w,
            "<p>Verdict {mark}: {} {} (observed {seen})</p>",
            esc(&v.metric),
            esc(&v.condition)
        )?;
    }
    if !c.trials.is_empty() {
        writeln!(
            w,
            "<div style=\"display:flex;flex-wrap:wrap;gap:1em\">{}{}</div>",
            achieved_chart(c)?,
            p99_chart(c)?
        )?;
    }
    writeln!(
        w,
        "<table><tr><th>#</th><th>stage</th><th>offered</th><th>achieved</th><th>p99</th>\
         <th>errors</th><th style=\"text-align:left\">outcome</th></tr>"
    )?;
    for t in &c.trials {
        write_row(w, t)?;
    }
    writeln!(w, "</table></body></html>")
}

fn write_row(w: &mut impl Write, t: &Trial) -> io::Result<()> {
    let class = if t.held && !t.generator_limited {
        "held"
    } else {
        "failed"
    };
    let outcome = super::outcome(t);
    writeln!(
        w,
        "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td style=\"text-align:left\">{}</td></tr>",
        t.n,
        t.stage,
        rate(t.offered),
        t.achieved.map_or_else(|| "-".to_owned(), rate),
        t.p99_us.map_or_else(|| "-".to_owned(), micros),
        t.error_rate
            .map_or_else(|| "-".to_owned(), |e| format!("{:.2}%", e * 100.0)),
        esc(&outcome)
    )
}

fn x_max(c: &Capacity) -> f64 {
    c.trials.iter().map(|t| t.offered).fold(1.0, f64::max) * 1.1
}

fn colour(t: &Trial) -> RGBColor {
    if t.held && !t.generator_limited {
        HELD
    } else {
        FAILED
    }
}

/// Achieved against offered, with the diagonal (achieved = offered) and the knee.
fn achieved_chart(c: &Capacity) -> io::Result<String> {
    let x_max = x_max(c);
    let y_max = c
        .trials
        .iter()
        .filter_map(|t| t.achieved)
        .fold(x_max, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("achieved vs offered rate", ("sans-serif", 16))
            .margin(12)
            .margin_right(RIGHT_MARGIN)
            .x_label_area_size(36)
            .y_label_area_size(label_area(&format!("{y_max:.0}")))
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc("offered per second")
            .y_desc("achieved per second")
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (x_max, x_max)],
                BLACK.mix(0.3).stroke_width(1),
            ))
            .map_err(chart_error)?;
        knee_line(&mut chart, c.knee, y_max)?;
        chart
            .draw_series(c.trials.iter().filter_map(|t| {
                t.achieved
                    .map(|a| Circle::new((t.offered, a), 5, colour(t).filled()))
            }))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The p99 latency against offered, with the knee and the SLO's limit on it.
fn p99_chart(c: &Capacity) -> io::Result<String> {
    let x_max = x_max(c);
    let max_ms = c.trials.iter().filter_map(|t| t.p99_us).fold(0, u64::max) as f64 / 1000.0;
    let limit_ms = c.latency_limit_us.map(|us| us / 1000.0);
    let max_ms = max_ms.max(limit_ms.unwrap_or(0.0));
    let axis = LatencyAxis::for_max_ms(max_ms.max(0.01));
    let phase = c.trials.first().map_or("", |t| t.latency_phase.as_str());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{phase} p99 vs offered rate"), ("sans-serif", 16))
            .margin(12)
            .margin_right(RIGHT_MARGIN)
            .x_label_area_size(36)
            .y_label_area_size(axis.label_area())
            .build_cartesian_2d(0.0..x_max, 0.0..axis.max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc("offered per second")
            .y_desc(axis.desc())
            .y_label_formatter(&|y| axis.label(*y))
            .draw()
            .map_err(chart_error)?;
        knee_line(&mut chart, c.knee, axis.max)?;
        if let Some(ms) = limit_ms {
            let y = axis.of_ms(ms);
            chart
                .draw_series(LineSeries::new(
                    [(0.0, y), (x_max, y)],
                    FAILED.mix(0.6).stroke_width(1),
                ))
                .map_err(chart_error)?;
        }
        chart
            .draw_series(c.trials.iter().filter_map(|t| {
                t.p99_us.map(|us| {
                    Circle::new(
                        (t.offered, axis.of_ms(us as f64 / 1000.0)),
                        5,
                        colour(t).filled(),
                    )
                })
            }))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn knee_line(chart: &mut Chart<'_, '_>, knee: Option<f64>, y_max: f64) -> io::Result<()> {
    if let Some(k) = knee {
        chart
            .draw_series(LineSeries::new(
                [(k, 0.0), (k, y_max)],
                HELD.mix(0.6).stroke_width(2),
            ))
            .map_err(chart_error)?
            .label("knee");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_holds_both_charts_and_every_trial() {
        let mut out = Vec::new();
        write_capacity_html(&mut out, &super::super::tests::sample()).unwrap();
        let html = String::from_utf8(out).unwrap();
        assert_eq!(html.matches("<svg").count(), 2, "{html}");
        assert_eq!(html.matches("<tr class=").count(), 4);
        assert!(html.contains("connect_response.p99 &lt; 100ms"));
    }
}
