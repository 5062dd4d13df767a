//! `runs/<name>/`: the directory every job writes (resolved config, checkpoints, metrics, plots).
//!
//! A run folder belongs to one run at a time: the job holds an advisory lock on `run.lock` (which
//! names its pid and host) for as long as it writes, so a second writer is refused by name. A
//! folder that already holds a run is continued only when asked (`--resume`), replaced only when
//! asked (`--overwrite`, which moves the old run aside and never deletes it), and otherwise
//! refused.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::checkpoint::atomic::remove_stale_temporaries;
use crate::config::{to_toml, Config};
use crate::distributed::World;

pub const RESOLVED_CONFIG: &str = "config.resolved.toml";
/// The lock file of a run folder.
pub const LOCK: &str = "run.lock";

/// What a job does with a run folder that already holds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse to start: the default, so a rerun never writes over a finished run.
    Refuse,
    /// Continue the run in it (`--resume`; the quickstart's reused stages).
    Continue,
    /// Move the old run aside to `<name>.replaced-<unix seconds>` and start afresh.
    Overwrite,
}

impl Existing {
    /// From a command's `--resume` and `--overwrite` flags (clap keeps them exclusive).
    pub fn from_flags(resume: bool, overwrite: bool) -> Self {
        match (resume, overwrite) {
            (true, _) => Self::Continue,
            (false, true) => Self::Overwrite,
            (false, false) => Self::Refuse,
        }
    }
}

pub struct RunDir {
    pub path: PathBuf,
    /// sha256 of the resolved config TOML.
    pub config_hash: String,
    /// Held while this value lives: the OS releases it when the process ends, however it ends.
    /// `None` on the other processes of a data-parallel job, which read the folder rank 0 holds.
    _lock: Option<File>,
}

impl RunDir {
    /// Takes `run.dir/run.name/` for this job (created if missing) and writes the resolved
    /// config into it; `existing` says what to do when the folder already holds a run.
    pub fn create(config: &Config, existing: Existing) -> Result<Self> {
        let path = Path::new(&config.run.dir).join(&config.run.name);
        let text = to_toml(config)?;
        let file = path.join(RESOLVED_CONFIG);
        let mut lock = lock(&path)?;
        if holds_a_run(&path)? {
            match existing {
                Existing::Continue => {
                    // Refused here, before its resolved config is touched: a run with saved
                    // state continues only under the settings that wrote it.
                    if let Some(why) = saved_state_of_other_settings(config)? {
                        bail!(
                            "{} holds a run of other settings ({why}): resume with the same \
                             settings (`--config {}`), pass --overwrite to move it aside, or \
                             choose another --set run.name",
                            path.display(),
                            file.display()
                        );
                    }
                }
                Existing::Refuse => bail!(
                    "{} already holds a run: pass --overwrite to move it aside and start afresh \
                     (`clasp pretrain` and `clasp finetune` can also --resume it), or choose another --set run.name",
                    path.display()
                ),
                Existing::Overwrite => {
                    let aside = aside_name(&path);
                    std::fs::rename(&path, &aside).with_context(|| {
                        format!("moving {} aside to {}", path.display(), aside.display())
                    })?;
                    eprintln!(
                        "--overwrite: the previous run in {} moved to {}",
                        path.display(),
                        aside.display()
                    );
                    // The old run's lock moved with it; the new folder gets its own.
                    lock = self::lock(&path)?;
                }
            }
        }
        // Temporaries of a killed earlier run (its lock is ours now, so no writer is live).
        remove_stale_temporaries(&path)?;
        remove_stale_temporaries(&path.join("checkpoints"))?;
        std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
        Ok(Self {
            path,
            config_hash: config_hash(&text),
            _lock: Some(lock),
        })
    }

    /// The run folder of a job on every process of `world`: rank 0 takes it as [`create`] does
    /// and the others use it without the lock once it has; an error on rank 0 stops them all.
    ///
    /// [`create`]: RunDir::create
    pub fn create_in(config: &Config, existing: Existing, world: &World) -> Result<Self> {
        if world.size == 1 {
            return Self::create(config, existing);
        }
        let taken = match world.is_main() {
            true => Some(Self::create(config, existing)),
            false => None,
        };
        let ok = world.all(taken.as_ref().is_none_or(Result::is_ok))?;
        let hash = config_hash(&to_toml(config)?);
        // Every rank must run rank 0's settings (another seed, LR or environment variable on one
        // rank would train another order or step).
        if ok && !world.same_everywhere(hash.as_bytes())? {
            bail!(
                "the processes of this job resolved different settings (config hash {} here): \
                 give every rank the same config, --set flags and CLASP_* variables",
                &hash[..12]
            );
        }
        match taken {
            Some(run) => run,
            None if !ok => bail!("rank 0 could not take the run folder (its error says why)"),
            None => Ok(Self {
                path: Path::new(&config.run.dir).join(&config.run.name),
                config_hash: hash,
                _lock: None,
            }),
        }
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }
}

/// The keys whose values differ between two resolved configs, each with both values; or that
/// the saved one is missing or unreadable (another command wrote the folder).
fn what_differs(saved: &str, now: &str) -> String {
    let parse = |text: &str| {
        toml::from_str::<toml::Value>(text)
            .ok()
            .and_then(|v| serde_json::to_value(v).ok())
    };
    match (parse(saved), parse(now)) {
        (Some(a), Some(b)) => {
            let keys = crate::checkpoint::checkpointer::differing_keys(&a, &b);
            match keys.is_empty() {
                true => format!("its {RESOLVED_CONFIG} differs"),
                false => keys.join(", "),
            }
        }
        _ => format!("its {RESOLVED_CONFIG} is missing or unreadable: another command wrote it"),
    }
}

/// Creates `path` and takes its lock, or names the process that holds it.
fn lock(path: &Path) -> Result<File> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    let file = path.join(LOCK);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&file)
        .with_context(|| format!("opening {}", file.display()))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            if holder.trim().is_empty() {
                // The holder may have locked it an instant ago and not yet written its name.
                std::thread::sleep(std::time::Duration::from_millis(200));
                let _ = f.rewind().and_then(|_| f.read_to_string(&mut holder));
            }
            bail!(
                "{} is in use by another run ({}); wait for it to end or choose another --set \
                 run.name",
                path.display(),
                match holder.trim() {
                    "" => "holder unknown".to_string(),
                    h => h.to_string(),
                }
            )
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", file.display()))
        }
    }
    let holder = format!("pid {} on {}\n", std::process::id(), host_name());
    f.set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| f.write_all(holder.as_bytes()))
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(f)
}

/// Whether the folder holds the files of an earlier run: anything but its lock and a resolved
/// config (all that a run which failed in its setup leaves).
fn holds_a_run(path: &Path) -> Result<bool> {
    let entries = std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("reading {}", path.display()))?;
        if e.file_name() != LOCK && e.file_name() != RESOLVED_CONFIG {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `<path>.replaced-<unix seconds>`, with a counter if that exists too: where `--overwrite`
/// moves what it replaces.
pub fn aside_name(path: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.replaced-{secs}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "an unknown host".into())
}

pub fn config_hash(toml_text: &str) -> String {
    format!("{:x}", Sha256::digest(toml_text.as_bytes()))
}

/// Why `config`'s run folder cannot be continued under `config`: the keys in which the saved
/// state's settings differ (what [`RunDir::create`] refuses to continue); `None` when it holds no
/// saved state or holds it under these settings.
pub fn saved_state_of_other_settings(config: &Config) -> Result<Option<String>> {
    let path = Path::new(&config.run.dir).join(&config.run.name);
    let saved = std::fs::read_dir(path.join("checkpoints")).is_ok_and(|mut d| d.next().is_some());
    if !saved {
        return Ok(None);
    }
    let text = to_toml(config)?;
    let old =
        as_written_now(&std::fs::read_to_string(path.join(RESOLVED_CONFIG)).unwrap_or_default());
    Ok((old != text).then(|| what_differs(&old, &text)))
}

/// A saved resolved config as this version writes it, so settings added since it was saved
/// take their defaults rather than differ; the text itself when it no longer parses.
fn as_written_now(text: &str) -> String {
    toml::from_str::<Config>(text)
        .ok()
        .and_then(|c| to_toml(&c).ok())
        .unwrap_or_else(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, name: &str) -> Config {
        let mut c = crate::config::ConfigSources::default().load().unwrap();
        c.run.dir = dir.display().to_string();
        c.run.name = name.into();
        c
    }

    #[test]
    fn a_second_writer_is_refused_by_name_while_the_first_holds_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let c = config(tmp.path(), "r");
        let first = RunDir::create(&c, Existing::Refuse).unwrap();
        let err = RunDir::create(&c, Existing::Continue).err().unwrap();
        let msg = format!("{err:#}");
        assert!(msg.contains("in use by another run"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        RunDir::create(&c, Existing::Continue).unwrap();
    }

    #[test]
    fn a_rerun_is_refused_continued_or_moves_the_old_run_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let c = config(tmp.path(), "r");
        // A run that failed in its setup leaves only its resolved config: no run to protect.
        drop(RunDir::create(&c, Existing::Refuse).unwrap());
        let run = RunDir::create(&c, Existing::Refuse).unwrap();
        std::fs::write(run.path.join("metrics.jsonl"), "old\n").unwrap();
        drop(run);
        let err = RunDir::create(&c, Existing::Refuse).err().unwrap();
        assert!(
            format!("{err:#}").contains("already holds a run"),
            "{err:#}"
        );
        let run = RunDir::create(&c, Existing::Continue).unwrap();
        assert!(
            run.path.join("metrics.jsonl").exists(),
            "continued in place"
        );
        drop(run);
        let run = RunDir::create(&c, Existing::Overwrite).unwrap();
        assert!(!run.path.join("metrics.jsonl").exists(), "a fresh folder");
        let aside: Vec<PathBuf> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("r.replaced-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(
            std::fs::read_to_string(aside[0].join("metrics.jsonl")).unwrap(),
            "old\n",
            "the old run is kept, not deleted"
        );
    }
}
