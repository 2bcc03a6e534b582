//! Where things are in a scenario file: byte spans to lines and columns, and field paths
//! (`fleet.devices`) to the span of their value, so every error names file, line and field.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A parsed document that answers "where is field X" and "which field is at offset Y".
#[derive(Debug)]
pub(crate) struct Locator {
    text: String,
    /// (dotted path, key span, value span) of every key in the document.
    entries: Vec<(String, Range<usize>, Range<usize>)>,
}

impl Locator {
    pub(crate) fn new(text: &str) -> Self {
        let mut entries = Vec::new();
        if let Ok(doc) = DeTable::parse(text) {
            walk(doc.get_ref(), "", &mut entries);
        }
        Self {
            text: text.to_owned(),
            entries,
        }
    }

    /// 1-based line and column of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// The span of a field's value (or of its table), if present.
    pub(crate) fn span_of(&self, path: &str) -> Option<Range<usize>> {
        self.entries
            .iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, key, _)| key.clone())
    }

    /// The deepest field whose key or value contains `span`.
    pub(crate) fn path_at(&self, span: &Range<usize>) -> Option<String> {
        self.entries
            .iter()
            .filter(|(_, k, v)| contains(k, span) || contains(v, span))
            .max_by_key(|(p, _, _)| p.matches('.').count())
            .map(|(p, _, _)| p.clone())
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end.max(outer.start + 1)
}

fn walk(table: &DeTable<'_>, prefix: &str, out: &mut Vec<(String, Range<usize>, Range<usize>)>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        out.push((path.clone(), key.span(), value.span()));
        if let DeValue::Table(t) = value.get_ref() {
            walk(t, &path, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name = \"x\"\n\n[fleet]\ndevices = 0\n";

    #[test]
    fn finds_fields_and_lines() {
        let l = Locator::new(DOC);
        let span = l.span_of("fleet.devices").unwrap();
        assert_eq!(l.line_col(span.start), (4, 1));
        assert_eq!(l.path_at(&span).as_deref(), Some("fleet.devices"));
    }
}
