//! Presentation of a [`Summary`]: the text and HTML reports, run comparisons, the files of a
//! results directory, live progress and live metrics text. Functions here are pure over
//! `impl Write` and read a `Summary` or a `Snapshot`; measurement never calls into this module.
//!
//! [`Summary`]: crate::metrics::Summary

pub mod capacity;
mod charts;
pub mod compare;
mod cpu_split;
mod delivery;
mod failed;
mod files;
pub mod format;
mod handshake;
mod html;
pub mod openmetrics;
pub mod progress;
mod results;
mod stages;
pub mod sweep;
mod sweep_chart;
mod sweep_html;
mod sweep_text;
mod text;
mod throttling;
mod timeline_charts;
mod verdict;

pub use compare::{compare, write_comparison, write_comparison_json, Comparison, Tolerance};
pub use files::{write_hlog, write_timeline_csv};
pub use html::{chart_names, write_html};
pub use results::{read_summary, ResultsDir};
pub use sweep_html::{write_sweep_html, SWEEP_CHARTS};
pub use sweep_text::{progress_line, write_sweep_text};
pub use text::write_text;
