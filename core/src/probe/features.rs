//! A frozen backbone's features of a split, computed once: the CLS feature and the patch map of
//! every readable sample (and of its mirror image, with the plugin's mirrored targets), with the
//! targets as evaluation loads them. Probes train and score heads on these alone.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use clasp_sdk::abi::Record;

use crate::config::Config;
use crate::finetune::data::{batch_tensor, check_skipped, task_loader};
use crate::model::Vit;
use crate::plugin_host::task_head::RecordFlip;

/// Features `[N, d]` and `[N, d, h, w]` of a split, on the CPU, with their targets; with
/// `mirrored`, rows `N..2N` are the same samples mirrored (and their mirrored targets).
pub struct SplitFeatures {
    pub cls: Tensor,
    pub patches: Tensor,
    pub targets: Vec<Record>,
    pub mirrored: bool,
}

impl SplitFeatures {
    /// Samples (not counting their mirrored rows).
    pub fn len(&self) -> usize {
        if self.mirrored {
            self.targets.len() / 2
        } else {
            self.targets.len()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The targets of the samples (not of their mirrored rows).
    pub fn sample_targets(&self) -> &[Record] {
        &self.targets[..self.len()]
    }

    /// Channel means and standard deviations of the CLS features and of the patch maps (over
    /// samples and positions), for [`Self::standardize`].
    pub fn channel_statistics(&self) -> Result<[(Tensor, Tensor); 2]> {
        let stats = |x: &Tensor, dims: &[usize]| -> Result<(Tensor, Tensor)> {
            let mut mean = x.clone();
            let mut sq = x.sqr()?;
            for d in dims.iter().rev() {
                mean = mean.mean_keepdim(*d)?;
                sq = sq.mean_keepdim(*d)?;
            }
            let std = (sq - mean.sqr()?)?.relu()?.sqrt()?;
            Ok((mean, (std + 1e-6)?))
        };
        Ok([stats(&self.cls, &[0])?, stats(&self.patches, &[0, 2, 3])?])
    }

    /// Every channel shifted and scaled by `statistics` (the training split's).
    pub fn standardize(&mut self, statistics: &[(Tensor, Tensor); 2]) -> Result<()> {
        let [(cm, cs), (pm, ps)] = statistics;
        self.cls = self.cls.broadcast_sub(cm)?.broadcast_div(cs)?;
        self.patches = self.patches.broadcast_sub(pm)?.broadcast_div(ps)?;
        Ok(())
    }

    /// The rows of samples `indices`, each mirrored where `flips` says so (and there are
    /// mirrored rows): random flips, as training on images has them.
    pub fn select_flipped(
        &self,
        indices: &[usize],
        flips: &[bool],
    ) -> Result<(Tensor, Tensor, Vec<Record>)> {
        let n = self.len();
        let rows: Vec<usize> = indices
            .iter()
            .zip(flips)
            .map(|(i, f)| if *f && self.mirrored { i + n } else { *i })
            .collect();
        self.select(&rows)
    }

    /// The rows `indices` (features and targets).
    pub fn select(&self, indices: &[usize]) -> Result<(Tensor, Tensor, Vec<Record>)> {
        let idx = Tensor::from_vec(
            indices.iter().map(|i| *i as u32).collect::<Vec<_>>(),
            indices.len(),
            self.cls.device(),
        )?;
        Ok((
            self.cls.index_select(&idx, 0)?,
            self.patches.index_select(&idx, 0)?,
            indices.iter().map(|i| self.targets[*i].clone()).collect(),
        ))
    }
}

/// Runs `vit` (frozen, with `task`'s prompt) over `records` at `size`; with `mirror`, every
/// sample is also run mirrored and kept with its mirrored targets (rows after the originals).
/// Loading follows `config.finetune`; `config.data` bounds the unreadable samples; the backbone
/// multiplies in `config.run.precision`.
pub fn extract(
    vit: &Vit,
    task: Option<&str>,
    records: Vec<Record>,
    size: [usize; 2],
    mirror: Option<&RecordFlip>,
    config: &Config,
    device: &Device,
) -> Result<SplitFeatures> {
    let max_skipped = config.data.max_skipped_fraction;
    let loader = task_loader(records, size, None, &config.finetune, 0);
    let mut batches = loader.epoch(0)?;
    let (mut cls, mut patches, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cls_m, mut patches_m, mut targets_m) = (Vec::new(), Vec::new(), Vec::new());
    for batch in batches.by_ref() {
        if batch.items.is_empty() {
            continue;
        }
        let x = batch_tensor(&batch.items, size, device)?;
        let precision = config.run.precision;
        let f = precision.scope(|| vit.forward(&x, task))?;
        cls.push(f.cls.detach().to_device(&Device::Cpu)?);
        patches.push(f.patches.detach().to_device(&Device::Cpu)?);
        let loaded: Vec<Record> = batch.items.into_iter().map(|(_, r)| r).collect();
        if let Some(flip) = mirror {
            let f = precision.scope(|| vit.forward(&x.flip(&[3])?, task))?;
            cls_m.push(f.cls.detach().to_device(&Device::Cpu)?);
            patches_m.push(f.patches.detach().to_device(&Device::Cpu)?);
            for r in &loaded {
                targets_m.push(flip.apply(r, size)?.with_context(|| {
                    format!(
                        "plugin `{}` no longer mirrors its targets",
                        flip.plugin.name()
                    )
                })?);
            }
        }
        targets.extend(loaded);
    }
    check_skipped(
        "feature extraction",
        &batches.skipped(),
        targets.len(),
        max_skipped,
    )?;
    if targets.is_empty() {
        anyhow::bail!("feature extraction: none of the samples could be read");
    }
    let mirrored = !targets_m.is_empty();
    cls.extend(cls_m);
    patches.extend(patches_m);
    targets.extend(targets_m);
    Ok(SplitFeatures {
        cls: Tensor::cat(&cls, 0)?,
        patches: Tensor::cat(&patches, 0)?,
        targets,
        mirrored,
    })
}
