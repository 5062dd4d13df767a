//! Checkpoints: round trip, strict key checks, atomic saves, keep-last-K.

mod common;

use candle_core::{DType, Device, Tensor};
use clasp_core::backbone::Backbone;
use clasp_core::checkpoint::{self, atomic::AtomicDir, store, Manifest};
use clasp_core::config::Config;
use common::{images, max_abs_diff};

fn fresh(seed: u64) -> Backbone {
    let mut config = Config::default();
    config.model.preset = clasp_core::model::Preset::Nano;
    config.run.seed = seed;
    Backbone::fresh(&config, &Device::Cpu, "hash".into()).unwrap()
}

fn save_at(dir: &std::path::Path, bb: &Backbone) -> std::path::PathBuf {
    checkpoint::save(dir, &bb.vit, &bb.store, None, &bb.manifest).unwrap()
}

#[test]
fn round_trip_gives_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let bb = fresh(1);
    let dir = save_at(&tmp.path().join("ck"), &bb);
    let loaded = checkpoint::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(loaded.manifest, bb.manifest);
    let x = images(1, 3, 256, 128, DType::F32, 1);
    for task in ["ssl", "attr"] {
        let a = bb.vit.forward(&x, Some(task)).unwrap();
        let b = loaded.vit.forward(&x, Some(task)).unwrap();
        assert_eq!(max_abs_diff(&a.cls, &b.cls), 0.0);
    }
    // A different seed is a different model: the comparison above is not vacuous.
    let other = fresh(2);
    let c = other.vit.forward(&x, Some("ssl")).unwrap();
    let a = bb.vit.forward(&x, Some("ssl")).unwrap();
    assert!(max_abs_diff(&a.cls, &c.cls) > 1e-3);
}

#[test]
fn missing_and_unexpected_keys_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let bb = fresh(1);
    let dir = save_at(&tmp.path().join("ck"), &bb);
    let weights = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    tensors.remove("blocks.1.attn.proj.weight");
    tensors.remove("norm.bias");
    tensors.insert(
        "head.weight".into(),
        Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let err = match checkpoint::load(&dir, &Device::Cpu) {
        Ok(_) => panic!("a checkpoint with missing keys must not load"),
        Err(e) => format!("{e:#}"),
    };
    for name in ["blocks.1.attn.proj.weight", "norm.bias", "head.weight"] {
        assert!(err.contains(name), "{name} not named in: {err}");
    }
}

#[test]
fn a_failed_save_leaves_the_previous_checkpoint_loadable() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("checkpoints");
    let bb = fresh(1);
    let first = save_at(&runs.join(store::step_dir_name(10)), &bb);
    // A save that dies half-way: weights written, manifest never reached.
    {
        let staging = AtomicDir::begin(&runs.join(store::step_dir_name(20))).unwrap();
        staging.write("model.safetensors", b"partial").unwrap();
        // Simulate the process dying here: the staging dir stays behind, never committed.
        std::mem::forget(staging);
    }
    assert_eq!(store::latest(&runs).unwrap().unwrap(), first);
    checkpoint::load(&first, &Device::Cpu).expect("previous checkpoint still loads");
    // Overwriting an existing step replaces it whole.
    let again = save_at(&runs.join(store::step_dir_name(10)), &fresh(3));
    let loaded = checkpoint::load(&again, &Device::Cpu).unwrap();
    let x = images(1, 3, 256, 128, DType::F32, 2);
    let a = loaded.vit.forward(&x, Some("ssl")).unwrap();
    let b = fresh(3).vit.forward(&x, Some("ssl")).unwrap();
    assert_eq!(max_abs_diff(&a.cls, &b.cls), 0.0);
}

#[test]
fn keep_last_k_prunes_the_oldest() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("checkpoints");
    let bb = fresh(1);
    for step in [5u64, 10, 15, 20] {
        let mut m: Manifest = bb.manifest.clone();
        m.step = step;
        checkpoint::save(
            &runs.join(store::step_dir_name(step)),
            &bb.vit,
            &bb.store,
            None,
            &m,
        )
        .unwrap();
    }
    let removed = store::prune(&runs, 2).unwrap();
    assert_eq!(removed.len(), 2);
    let left: Vec<u64> = store::list(&runs)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(left, vec![15, 20]);
}

#[test]
fn optimizer_state_is_saved_beside_the_weights() {
    use clasp_core::optim::{build_groups, AdamW, AdamWConfig};
    let tmp = tempfile::tempdir().unwrap();
    let bb = fresh(1);
    let mut opt = AdamW::new(
        build_groups(&bb.store.vars(), 4, 1.0),
        AdamWConfig::default(),
    )
    .unwrap();
    let x = images(1, 3, 256, 128, DType::F32, 3);
    let loss = bb
        .vit
        .forward(&x, Some("ssl"))
        .unwrap()
        .cls
        .sum_all()
        .unwrap();
    opt.step(&loss.backward().unwrap(), 1e-3, 0.05).unwrap();
    let state = opt.state_dict().unwrap();
    let dir = checkpoint::save(
        &tmp.path().join("ck"),
        &bb.vit,
        &bb.store,
        Some(&state),
        &bb.manifest,
    )
    .unwrap();
    let back = checkpoint::backbone::load_optimizer(&dir, &Device::Cpu)
        .unwrap()
        .unwrap();
    assert_eq!(back.len(), state.len());
    for (k, v) in &state {
        assert_eq!(max_abs_diff(v, &back[k]), 0.0, "{k}");
    }
}

#[test]
fn loading_into_a_larger_model_names_the_keys_left_new() {
    let tmp = tempfile::tempdir().unwrap();
    let bb = fresh(1);
    let dir = save_at(&tmp.path().join("ck"), &bb);
    // The same backbone plus a new task prompt, as fine-tuning builds it.
    let mut target = fresh(5);
    target
        .vit
        .add_task(
            "reid",
            &clasp_core::task_embedding::hashed_text_embedding("reid", 512).unwrap(),
        )
        .unwrap();
    let new = checkpoint::backbone::load_into(&dir, &target.store).unwrap();
    assert_eq!(new, vec!["prompts.delta.reid".to_string()]);
    let x = images(1, 3, 256, 128, DType::F32, 4);
    let a = bb.vit.forward(&x, Some("ssl")).unwrap();
    let b = target.vit.forward(&x, Some("ssl")).unwrap();
    assert_eq!(
        max_abs_diff(&a.cls, &b.cls),
        0.0,
        "backbone weights were loaded"
    );
}

/// DINO's EMA teacher: a frozen copy gives the student's outputs without recording a graph, and
/// sees in-place updates of its variables (the EMA step sets them).
#[test]
fn a_frozen_copy_runs_without_a_graph_and_follows_its_variables() {
    let bb = fresh(1);
    let copy = bb.frozen_copy().unwrap();
    let x = images(1, 3, 256, 128, DType::F32, 1);
    let (a, b) = (
        bb.vit.forward(&x, Some("ssl")).unwrap(),
        copy.vit.forward(&x, Some("ssl")).unwrap(),
    );
    assert_eq!(max_abs_diff(&a.cls, &b.cls), 0.0);
    assert!(a.cls.track_op(), "the student records a graph");
    assert!(!b.cls.track_op(), "the frozen copy records none");
    let other = fresh(2);
    copy.store.load_strict(&other.store.tensors()).unwrap();
    let c = copy.vit.forward(&x, Some("ssl")).unwrap();
    let want = other.vit.forward(&x, Some("ssl")).unwrap();
    assert_eq!(max_abs_diff(&c.cls, &want.cls), 0.0);
}
