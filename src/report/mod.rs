//! Presentation of a [`Summary`]: the text report, `summary.json` and the results directory.
//! Functions here are pure over `impl Write`; measurement never calls into this module.

pub mod format;
pub mod progress;
mod results;
mod text;

pub use results::{read_summary, ResultsDir};
pub use text::write_text;
