//! A timm `VisionTransformer` state dict (ImageNet, MAE or DINO ViTs in safetensors) as the
//! backbone's initial weights.
//!
//! Names are timm's already (our ViT keeps them). What differs is mapped:
//! - `pos_embed`: the grid is resampled to the configured input (as timm's
//!   `resample_abs_pos_embed`, antialiased bicubic); rows of register tokens (`reg_token`) are
//!   dropped, and a file whose CLS token has no position embedding (`no_embed_class`, as timm's
//!   register and DINOv2 models) gives ours zeros. The file's grid is taken to have the
//!   configured aspect ratio (256×128 crops: 2:1), else to be square.
//! - PC-MoE blocks: the dense MLP is split into the experts by hidden unit (expert e takes units
//!   e·H/E … (e+1)·H/E − 1), with the gate weights at zero, so that every task's gates start
//!   uniform (g = 1/E, c = ½) and the block computes exactly the dense MLP; `fc2` is scaled by
//!   2E (and its bias by 2) to undo the gates. With `model.moe.top_k` fewer experts would run:
//!   refused.
//! - Prompts and anything else timm has no counterpart for keep their fresh initialisation and
//!   are listed; tensors of the file that nothing takes (a classifier head) are listed too.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor, D};

use crate::model::pos_embed::{resample_grid_with, GridResampling};
use crate::model::{ParamStore, Vit};

/// What the import took, left and resampled.
#[derive(Debug, Clone, Default)]
pub struct TimmImport {
    /// Our variables set from the file.
    pub loaded: usize,
    /// Our variables the file has nothing for (fresh initialisation kept).
    pub fresh: Vec<String>,
    /// The file's tensors nothing took.
    pub unused: Vec<String>,
    /// The position-embedding grid, from → to, when it was resampled.
    pub resampled: Option<((usize, usize), (usize, usize))>,
}

/// Sets `vit`'s variables in `store` from timm's state dict `sd`.
pub fn load_timm(
    vit: &Vit,
    store: &ParamStore,
    sd: &BTreeMap<String, Tensor>,
) -> Result<TimmImport> {
    load_timm_with(vit, store, sd, GridResampling::AntialiasedBicubic)
}

/// [`load_timm`] with the position embedding's grid resampled by `resampling`.
pub fn load_timm_with(
    vit: &Vit,
    store: &ParamStore,
    sd: &BTreeMap<String, Tensor>,
    resampling: GridResampling,
) -> Result<TimmImport> {
    // Resampling and the experts' 2E scale in f32 whatever the file holds (f16, bf16).
    let sd: BTreeMap<String, Tensor> = sd
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::F32)?)))
        .collect::<Result<_>>()?;
    let sd = &sd;
    let Some(pos) = sd.get("pos_embed") else {
        bail!("not a timm VisionTransformer state dict: it has no `pos_embed`");
    };
    // A layer norm before the first block changes what every weight computes: the file and the
    // model must agree on it.
    match (sd.contains_key("norm_pre.weight"), vit.norm_pre.is_some()) {
        (true, false) => bail!(
            "the file has `norm_pre` (a layer norm before the first block, as timm's CLIP ViTs): \
             initialise with `--set model.pre_norm=true`, and the file's activation and layer-norm \
             epsilon (`model.activation`, `model.norm_eps`)"
        ),
        (false, true) => bail!(
            "`model.pre_norm` is set but the file has no `norm_pre`: initialise with \
             `model.pre_norm=false`"
        ),
        _ => {}
    }
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut ours: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut report = TimmImport::default();

    // Position embeddings: the CLS row (zeros where timm gives CLS and registers none,
    // `no_embed_class`), register rows dropped, the grid resampled.
    let registers = match sd.get("reg_token") {
        Some(r) => r.dim(1)?,
        None => 0,
    };
    let pos = pos.squeeze(0)?;
    let to = vit.cfg.grid();
    let rows = pos.dim(0)?;
    let layout = [1 + registers, 0].into_iter().find_map(|prefix| {
        let cells = rows.checked_sub(prefix).filter(|c| *c > 0)?;
        file_grid(cells, to).map(|grid| (prefix, cells, grid))
    });
    let Some((prefix, cells, from)) = layout else {
        bail!(
            "`pos_embed` has {rows} rows ({registers} register tokens): neither a CLS row, the \
             registers and a grid nor a grid alone of the model's aspect ratio or square"
        );
    };
    let grid = resample_grid_with(&pos.narrow(0, prefix, cells)?, from, to, resampling)?;
    let cls = match prefix {
        0 => pos.narrow(0, 0, 1)?.zeros_like()?,
        _ => pos.narrow(0, 0, 1)?,
    };
    let pos = Tensor::cat(&[&cls, &grid], 0)?.unsqueeze(0)?;
    ours.insert("pos_embed".into(), pos);
    used.insert("pos_embed".into());
    if from != to {
        report.resampled = Some((from, to));
    }

    // PC-MoE blocks from the dense MLP.
    for (i, block) in vit.blocks.iter().enumerate() {
        let crate::model::vit::BlockMlp::Moe(moe) = &block.mlp else {
            continue;
        };
        let dense = |name: &str| -> Result<&Tensor> {
            let key = format!("blocks.{i}.mlp.{name}");
            sd.get(&key)
                .with_context(|| format!("the file has no `{key}` for PC-MoE block {i}"))
        };
        let (w1, b1, w2, b2) = (
            dense("fc1.weight")?,
            dense("fc1.bias")?,
            dense("fc2.weight")?,
            dense("fc2.bias")?,
        );
        let (experts, hidden) = (moe.num_experts(), w1.dim(0)?);
        if let Some(k) = moe.top_k.filter(|k| *k < experts) {
            bail!(
                "PC-MoE block {i} keeps the top {k} of {experts} experts: split from a dense MLP \
                 it would compute only part of it; initialise with `model.moe.top_k` unset"
            );
        }
        let part = moe.experts[0].fc1.weight.dim(0)?;
        if part * experts != hidden {
            bail!(
                "`blocks.{i}.mlp.fc1.weight` has {hidden} hidden units, which do not split into \
                 {experts} experts of {part} (`model.moe.expert_hidden` × `model.moe.num_experts` \
                 must equal the dense MLP's width)"
            );
        }
        for e in 0..experts {
            let p = format!("blocks.{i}.moe.experts.{e}");
            ours.insert(format!("{p}.fc1.weight"), w1.narrow(0, e * part, part)?);
            ours.insert(format!("{p}.fc1.bias"), b1.narrow(0, e * part, part)?);
            let scale = 2.0 * experts as f64;
            ours.insert(
                format!("{p}.fc2.weight"),
                (w2.narrow(D::Minus1, e * part, part)? * scale)?,
            );
            ours.insert(format!("{p}.fc2.bias"), (b2 * 2.0)?);
        }
        for gate in ["gate.weight", "channel_gate.weight"] {
            let name = format!("blocks.{i}.moe.{gate}");
            let var = store
                .get(&name)
                .with_context(|| format!("the model has no `{name}`"))?;
            ours.insert(name, var.as_tensor().zeros_like()?);
        }
        for name in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"] {
            used.insert(format!("blocks.{i}.mlp.{name}"));
        }
    }

    // The rest by name.
    for (name, _) in store.vars() {
        if ours.contains_key(&name) {
            continue;
        }
        match sd.get(&name) {
            Some(t) => {
                ours.insert(name.clone(), t.clone());
                used.insert(name);
            }
            None => report.fresh.push(name),
        }
    }
    for (name, t) in &ours {
        let var = store
            .get(name)
            .with_context(|| format!("the model has no `{name}`"))?;
        if t.dims() != var.dims() {
            bail!(
                "`{name}`: the file's shape {:?} is not the model's {:?} (another preset or patch size?)",
                t.dims(),
                var.dims()
            );
        }
    }
    store.load_matching(&ours)?;
    report.loaded = ours.len();
    report.unused = sd.keys().filter(|k| !used.contains(*k)).cloned().collect();
    Ok(report)
}

/// The file's grid of `cells` positions: the same as `model`'s, one of its aspect ratio, or a
/// square.
fn file_grid(cells: usize, model: (usize, usize)) -> Option<(usize, usize)> {
    let (h, w) = model;
    if h * w == cells {
        return Some(model);
    }
    let side = |n: f64| {
        let r = n.sqrt().round() as usize;
        (r * r == n as usize).then_some(r)
    };
    // h0 / w0 = h / w and h0 · w0 = cells  →  w0 = √(cells · w / h).
    if (cells * w).is_multiple_of(h) {
        if let Some(w0) = side((cells * w / h) as f64) {
            if w0 > 0 && cells.is_multiple_of(w0) {
                return Some((cells / w0, w0));
            }
        }
    }
    side(cells as f64).map(|s| (s, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module};

    use crate::model::vit::BlockMlp;
    use crate::model::{Preset, VitConfig};

    /// Every PC-MoE block of a model initialised from a dense ViT computes the dense block's MLP,
    /// whatever the task summary; plain blocks, attention and embeddings are the file's.
    #[test]
    fn pcmoe_blocks_start_as_the_dense_mlp_they_split() -> Result<()> {
        let dense_store = ParamStore::new(&Device::Cpu, 3);
        let dense = Vit::new(&VitConfig::preset(Preset::Nano), &dense_store)?;
        let sd = dense_store.tensors();
        let store = ParamStore::new(&Device::Cpu, 4);
        let cfg = VitConfig::preset(Preset::Nano).with_clasp_defaults();
        let vit = Vit::new(&cfg, &store)?;
        let report = load_timm(&vit, &store, &sd)?;
        assert!(report.unused.is_empty(), "{:?}", report.unused);
        assert!(
            report.fresh.iter().all(|n| n.starts_with("prompts.")),
            "{:?}",
            report.fresh
        );
        assert!(report.resampled.is_none());
        let x = Tensor::randn(0f32, 1.0, (2, 5, cfg.embed_dim), &Device::Cpu)?;
        let s = Tensor::randn(0f32, 1.0, cfg.embed_dim, &Device::Cpu)?;
        let mut moe_blocks = 0;
        for (i, (ours, theirs)) in vit.blocks.iter().zip(&dense.blocks).enumerate() {
            let (BlockMlp::Moe(moe), BlockMlp::Plain(mlp)) = (&ours.mlp, &theirs.mlp) else {
                continue;
            };
            moe_blocks += 1;
            let (a, b) = (moe.forward(&x, &s)?, mlp.forward(&x)?);
            let gap = (a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let scale = b.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(
                gap < 1e-5 * scale.max(1.0),
                "block {i}: {gap} (outputs up to {scale})"
            );
        }
        assert!(moe_blocks > 0);
        Ok(())
    }

    /// A file whose `pos_embed` holds the grid alone (`no_embed_class`) gives the CLS a zero
    /// position embedding and the grid as it is.
    #[test]
    fn a_grid_without_a_cls_row_gives_the_cls_a_zero_position() -> Result<()> {
        let source = ParamStore::new(&Device::Cpu, 3);
        Vit::new(&VitConfig::preset(Preset::Nano), &source)?;
        let mut sd = source.tensors();
        let pos = sd["pos_embed"].clone();
        let cells = pos.dim(1)? - 1;
        sd.insert("pos_embed".into(), pos.narrow(1, 1, cells)?);
        let store = ParamStore::new(&Device::Cpu, 4);
        let vit = Vit::new(&VitConfig::preset(Preset::Nano), &store)?;
        load_timm(&vit, &store, &sd)?;
        let ours = store.get("pos_embed").unwrap().as_tensor().clone();
        let cls = ours.narrow(1, 0, 1)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(cls, 0.0);
        let gap = (ours.narrow(1, 1, cells)? - pos.narrow(1, 1, cells)?)?;
        assert_eq!(gap.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    /// A file and a model that disagree on the layer norm before the first block are refused,
    /// naming the setting (loaded anyway, one of them would compute otherwise).
    #[test]
    fn a_pre_norm_the_model_lacks_or_the_file_lacks_is_refused() -> Result<()> {
        let source = ParamStore::new(&Device::Cpu, 3);
        Vit::new(&VitConfig::preset(Preset::Nano), &source)?;
        let mut sd = source.tensors();
        let plain_store = ParamStore::new(&Device::Cpu, 4);
        let plain = Vit::new(&VitConfig::preset(Preset::Nano), &plain_store)?;
        let pre_cfg = VitConfig {
            pre_norm: true,
            ..VitConfig::preset(Preset::Nano)
        };
        let pre_store = ParamStore::new(&Device::Cpu, 5);
        let pre = Vit::new(&pre_cfg, &pre_store)?;
        let e = load_timm(&pre, &pre_store, &sd).unwrap_err().to_string();
        assert!(e.contains("model.pre_norm=false"), "{e}");
        let ones = Tensor::ones(64, DType::F32, &Device::Cpu)?;
        sd.insert("norm_pre.weight".into(), ones.clone());
        sd.insert("norm_pre.bias".into(), ones.zeros_like()?);
        let e = load_timm(&plain, &plain_store, &sd)
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.pre_norm=true"), "{e}");
        let report = load_timm(&pre, &pre_store, &sd)?;
        assert!(
            report.unused.is_empty() && report.fresh.is_empty(),
            "{report:?}"
        );
        Ok(())
    }

    #[test]
    fn the_files_grid_keeps_the_models_aspect_ratio_or_is_square() {
        assert_eq!(file_grid(128, (8, 4)), Some((16, 8)));
        assert_eq!(file_grid(32, (8, 4)), Some((8, 4)));
        assert_eq!(file_grid(196, (8, 4)), Some((14, 14)));
        assert_eq!(file_grid(130, (8, 4)), None);
    }
}
