//! The checkpointer of every training loop — pre-training, fine-tuning and the teacher's CLIP:
//! `step_XXXXXXXX/` folders under one directory, each written atomically (the loop's files, then
//! `progress.json` with the loop's typed progress and the settings that produced it), the newest
//! `keep_last` kept. Resuming reads the newest one and refuses it when it was saved under other
//! settings, naming the keys that differ.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::atomic::{remove_stale_temporaries, AtomicDir};
use super::store::{list, prune, step_dir_name, PROGRESS_FILE};

#[derive(Serialize, Deserialize)]
struct Record<S, P> {
    settings: S,
    progress: P,
}

pub struct Checkpointer {
    dir: PathBuf,
    keep_last: usize,
    /// What must be equal for a checkpoint to be continued.
    settings: Value,
    /// A saved record's settings as they would be written now (see [`Checkpointer::typed`]).
    read_saved: fn(&Value) -> Result<Value>,
}

/// Saved settings compared as they are.
fn as_saved(v: &Value) -> Result<Value> {
    Ok(v.clone())
}

/// Saved settings read back through `S`: keys added since take their defaults.
fn through<S: Serialize + DeserializeOwned>(v: &Value) -> Result<Value> {
    let typed: S = serde_json::from_value(v.clone()).context("reading the saved settings")?;
    Ok(serde_json::to_value(typed)?)
}

/// A checkpoint found to resume from.
pub struct Saved<P> {
    pub dir: PathBuf,
    pub step: u64,
    pub progress: P,
}

impl Checkpointer {
    /// Checkpoints under `dir`, the newest `keep_last` (at least one) kept, for a run with
    /// `settings`.
    pub fn new(
        dir: impl Into<PathBuf>,
        keep_last: usize,
        settings: &impl Serialize,
    ) -> Result<Self> {
        Ok(Self {
            dir: dir.into(),
            keep_last: keep_last.max(1),
            settings: serde_json::to_value(settings).context("the run's settings as JSON")?,
            read_saved: as_saved,
        })
    }

    /// Like [`Checkpointer::new`], with the saved settings read back through `S` before they are
    /// compared, so a checkpoint written before a setting existed continues under its default.
    pub fn typed<S: Serialize + DeserializeOwned>(
        dir: impl Into<PathBuf>,
        keep_last: usize,
        settings: &S,
    ) -> Result<Self> {
        Ok(Self {
            read_saved: through::<S>,
            ..Self::new(dir, keep_last, settings)?
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the checkpoint of `step`: `write` puts the loop's files into the staging folder,
    /// then the progress goes in and the folder is committed; older ones beyond `keep_last` are
    /// removed. Returns the checkpoint's folder.
    pub fn save<P: Serialize>(
        &self,
        step: u64,
        progress: &P,
        write: impl FnOnce(&AtomicDir) -> Result<()>,
    ) -> Result<PathBuf> {
        let target = self.dir.join(step_dir_name(step));
        let staging = AtomicDir::begin(&target)?;
        write(&staging).with_context(|| format!("writing checkpoint {}", target.display()))?;
        let record = Record {
            settings: &self.settings,
            progress,
        };
        staging.write(
            PROGRESS_FILE,
            serde_json::to_string_pretty(&record)?.as_bytes(),
        )?;
        let path = staging.commit()?;
        for old in prune(&self.dir, self.keep_last)? {
            tracing::debug!("removed old checkpoint {}", old.display());
        }
        Ok(path)
    }

    /// The newest checkpoint and its progress, if there is one; one saved under other settings
    /// is refused, naming the keys that differ.
    pub fn latest<P: DeserializeOwned>(&self) -> Result<Option<Saved<P>>> {
        let Some((step, dir)) = list(&self.dir)?.pop() else {
            return Ok(None);
        };
        let record: Record<Value, P> = read_record(&dir)?;
        let saved = (self.read_saved)(&record.settings)
            .with_context(|| format!("checkpoint {}", dir.display()))?;
        let differ = differing_keys(&saved, &self.settings);
        if !differ.is_empty() {
            bail!(
                "{} was saved by a run with other settings ({} differ{})",
                dir.display(),
                differ.join(", "),
                if differ.len() == 1 { "s" } else { "" }
            );
        }
        Ok(Some(Saved {
            dir,
            step,
            progress: record.progress,
        }))
    }

    /// The newest checkpoint's folder, whatever its settings.
    pub fn newest_dir(&self) -> Result<Option<PathBuf>> {
        Ok(list(&self.dir)?.pop().map(|(_, p)| p))
    }

    /// Removes every checkpoint it wrote, and the folder once nothing else is left in it (a
    /// fine-tuning run's delivered model beside them stays).
    pub fn clear(&self) -> Result<()> {
        prune(&self.dir, 0)?;
        remove_stale_temporaries(&self.dir)?;
        let empty = std::fs::read_dir(&self.dir).is_ok_and(|mut d| d.next().is_none());
        if empty {
            std::fs::remove_dir(&self.dir)
                .with_context(|| format!("removing {}", self.dir.display()))?;
        }
        Ok(())
    }
}

fn read_record<P: DeserializeOwned>(dir: &Path) -> Result<Record<Value, P>> {
    let path = dir.join(PROGRESS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} has no {PROGRESS_FILE}: it was written by an older clasp and cannot be continued \
             (pass --overwrite to start afresh, or choose another run.name)",
            dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The progress saved in checkpoint `dir`, its settings unchecked (for tools that read a
/// checkpoint rather than continue it).
pub fn read_progress<P: DeserializeOwned>(dir: &Path) -> Result<P> {
    Ok(read_record(dir)?.progress)
}

/// Dotted paths (`` `pretrain.dino.student_temp` ``) of the leaves that differ between two
/// settings trees, with both values.
pub fn differing_keys(saved: &Value, now: &Value) -> Vec<String> {
    fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<String>) {
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&child, x.get(k), y.get(k), out);
                }
            }
            (a, b) if a != b => {
                let show = |v: Option<&Value>| v.map_or("absent".to_string(), Value::to_string);
                out.push(format!("`{path}` (saved {}, now {})", show(a), show(b)));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", Some(saved), Some(now), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Progress {
        epoch: usize,
    }

    /// Settings of a later version: `precision` did not exist when the checkpoint was saved.
    #[derive(Serialize, Deserialize)]
    struct Later {
        lr: f64,
        #[serde(default)]
        precision: String,
    }

    #[test]
    fn a_setting_added_since_the_save_continues_at_its_default() {
        let dir = tempfile::tempdir().unwrap();
        let before = Checkpointer::new(dir.path(), 1, &json!({"lr": 0.1})).unwrap();
        before
            .save(5, &Progress { epoch: 1 }, |s| s.write("w", b"w"))
            .unwrap();
        let at_default = Later {
            lr: 0.1,
            precision: String::new(),
        };
        let typed = Checkpointer::typed(dir.path(), 1, &at_default).unwrap();
        assert_eq!(typed.latest::<Progress>().unwrap().unwrap().step, 5);
        // Compared as saved, the new key differs; set otherwise than its default it differs too.
        let untyped = Checkpointer::new(dir.path(), 1, &at_default).unwrap();
        assert!(untyped.latest::<Progress>().is_err());
        let changed = Later {
            lr: 0.1,
            precision: "bf16".into(),
        };
        let e = Checkpointer::typed(dir.path(), 1, &changed)
            .unwrap()
            .latest::<Progress>()
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`precision`"), "{e}");
    }

    #[test]
    fn saves_keep_the_newest_and_resume_refuses_other_settings_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let settings = json!({"optim": {"lr": 0.1, "wd": 0.05}, "seed": 1});
        let ck = Checkpointer::new(dir.path().join("checkpoints"), 2, &settings).unwrap();
        assert!(ck.latest::<Progress>().unwrap().is_none());
        for epoch in 1..=3 {
            ck.save(
                epoch * 10,
                &Progress {
                    epoch: epoch as usize,
                },
                |staging| staging.write("weights.bin", b"w"),
            )
            .unwrap();
        }
        let saved = ck.latest::<Progress>().unwrap().unwrap();
        assert_eq!((saved.step, saved.progress), (30, Progress { epoch: 3 }));
        assert!(saved.dir.join("weights.bin").is_file());
        let kept: Vec<u64> = list(ck.dir())
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(kept, vec![20, 30]);

        let other = json!({"optim": {"lr": 0.2, "wd": 0.05}, "seed": 1, "extra": true});
        let e = Checkpointer::new(ck.dir(), 2, &other)
            .unwrap()
            .latest::<Progress>()
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`extra` (saved absent, now true)"), "{e}");
        assert!(e.contains("`optim.lr` (saved 0.1, now 0.2)"), "{e}");
        assert!(!e.contains("wd"), "{e}");

        // A failed write commits nothing.
        let failed = ck.save(40, &Progress { epoch: 4 }, |_| bail!("disk full"));
        assert!(failed.unwrap_err().to_string().contains("step_00000040"));
        assert_eq!(ck.latest::<Progress>().unwrap().unwrap().step, 30);
        std::fs::create_dir_all(ck.dir().join("task_selected")).unwrap();
        ck.clear().unwrap();
        assert!(list(ck.dir()).unwrap().is_empty());
        assert!(
            ck.dir().join("task_selected").is_dir(),
            "what it did not write stays"
        );
        std::fs::remove_dir(ck.dir().join("task_selected")).unwrap();
        ck.clear().unwrap();
        assert!(!ck.dir().exists(), "an emptied folder goes");
    }
}
