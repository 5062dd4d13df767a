//! What a training loop writes as it goes, shared by pre-training, fine-tuning and teacher
//! training: one JSON line per logged step or epoch in the run's `metrics.jsonl` (kept consistent
//! when a killed run resumes), and the progress bar.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// A run's `metrics.jsonl`.
pub struct MetricsLog {
    pub path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// A new, empty log at `path`.
    pub fn create(path: &Path) -> Result<Self> {
        Self::open(path, None)
    }

    /// The log at `path`: new and empty, or — `resumed_at` a step — the existing one without the
    /// rows a killed run wrote after that step (the resumed run logs those steps again).
    pub fn open(path: &Path, resumed_at: Option<usize>) -> Result<Self> {
        if let Some(step) = resumed_at {
            keep_rows_up_to(path, step)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(resumed_at.is_some())
            .write(true)
            .truncate(resumed_at.is_none())
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends `row` as one line.
    pub fn write(&mut self, row: &impl Serialize) -> Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(row)?)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.file
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Every row written so far, as JSON values (for curves).
    pub fn rows(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Keeps the rows of the log at `path` whose `step` is at most `step`.
fn keep_rows_up_to(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(path, kept).with_context(|| format!("rewriting {}", path.display()))
}

/// A progress bar of `len` `units` for the stage `what` ("pretrain", "epoch 3/20"), with
/// elapsed time, the estimate and a message (the latest losses).
pub fn progress(what: &str, len: usize, units: &str) -> Result<ProgressBar> {
    let template = format!(
        "{what} {{bar:30}} {{pos}}/{{len}} {units} [{{elapsed_precise}}<{{eta_precise}}] {{msg}}"
    );
    Ok(ProgressBar::new(len as u64).with_style(ProgressStyle::with_template(&template)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_log_drops_the_rows_after_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut log = MetricsLog::create(&path).unwrap();
        for step in 1..=5 {
            log.write(&serde_json::json!({ "step": step })).unwrap();
        }
        log.flush().unwrap();
        let mut log = MetricsLog::open(&path, Some(3)).unwrap();
        log.write(&serde_json::json!({ "step": 4 })).unwrap();
        log.flush().unwrap();
        let steps: Vec<u64> = log
            .rows()
            .iter()
            .map(|r| r["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, [1, 2, 3, 4]);
        // A fresh log starts empty.
        let log = MetricsLog::create(&path).unwrap();
        assert!(log.rows().is_empty());
    }
}
