//! `clasp quickstart`: the whole method on built-in data, no downloads, top to bottom —
//! synthetic people (a downstream set, an unlabeled pool, and many captioned people for the
//! teacher) → a CLIP teacher trained on those captions → pseudo-labels of the pool →
//! pre-training (DINO only, CLASP without PC-MoE, CLASP) → fine-tuning the four task plugins from
//! each, and from scratch → the gradient-conflict analysis → `report.md`. Each stage leaves its
//! result on disk; a rerun reuses finished stages (and an interrupted pre-training resumes from
//! its last checkpoint).

pub mod budget;
pub mod report;
pub mod variants;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use serde::{de::DeserializeOwned, Serialize};

use self::budget::Budget;
use self::report::{PretrainResult, Report, TaskResult};
use self::variants::{QuickTask, Variant, TASKS, TEACHER_RECIPE, VARIANTS};
use crate::config::{Config, ConfigSources};
use crate::data::synth::dataset::{generate, SynthOptions};
use crate::finetune::finetune;
use crate::plugin_host::loader::find_task;
use crate::pretrain::grad_conflict::{analyze, ConflictTable};
use crate::pretrain::pretrain;
use crate::run_dir::RunDir;
use crate::teacher::label_job::{run_label, LabelRequest, ShardSelection};
use crate::teacher::labeller::Labeller;
use crate::teacher::quality::{evaluate_pseudo_labels, QualityReport};
use crate::teacher::train::{train_teacher, TeacherRun};

pub struct Quickstart {
    pub root: PathBuf,
    pub budget: Budget,
    pub fast: bool,
    /// The user's `--set`, applied last in every stage.
    pub user_sets: Vec<String>,
    /// Where the task plugins are looked for besides `plugins.dirs` and `CLASP_PLUGIN_PATH`: the
    /// folder of the `clasp` binary (`cargo build --release` puts them there).
    pub plugin_dir: Option<PathBuf>,
    pub device: Device,
    pub seed: u64,
    stage_seconds: Vec<(String, f64)>,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn quoted(p: &Path) -> String {
    format!("\"{}\"", p.display().to_string().replace('\\', "/"))
}

impl Quickstart {
    /// `root` is the quickstart's run directory; `base` its resolved config.
    pub fn new(
        root: PathBuf,
        base: &Config,
        budget: Budget,
        fast: bool,
        user_sets: Vec<String>,
        device: Device,
    ) -> Self {
        let plugin_dir = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf));
        Self {
            root,
            budget,
            fast,
            user_sets,
            plugin_dir,
            device,
            seed: base.run.seed,
            stage_seconds: Vec::new(),
        }
    }

    /// A stage's config: `recipe` (written under `configs/` so the user sees it), the budget's
    /// `overrides`, then the user's `--set`.
    fn stage_config(&self, recipe: Option<(&str, &str)>, overrides: &[String]) -> Result<Config> {
        let file = match recipe {
            Some((name, text)) => {
                let dir = self.root.join("configs");
                std::fs::create_dir_all(&dir)?;
                let path = dir.join(format!("{name}.toml"));
                std::fs::write(&path, text)?;
                Some(path)
            }
            None => None,
        };
        let mut all: Vec<String> = vec![format!("run.seed={}", self.seed)];
        all.extend(self.budget.model.iter().cloned());
        all.extend(overrides.iter().cloned());
        if let Some(dir) = &self.plugin_dir {
            all.push(format!("plugins.dirs=[{}]", quoted(dir)));
        }
        all.extend(self.user_sets.iter().cloned());
        ConfigSources {
            file,
            overrides: all,
            use_env: true,
        }
        .load()
    }

    fn timed<T>(&mut self, stage: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let out = f(self)?;
        self.stage_seconds
            .push((stage.to_string(), start.elapsed().as_secs_f64()));
        Ok(out)
    }

    fn synth(
        &self,
        out: &Path,
        identities: u32,
        images_per_id: u32,
        [height, width]: [usize; 2],
        seed: u64,
        what: &str,
    ) -> Result<()> {
        if out.join("synth.json").exists() {
            println!("  {what}: reused {}", out.display());
            return Ok(());
        }
        let s = generate(
            &SynthOptions {
                out: out.to_path_buf(),
                identities,
                images_per_id,
                cameras: 6,
                seed,
                height,
                width,
                jpeg_quality: 90,
                threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            },
            &|_| {},
        )?;
        println!(
            "  {what}: {} images of {identities} identities → {}",
            s.images,
            out.display()
        );
        Ok(())
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
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
        let mut o = self.budget.teacher.clone();
        o.push(format!("teacher.data={}", quoted(&self.teacher_pool())));
        self.stage_config(Some(("teacher", TEACHER_RECIPE)), &o)
    }

    /// Trains the teacher on its captioned people (reused when its folder is complete).
    fn teacher(&self) -> Result<()> {
        let out = self.teacher_dir();
        if out.join("training.json").exists() {
            println!("  teacher: reused {}", out.display());
            return Ok(());
        }
        let c = self.teacher_config()?;
        // An interrupted quickstart resumes its teacher from the last finished epoch.
        let resume = TeacherRun {
            resume: true,
            max_epochs: None,
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

    fn pretrain_config(&self, v: &Variant) -> Result<Config> {
        let mut o = self.budget.pretrain.clone();
        o.extend(v.model.iter().map(|s| s.to_string()));
        o.push(format!(
            "pretrain.data={}",
            quoted(&self.pool().join("reid"))
        ));
        let labels = if v.pseudo_labels {
            quoted(&self.root.join("labels"))
        } else {
            "\"\"".into()
        };
        o.push(format!("pretrain.labels={labels}"));
        o.push(format!(
            "model.prompts.teacher={}",
            quoted(&self.teacher_dir())
        ));
        o.push(format!("run.dir={}", quoted(&self.root)));
        o.push(format!("run.name=\"pretrain-{}\"", v.key));
        self.stage_config(None, &o)
    }

    fn pretrain(&self, v: &Variant) -> Result<PretrainResult> {
        let done = self.root.join(format!("pretrain-{}/done.json", v.key));
        if let Some(r) = read_json::<PretrainResult>(&done) {
            println!("  pretrain {}: reused ({} steps)", v.title, r.steps);
            return Ok(r);
        }
        let config = self.pretrain_config(v)?;
        let run = RunDir::create(&config)?;
        let start = Instant::now();
        let out = pretrain(&config, &run, &self.device, true)?;
        let last = out.last.as_ref();
        let r = PretrainResult {
            variant: v.key.into(),
            checkpoint: out.checkpoint.display().to_string(),
            steps: out.steps,
            loss_ssl: last.map(|m| m.loss_ssl),
            loss_part: last.and_then(|m| m.loss_part),
            loss_attr: last.and_then(|m| m.loss_attr),
            teacher_entropy: last.map(|m| m.teacher_entropy),
            collapse: out.collapse.clone(),
            seconds: start.elapsed().as_secs_f64(),
        };
        println!(
            "  pretrain {}: {} steps in {:.0} s, DINO loss {:.3}{} → {}",
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

    /// The run folder (and run name) of task `t` fine-tuned from variant `v`.
    fn finetune_name(v: &Variant, t: &QuickTask) -> String {
        format!("finetune-{}-{}", v.key, t.name)
    }

    fn finetune_config(&self, v: &Variant, t: &QuickTask) -> Result<Config> {
        let mut o = self.budget.finetune.clone();
        let epochs = self
            .budget
            .epochs
            .iter()
            .find(|(task, _)| *task == t.name)
            .map_or(1, |(_, e)| *e);
        o.push(format!("finetune.epochs={epochs}"));
        o.extend(v.model.iter().map(|s| s.to_string()));
        if t.dense {
            o.extend(self.budget.dense_task.iter().cloned());
        }
        if v.pretrained {
            o.push(format!(
                "model.prompts.teacher={}",
                quoted(&self.teacher_dir())
            ));
        }
        o.push(format!(
            "finetune.data={}",
            quoted(&self.data().join(t.data_dir))
        ));
        o.push(format!("run.dir={}", quoted(&self.root)));
        o.push(format!("run.name=\"{}\"", Self::finetune_name(v, t)));
        self.stage_config(Some((&format!("finetune-{}", t.name), t.recipe)), &o)
    }

    fn finetune(&self, v: &Variant, t: &QuickTask, backbone: Option<&Path>) -> Result<TaskResult> {
        let name = Self::finetune_name(v, t);
        let done = self.root.join(&name).join("result.json");
        if let Some(r) = read_json::<TaskResult>(&done) {
            println!("  {name}: reused ({} {:.4})", r.primary, r.value);
            return Ok(r);
        }
        let config = self.finetune_config(v, t)?;
        let plugin = find_task(&config.plugins, t.name)?;
        let primary = plugin.spec.primary_metric.to_string();
        let run = RunDir::create(&config)?;
        let start = Instant::now();
        let out = finetune(&config, plugin, backbone, &run, &self.device)?;
        let value = out
            .best
            .metrics
            .iter()
            .find(|(k, _)| *k == primary)
            .map_or(f64::NAN, |(_, v)| *v);
        let r = TaskResult {
            variant: v.key.into(),
            task: t.name.into(),
            primary,
            value,
            best_epoch: out.best.epoch,
            metrics: out.best.metrics.clone(),
            seconds: start.elapsed().as_secs_f64(),
        };
        println!(
            "  {name}: {} {:.4} in {:.0} s",
            r.primary, r.value, r.seconds
        );
        write_json(&done, &r)?;
        Ok(r)
    }

    /// Runs every stage and writes the report; returns its path.
    pub fn run(mut self) -> Result<PathBuf> {
        let b = self.budget.clone();
        println!("[1/6] data");
        self.timed("data", |q| {
            q.synth(
                &q.data(),
                b.identities,
                b.images_per_id,
                b.image_size,
                q.seed,
                "downstream set",
            )?;
            q.synth(
                &q.pool(),
                b.pool_identities,
                b.pool_images_per_id,
                b.image_size,
                q.seed + 1,
                "unlabeled pool",
            )?;
            q.synth(
                &q.teacher_pool(),
                b.teacher_pool_identities,
                b.teacher_pool_images_per_id,
                b.teacher_pool_size,
                q.seed + 2,
                "teacher's captioned people",
            )
        })?;
        println!("[2/6] teacher: a CLIP trained on captioned people");
        self.timed("teacher", |q| q.teacher())?;
        println!("[3/6] pseudo-labels of the pool");
        let quality = self.timed("labels", |q| q.labels())?;
        println!("[4/6] pre-training");
        let mut pretraining = Vec::new();
        for v in VARIANTS.iter().filter(|v| v.pretrained) {
            let r = self.timed(&format!("pretrain {}", v.key), |q| q.pretrain(v))?;
            pretraining.push(r);
        }
        println!(
            "[5/6] fine-tuning {} tasks × {} variants",
            TASKS.len(),
            VARIANTS.len()
        );
        let mut results = Vec::new();
        for v in &VARIANTS {
            let backbone = pretraining
                .iter()
                .find(|p| p.variant == v.key)
                .map(|p| PathBuf::from(&p.checkpoint));
            for t in &TASKS {
                let r = self.timed(&format!("finetune {} {}", v.key, t.name), |q| {
                    q.finetune(v, t, backbone.as_deref())
                })?;
                results.push(r);
            }
        }
        println!("[6/6] gradient conflict and report");
        let conflicts = self.timed("grad-conflict", |q| q.conflicts(&pretraining))?;
        let report = Report {
            fast: self.fast,
            stage_seconds: &self.stage_seconds,
            teacher: &quality,
            pretraining: &pretraining,
            results: &results,
            conflicts: &conflicts,
        };
        let path = self.root.join("report.md");
        std::fs::write(&path, report.markdown())
            .with_context(|| format!("writing {}", path.display()))?;
        report.write_chart(&self.root.join("results.png"))?;
        println!("\n{}", report.markdown());
        Ok(path)
    }

    /// Per-task gradient cosines of the two CLASP checkpoints (without and with PC-MoE).
    fn conflicts(&self, pretraining: &[PretrainResult]) -> Result<Vec<ConflictTable>> {
        let mut tables = Vec::new();
        for v in VARIANTS.iter().filter(|v| v.pseudo_labels) {
            let Some(p) = pretraining.iter().find(|p| p.variant == v.key) else {
                continue;
            };
            let config = self.pretrain_config(v)?;
            tables.push(analyze(
                &config,
                Path::new(&p.checkpoint),
                self.budget.conflict_batches,
                &self.device,
            )?);
        }
        write_json(&self.root.join("grad_conflict.json"), &tables)?;
        Ok(tables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stage's config of both budgets loads (a key the budget misspells, or one the schema
    /// no longer has, fails here instead of minutes into a quickstart), and the user's `--set`
    /// wins over the budget's settings, the dense tasks' LR included.
    #[test]
    fn every_stage_config_of_both_budgets_loads() {
        let dir = tempfile::tempdir().unwrap();
        let user_lr = 0.0123;
        for (name, budget) in [("default", Budget::default_run()), ("fast", Budget::fast())] {
            let q = Quickstart::new(
                dir.path().join(name),
                &Config::default(),
                budget,
                name == "fast",
                vec![format!("optim.lr={user_lr}")],
                Device::Cpu,
            );
            q.teacher_config().unwrap();
            for v in VARIANTS.iter() {
                if v.pretrained {
                    let c = q.pretrain_config(v).unwrap();
                    assert_eq!(c.run.name, format!("pretrain-{}", v.key));
                    assert_eq!(c.optim.lr, user_lr);
                }
                for t in TASKS.iter() {
                    let c = q
                        .finetune_config(v, t)
                        .unwrap_or_else(|e| panic!("{name} budget, {} {}: {e:#}", v.key, t.name));
                    assert_eq!(c.run.name, Quickstart::finetune_name(v, t));
                    assert_eq!(c.optim.lr, user_lr, "{name} budget, {} {}", v.key, t.name);
                }
            }
        }
    }
}
