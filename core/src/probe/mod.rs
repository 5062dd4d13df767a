//! Frozen-backbone probes: how much of a task a backbone's features already hold. The backbone
//! (with the task's prompt) runs once over the train, validation and test splits; the task
//! plugin's own head is then trained on those features alone — a BNNeck for reid, a logistic
//! layer for attributes, the light upsampling heads for parsing and pose — for each of several
//! seeds, the epoch chosen on validation, the test split read once per seed. Cheap enough to run
//! where fine-tuning is not, and free of the fine-tuning recipe's own noise.

pub mod features;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use clasp_sdk::abi::Record;
use rand::Rng;
use serde::{Deserialize, Serialize};

use self::features::{extract, SplitFeatures};
use crate::config::Config;
use crate::finetune::data::{
    evenly_spaced, probe_flip, TaskSplits, TrainOrder, BLIND_TRAIN_SAMPLES,
};
use crate::finetune::task_prompt::task_backbone;
use crate::optim::{backbone_and_head_groups, AdamW, CosineSchedule};
use crate::plugin_host::scoring::Scorer;
use crate::plugin_host::task_config::resolve;
use crate::plugin_host::task_head::{RecordFlip, TaskHead};
use crate::plugin_host::Plugin;
use crate::run_dir::RunDir;
use crate::scoring::blind::{blind_levels, BlindLevel};
use crate::scoring::ScoredSplit;

/// One seed's probe: the epoch chosen on validation and the test scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeSeed {
    pub seed: u64,
    pub epoch: usize,
    /// The primary metric on validation at that epoch (`None` without a validation split).
    pub validation: Option<f64>,
    pub test: ScoredSplit,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeOutcome {
    pub task: String,
    pub primary: String,
    pub seeds: Vec<ProbeSeed>,
    pub blind: Vec<BlindLevel>,
    /// Seconds spent on features (once) and on the heads (all seeds).
    pub feature_seconds: f64,
    pub head_seconds: f64,
}

/// Where a probe's run folder keeps its outcome.
pub const PROBE_FILE: &str = "probe.json";

/// Probes `plugin`'s task on the frozen backbone of `backbone_dir` (a random one without it).
pub fn probe(
    config: &Config,
    plugin: Plugin,
    backbone_dir: Option<&std::path::Path>,
    run: &RunDir,
    device: &Device,
) -> Result<ProbeOutcome> {
    let p = &config.probe;
    let task = plugin.name().to_string();
    let task_config = resolve(&plugin, &config.task)?;
    let TaskSplits {
        train, val, test, ..
    } = TaskSplits::load(&plugin, &task_config, config.finetune.data.as_deref())?;

    // 1. Features, once: the backbone with the task's prompt, gates folded for inference.
    let start = std::time::Instant::now();
    let bb = task_backbone(config, &plugin, backbone_dir, run, device)?;
    let prompt = bb.vit.cfg.prompts.as_ref().map(|_| task.as_str());
    let vit = bb.for_inference(prompt, config.model.moe.fold_threshold)?;
    let size = bb.manifest.img_size;
    let flip = RecordFlip {
        plugin: plugin.clone(),
        config: task_config.clone(),
    };
    let mirror = if p.flip {
        probe_flip(flip, &train, size)?
    } else {
        None
    };
    let mut train_features = extract(
        &vit,
        prompt,
        train.clone(),
        size,
        mirror.as_ref(),
        config,
        device,
    )?;
    let mut val_features = if val.is_empty() {
        None
    } else {
        Some(extract(&vit, prompt, val, size, None, config, device)?)
    };
    let mut test_features = extract(&vit, prompt, test, size, None, config, device)?;
    if p.standardize {
        let statistics = train_features.channel_statistics()?;
        train_features.standardize(&statistics)?;
        if let Some(v) = val_features.as_mut() {
            v.standardize(&statistics)?;
        }
        test_features.standardize(&statistics)?;
    }
    let feature_seconds = start.elapsed().as_secs_f64();

    // 2. A head per seed, on the cached features.
    let start = std::time::Instant::now();
    let scorer = Scorer {
        plugin: plugin.clone(),
        config: task_config.clone(),
    };
    let primary = plugin.spec.primary_metric.to_string();
    let mut seeds = Vec::new();
    for k in 0..p.seeds.max(1) {
        let seed = config.run.seed + k as u64;
        let head = TaskHead::build_for_training(
            plugin.clone(),
            task_config.clone(),
            bb.vit.cfg.embed_dim,
            &Device::Cpu,
            seed,
            &train,
        )?;
        let trained = train_head(
            config,
            &task,
            head,
            &train_features,
            val_features.as_ref(),
            seed,
            &primary,
        )?;
        let (predictions, targets) = predict(&trained.head, &test_features)?;
        let metrics = scorer.evaluate(&predictions, &targets)?;
        let test = ScoredSplit::score(&scorer, metrics, &predictions, &targets)?;
        println!(
            "  probe {task} seed {seed}: epoch {} (val {}) → test {primary} {:.4}",
            trained.epoch,
            trained
                .validation
                .map_or("–".to_string(), |v| format!("{v:.4}")),
            test.metric(&primary).unwrap_or(f64::NAN)
        );
        seeds.push(ProbeSeed {
            seed,
            epoch: trained.epoch,
            validation: trained.validation,
            test,
        });
    }
    let head_seconds = start.elapsed().as_secs_f64();

    // 3. The image-blind levels of the same test split, from the training targets.
    let train_targets =
        crate::finetune::sample::load_targets(&evenly_spaced(&train, BLIND_TRAIN_SAMPLES), size);
    let blind = blind_levels(&scorer, &train_targets, &test_features.targets)?;
    let outcome = ProbeOutcome {
        task,
        primary,
        seeds,
        blind,
        feature_seconds,
        head_seconds,
    };
    std::fs::write(
        run.path.join(PROBE_FILE),
        serde_json::to_vec_pretty(&outcome)?,
    )
    .with_context(|| format!("writing {}", run.path.join(PROBE_FILE).display()))?;
    Ok(outcome)
}

/// A head trained on cached features: the one of the epoch chosen on validation.
pub struct TrainedHead {
    pub head: TaskHead,
    /// 1-based.
    pub epoch: usize,
    /// The primary metric on validation at that epoch (`None` without a validation split).
    pub validation: Option<f64>,
}

/// Decoded predictions of `head` for every row of `features`, with the rows' targets.
pub fn predict(head: &TaskHead, features: &SplitFeatures) -> Result<(Vec<Record>, Vec<Record>)> {
    let mut out = Vec::with_capacity(features.len());
    let n = features.len();
    for start in (0..n).step_by(256) {
        let len = 256.min(n - start);
        let cls = features.cls.narrow(0, start, len)?;
        let patches = features.patches.narrow(0, start, len)?;
        out.extend(head.decode(&head.forward(&cls, &patches, false)?)?);
    }
    Ok((out, features.targets.clone()))
}

/// The primary metric of `head` on `features`.
fn score(head: &TaskHead, features: &SplitFeatures, primary: &str) -> Result<Option<f64>> {
    let (p, t) = predict(head, features)?;
    Ok(head
        .evaluate(&p, &t)?
        .iter()
        .find(|m| m.name.as_str() == primary)
        .map(|m| m.value))
}

/// A copy of the head's tensors (its variables change in place as it trains).
fn snapshot(head: &TaskHead) -> Result<std::collections::BTreeMap<String, Tensor>> {
    head.state
        .tensors()
        .into_iter()
        .map(|(k, v)| Ok((k, v.copy()?)))
        .collect()
}

/// Trains `head` on `train` for `probe.epochs` epochs (AdamW, cosine LR), validating every
/// `probe.eval_every` epochs; returns the head of the best validation epoch (the last without a
/// validation split).
pub fn train_head(
    config: &Config,
    task: &str,
    head: TaskHead,
    train: &SplitFeatures,
    val: Option<&SplitFeatures>,
    seed: u64,
    primary: &str,
) -> Result<TrainedHead> {
    let p = &config.probe;
    let settings = crate::config::schema::FinetuneSettings {
        batch_size: p.batch_size,
        flip: Some(false),
        ..config.finetune.clone()
    };
    let order = TrainOrder::from_settings(&settings, task, train.sample_targets(), None)?;
    let mut flips = crate::data::synth::rng_for(seed, &[20]);
    let steps_per_epoch = order
        .sampler
        .order(train.len(), seed, 0)?
        .len()
        .div_ceil(p.batch_size.max(1));
    let mut opt = AdamW::new(
        backbone_and_head_groups(&[], &head.state.params.vars(), 0, 1.0, 1.0),
        config.optim.adamw(),
    )?;
    let schedule = CosineSchedule {
        base: p.lr,
        final_value: p.lr * 0.01,
        total_steps: p.epochs * steps_per_epoch,
        warmup_steps: 0,
        warmup_start: 0.0,
    };
    let mut best: Option<(
        usize,
        Option<f64>,
        std::collections::BTreeMap<String, Tensor>,
    )> = None;
    let mut step = 0;
    for epoch in 0..p.epochs {
        let indices = order.sampler.order(train.len(), seed, epoch as u64)?;
        for batch in indices.chunks(p.batch_size.max(1)) {
            let flip: Vec<bool> = batch.iter().map(|_| flips.gen_bool(0.5)).collect();
            let (cls, patches, targets) = train.select_flipped(batch, &flip)?;
            let output = head.forward(&cls, &patches, true)?;
            let loss = head.loss(&output, &targets)?;
            opt.step(&loss.backward()?, schedule.at(step), p.weight_decay)?;
            step += 1;
        }
        let last = epoch + 1 == p.epochs;
        let Some(val) = val else {
            if last {
                best = Some((epoch + 1, None, snapshot(&head)?));
            }
            continue;
        };
        if !last && (epoch + 1) % p.eval_every.max(1) != 0 {
            continue;
        }
        let v = score(&head, val, primary)?;
        let improved = match (&best, v) {
            (_, None) => false,
            (None, Some(v)) => v.is_finite(),
            (Some((_, b, _)), Some(v)) => b.is_none_or(|b| v > b),
        };
        if improved || (last && best.is_none()) {
            best = Some((epoch + 1, v.filter(|_| improved), snapshot(&head)?));
        }
    }
    let (epoch, validation, tensors) =
        best.context("no probe epochs were run (probe.epochs = 0)")?;
    let head = TaskHead::restore(
        head.plugin.clone(),
        head.config.clone(),
        head.dim,
        &Device::Cpu,
        tensors,
    )?;
    Ok(TrainedHead {
        head,
        epoch,
        validation,
    })
}
