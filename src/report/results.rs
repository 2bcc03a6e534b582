//! The results directory: `results/<scenario>-<UTC time>/` with `summary.json`, the resolved
//! scenario, `timeline.csv`, `latency.hlog` and the text and HTML reports (see
//! `results/README.md`). Created before the load starts, so an unwritable location is an error
//! up front, not after the run.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;

use crate::metrics::{FailedSession, Summary};

/// A results directory of one run.
#[derive(Debug, Clone)]
pub struct ResultsDir {
    path: PathBuf,
}

impl ResultsDir {
    /// Creates `root/<name>-<UTC time>/` (with a suffix if it exists already).
    pub fn create(root: &Path, name: &str, at: SystemTime) -> anyhow::Result<Self> {
        let stamp = humantime::format_rfc3339_seconds(at)
            .to_string()
            .replace(['-', ':'], "");
        anyhow::ensure!(
            root.is_dir() || !root.exists(),
            "--results {} is a file, not a directory",
            root.display()
        );
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create the results directory {}", root.display()))?;
        for n in 0..1000 {
            let dir = if n == 0 {
                root.join(format!("{name}-{stamp}"))
            } else {
                root.join(format!("{name}-{stamp}-{n}"))
            };
            match fs::create_dir(&dir) {
                Ok(()) => {
                    // Prove it is writable now rather than after the run.
                    let probe = dir.join(".write-test");
                    fs::write(&probe, b"").with_context(|| {
                        format!("results directory {} is not writable", dir.display())
                    })?;
                    let _ = fs::remove_file(probe);
                    return Ok(Self { path: dir });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot create the results directory {}", dir.display())
                    })
                }
            }
        }
        anyhow::bail!("too many runs of {name} at {stamp} in {}", root.display())
    }

    /// Creates the results directory `path` itself (`merge -o`), refusing one that already
    /// holds a summary.
    pub fn create_at(path: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !path.join("summary.json").exists(),
            "{} already holds a summary.json: choose another output directory",
            path.display()
        );
        anyhow::ensure!(
            path.is_dir() || !path.exists(),
            "{} is a file, not a directory: choose another output directory",
            path.display()
        );
        fs::create_dir_all(path)
            .with_context(|| format!("cannot create the results directory {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// An existing results directory (to re-render its reports).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            path.join("summary.json").is_file(),
            "{} is not a results directory: it has no summary.json",
            path.display()
        );
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// Writes everything made from a summary: `summary.json`, `timeline.csv`, `latency.hlog`,
    /// `report.txt` and `report.html`.
    pub fn write_all(&self, s: &Summary) -> anyhow::Result<()> {
        self.write_summary(s)?;
        let mut csv = Vec::new();
        super::files::write_timeline_csv(&mut csv, s)?;
        self.write("timeline.csv", &csv)?;
        let mut hlog = Vec::new();
        super::files::write_hlog(&mut hlog, s)?;
        self.write("latency.hlog", &hlog)?;
        self.write_reports(s)
    }

    /// Writes `failures.csv`: every failed session of the run (bounded; see
    /// `files::write_failures_csv`). Written at run time only: a merge does not rebuild it.
    pub fn write_failures(&self, rows: &[FailedSession], left_out: u64) -> anyhow::Result<()> {
        let mut csv = Vec::new();
        super::files::write_failures_csv(&mut csv, rows, left_out)?;
        self.write("failures.csv", &csv)?;
        Ok(())
    }

    /// Writes `report.txt` and `report.html`.
    pub fn write_reports(&self, s: &Summary) -> anyhow::Result<()> {
        let mut text = Vec::new();
        super::write_text(&mut text, s)?;
        self.write("report.txt", &text)?;
        let mut html = Vec::new();
        super::write_html(&mut html, s)?;
        self.write("report.html", &html)?;
        Ok(())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `name` in the directory.
    pub fn write(&self, name: &str, contents: &[u8]) -> anyhow::Result<PathBuf> {
        let p = self.path.join(name);
        let mut f =
            fs::File::create(&p).with_context(|| format!("cannot write {}", p.display()))?;
        f.write_all(contents)
            .with_context(|| format!("cannot write {}", p.display()))?;
        Ok(p)
    }

    /// Writes `summary.json`.
    pub fn write_summary(&self, s: &Summary) -> anyhow::Result<PathBuf> {
        let json = serde_json::to_vec_pretty(s).context("cannot serialize the summary")?;
        self.write("summary.json", &json)
    }
}

/// Reads a `summary.json` (or the one in a results directory).
pub fn read_summary(path: &Path) -> anyhow::Result<Summary> {
    let file = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_owned()
    };
    let text =
        fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a fleetbench summary", file.display()))
}
