//! What validating a scenario works from besides the file: the command line's overrides, and
//! the list of located problems that every table's checks add to. Shared by `plan` and `shape`
//! (and the tables' modules), so that neither imports the other for them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::locate::Locator;
use super::ConfigError;

/// Command-line overrides of the common knobs.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--devices`
    pub devices: Option<u64>,
    /// `--rate`
    pub rate: Option<f64>,
    /// `--messages`
    pub messages: Option<u32>,
    /// `--interval`
    pub interval: Option<Duration>,
    /// `--max-handshakes`
    pub max_handshakes: Option<u32>,
    /// `--ca`
    pub ca_dir: Option<PathBuf>,
}

/// Collects located errors.
pub(super) struct Problems<'a> {
    file: &'a Path,
    locator: Locator,
    pub(super) errors: Vec<ConfigError>,
}

impl<'a> Problems<'a> {
    /// An empty list for `file`, whose source is `text` (for locating fields).
    pub(super) fn new(file: &'a Path, text: &str) -> Self {
        Self {
            file,
            locator: Locator::new(text),
            errors: Vec::new(),
        }
    }

    /// Reports each field that is set although it does not apply, with the same reason.
    pub(super) fn not_applicable(&mut self, fields: &[(bool, &str)], why: &str) {
        for (set, field) in fields {
            if *set {
                self.add(field, why);
            }
        }
    }

    pub(super) fn add(&mut self, field: &str, message: impl Into<String>) {
        // Point at the field, or at its table, or at nothing when it came from defaults/CLI.
        let span = self.locator.span_of(field).or_else(|| {
            field
                .rsplit_once('.')
                .and_then(|(table, _)| self.locator.span_of(table))
        });
        let (line, column) = span
            .map(|s| self.locator.line_col(s.start))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        });
    }
}
