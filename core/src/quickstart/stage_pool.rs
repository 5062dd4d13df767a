//! Runs the quickstart's independent stages as child processes, several at a time.
//!
//! Why processes: candle's CPU kernels scale poorly past one thread (its element-wise pool spins
//! and waits at a barrier after every op, and a probe's small products leave the second core
//! idle), so two single-threaded stages side by side finish sooner than the same two one after
//! the other on two threads each. Each child is `clasp quickstart <the same arguments> --stage
//! NAME`: it runs that one stage in-process, leaves its result in the stage's run folder, and the
//! parent reads it from there as a finished stage.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::stage::Stage;

/// How many stages run at once, and with how many threads each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    pub jobs: usize,
    pub threads_per_job: usize,
}

impl Parallelism {
    /// `jobs` stages at a time over `cores` threads (at least one each).
    pub fn new(jobs: usize, cores: usize) -> Self {
        let jobs = jobs.max(1);
        Self {
            jobs,
            threads_per_job: (cores / jobs).max(1),
        }
    }
}

/// The command line that re-runs this quickstart, and where the children's logs go.
pub struct StagePool {
    pub parallelism: Parallelism,
    /// The `clasp` binary.
    pub exe: PathBuf,
    /// The parent's own arguments (after the program name); `--stage NAME` is appended.
    pub args: Vec<OsString>,
    pub log_dir: PathBuf,
}

struct Running {
    stage: Stage,
    child: Child,
    started: Instant,
    log: PathBuf,
}

impl StagePool {
    /// Runs `stages` (in their order of priority; those `finished` says are done are skipped),
    /// none before the stage it needs. Returns each run stage's time-table label and wall
    /// seconds. A failed stage (or one that could not be started or watched) stops new launches;
    /// the running ones finish (their results stay for a rerun) and the error names it and its
    /// log.
    pub fn run(
        &self,
        stages: &[Stage],
        finished: impl Fn(&Stage) -> bool,
    ) -> Result<Vec<(String, f64)>> {
        std::fs::create_dir_all(&self.log_dir)
            .with_context(|| format!("creating {}", self.log_dir.display()))?;
        let mut done: HashSet<String> = stages
            .iter()
            .filter(|s| finished(s))
            .map(Stage::name)
            .collect();
        let mut pending: Vec<Stage> = stages
            .iter()
            .filter(|s| !done.contains(&s.name()))
            .copied()
            .collect();
        let mut running: Vec<Running> = Vec::new();
        let mut seconds = Vec::new();
        let mut failure: Option<String> = None;
        loop {
            while failure.is_none() && running.len() < self.parallelism.jobs {
                let ready = pending
                    .iter()
                    .position(|s| s.needs().is_none_or(|n| done.contains(&n.name())));
                let Some(i) = ready else { break };
                let stage = pending.remove(i);
                match self.launch(stage) {
                    Ok(r) => running.push(r),
                    Err(e) => failure = Some(format!("{e:#}")),
                }
            }
            if running.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            let mut i = 0;
            while i < running.len() {
                let status = match running[i].child.try_wait() {
                    Ok(None) => {
                        i += 1;
                        continue;
                    }
                    Ok(Some(status)) => Ok(status),
                    Err(e) => Err(e),
                };
                let r = running.swap_remove(i);
                let secs = r.started.elapsed().as_secs_f64();
                let name = r.stage.name();
                match status {
                    Ok(status) if status.success() && finished(&r.stage) => {
                        // The stage's own summary line names it.
                        println!("  {} ({secs:.0} s in all)", last_line(&r.log));
                        seconds.push((r.stage.label(), secs));
                        done.insert(name);
                    }
                    outcome => {
                        let why = match outcome {
                            Ok(status) if status.success() => "it left no result".to_string(),
                            Ok(status) => status.to_string(),
                            Err(e) => format!("its process could not be watched: {e}"),
                        };
                        failure.get_or_insert(format!(
                            "stage {name} failed ({why}); its log, {}, ends:\n{}",
                            r.log.display(),
                            tail(&r.log, 20)
                        ));
                    }
                }
            }
        }
        if let Some(f) = failure {
            bail!("{f}");
        }
        if !pending.is_empty() {
            let names: Vec<String> = pending.iter().map(Stage::name).collect();
            bail!("stages never became ready: {}", names.join(", "));
        }
        Ok(seconds)
    }

    /// The parent's arguments with `--stage NAME --parent PID` right after the subcommand, where
    /// no `--` of the user's can turn them into positional arguments.
    fn child_args(&self, name: &str) -> Vec<OsString> {
        let mut args = self.args.clone();
        let at = args
            .iter()
            .position(|a| a == "quickstart")
            .map_or(args.len(), |i| i + 1);
        let parent = std::process::id().to_string();
        let ours = ["--stage", name, "--parent", &parent].map(OsString::from);
        args.splice(at..at, ours);
        args
    }

    fn launch(&self, stage: Stage) -> Result<Running> {
        let name = stage.name();
        let log = self.log_dir.join(format!("{name}.log"));
        // Appended to: an interrupted attempt's output stays above the rerun's.
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let threads = self.parallelism.threads_per_job.to_string();
        let child = Command::new(&self.exe)
            .args(self.child_args(&name))
            // candle's element-wise pool and gemm's rayon pool both size themselves from these.
            .env("RAYON_NUM_THREADS", &threads)
            .env("CANDLE_NUM_THREADS", &threads)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} for stage {name}", self.exe.display()))?;
        println!("  {name}: started (log {})", log.display());
        Ok(Running {
            stage,
            child,
            started: Instant::now(),
            log,
        })
    }
}

/// The last `n` lines of a log (what a failed stage said last).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A finished stage's last words (its summary line).
fn last_line(path: &Path) -> String {
    tail(path, 1).trim().to_string()
}

/// In a child started by the quickstart of process `parent`: ends this process when that
/// quickstart is gone (killed, even before this one looked), so no orphan keeps training and
/// holding its run folder; the stage resumes from its last checkpoint on the next run.
pub fn exit_with_parent(parent: u32) {
    let gone = move || std::os::unix::process::parent_id() != parent;
    let stop = || {
        eprintln!("the quickstart that started this stage is gone: stopping");
        std::process::exit(130);
    };
    if gone() {
        stop();
    }
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        if gone() {
            stop();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_split_the_cores_between_jobs() {
        assert_eq!(Parallelism::new(2, 2).threads_per_job, 1);
        assert_eq!(Parallelism::new(2, 16).threads_per_job, 8);
        assert_eq!(Parallelism::new(4, 2).threads_per_job, 1);
        assert_eq!(Parallelism::new(0, 2).jobs, 1);
    }

    /// A pool whose "clasp" is a shell script: `$2` is the stage's name (after `--stage`).
    fn pool(root: &Path, script: &str, jobs: usize) -> StagePool {
        StagePool {
            parallelism: Parallelism::new(jobs, jobs),
            exe: PathBuf::from("sh"),
            args: vec!["-c".into(), script.into(), "sh".into()],
            log_dir: root.join("logs"),
        }
    }

    /// Every stage runs once, at most `jobs` at a time, none before the pre-training it reads
    /// has finished; finished stages are not run again.
    #[test]
    fn stages_run_after_what_they_need_and_finished_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let stages = Stage::all(1);
        let (first, rest) = stages.split_at(1);
        // One stage already finished by an earlier run.
        let skip = root.join(first[0].name());
        std::fs::create_dir_all(&skip).unwrap();
        std::fs::write(skip.join(first[0].result_file()), "{}").unwrap();
        let script = format!(
            "cd '{}' && echo \"start $2\" >> order && sleep 0.05 && mkdir -p \"$2\" && \
             touch \"$2/done.json\" \"$2/result.json\" && echo \"end $2\" >> order && \
             echo \"$2 finished\"",
            root.display()
        );
        let finished = |s: &Stage| root.join(s.name()).join(s.result_file()).exists();
        let seconds = pool(root, &script, 3).run(&stages, finished).unwrap();
        assert_eq!(seconds.len(), rest.len());
        let order = std::fs::read_to_string(root.join("order")).unwrap();
        let at = |line: String| order.lines().position(|l| l == line);
        assert_eq!(at(format!("start {}", first[0].name())), None, "{order}");
        let mut running = 0usize;
        for line in order.lines() {
            running = match line.starts_with("start ") {
                true => running + 1,
                false => running - 1,
            };
            assert!(running <= 3, "{order}");
        }
        for s in rest {
            let started = at(format!("start {}", s.name())).expect("every stage ran");
            if let Some(n) = s.needs().filter(|n| n.name() != first[0].name()) {
                let ended = at(format!("end {}", n.name())).unwrap();
                assert!(
                    ended < started,
                    "{} before {}:\n{order}",
                    n.name(),
                    s.name()
                );
            }
        }
        // Each stage's last line was its summary; its log is kept.
        let log = root.join("logs").join(format!("{}.log", rest[0].name()));
        assert_eq!(last_line(&log), format!("{} finished", rest[0].name()));
    }

    /// A failing stage is named with its log's last lines; nothing new starts after it.
    #[test]
    fn a_failed_stage_is_named_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let stages = Stage::all(1);
        let e = pool(root, "echo \"$2 cannot read its data\" >&2; exit 3", 1)
            .run(&stages, |_| false)
            .unwrap_err()
            .to_string();
        let first = stages[0].name();
        assert!(e.contains(&format!("stage {first} failed")), "{e}");
        assert!(e.contains(&format!("{first} cannot read its data")), "{e}");
        assert!(e.contains(&format!("{first}.log")), "{e}");
        let logs = std::fs::read_dir(root.join("logs")).unwrap().count();
        assert_eq!(
            logs, 1,
            "one job at a time: nothing started after the failure"
        );
    }

    /// When one stage fails, the one running beside it still finishes (its result stays for a
    /// rerun) and nothing new starts.
    #[test]
    fn a_failure_lets_the_running_stage_finish() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let stages = Stage::all(1);
        let (first, second) = (stages[0].name(), stages[1].name());
        let script = format!(
            "cd '{}' && if [ \"$2\" = '{first}' ]; then exit 3; fi; sleep 0.6 && \
             mkdir -p \"$2\" && touch \"$2/done.json\" && echo \"$2 finished\"",
            root.display()
        );
        let finished = |s: &Stage| root.join(s.name()).join(s.result_file()).exists();
        let e = pool(root, &script, 2).run(&stages, finished).unwrap_err();
        assert!(
            e.to_string().contains(&format!("stage {first} failed")),
            "{e}"
        );
        assert!(
            root.join(&second).join("done.json").exists(),
            "{second} was cut short"
        );
        let logs = std::fs::read_dir(root.join("logs")).unwrap().count();
        assert_eq!(logs, 2, "nothing started after the failure");
    }

    #[test]
    fn the_stage_flag_goes_right_after_the_subcommand() {
        let mut p = pool(Path::new("/tmp"), "", 1);
        p.args = ["--set", "a=1", "quickstart", "--fast", "--"]
            .map(OsString::from)
            .to_vec();
        let args: Vec<String> = p
            .child_args("probe-dino-reid")
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let parent = std::process::id().to_string();
        let wanted = [
            "--set",
            "a=1",
            "quickstart",
            "--stage",
            "probe-dino-reid",
            "--parent",
            &parent,
            "--fast",
            "--",
        ];
        assert_eq!(args, wanted);
    }
}
