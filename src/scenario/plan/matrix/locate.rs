//! Where a value inside `[matrix]` is: the line of a list's element or of an entry's key, so
//! that a bad value is named as `matrix.group[2]` at its own line.

use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::scenario::locate::Locator;
use crate::scenario::ConfigError;

/// One step of a path into the document.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seg {
    Key(&'static str),
    Index(usize),
}

/// The scenario being checked: its file and text.
#[derive(Debug, Clone, Copy)]
pub(super) struct At<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
}

impl At<'_> {
    /// A problem with `field` at the value `path` leads to (or at the deepest step found).
    pub(super) fn error(&self, path: &[Seg], field: String, message: String) -> ConfigError {
        let (line, column) = offset(self.text, path)
            .map(|o| Locator::new(self.text).line_col(o))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            field,
            message,
        }
    }
}

/// The byte offset of the value at `path`, or of the deepest step of it that exists.
fn offset(text: &str, path: &[Seg]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?.into_inner();
    let root = DeValue::Table(doc);
    let mut at: &DeValue<'_> = &root;
    let mut found = None;
    for seg in path {
        let next = match seg {
            Seg::Key(k) => at.get(*k),
            Seg::Index(i) => at.get(*i),
        };
        let Some(next) = next else { break };
        found = Some(next.span().start);
        at = next.get_ref();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_and_inline_table_keys_have_their_own_lines() {
        let text = "[matrix]\ngroup = [\n  \"x25519\",\n  \"nope\",\n]\nexclude = [\n  { provider = \"x\" },\n]\n";
        let at = At {
            file: Path::new("m.toml"),
            text,
        };
        let e = at.error(
            &[Seg::Key("matrix"), Seg::Key("group"), Seg::Index(1)],
            "matrix.group[1]".into(),
            "bad".into(),
        );
        assert_eq!((e.line, e.column), (Some(4), Some(3)));
        let path = [
            Seg::Key("matrix"),
            Seg::Key("exclude"),
            Seg::Index(0),
            Seg::Key("provider"),
        ];
        assert_eq!(at.error(&path, String::new(), String::new()).line, Some(7));
        // A path past what exists points at its deepest part.
        let path = [Seg::Key("matrix"), Seg::Key("group"), Seg::Index(9)];
        assert_eq!(at.error(&path, String::new(), String::new()).line, Some(2));
    }
}
