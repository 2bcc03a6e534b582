//! A sweep's bar charts: one horizontal bar per cell and series (the median over rounds), a
//! whisker from the smallest to the largest round, the cells named down the left side.

use std::io;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::charts::{chart_error, label_area, COLOURS, RIGHT_MARGIN};
use super::sweep::Spread;

/// Chart width in pixels (the cells' labels need room).
const WIDTH: u32 = 760;

/// One series: its name and each cell's value.
pub(super) type Series<'a> = (&'a str, Vec<Option<Spread>>);

/// Height for `cells` cells of `series` bars each.
fn height(cells: usize, series: usize) -> u32 {
    let per_cell = 14 * series.max(1) + 10;
    let legend = if series > 1 { per_cell } else { 0 };
    (100 + cells * per_cell + legend) as u32
}

/// A value's label at the end of its bar.
fn value_label(v: f64) -> String {
    if v >= 100.0 {
        super::format::count(v.round() as u64)
    } else {
        format!("{v:.1}")
    }
}

/// Horizontal bars of `series` for each of `labels` (top to bottom), x described by `x_desc`.
pub(super) fn bars(
    title: &str,
    x_desc: &str,
    labels: &[String],
    series: &[Series<'_>],
) -> io::Result<String> {
    let n = labels.len().max(1);
    // Below the last cell, a band of room for the legend when there is one.
    let bottom = if series.len() > 1 { -0.8 } else { 0.0 };
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().map(|s| s.max.max(s.median)))
        .fold(0.0, f64::max);
    // Room right of the longest bar for its number and the legend.
    let x_max = if top > 0.0 { top * 1.3 } else { 1.0 };
    let widest = labels
        .iter()
        .max_by_key(|l| l.chars().count())
        .map_or("", String::as_str);
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH, height(n, series.len()))).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .margin_right(RIGHT_MARGIN)
            .x_label_area_size(36)
            .y_label_area_size(label_area(widest).saturating_sub(20))
            .build_cartesian_2d(0.0..x_max, bottom..n as f64)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(1)
            .y_label_formatter(&|_| String::new())
            .x_desc(x_desc)
            .x_label_formatter(&|x| value_label(*x))
            .draw()
            .map_err(chart_error)?;
        let k = series.len().max(1) as f64;
        let band = 0.8 / k;
        for (j, (name, values)) in series.iter().enumerate() {
            let colour = COLOURS[j % COLOURS.len()];
            // Cell i is drawn from the top: its band starts at n - 1 - i.
            let slot = |i: usize| (n - 1 - i) as f64 + 0.9 - (j as f64 + 1.0) * band;
            let rects = values.iter().enumerate().filter_map(|(i, s)| {
                s.map(|s| {
                    let y = slot(i);
                    Rectangle::new([(0.0, y), (s.median, y + band * 0.9)], colour.filled())
                })
            });
            chart
                .draw_series(rects)
                .map_err(chart_error)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                });
            for (i, s) in values.iter().enumerate() {
                let Some(s) = s else { continue };
                let mid = slot(i) + band * 0.45;
                if s.max > s.min {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(s.min, mid), (s.max, mid)],
                            BLACK.stroke_width(1),
                        )))
                        .map_err(chart_error)?;
                }
                let style = ("sans-serif", 11)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Center));
                chart
                    .draw_series(std::iter::once(Text::new(
                        value_label(s.median),
                        (s.max.max(s.median) + x_max * 0.01, mid),
                        style,
                    )))
                    .map_err(chart_error)?;
            }
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(chart_error)?;
        }
        let style = ("sans-serif", 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (i, label) in labels.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, (n - 1 - i) as f64 + 0.5));
            root.draw(&Text::new(label.clone(), (x - 6, y), style.clone()))
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_cell_and_series_with_whiskers_and_names() {
        let s = |m: f64, lo: f64, hi: f64| {
            Some(Spread {
                median: m,
                min: lo,
                max: hi,
            })
        };
        let labels = vec![
            "x25519_ring".to_owned(),
            "X25519MLKEM768_aws-lc-rs".to_owned(),
        ];
        let series = [
            (
                "client",
                vec![s(800.0, 780.0, 900.0), s(950.0, 950.0, 950.0)],
            ),
            ("hub", vec![s(400.0, 390.0, 410.0), None]),
        ];
        let svg = bars("CPU per handshake", "µs", &labels, &series).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains("x25519_ring") && svg.contains("X25519MLKEM768_aws-lc-rs"),
            "{svg}"
        );
        assert!(
            svg.contains(">client<") || svg.contains("\nclient\n"),
            "{svg}"
        );
        // Bars (one value missing) and each series' legend sample, in the series' colours.
        assert_eq!(svg.matches("fill=\"#1F77B4\"").count(), 2 + 1, "{svg}");
        assert_eq!(svg.matches("fill=\"#FF7F0E\"").count(), 1 + 1, "{svg}");
        // A whisker where the rounds differ: one for the client, one for the hub.
        let flat = |m: f64| {
            Some(Spread {
                median: m,
                min: m,
                max: m,
            })
        };
        let agreed = [
            ("client", vec![flat(800.0), flat(950.0)]),
            ("hub", vec![flat(400.0), None]),
        ];
        let without = bars("CPU per handshake", "µs", &labels, &agreed).unwrap();
        assert_eq!(
            svg.matches("<polyline").count() - without.matches("<polyline").count(),
            2
        );
        assert!(svg.contains("950") && svg.contains("800"), "{svg}");
    }
}
