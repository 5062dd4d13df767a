//! `clasp quickstart`: the whole method on built-in data, no downloads, top to bottom —
//! synthetic people (a downstream set, an attribute set, an unlabeled pool) → the CLIP teacher
//! (the shipped one, or one trained on captioned people with `--train-teacher`) → pseudo-labels
//! of the pool → pre-training (DINO only, CLASP without PC-MoE, CLASP; one or more seeds) →
//! frozen-backbone probes (and reid by nearest neighbour on the frozen CLS) and fine-tuning of the
//! four task plugins from each, and from a random backbone → the gradient-conflict analysis →
//! `report.md`: every result with its 95 % interval over the test people, beside the image-blind
//! levels, and the paired differences. Each stage leaves its result on disk; a rerun reuses
//! finished stages (and an interrupted pre-training or fine-tuning resumes from its last
//! checkpoint) that ran under the settings they get now, and runs the others again.

pub mod budget;
pub mod protocol;
pub mod report;
pub mod results;
pub mod shipped_teacher;
pub mod stage;
pub mod stage_pool;
pub mod stage_settings;
pub mod variants;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;

use self::budget::{Budget, SetSize};
use self::protocol::Protocol;
use self::report::Report;
use self::results::{read_json, write_json, PretrainResult, ProbeResult, TaskResult};
use self::stage::Stage;
use self::stage_pool::StagePool;
use self::stage_settings::{Backbone, StageSettings};
use self::variants::{QuickTask, Variant, TASKS, TEACHER_RECIPE, VARIANTS};
use crate::checkpoint::atomic::{remove_stale_temporaries, TMP_PREFIX};
use crate::config::overrides::Overrides;
use crate::config::{Config, ConfigSources};
use crate::data::synth::dataset::{generate, SynthOptions};
use crate::file_hash::sha256_file;
use crate::finetune::{finetune_for, FinetuneRun};
use crate::plugin_host::loader::find_task;
use crate::plugin_host::scoring::Scorer;
use crate::plugin_host::task_config::resolve;
use crate::pretrain::grad_conflict::{analyze, write_conflict_chart, ConflictTable};
use crate::pretrain::pretrain;
use crate::probe::probe;
use crate::proc_stat::CpuTimes;
use crate::run_dir::{Existing, RunDir};
use crate::teacher::label_job::{run_label, LabelRequest, ShardSelection};
use crate::teacher::labeller::{teacher_fingerprint, Labeller};
use crate::teacher::quality::{evaluate_pseudo_labels, QualityReport};
use crate::teacher::train::{train_teacher, TeacherRun};

/// What a stage leaves.
enum StageResult {
    Pretrain(PretrainResult),
    Probe(ProbeResult),
    Finetune(TaskResult),
}

pub struct Quickstart {
    pub root: PathBuf,
    pub budget: Budget,
    /// Train the teacher inside the run instead of using the shipped one.
    pub train_teacher: bool,
    /// The user's `--set`, applied last in every stage.
    pub user_sets: Vec<String>,
    /// Where the task plugins are looked for besides `plugins.dirs` and `CLASP_PLUGIN_PATH`: the
    /// folder of the `clasp` binary (`cargo build --release` puts them there).
    pub plugin_dir: Option<PathBuf>,
    pub device: Device,
    pub seed: u64,
    /// Runs the stages after the labels as child processes, several at a time; `None`: one
    /// after the other in this process.
    pub stage_pool: Option<StagePool>,
    /// The time-table labels of the stages the pool ran in this invocation.
    ran_by_pool: HashSet<String>,
    stage_seconds: Vec<(String, f64)>,
    /// The machine's CPU time when this invocation started (for the host's share of it).
    cpu_at_start: Option<CpuTimes>,
}

impl Quickstart {
    /// `root` is the quickstart's run directory; `base` its resolved config.
    pub fn new(
        root: PathBuf,
        base: &Config,
        budget: Budget,
        train_teacher: bool,
        user_sets: Vec<String>,
        device: Device,
    ) -> Self {
        let plugin_dir = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf));
        Self {
            root,
            budget,
            train_teacher,
            user_sets,
            plugin_dir,
            device,
            seed: base.run.seed,
            stage_pool: None,
            ran_by_pool: HashSet::new(),
            stage_seconds: Vec::new(),
            cpu_at_start: CpuTimes::now(),
        }
    }

    /// A stage's config: `recipe` (written under `configs/` so the user sees it), the budget's
    /// `overrides`, then the user's `--set`.
    fn stage_config(&self, recipe: Option<(&str, &str)>, overrides: &Overrides) -> Result<Config> {
        let file = match recipe {
            Some((name, text)) => {
                let dir = self.root.join("configs");
                std::fs::create_dir_all(&dir)?;
                let path = dir.join(format!("{name}.toml"));
                // Stages running side by side write the same recipe: never truncate it under
                // another one's reading (it would load an empty file, i.e. the defaults).
                if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
                    // Named as every temporary, so a killed writer's is swept.
                    remove_stale_temporaries(&dir)?;
                    let staged = dir.join(format!("{TMP_PREFIX}{name}-{}", std::process::id()));
                    std::fs::write(&staged, text)
                        .with_context(|| format!("writing {}", staged.display()))?;
                    std::fs::rename(&staged, &path)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                Some(path)
            }
            None => None,
        };
        let mut program = Overrides::new().set("run.seed", self.seed as i64);
        program.extend(&self.budget.model);
        program.extend(overrides);
        if let Some(dir) = &self.plugin_dir {
            let dirs = vec![toml::Value::from(dir.display().to_string())];
            program.push("plugins.dirs", dirs);
        }
        ConfigSources {
            file,
            program,
            // The user's `run.dir` / `run.name` chose the quickstart's folder (`root`); each
            // stage's run folder is its own name under it.
            overrides: (self.user_sets.iter())
                .filter(|s| !names_the_run_folder(s))
                .cloned()
                .collect(),
            use_env: true,
        }
        .load()
    }

    fn timed<T>(&mut self, stage: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let out = f(self)?;
        // A stage that a child process ran has its time already (its process's own).
        if !self.ran_by_pool.contains(stage) {
            let seconds = start.elapsed().as_secs_f64();
            println!("  ({stage}: {seconds:.0} s)");
            self.stage_seconds.push((stage.to_string(), seconds));
        }
        Ok(out)
    }

    fn synth(
        &self,
        out: &Path,
        size: SetSize,
        hw: [usize; 2],
        seed: u64,
        what: &str,
    ) -> Result<()> {
        let options = SynthOptions {
            out: out.to_path_buf(),
            identities: size.identities,
            images_per_id: size.images_per_id,
            cameras: 6,
            seed,
            height: hw[0],
            width: hw[1],
            jpeg_quality: 90,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let marker = out.join("synth.json");
        if marker.exists() {
            // Every later stage (labels, pre-training, every read) stands on these images: a
            // set rendered otherwise (another tier) is refused, not mixed in or re-rendered.
            let differs = rendered_otherwise(&marker, &options)?;
            if !differs.is_empty() {
                bail!(
                    "{} was rendered with other settings than this quickstart's ({}): run it in \
                     another folder (--set run.name=NAME) or delete {}",
                    out.display(),
                    differs.join(", "),
                    self.root.display()
                );
            }
            println!("  {what}: reused {}", out.display());
            return Ok(());
        }
        // No completion mark: an interrupted earlier render, whose images must not mix in.
        crate::data::synth::dataset::clear_previous(out)?;
        let s = generate(&options, &|_| {})?;
        println!(
            "  {what}: {} images of {} identities ({} train / {} val / {} test) → {}",
            s.images,
            size.identities,
            s.train_ids,
            s.val_ids,
            s.test_ids,
            out.display()
        );
        Ok(())
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn attribute_data(&self) -> PathBuf {
        self.root.join("data-attributes")
    }

    fn pool(&self) -> PathBuf {
        self.root.join("pool")
    }

    fn teacher_pool(&self) -> PathBuf {
        self.root.join("teacher-pool")
    }

    fn teacher_dir(&self) -> PathBuf {
        self.root.join("teacher")
    }

    fn teacher_config(&self) -> Result<Config> {
        let o = self
            .budget
            .teacher
            .clone()
            .path("teacher.data", &self.teacher_pool());
        self.stage_config(Some(("teacher", TEACHER_RECIPE)), &o)
    }

    /// The shipped teacher, or one trained on captioned people (reused when its folder is
    /// complete).
    fn teacher(&self) -> Result<()> {
        let out = self.teacher_dir();
        if out.join("training.json").exists() {
            // The pool's labels stand on this teacher: one of another kind is refused, not
            // replaced under them.
            let shipped = teacher_fingerprint(&out)? == shipped_teacher::FINGERPRINT;
            if shipped == self.train_teacher {
                let (holds, asks) = match shipped {
                    true => (
                        "the shipped teacher",
                        "one trained in the run (--train-teacher)",
                    ),
                    false => ("a teacher trained in the run", "the shipped one"),
                };
                bail!(
                    "{} holds {holds} and this quickstart asks for {asks}: run it in another \
                     folder (--set run.name=NAME), or {} as the folder was made",
                    out.display(),
                    match shipped {
                        true => "drop --train-teacher to continue",
                        false => "pass --train-teacher to continue",
                    }
                );
            }
            println!("  teacher: reused {}", out.display());
            return Ok(());
        }
        if !self.train_teacher {
            let fingerprint = shipped_teacher::install(&out)?;
            println!(
                "  teacher: the shipped synthetic CLIP (sha256 {}…) → {}",
                &fingerprint[..16],
                out.display()
            );
            return Ok(());
        }
        let b = &self.budget;
        self.synth(
            &self.teacher_pool(),
            b.teacher_pool,
            b.teacher_pool_size,
            self.seed + 2,
            "teacher's captioned people",
        )?;
        let c = self.teacher_config()?;
        // An interrupted quickstart resumes its teacher from the last finished epoch.
        let resume = TeacherRun {
            resume: true,
            max_epochs: None,
            max_skipped_fraction: c.data.max_skipped_fraction,
        };
        let r = train_teacher(&c.teacher, &out, &self.device, c.run.seed, resume)?;
        let last = r.epochs.last();
        println!(
            "  teacher: {} epochs in {:.0} s, held-out image→text top-1 {:.3} / top-5 {:.3} → {}",
            r.epochs.len(),
            r.seconds,
            last.map_or(0.0, |e| e.top1),
            last.map_or(0.0, |e| e.top5),
            out.display()
        );
        Ok(())
    }

    /// Labels the pool (the cache continues where it stopped) and scores the labels on the
    /// downstream set's truth.
    fn labels(&self) -> Result<QualityReport> {
        let c = self.teacher_config()?;
        let cache = self.root.join("labels");
        let s = run_label(&LabelRequest {
            teacher: &self.teacher_dir(),
            images: &self.pool().join("reid"),
            out: &cache,
            shards: ShardSelection::ALL,
            max_new_shards: None,
            settings: &c.label,
            device: &self.device,
        })?;
        println!(
            "  labels: {} images ({} shards written, {} reused) → {}",
            s.images,
            s.written,
            s.already_done,
            cache.display()
        );
        let quality_path = self.root.join("teacher_quality.json");
        if let Some(q) = read_json::<QualityReport>(&quality_path) {
            return Ok(q);
        }
        let labeller = Labeller::new(&self.teacher_dir(), &c.label, &self.device)?;
        let q = evaluate_pseudo_labels(
            &labeller,
            &self.data(),
            usize::MAX,
            32,
            Some(&self.root.join("teacher_parts.png")),
        )?;
        println!(
            "  pseudo-label quality on the downstream truth: part mIoU {:.4} (row baseline {:.4}), attribute mA {:.4}",
            q.part_miou, q.row_baseline_miou, q.attribute_ma
        );
        write_json(&quality_path, &q)?;
        Ok(q)
    }

    fn pretrain_name(variant: &'static Variant, seed_index: usize) -> String {
        Stage::Pretrain {
            variant,
            seed_index,
        }
        .name()
    }

    fn pretrain_config(&self, v: &'static Variant, seed_index: usize) -> Result<Config> {
        let mut o = self.budget.pretrain.clone();
        o.extend(&v.model());
        let o = o
            .set("run.seed", (self.seed + seed_index as u64) as i64)
            .path("pretrain.data", &self.pool().join("reid"))
            // The empty path is the config's "no pseudo-labels" (DINO only), even where the
            // environment names a label cache.
            .path(
                "pretrain.labels",
                &match v.pseudo_labels {
                    true => self.root.join("labels"),
                    false => PathBuf::new(),
                },
            )
            .path("model.prompts.teacher", &self.teacher_dir())
            .path("run.dir", &self.root)
            .set("run.name", Self::pretrain_name(v, seed_index));
        self.stage_config(None, &o)
    }

    fn pretrain(&self, v: &'static Variant, seed_index: usize) -> Result<PretrainResult> {
        let stage = Stage::Pretrain {
            variant: v,
            seed_index,
        };
        let settings = self.settings_of(&stage)?;
        let current = self.holds_current_work(&stage, &settings);
        let done = self.root.join(stage.name()).join("done.json");
        if let Some(r) = read_json::<PretrainResult>(&done).filter(|_| current) {
            let line = format!(
                "  pretrain {} seed {seed_index}: reused ({} steps)",
                v.title, r.steps
            );
            self.say_reused(&stage, &line);
            return Ok(r);
        }
        let config = self.pretrain_config(v, seed_index)?;
        // Work under other settings is moved aside; under these, an interrupted run resumes.
        let existing = self.opening(&stage, current, &config)?;
        let run = RunDir::create(&config, existing)?;
        settings.save(&run.path)?;
        let start = Instant::now();
        let out = pretrain(&config, &run, &self.device, true)?;
        let last = out.last.as_ref();
        let r = PretrainResult {
            variant: v.key.into(),
            seed_index,
            checkpoint: out.checkpoint.display().to_string(),
            steps: out.steps,
            loss_ssl: last.map(|m| m.loss_ssl),
            loss_part: last.and_then(|m| m.loss_part),
            loss_attr: last.and_then(|m| m.loss_attr),
            teacher_entropy: last.map(|m| m.teacher_entropy),
            collapse: out.collapse.clone(),
            gate_entropy: last.map(|m| m.gate_entropy.clone()).unwrap_or_default(),
            gate_mi: last.map(|m| m.gate_mi.clone()).unwrap_or_default(),
            seconds: start.elapsed().as_secs_f64(),
        };
        println!(
            "  pretrain {} seed {seed_index}: {} steps in {:.0} s, DINO loss {:.3}{} → {}",
            v.title,
            r.steps,
            r.seconds,
            r.loss_ssl.unwrap_or(f64::NAN),
            r.collapse
                .as_ref()
                .map_or(String::new(), |c| format!(", COLLAPSE: {c}")),
            r.checkpoint
        );
        write_json(&done, &r)?;
        Ok(r)
    }

    /// The run folder (and run name) of task `t` probed or fine-tuned from variant `v`'s
    /// pre-training seed `seed_index`.
    fn task_run_name(
        protocol: Protocol,
        variant: &'static Variant,
        task: &'static QuickTask,
        seed_index: usize,
    ) -> String {
        Stage::Read {
            protocol,
            variant,
            task,
            seed_index,
        }
        .name()
    }

    fn task_data(&self, t: &QuickTask) -> PathBuf {
        if t.name == "attribute" {
            self.attribute_data().join(t.data_dir)
        } else {
            self.data().join(t.data_dir)
        }
    }

    fn task_config(
        &self,
        stage: Protocol,
        v: &'static Variant,
        t: &'static QuickTask,
        seed_index: usize,
    ) -> Result<Config> {
        let mut o = self.budget.finetune.clone();
        let epochs = self
            .budget
            .epochs
            .iter()
            .find(|(task, _)| *task == t.name)
            .map_or(1, |(_, e)| *e);
        o.push("finetune.epochs", epochs as i64);
        o.extend(&v.model());
        for (task, settings) in &self.budget.finetune_task {
            if *task == t.name {
                o.extend(settings);
            }
        }
        if stage != Protocol::Finetune {
            o.extend(&self.budget.probe);
            for (task, settings) in &self.budget.probe_task {
                if *task == t.name {
                    o.extend(settings);
                }
            }
        }
        if stage == Protocol::NearestNeighbour {
            o.extend(&budget::nearest_neighbour_probe());
        }
        if v.pretrained {
            o.push(
                "model.prompts.teacher",
                self.teacher_dir().display().to_string(),
            );
        }
        let o = o
            .set("run.seed", (self.seed + seed_index as u64) as i64)
            .path("finetune.data", &self.task_data(t))
            .path("run.dir", &self.root)
            .set("run.name", Self::task_run_name(stage, v, t, seed_index));
        self.stage_config(Some((&format!("finetune-{}", t.name), t.recipe)), &o)
    }

    fn finetune(
        &self,
        v: &'static Variant,
        t: &'static QuickTask,
        backbone: Option<&Path>,
    ) -> Result<TaskResult> {
        let stage = Stage::Read {
            protocol: Protocol::Finetune,
            variant: v,
            task: t,
            seed_index: 0,
        };
        let name = stage.name();
        let settings = self.settings_of(&stage)?;
        let current = self.holds_current_work(&stage, &settings);
        let done = self.root.join(&name).join("result.json");
        if let Some(r) = read_json::<TaskResult>(&done).filter(|_| current) {
            let line = format!("  {name}: reused ({} {:.4})", r.primary, r.value);
            self.say_reused(&stage, &line);
            return Ok(r);
        }
        let config = self.task_config(Protocol::Finetune, v, t, 0)?;
        let plugin = find_task(&config.plugins, t.name)?;
        let primary = plugin.spec.primary_metric.to_string();
        // No result: a stage not run yet, or an interrupted one — continued after its last
        // finished epoch when it left a checkpoint under these settings, else started afresh
        // (remains moved aside).
        let checkpoints = self.root.join(&name).join("checkpoints");
        let existing = match crate::checkpoint::store::list(&checkpoints)?.is_empty() {
            true => Existing::Overwrite,
            false => self.opening(&stage, current, &config)?,
        };
        let resume = existing == Existing::Continue;
        let run = RunDir::create(&config, existing)?;
        settings.save(&run.path)?;
        let start = Instant::now();
        let how = FinetuneRun {
            resume,
            max_epochs: None,
        };
        let out = finetune_for(&config, plugin, backbone, &run, &self.device, how)?
            .context("a fine-tuning stage without max_epochs stopped early")?;
        let r = TaskResult {
            variant: v.key.into(),
            task: t.name.into(),
            value: out.test.metric(&primary).unwrap_or(f64::NAN),
            primary,
            selected_epoch: out.selected.epoch,
            metrics: out.test.metrics.clone(),
            run: run.path.display().to_string(),
            seconds: start.elapsed().as_secs_f64(),
        };
        println!(
            "  {name}: epoch {} selected on validation, test {} {:.4} in {:.0} s",
            r.selected_epoch, r.primary, r.value, r.seconds
        );
        write_json(&done, &r)?;
        Ok(r)
    }

    /// A frozen-backbone reading of task `t` (`protocol`: a trained probe or nearest neighbour).
    fn probe(
        &self,
        protocol: Protocol,
        v: &'static Variant,
        t: &'static QuickTask,
        seed_index: usize,
        backbone: Option<&Path>,
    ) -> Result<ProbeResult> {
        let stage = Stage::Read {
            protocol,
            variant: v,
            task: t,
            seed_index,
        };
        let name = stage.name();
        let settings = self.settings_of(&stage)?;
        let done = self.root.join(&name).join("result.json");
        if let Some(r) =
            read_json::<ProbeResult>(&done).filter(|_| self.holds_current_work(&stage, &settings))
        {
            self.say_reused(&stage, &format!("  {name}: reused"));
            return Ok(r);
        }
        let config = self.task_config(protocol, v, t, seed_index)?;
        let plugin = find_task(&config.plugins, t.name)?;
        let run = RunDir::create(&config, Existing::Overwrite)?;
        settings.save(&run.path)?;
        let start = Instant::now();
        let out = probe(&config, plugin, backbone, &run, &self.device)?;
        let r = ProbeResult {
            protocol,
            variant: v.key.into(),
            task: t.name.into(),
            seed_index,
            run: run.path.display().to_string(),
            values: out
                .seeds
                .iter()
                .map(|s| s.test.metric(&out.primary).unwrap_or(f64::NAN))
                .collect(),
            primary: out.primary,
            seconds: start.elapsed().as_secs_f64(),
        };
        write_json(&done, &r)?;
        Ok(r)
    }

    /// Prints that a finished stage is reused — unless a child process of this invocation just
    /// ran it (the pool printed its result then).
    fn say_reused(&self, stage: &Stage, line: &str) {
        if !self.ran_by_pool.contains(&stage.label()) {
            println!("{line}");
        }
    }

    /// The config `stage` runs under.
    fn config_of(&self, stage: &Stage) -> Result<Config> {
        match *stage {
            Stage::Pretrain {
                variant,
                seed_index,
            } => self.pretrain_config(variant, seed_index),
            Stage::Read {
                protocol,
                variant,
                task,
                seed_index,
            } => self.task_config(protocol, variant, task, seed_index),
        }
    }

    /// The settings `stage` runs under now, those of the pre-training it reads (and the result
    /// that one left) included.
    fn settings_of(&self, stage: &Stage) -> Result<StageSettings> {
        let backbone = match stage.needs() {
            Some(p) => Some(Backbone {
                settings: self.settings_of(&p)?,
                result: sha256_file(&self.root.join(p.name()).join(p.result_file())).ok(),
            }),
            None => None,
        };
        StageSettings::of(&self.config_of(stage)?, stage, backbone)
    }

    /// How `stage`'s run opens its folder: an interrupted run continues only under the very
    /// settings it saved its state with (any key, read by the stage or not, as `--resume`
    /// demands); anything else starts afresh, the old folder moved aside.
    fn opening(&self, stage: &Stage, current: bool, config: &Config) -> Result<Existing> {
        if !current {
            return Ok(Existing::Overwrite);
        }
        Ok(
            match crate::run_dir::saved_state_of_other_settings(config)? {
                None => Existing::Continue,
                Some(why) => {
                    println!(
                        "  {}: its interrupted run saved its state under other settings ({why}): \
                     starting afresh",
                        stage.name()
                    );
                    Existing::Overwrite
                }
            },
        )
    }

    /// Whether `stage`'s folder holds work done under `settings` (to reuse, or to resume);
    /// says why not when it holds other work, which the stage then moves aside.
    fn holds_current_work(&self, stage: &Stage, settings: &StageSettings) -> bool {
        let why = self.why_not_current(stage, settings);
        if let Some(why) = &why {
            if self.root.join(stage.name()).exists() {
                println!("  {}: {why}: run again", stage.name());
            }
        }
        why.is_none()
    }

    /// Why `stage`'s folder does not hold work done under `settings`; `None` when it does.
    fn why_not_current(&self, stage: &Stage, settings: &StageSettings) -> Option<String> {
        settings.differences(StageSettings::saved(&self.root.join(stage.name())).as_ref())
    }

    /// Whether `stage` left a result this quickstart can read (as its reuse does): one made
    /// under the settings it gets now.
    fn finished(&self, stage: &Stage) -> bool {
        let current =
            (self.settings_of(stage)).is_ok_and(|s| self.why_not_current(stage, &s).is_none());
        if !current {
            return false;
        }
        let file = self.root.join(stage.name()).join(stage.result_file());
        match stage {
            Stage::Pretrain { .. } => read_json::<PretrainResult>(&file).is_some(),
            Stage::Read {
                protocol: Protocol::Finetune,
                ..
            } => read_json::<TaskResult>(&file).is_some(),
            Stage::Read { .. } => read_json::<ProbeResult>(&file).is_some(),
        }
    }

    /// The checkpoint a stage reads: its variant's pre-training of that seed (`None`: a random
    /// backbone).
    fn backbone_of(pretraining: &[PretrainResult], stage: &Stage) -> Result<Option<PathBuf>> {
        let Some(Stage::Pretrain {
            variant,
            seed_index,
        }) = stage.needs()
        else {
            return Ok(None);
        };
        let p = pretraining
            .iter()
            .find(|p| p.variant == variant.key && p.seed_index == seed_index)
            .with_context(|| {
                format!(
                    "stage {} reads {}, which has not finished",
                    stage.name(),
                    Self::pretrain_name(variant, seed_index)
                )
            })?;
        Ok(Some(PathBuf::from(&p.checkpoint)))
    }

    /// Runs (or reuses) one stage; a read takes its backbone from `pretraining`.
    fn run_one(&self, stage: &Stage, pretraining: &[PretrainResult]) -> Result<StageResult> {
        Ok(match *stage {
            Stage::Pretrain {
                variant,
                seed_index,
            } => StageResult::Pretrain(self.pretrain(variant, seed_index)?),
            Stage::Read {
                protocol,
                variant,
                task,
                seed_index,
            } => {
                let backbone = Self::backbone_of(pretraining, stage)?;
                let bb = backbone.as_deref();
                match protocol {
                    Protocol::Finetune => StageResult::Finetune(self.finetune(variant, task, bb)?),
                    _ => StageResult::Probe(self.probe(protocol, variant, task, seed_index, bb)?),
                }
            }
        })
    }

    /// One stage named by `--stage NAME` (in a child process of a quickstart that runs
    /// several at a time): its result is left in its run folder, where the quickstart reads it.
    pub fn run_stage(&self, name: &str) -> Result<()> {
        let stages = Stage::all(self.budget.pretrain_seeds);
        let Some(stage) = stages.iter().find(|s| s.name() == name) else {
            let names: Vec<String> = stages.iter().map(Stage::name).collect();
            bail!(
                "no quickstart stage is named {name:?}; this budget's stages: {}",
                names.join(", ")
            );
        };
        // A read finds the pre-training it needs on disk, where the quickstart's pool left it.
        let pretraining: Vec<PretrainResult> = stage
            .needs()
            .and_then(|n| read_json(&self.root.join(n.name()).join(n.result_file())))
            .into_iter()
            .collect();
        if let StageResult::Probe(r) = self.run_one(stage, &pretraining)? {
            let values: Vec<String> = r.values.iter().map(|v| format!("{v:.4}")).collect();
            println!("  {name}: test {} {}", r.primary, values.join(" / "));
        }
        Ok(())
    }

    /// Runs every stage and writes the report; returns its path.
    pub fn run(mut self) -> Result<PathBuf> {
        let started = Instant::now();
        let b = self.budget.clone();
        println!("[1/7] data");
        self.timed("data", |q| {
            q.synth(
                &q.data(),
                b.downstream,
                b.image_size,
                q.seed,
                "downstream set",
            )?;
            q.synth(
                &q.attribute_data(),
                b.attributes,
                b.image_size,
                q.seed + 3,
                "attribute set",
            )?;
            q.synth(
                &q.pool(),
                b.pool,
                b.image_size,
                q.seed + 1,
                "unlabeled pool",
            )
        })?;
        println!("[2/7] teacher");
        self.timed("teacher", |q| q.teacher())?;
        println!("[3/7] pseudo-labels of the pool");
        let quality = self.timed("labels", |q| q.labels())?;
        let stages = Stage::all(b.pretrain_seeds);
        if let Some(pool) = &self.stage_pool {
            let p = pool.parallelism;
            println!(
                "[4-6/7] pre-training, probes and fine-tuning: {} stages, {} at a time in \
                 processes of their own ({} thread(s) each; logs in {})",
                stages.len(),
                p.jobs,
                p.threads_per_job,
                pool.log_dir.display()
            );
            let by_priority = Stage::in_pool_order(&stages);
            let mut seconds = pool.run(&by_priority, |s| self.finished(s))?;
            // The time table lists stages in the report's order, not as they finished.
            let position = |label: &str| stages.iter().position(|s| s.label() == label);
            seconds.sort_by_key(|(label, _)| position(label));
            self.ran_by_pool = seconds.iter().map(|(label, _)| label.clone()).collect();
            self.stage_seconds.extend(seconds);
        }
        let mut pretraining: Vec<PretrainResult> = Vec::new();
        let mut probes = Vec::new();
        let mut results = Vec::new();
        let mut header = None;
        for stage in &stages {
            let section = match stage {
                Stage::Pretrain { .. } => "[4/7] pre-training".to_string(),
                Stage::Read {
                    protocol: Protocol::Finetune,
                    ..
                } => format!(
                    "[6/7] fine-tuning {} tasks × {} variants",
                    TASKS.len(),
                    VARIANTS.len()
                ),
                Stage::Read { .. } => format!(
                    "[5/7] frozen-backbone probes: {} tasks × {} variants × {} pre-training \
                     seed(s), and reid by nearest neighbour on the CLS",
                    TASKS.len(),
                    VARIANTS.len(),
                    b.pretrain_seeds
                ),
            };
            if header.as_ref() != Some(&section) {
                println!("{section}");
                header = Some(section);
            }
            let label = stage.label();
            match self.timed(&label, |q| q.run_one(stage, &pretraining))? {
                StageResult::Pretrain(r) => pretraining.push(r),
                StageResult::Probe(r) => probes.push(r),
                StageResult::Finetune(r) => results.push(r),
            }
        }
        println!("[7/7] gradient conflict, intervals and report");
        let conflicts = self.timed("grad-conflict", |q| q.conflicts(&pretraining))?;
        let tables = self.timed("intervals", |q| {
            let scorers = q.scorers()?;
            report::comparisons(&scorers, &probes, &results, b.replicates, q.seed)
        })?;
        let report = Report {
            tier: b.tier,
            shipped_teacher: !self.train_teacher,
            stage_seconds: &self.stage_seconds,
            wall_seconds: started.elapsed().as_secs_f64(),
            parallelism: match self.ran_by_pool.is_empty() {
                true => None,
                false => self.stage_pool.as_ref().map(|p| p.parallelism),
            },
            host_steal: (self.cpu_at_start.zip(CpuTimes::now()))
                .and_then(|(start, end)| start.steal_share_until(&end)),
            teacher: &quality,
            pretraining: &pretraining,
            tables: &tables,
            conflicts: &conflicts,
        };
        let path = self.root.join("report.md");
        std::fs::write(&path, report.markdown())
            .with_context(|| format!("writing {}", path.display()))?;
        report.write_chart(&self.root.join("results.png"))?;
        write_json(&self.root.join("comparisons.json"), &tables)?;
        println!("\n{}", report.markdown());
        Ok(path)
    }

    /// Each task's plugin with its settings as the runs resolved them: what scores its rows.
    fn scorers(&self) -> Result<Vec<(String, Scorer)>> {
        TASKS
            .iter()
            .map(|t| {
                let c = self.task_config(Protocol::Finetune, &VARIANTS[0], t, 0)?;
                let plugin = find_task(&c.plugins, t.name)?;
                let config = resolve(&plugin, &c.task)?;
                Ok((t.name.to_string(), Scorer { plugin, config }))
            })
            .collect()
    }

    /// Per-task gradient cosines of the two CLASP checkpoints (without and with PC-MoE) of the
    /// first seed.
    fn conflicts(&self, pretraining: &[PretrainResult]) -> Result<Vec<ConflictTable>> {
        let mut tables = Vec::new();
        for v in VARIANTS.iter().filter(|v| v.pseudo_labels) {
            let Some(p) = pretraining
                .iter()
                .find(|p| p.variant == v.key && p.seed_index == 0)
            else {
                continue;
            };
            let config = self.pretrain_config(v, 0)?;
            tables.push(analyze(
                &config,
                Path::new(&p.checkpoint),
                self.budget.conflict_batches,
                &self.device,
            )?);
        }
        write_json(&self.root.join("grad_conflict.json"), &tables)?;
        write_conflict_chart(&self.root.join("grad_conflict.png"), &tables)?;
        Ok(tables)
    }
}

/// Whether a `--set KEY=VALUE` sets `run.dir` or `run.name` (however the key is quoted or
/// spaced).
fn names_the_run_folder(set: &str) -> bool {
    let parts = crate::config::load::parse_override(set)
        .ok()
        .and_then(|(key, _)| crate::config::load::key_parts(&key).ok())
        .unwrap_or_default();
    matches!(&parts[..], [run, key] if run == "run" && (key == "dir" || key == "name"))
}

/// The rendering options (all but the output folder and the thread count, which change no
/// image) in which the set whose `synth.json` is `marker` differs from `wanted`, each with both
/// values.
fn rendered_otherwise(marker: &Path, wanted: &SynthOptions) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(marker).with_context(|| format!("reading {}", marker.display()))?;
    let saved: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", marker.display()))?;
    let wanted = serde_json::to_value(wanted)?;
    let mut differs = Vec::new();
    for key in [
        "identities",
        "images_per_id",
        "cameras",
        "seed",
        "height",
        "width",
        "jpeg_quality",
    ] {
        let was = &saved["options"][key];
        if *was != wanted[key] {
            differs.push(format!("{key} {was}, now {}", wanted[key]));
        }
    }
    Ok(differs)
}

#[cfg(test)]
mod tests {
    use super::budget::Tier;
    use super::*;

    /// Every stage's config of every tier loads (a key the budget misspells, or one the schema
    /// no longer has, fails here instead of minutes into a quickstart), and the user's `--set`
    /// wins over the budget's settings, the dense tasks' LR included.
    #[test]
    fn every_stage_config_of_every_tier_loads() {
        let dir = tempfile::tempdir().unwrap();
        let user_lr = 0.0123;
        for tier in [Tier::Fast, Tier::Quick, Tier::Standard] {
            let name = format!("{tier:?}");
            let q = Quickstart::new(
                dir.path().join(&name),
                &Config::default(),
                Budget::for_tier(tier),
                true,
                // The quickstart's own folder: no stage's.
                vec![
                    format!("optim.lr={user_lr}"),
                    "run.name=\"mine\"".into(),
                    " \"run\" . dir = \"elsewhere\"".into(),
                ],
                Device::Cpu,
            );
            q.teacher_config().unwrap();
            for v in VARIANTS.iter() {
                if v.pretrained {
                    let c = q.pretrain_config(v, 1).unwrap();
                    assert_eq!(c.run.name, format!("pretrain-{}-seed1", v.key));
                    assert_eq!(Path::new(&c.run.dir), dir.path().join(&name));
                    assert_eq!(c.run.seed, 1);
                    assert_eq!(c.optim.lr, user_lr);
                }
                for t in TASKS.iter() {
                    for stage in Protocol::ALL.into_iter().filter(|p| p.reads(t)) {
                        let c = q.task_config(stage, v, t, 0).unwrap_or_else(|e| {
                            panic!("{name} budget, {} {}: {e:#}", v.key, t.name)
                        });
                        assert_eq!(c.run.name, Quickstart::task_run_name(stage, v, t, 0));
                        assert_eq!(c.optim.lr, user_lr, "{name} budget, {} {}", v.key, t.name);
                        if stage == Protocol::NearestNeighbour {
                            // Retrieval reads the frozen CLS, before any trained layer.
                            assert_eq!(c.task["neck_feat"].as_str(), Some("before"));
                            assert_eq!(c.task["head"].as_str(), Some("bnneck"));
                            assert_eq!(c.task["pool"].as_str(), Some("cls"));
                            assert_eq!(c.task["distance"].as_str(), Some("cosine"));
                            assert_eq!(c.task["rerank"].as_bool(), Some(false));
                            assert!(c.probe.standardize);
                        }
                    }
                }
            }
        }
    }
}
