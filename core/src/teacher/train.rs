//! `clasp teacher train`: a small CLIP trained contrastively on synthetic people and their
//! captions, written as a Hugging Face CLIP folder that [`Clip::load`] (and transformers' own
//! `CLIPModel.from_pretrained`) reads. Top to bottom: data → tokenizer → model → optimiser →
//! epochs (InfoNCE steps, then zero-shot retrieval on held-out identities) → the folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::caption_data::{decode_set, read_captions, CaptionSet, CaptionedImage};
use super::clip::Clip;
use super::clip_config::{ClipConfig, TextConfig, VisionConfig};
use super::contrastive::{clip_loss, distinct, retrieval_accuracy};
use super::preprocess::ClipPreprocess;
use super::tokenizer::ClipTokenizer;
use super::train_state;
use super::word_tokenizer;
use crate::checkpoint::atomic::AtomicDir;
use crate::checkpoint::Checkpointer;
use crate::config::teacher::TeacherSettings;
use crate::optim::adamw::{AdamW, AdamWConfig};
use crate::optim::groups::build_groups;
use crate::optim::schedule::CosineSchedule;
use crate::run_log::{self, MetricsLog};

/// Zero-shot image→text retrieval on held-out identities after one epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub step: usize,
    #[serde(deserialize_with = "crate::json::null_as_nan::number")]
    pub train_loss: f64,
    #[serde(deserialize_with = "crate::json::null_as_nan::number")]
    pub logit_scale: f64,
    #[serde(deserialize_with = "crate::json::null_as_nan::number")]
    pub top1: f64,
    #[serde(deserialize_with = "crate::json::null_as_nan::number")]
    pub top5: f64,
    /// Distinct held-out descriptions matched against.
    pub candidates: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeacherReport {
    pub out: PathBuf,
    pub train_images: usize,
    pub heldout_images: usize,
    /// Distinct held-out descriptions the images are matched against (chance = 1 / this).
    pub candidates: usize,
    pub skipped: usize,
    pub vocab_size: usize,
    pub seconds: f64,
    pub epochs: Vec<EpochReport>,
    /// False when the run stopped early (`TeacherRun::max_epochs`): no folder was written, the
    /// state to resume from was.
    pub complete: bool,
}

/// How one invocation runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct TeacherRun {
    /// Continue from the state an interrupted run left beside the output folder.
    pub resume: bool,
    /// Stop after this many epochs of this invocation (their state kept for a resume).
    pub max_epochs: Option<usize>,
    /// `data.max_skipped_fraction`: past this fraction of unreadable images, stop.
    pub max_skipped_fraction: f64,
}

/// The CLIP a `TeacherSettings` describes, for a tokenizer of `vocab_size` words.
pub fn teacher_config(t: &TeacherSettings, vocab_size: usize) -> ClipConfig {
    let side = t.img_size[0].max(t.img_size[1]);
    ClipConfig {
        text_config: TextConfig {
            vocab_size,
            hidden_size: t.text_width,
            intermediate_size: 4 * t.text_width,
            num_hidden_layers: t.text_layers,
            num_attention_heads: t.text_heads,
            max_position_embeddings: t.context,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            eos_token_id: word_tokenizer::END_ID as i64,
        },
        vision_config: VisionConfig {
            hidden_size: t.width,
            intermediate_size: 4 * t.width,
            num_hidden_layers: t.layers,
            num_attention_heads: t.heads,
            // transformers' CLIP is square; person crops interpolate its position grid.
            image_size: side,
            patch_size: t.patch_size,
            num_channels: 3,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        },
        projection_dim: t.projection_dim,
        logit_scale_init_value: t.logit_scale_init,
    }
}

/// `preprocessor_config.json` of a teacher trained on `[H, W]` person crops.
fn preprocessor_json(size: [usize; 2]) -> serde_json::Value {
    let p = ClipPreprocess::default();
    serde_json::json!({
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": true,
        "size": {"shortest_edge": size[1].min(size[0])},
        "do_center_crop": true,
        "crop_size": {"height": size[0], "width": size[1]},
        "do_normalize": true,
        "image_mean": p.mean,
        "image_std": p.std,
        "resample": 3,
        "do_rescale": true,
        "rescale_factor": 1.0 / 255.0,
    })
}

/// A batch of pixels `[B, 3, H, W]`, each image mirrored with probability ½ when `flip`.
fn pixel_batch(
    set: &CaptionSet,
    idx: &[usize],
    size: [usize; 2],
    flip: Option<&mut ChaCha8Rng>,
    device: &Device,
) -> Result<Tensor> {
    let [h, w] = size;
    let mut data = Vec::with_capacity(idx.len() * 3 * h * w);
    let mut rng = flip;
    for &i in idx {
        let px = &set.pixels[i];
        if rng.as_mut().is_some_and(|r| r.gen_bool(0.5)) {
            for row in px.chunks(w) {
                data.extend(row.iter().rev());
            }
        } else {
            data.extend_from_slice(px);
        }
    }
    Ok(Tensor::from_vec(data, (idx.len(), 3, h, w), device)?)
}

/// Captions past the first three whole descriptions each say one thing ("a person in boots");
/// the i-th of every image says the same kind of thing.
const WHOLE_DESCRIPTIONS: usize = 3;

/// One aspect's captions in a batch: (row in the batch, caption).
type AspectCaptions<'a> = Vec<(usize, &'a str)>;

/// The captions a step trains on: one whole description per image (at random), and per aspect
/// each image's caption of that aspect (images without one — empty backdrops — sit out).
fn step_captions<'a>(
    items: &'a [CaptionedImage],
    idx: &[usize],
    aspects: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<&'a str>, Vec<AspectCaptions<'a>>) {
    let whole = idx
        .iter()
        .map(|&i| {
            let caps = &items[i].captions;
            caps[rng.gen_range(0..caps.len().min(WHOLE_DESCRIPTIONS))].as_str()
        })
        .collect();
    let by_aspect = (0..aspects)
        .map(|k| {
            idx.iter()
                .enumerate()
                .filter_map(|(row, &i)| {
                    items[i]
                        .captions
                        .get(WHOLE_DESCRIPTIONS + k)
                        .map(|c| (row, c.as_str()))
                })
                .collect()
        })
        .collect();
    (whole, by_aspect)
}

/// One step's loss: CLIP's loss on whole descriptions and, with weight `aspect_weight`, the
/// mean of one CLIP loss per aspect — each a contrast among that aspect's alternatives ("in
/// boots" / "in shoes"), all from one pass of the towers (an aspect has a handful of distinct
/// texts per batch).
fn step_loss(
    clip: &Clip,
    tok: &ClipTokenizer,
    pixels: &Tensor,
    whole: &[&str],
    by_aspect: &[AspectCaptions],
    aspect_weight: f64,
) -> Result<Tensor> {
    let images = clip.image_embeds(pixels)?;
    let mut groups = Vec::new();
    let (descriptions, text_of) = distinct(whole);
    groups.push((None, 0, descriptions.len(), text_of));
    let mut short: Vec<&str> = Vec::new();
    for captions in by_aspect.iter().filter(|c| !c.is_empty()) {
        let rows: Vec<u32> = captions.iter().map(|(r, _)| *r as u32).collect();
        let own: Vec<&str> = captions.iter().map(|(_, c)| *c).collect();
        let (unique, text_of) = distinct(&own);
        groups.push((
            Some(rows),
            descriptions.len() + short.len(),
            unique.len(),
            text_of,
        ));
        short.extend(unique);
    }
    // Two text passes, each padded to its own longest text: padding the few-word aspect
    // captions to the length of the whole descriptions would double the text tower's work.
    let mut embeds = vec![clip.text_embeds(&tok.encode(&descriptions)?)?];
    if !short.is_empty() {
        embeds.push(clip.text_embeds(&tok.encode(&short)?)?);
    }
    let embeds = Tensor::cat(&embeds, 0)?;
    let mut whole_loss = None;
    let mut aspect_losses = Vec::new();
    for (rows, start, len, text_of) in groups {
        let t = embeds.narrow(0, start, len)?;
        match rows {
            None => whole_loss = Some(clip_loss(&images, &t, &text_of, &clip.logit_scale)?),
            Some(rows) => {
                let r = Tensor::new(rows.as_slice(), images.device())?;
                let img = images.index_select(&r, 0)?;
                aspect_losses.push(clip_loss(&img, &t, &text_of, &clip.logit_scale)?);
            }
        }
    }
    let whole_loss = whole_loss.expect("the whole descriptions are always there");
    if aspect_losses.is_empty() {
        return Ok(whole_loss);
    }
    let aspects = Tensor::stack(&aspect_losses, 0)?.mean_all()?;
    Ok(((whole_loss * (1.0 - aspect_weight))? + (aspects * aspect_weight)?)?)
}

/// Embeds the held-out images and their distinct first captions; top-1 / top-5 retrieval.
fn evaluate(
    clip: &Clip,
    tok: &ClipTokenizer,
    heldout: &CaptionSet,
    size: [usize; 2],
    batch: usize,
    device: &Device,
) -> Result<(f64, f64, usize)> {
    let firsts: Vec<&str> = heldout
        .items
        .iter()
        .map(|r| r.captions[0].as_str())
        .collect();
    let (texts, truth) = distinct(&firsts);
    let idx: Vec<usize> = (0..heldout.items.len()).collect();
    let mut img = Vec::new();
    for chunk in idx.chunks(batch) {
        let x = pixel_batch(heldout, chunk, size, None, device)?;
        img.push(clip.image_embeds(&x)?.detach());
    }
    let mut txt = Vec::new();
    for chunk in texts.chunks(batch) {
        txt.push(clip.text_embeds(&tok.encode(chunk)?)?.detach());
    }
    let (img, txt) = (Tensor::cat(&img, 0)?, Tensor::cat(&txt, 0)?);
    Ok((
        retrieval_accuracy(&img, &txt, &truth, 1)?,
        retrieval_accuracy(&img, &txt, &truth, 5)?,
        texts.len(),
    ))
}

/// Held-out images scored after each epoch: enough for a stable retrieval figure, few enough
/// that scoring stays a small part of an epoch on a pool of thousands of people.
const MAX_HELDOUT: usize = 2000;

/// At most `max` of `items`, evenly spaced (every identity's images sit together, so this keeps
/// many identities rather than the first few).
fn evenly_spaced<T>(items: Vec<T>, max: usize) -> Vec<T> {
    let n = items.len();
    if n <= max {
        return items;
    }
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (i * max) % n < max)
        .map(|(_, x)| x)
        .collect()
}

/// Trains a teacher on the synthetic set at `t.data` and writes it to `out`.
pub fn train_teacher(
    t: &TeacherSettings,
    out: &Path,
    device: &Device,
    seed: u64,
    run: TeacherRun,
) -> Result<TeacherReport> {
    let start = Instant::now();
    // 1. Data: captioned images, split by identity, decoded once.
    let (train, heldout) = captioned_sets(t, &run)?;
    let size = t.img_size;

    // 2. Tokenizer: the words of the training captions.
    let all_captions: Vec<String> = train
        .items
        .iter()
        .flat_map(|r| r.captions.iter().cloned())
        .collect();
    let word_tok = word_tokenizer::build(&all_captions, 1)?;
    let staging = AtomicDir::begin(out)?;
    word_tokenizer::save(&word_tok, &staging.path(""))?;
    let tok =
        ClipTokenizer::from_file(&staging.path("tokenizer.json"), t.context)?.pad_to_longest();

    // 3. Model and optimiser.
    let config = teacher_config(t, tok.vocab_size());
    let clip = Clip::new(config.clone(), device, seed)?;
    let steps_per_epoch = train.items.len() / t.batch_size;
    let (mut opt, schedule) = optimizer(t, &clip, steps_per_epoch)?;
    println!(
        "teacher: vision {}×{} (patch {}, grid from {}²), text {}×{} ({} words), {:.2} M parameters",
        t.layers,
        t.width,
        t.patch_size,
        config.vision_config.image_size,
        t.text_layers,
        t.text_width,
        tok.vocab_size(),
        clip.store.num_params() as f64 / 1e6
    );

    // 4. Epochs, from the last finished one when resuming.
    let checkpointer = train_state::checkpointer(out, &resumed_settings(t, seed, &tok)?)?;
    let mut progress = start_or_resume(&run, &checkpointer, &clip, &mut opt)?;
    let aspects = train
        .items
        .iter()
        .map(|r| r.captions.len().saturating_sub(WHOLE_DESCRIPTIONS))
        .max()
        .unwrap_or(0);
    let mut log = MetricsLog::create(&staging.path("train_log.jsonl"))?;
    for r in &progress.reports {
        log.write(r)?;
    }
    let report = |epochs: Vec<EpochReport>, complete: bool| TeacherReport {
        out: out.to_path_buf(),
        train_images: train.items.len(),
        heldout_images: heldout.items.len(),
        candidates: epochs.last().map_or(0, |e| e.candidates),
        skipped: train.skipped.len() + heldout.skipped.len(),
        vocab_size: tok.vocab_size(),
        seconds: start.elapsed().as_secs_f64(),
        epochs,
        complete,
    };
    let first_epoch = progress.epochs_done;
    for epoch in first_epoch..t.epochs {
        if run.max_epochs.is_some_and(|m| epoch - first_epoch >= m) {
            println!(
                "teacher: stopped after epoch {epoch} of {}; `--resume` continues from {}",
                t.epochs,
                checkpointer.dir().display()
            );
            return Ok(report(progress.reports, false));
        }
        let mut rng = train_state::epoch_rng(seed, epoch);
        let what = format!("teacher epoch {}/{}", epoch + 1, t.epochs);
        let bar = run_log::progress(&what, steps_per_epoch, "steps")?;
        let mut order: Vec<usize> = (0..train.items.len()).collect();
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for idx in order.chunks_exact(t.batch_size) {
            let x = pixel_batch(&train, idx, size, Some(&mut rng), device)?;
            let (whole, by_aspect) = step_captions(&train.items, idx, aspects, &mut rng);
            let loss = step_loss(&clip, &tok, &x, &whole, &by_aspect, t.aspect_weight)?;
            let grads = loss.backward()?;
            opt.step(&grads, schedule.at(progress.step), t.weight_decay)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            progress.step += 1;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let (top1, top5, candidates) = evaluate(&clip, &tok, &heldout, size, t.batch_size, device)?;
        let epoch_report = EpochReport {
            epoch: epoch + 1,
            step: progress.step,
            train_loss: loss_sum / steps_per_epoch.max(1) as f64,
            logit_scale: clip.logit_scale.to_scalar::<f32>()?.exp() as f64,
            top1,
            top5,
            candidates,
        };
        println!("{}", epoch_report.summary(t.epochs));
        log.write(&epoch_report)?;
        progress.reports.push(epoch_report);
        progress.epochs_done = epoch + 1;
        if progress.epochs_done < t.epochs {
            checkpointer.save(progress.step as u64, &progress, |staging| {
                train_state::write(staging, &clip, &opt)
            })?;
        }
    }

    // 5. The Hugging Face folder.
    let report = report(progress.reports, true);
    write_folder(staging, t, &clip, &config, &report)?;
    train_state::remove(checkpointer.dir())?;
    Ok(report)
}

/// The captioned training and held-out images (held-out people only, at most
/// [`MAX_HELDOUT`]), decoded at the teacher's input size; refused when too few to train or too
/// many unreadable.
fn captioned_sets(t: &TeacherSettings, run: &TeacherRun) -> Result<(CaptionSet, CaptionSet)> {
    let Some(root) = t.data.as_deref() else {
        bail!("config key `teacher.data` is not set: point it at a `clasp synth` output");
    };
    let records = read_captions(root)?;
    let (train_recs, heldout_recs): (Vec<_>, Vec<_>) =
        records.into_iter().partition(|r| r.is_train());
    let heldout_recs = evenly_spaced(
        heldout_recs.into_iter().filter(|r| r.pid != 0).collect(),
        MAX_HELDOUT,
    );
    let prep = ClipPreprocess::default();
    let size = t.img_size;
    let train = decode_set(root, train_recs, &prep, size, t.workers);
    let heldout = decode_set(root, heldout_recs, &prep, size, t.workers);
    if train.items.len() < t.batch_size || heldout.items.is_empty() {
        bail!(
            "{}: {} training and {} held-out images; need at least one batch ({}) to train and \
             some held-out identities to measure",
            root.display(),
            train.items.len(),
            heldout.items.len(),
            t.batch_size
        );
    }
    let unreadable: Vec<&PathBuf> = train.skipped.iter().chain(&heldout.skipped).collect();
    let total = unreadable.len() + train.items.len() + heldout.items.len();
    if unreadable.len() as f64 > run.max_skipped_fraction * total as f64 {
        bail!(
            "{}: {} of {total} images could not be read, more than `data.max_skipped_fraction` \
             = {} of them; the first: {}",
            root.display(),
            unreadable.len(),
            run.max_skipped_fraction,
            unreadable[0].display()
        );
    }
    println!(
        "teacher data: {} training images, {} held-out ({} unreadable, skipped)",
        train.items.len(),
        heldout.items.len(),
        train.skipped.len() + heldout.skipped.len()
    );
    Ok((train, heldout))
}

/// AdamW over the CLIP (clipped at `teacher.clip_grad` when positive) and its warm-up + cosine
/// learning rate.
fn optimizer(
    t: &TeacherSettings,
    clip: &Clip,
    steps_per_epoch: usize,
) -> Result<(AdamW, CosineSchedule)> {
    let opt = AdamW::new(
        build_groups(&clip.store.vars(), 0, 1.0),
        AdamWConfig {
            max_grad_norm: (t.clip_grad > 0.0).then_some(t.clip_grad),
            ..Default::default()
        },
    )?;
    let schedule = CosineSchedule {
        base: t.lr,
        final_value: t.min_lr,
        total_steps: steps_per_epoch * t.epochs,
        warmup_steps: t.warmup_steps,
        warmup_start: 0.0,
    };
    Ok((opt, schedule))
}

/// What a resumed run must share with the one that saved: the settings that change what is
/// computed, the seed and the tokenizer's size.
fn resumed_settings(
    t: &TeacherSettings,
    seed: u64,
    tok: &ClipTokenizer,
) -> Result<serde_json::Value> {
    let mut teacher = serde_json::to_value(t)?;
    if let Some(m) = teacher.as_object_mut() {
        m.remove("workers"); // changes nothing that is computed
        m.insert("seed".into(), seed.into());
    }
    Ok(serde_json::json!({ "teacher": teacher, "tokenizer": { "words": tok.vocab_size() } }))
}

/// A fresh run's progress, or — with `--resume` and saved state — the interrupted run's, with
/// its weights and optimiser restored. State left by an interrupted run is discarded otherwise.
fn start_or_resume(
    run: &TeacherRun,
    checkpointer: &Checkpointer,
    clip: &Clip,
    opt: &mut AdamW,
) -> Result<train_state::Progress> {
    let fresh = train_state::Progress {
        epochs_done: 0,
        step: 0,
        reports: Vec::new(),
    };
    let dir = checkpointer.dir();
    if run.resume {
        let advice = |e: anyhow::Error| anyhow!("{e:#}; delete {} to start over", dir.display());
        let saved = checkpointer
            .latest::<train_state::Progress>()
            .map_err(advice)?;
        let Some(saved) = saved else {
            if dir.exists() {
                bail!(
                    "{} holds no checkpoint this clasp can continue (an older layout, or a save \
                     that never finished): delete it to start over",
                    dir.display()
                );
            }
            return Ok(fresh);
        };
        train_state::load(&saved.dir, clip, opt).map_err(advice)?;
        println!(
            "teacher: resuming after epoch {} (step {}) from {}",
            saved.progress.epochs_done,
            saved.progress.step,
            saved.dir.display()
        );
        return Ok(saved.progress);
    }
    if dir.exists() {
        println!(
            "teacher: starting over; discarding the state of an interrupted run in {} \
             (`--resume` continues it)",
            dir.display()
        );
        train_state::remove(dir)?;
    }
    Ok(fresh)
}

/// Completes the Hugging Face folder in `staging` (config, weights, preprocessor, the training
/// report) and moves it into place.
fn write_folder(
    staging: AtomicDir,
    t: &TeacherSettings,
    clip: &Clip,
    config: &ClipConfig,
    report: &TeacherReport,
) -> Result<()> {
    config.write(&staging.path("config.json"), word_tokenizer::START_ID)?;
    let weights: std::collections::HashMap<String, Tensor> =
        clip.store.tensors().into_iter().collect();
    crate::checkpoint::tensor_file::save_tensors(&weights, &staging.path("model.safetensors"))?;
    staging.write(
        "preprocessor_config.json",
        serde_json::to_string_pretty(&preprocessor_json(t.img_size))?.as_bytes(),
    )?;
    staging.write(
        "training.json",
        serde_json::to_string_pretty(&serde_json::json!({"settings": t, "report": report}))?
            .as_bytes(),
    )?;
    staging.sync_file("model.safetensors")?;
    staging.commit().map(|_| ())
}

impl EpochReport {
    /// The line printed after an epoch of `epochs`.
    fn summary(&self, epochs: usize) -> String {
        format!(
            "teacher epoch {}/{epochs}: loss {:.4}, logit scale {:.1}, held-out image→text top-1 \
             {:.3} top-5 {:.3} (chance {:.3}, {} descriptions)",
            self.epoch,
            self.train_loss,
            self.logit_scale,
            self.top1,
            self.top5,
            1.0 / self.candidates as f64,
            self.candidates
        )
    }
}

#[cfg(test)]
mod tests {
    use super::evenly_spaced;

    #[test]
    fn held_out_subset_is_evenly_spaced_and_capped() {
        let picked = evenly_spaced((0..10).collect(), 4);
        assert_eq!(picked, vec![0, 3, 5, 8]);
        assert_eq!(evenly_spaced((0..3).collect::<Vec<_>>(), 4), vec![0, 1, 2]);
        assert_eq!(
            evenly_spaced((0..16_000).collect::<Vec<_>>(), 2000).len(),
            2000
        );
    }
}
