//! Gradient conflict between the pre-training tasks (DESIGN §5): for a pre-training checkpoint,
//! each task's loss (ssl, part, attr) is differentiated alone on the same batches, and the cosine
//! similarity of the per-task gradients is measured on the shared backbone parameters, block by
//! block and over all of them. Negative cosines mean the tasks pull the shared weights apart;
//! the paper claims PC-MoE reduces that, and comparing a checkpoint trained with PC-MoE against
//! one trained without measures it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use super::dino_loss::DinoLoss;
use super::losses::{batch_labels, task_losses};
use super::setup::Setup;
use super::state;
use crate::charts::curves::{write_curves, Series};
use crate::config::Config;
use crate::distributed::World;
use crate::model::ParamStore;

/// Cosines of one checkpoint: per pair of tasks, per block (then `all`), averaged over batches.
#[derive(Debug, Clone, Serialize)]
pub struct ConflictTable {
    pub checkpoint: String,
    pub moe: bool,
    pub batches: usize,
    /// Pair names such as `ssl·part`.
    pub pairs: Vec<String>,
    /// Row names: `block 0` … and `all shared`.
    pub rows: Vec<String>,
    /// `cosine[row][pair]`.
    pub cosine: Vec<Vec<f64>>,
}

/// Flattened gradient of each group of shared parameters (one group per block, then all of
/// them); task prompts are task-specific and left out.
fn grouped_gradients(store: &ParamStore, grads: &GradStore, depth: usize) -> Result<Vec<Vec<f32>>> {
    let mut groups = vec![Vec::new(); depth + 1];
    for (name, var) in store.vars() {
        if name.starts_with("prompts.") {
            continue;
        }
        let g = match grads.get(var.as_tensor()) {
            Some(g) => g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
            None => vec![0.0; var.elem_count()],
        };
        if let Some(block) = name
            .strip_prefix("blocks.")
            .and_then(|r| r.split('.').next())
            .and_then(|b| b.parse::<usize>().ok())
        {
            groups[block].extend_from_slice(&g);
        }
        groups[depth].extend(g);
    }
    Ok(groups)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        dot += *x as f64 * *y as f64;
        na += (*x as f64).powi(2);
        nb += (*y as f64).powi(2);
    }
    if na == 0.0 || nb == 0.0 {
        f64::NAN
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Measures `checkpoint` (a `clasp pretrain` checkpoint) on `batches` batches of its data, as
/// `config` (the run's resolved config) describes it.
pub fn analyze(
    config: &Config,
    checkpoint: &Path,
    batches: usize,
    device: &Device,
) -> Result<ConflictTable> {
    let setup = Setup::new(config, device, String::new(), &World::single())?;
    let progress = state::progress_of(checkpoint)?;
    let layout = (setup.steps_per_epoch, setup.n_images);
    let (student, heads, teacher) = (&setup.student, &setup.heads, &setup.teacher);
    let (center, _) = state::load(checkpoint, &progress, student, heads, teacher, layout)?;
    let d = &config.pretrain.dino;
    let depth = setup.student.vit.cfg.depth;
    let mut sums: BTreeMap<(usize, usize), (f64, usize)> = BTreeMap::new();
    let mut names: Vec<&str> = Vec::new();
    let mut seen = 0;
    for batch in setup.loader.epoch(0)? {
        if seen == batches {
            break;
        }
        if batch.items.len() < 2 {
            continue;
        }
        // The centre is restored each batch: the analysis must not drift it.
        let dino = DinoLoss::new(center.clone(), d.student_temp, d.center_momentum);
        let labels = batch_labels(&setup, &batch.items);
        let items = (batch.items.as_slice(), &labels);
        let l = task_losses(&setup, items, &dino, d.teacher_temp, device)?;
        let mut per_task: Vec<(&str, Tensor)> = vec![("ssl", l.dino.loss)];
        per_task.extend(l.part.map(|t| ("part", t)));
        per_task.extend(l.attr.map(|t| ("attr", t)));
        if per_task.len() < 2 {
            bail!(
                "{}: only the DINO loss exists (no pseudo-labels in `pretrain.labels`), so there \
                 is no pair of tasks to compare",
                checkpoint.display()
            );
        }
        names = per_task.iter().map(|(n, _)| *n).collect();
        let grads: Vec<Vec<Vec<f32>>> = per_task
            .iter()
            .map(|(_, loss)| grouped_gradients(&setup.student.store, &loss.backward()?, depth))
            .collect::<Result<_>>()?;
        let mut pair = 0;
        for i in 0..grads.len() {
            for j in i + 1..grads.len() {
                for (row, (a, b)) in grads[i].iter().zip(&grads[j]).enumerate() {
                    let c = cosine(a, b);
                    if c.is_finite() {
                        let e = sums.entry((row, pair)).or_insert((0.0, 0));
                        e.0 += c;
                        e.1 += 1;
                    }
                }
                pair += 1;
            }
        }
        seen += 1;
    }
    if seen == 0 {
        bail!("no batch to analyse in `pretrain.data`");
    }
    let mut pairs = Vec::new();
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            pairs.push(format!("{}·{}", names[i], names[j]));
        }
    }
    let mut rows: Vec<String> = (0..depth).map(|b| format!("block {b}")).collect();
    rows.push("all shared".into());
    let cosine = (0..=depth)
        .map(|row| {
            (0..pairs.len())
                .map(|p| sums.get(&(row, p)).map_or(f64::NAN, |(s, n)| s / *n as f64))
                .collect()
        })
        .collect();
    Ok(ConflictTable {
        checkpoint: checkpoint.display().to_string(),
        moe: setup.student.vit.cfg.moe.is_some(),
        batches: seen,
        pairs,
        rows,
        cosine,
    })
}

impl ConflictTable {
    /// Plain-text table, one row per block and one for all shared parameters.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{} (PC-MoE {}), mean cosine over {} batches\n{:<12}",
            self.checkpoint,
            if self.moe { "on" } else { "off" },
            self.batches,
            "parameters"
        );
        for p in &self.pairs {
            out += &format!("{p:>12}");
        }
        out.push('\n');
        for (r, row) in self.rows.iter().enumerate() {
            out += &format!("{row:<12}");
            for v in &self.cosine[r] {
                out += &format!("{v:>12.4}");
            }
            out.push('\n');
        }
        out
    }
}

/// `grad_conflict.png`: one panel per (table, pair), the cosine against the block index.
pub fn write_conflict_chart(path: &Path, tables: &[ConflictTable]) -> Result<()> {
    let names: Vec<String> = tables
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            let moe = if t.moe { "on" } else { "off" };
            t.pairs
                .iter()
                .map(move |p| format!("#{} {p} (PC-MoE {moe})", i + 1))
        })
        .collect();
    let points = tables.iter().flat_map(|t| {
        let blocks = t.rows.len() - 1;
        (0..t.pairs.len()).map(move |p| (0..blocks).map(|r| (r as f64, t.cosine[r][p])).collect())
    });
    let series: Vec<Series> = names
        .iter()
        .zip(points)
        .map(|(name, points)| Series { name, points })
        .collect();
    write_curves(path, "block", &series)
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn cosine_of_parallel_opposite_and_orthogonal_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!((cosine(&[1.0, 2.0], &[-1.0, -2.0]) + 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-12);
        assert!(cosine(&[0.0, 0.0], &[1.0, 0.0]).is_nan());
    }
}
