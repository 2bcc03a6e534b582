//! Where a long run's per-second interval histograms wait until the run ends: an unnamed
//! temporary file, appended once a second by the sampler, read back once after the run. A row
//! in memory keeps only its figures and where its histograms are here, so a run's memory does
//! not grow with its encoded histograms (some 2 KB a second, 7-8 MB an hour).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

/// Where one encoded histogram is in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    offset: u64,
    len: u32,
}

/// An append-only file of encoded histograms (ASCII base64, one after another, no separators).
#[derive(Debug)]
pub(crate) struct Spool {
    /// `None` once the file could not be created or written: callers then keep what they
    /// would have spooled in memory, as before there was a spool; a run never fails for it.
    file: Option<File>,
    /// Bytes written so far: the offset of the next histogram.
    len: u64,
}

impl Default for Spool {
    fn default() -> Self {
        Self::new()
    }
}

impl Spool {
    /// A spool in the system's temporary directory (`TMPDIR`), deleted when dropped (it has no
    /// name). If it cannot be created, a spool that declines every append.
    pub(crate) fn new() -> Self {
        let file = tempfile::tempfile()
            .inspect_err(|e| {
                tracing::warn!(
                    "no spool for the timeline's histograms ({e}); keeping them in memory"
                )
            })
            .ok();
        Self { file, len: 0 }
    }

    /// A spool that declines every append (everything stays in memory).
    #[cfg(test)]
    pub(crate) fn none() -> Self {
        Self { file: None, len: 0 }
    }

    /// Appends `histograms` in one write and says where each went, or `None` if the spool is
    /// unavailable or the write failed (then it is given up for the rest of the run: what a
    /// failed write left behind is past every place handed out, so nothing reads it).
    pub(crate) fn append(&mut self, histograms: &[&str]) -> Option<Vec<Place>> {
        let file = self.file.as_mut()?;
        let mut places = Vec::with_capacity(histograms.len());
        let mut offset = self.len;
        for h in histograms {
            let len = u32::try_from(h.len()).ok()?;
            places.push(Place { offset, len });
            offset += u64::from(len);
        }
        let mut buf = Vec::with_capacity((offset - self.len) as usize);
        for h in histograms {
            buf.extend_from_slice(h.as_bytes());
        }
        if let Err(e) = file.write_all(&buf) {
            tracing::warn!("the timeline's spool failed ({e}); keeping histograms in memory");
            self.file = None;
            return None;
        }
        self.len = offset;
        Some(places)
    }

    /// Reads the histograms back, in the order of `places` (which must be increasing, as
    /// `append` hands them out), calling `put` with each.
    pub(crate) fn read_back(
        &mut self,
        places: impl IntoIterator<Item = Place>,
        mut put: impl FnMut(String),
    ) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("the spool was given up"));
        };
        file.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let mut at = 0u64;
        for p in places {
            if p.offset != at {
                reader.seek(SeekFrom::Start(p.offset))?;
            }
            let mut bytes = vec![0; p.len as usize];
            reader.read_exact(&mut bytes)?;
            at = p.offset + u64::from(p.len);
            put(String::from_utf8(bytes).map_err(io::Error::other)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_come_back_as_they_went_in() {
        let mut s = Spool::new();
        let a = s.append(&["HISTFAAAAB", "xyz"]).expect("a spool in TMPDIR");
        let b = s.append(&[]).unwrap();
        let c = s.append(&["0123456789"]).unwrap();
        assert!(b.is_empty());
        let mut back = Vec::new();
        s.read_back(a.into_iter().chain(c), |h| back.push(h))
            .unwrap();
        assert_eq!(back, ["HISTFAAAAB", "xyz", "0123456789"]);
    }

    #[test]
    fn a_spool_given_up_declines_appends() {
        assert_eq!(Spool::none().append(&["abc"]), None);
    }
}
