//! Saving and loading a backbone (model variables + prompt buffers, optional optimiser state).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

use super::atomic::AtomicDir;
use super::manifest::{Manifest, OPTIMIZER_FILE, WEIGHTS_FILE};
use crate::backbone::Backbone;
use crate::model::{ParamStore, Vit};

/// All tensors of a model as saved: variables plus prompt buffers.
pub fn state_dict(vit: &Vit, store: &ParamStore) -> BTreeMap<String, Tensor> {
    let mut out = store.tensors();
    out.extend(vit.buffers());
    out
}

/// Writes `tensors` (moved to the CPU) as file `name` of a staging folder, fsynced.
pub fn save_tensors(dir: &AtomicDir, name: &str, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    super::tensor_file::save_tensors(&cpu.into_iter().collect(), &dir.path(name))?;
    dir.sync_file(name)
}

/// Writes `target/` atomically: weights, optional optimiser state, manifest last.
pub fn save(
    target: &Path,
    vit: &Vit,
    store: &ParamStore,
    optimizer: Option<&BTreeMap<String, Tensor>>,
    manifest: &Manifest,
) -> Result<PathBuf> {
    let mut files = Vec::new();
    if let Some(opt) = optimizer {
        files.push((OPTIMIZER_FILE, opt.clone()));
    }
    save_with(target, vit, store, &files, manifest)
}

/// As [`save`], with more named safetensors files in the same atomic directory (a task head).
pub fn save_with(
    target: &Path,
    vit: &Vit,
    store: &ParamStore,
    files: &[(&str, BTreeMap<String, Tensor>)],
    manifest: &Manifest,
) -> Result<PathBuf> {
    let dir = AtomicDir::begin(target)?;
    write_into(&dir, vit, store, files, manifest)?;
    dir.commit()
}

/// Writes the weights, the named files and the manifest into a staging folder that the caller
/// commits (a checkpoint with more in it).
pub fn write_into(
    dir: &AtomicDir,
    vit: &Vit,
    store: &ParamStore,
    files: &[(&str, BTreeMap<String, Tensor>)],
    manifest: &Manifest,
) -> Result<()> {
    save_tensors(dir, WEIGHTS_FILE, &state_dict(vit, store))?;
    for (name, tensors) in files {
        save_tensors(dir, name, tensors)?;
    }
    dir.write(
        super::manifest::MANIFEST_FILE,
        serde_json::to_string_pretty(manifest)?.as_bytes(),
    )
}

pub fn read_tensors(path: &Path, device: &Device) -> Result<BTreeMap<String, Tensor>> {
    Ok(candle_core::safetensors::load(path, device)
        .with_context(|| format!("reading {}", path.display()))?
        .into_iter()
        .collect())
}

/// Rebuilds the model a checkpoint describes and loads it strictly: any missing or unexpected key
/// is an error that lists them.
pub fn load(dir: &Path, device: &Device) -> Result<Backbone> {
    let manifest = Manifest::read(dir)?;
    let mut tensors = read_tensors(&dir.join(WEIGHTS_FILE), device)?;
    let store = ParamStore::new(device, 0);
    let mut vit = Vit::new(&manifest.model, &store)?;
    for task in &manifest.tasks {
        let key = format!("prompts.text_embed.{task}");
        let e = tensors
            .remove(&key)
            .with_context(|| format!("{}: task `{task}` has no `{key}`", dir.display()))?;
        vit.add_task(task, &e)?;
    }
    if let Some(stray) = tensors
        .keys()
        .find(|k| k.starts_with("prompts.text_embed."))
    {
        bail!(
            "{}: `{stray}` belongs to no task listed in the manifest",
            dir.display()
        );
    }
    store
        .load_strict(&tensors)
        .with_context(|| format!("loading {}", dir.join(WEIGHTS_FILE).display()))?;
    Ok(Backbone {
        vit,
        store,
        manifest,
    })
}

/// The optimiser state saved beside the weights, if any.
pub fn load_optimizer(dir: &Path, device: &Device) -> Result<Option<BTreeMap<String, Tensor>>> {
    let path = dir.join(OPTIMIZER_FILE);
    if !path.exists() {
        return Ok(None);
    }
    read_tensors(&path, device).map(Some)
}

/// Loads a backbone checkpoint's weights into a larger model (a backbone plus new prompts or
/// heads), as fine-tuning does. Keys of the checkpoint the model lacks are an error; the model's
/// keys the checkpoint lacks stay freshly initialised and are logged by name and returned.
pub fn load_into(dir: &Path, store: &ParamStore) -> Result<Vec<String>> {
    load_into_except(dir, store, |_| false)
}

/// [`load_into`], leaving out the checkpoint's tensors whose names `skip` accepts (they stay as
/// the model initialised them).
pub fn load_into_except(
    dir: &Path,
    store: &ParamStore,
    skip: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let weights = dir.join(WEIGHTS_FILE);
    let tensors: BTreeMap<String, Tensor> = read_tensors(&weights, store.device())?
        .into_iter()
        .filter(|(k, _)| !k.starts_with("prompts.text_embed.") && !skip(k))
        .collect();
    let report = store.load_report(&tensors);
    if !report.unexpected.is_empty() {
        bail!(
            "{}: keys the model does not have: {:?}",
            weights.display(),
            report.unexpected
        );
    }
    store.load_matching(&tensors)?;
    if !report.missing.is_empty() {
        tracing::info!(
            "loaded {} tensors from {}; left new (not in the checkpoint): {:?}",
            tensors.len(),
            weights.display(),
            report.missing
        );
    }
    Ok(report.missing)
}
