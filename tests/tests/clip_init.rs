//! `clasp init --from-clip DIR`: the backbone takes a Hugging Face CLIP folder's vision tower and
//! computes at `model.img_size` what that tower computes there (our CLIP follows transformers,
//! see `clip_parity`): the class token's `post_layernorm` output is our CLS, every patch token
//! through the same norm is our patch feature. A wrong folder and a tower no preset fits are
//! named; a pre-training that would compute otherwise than the checkpoint is refused by key.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{Device, Module, Tensor};
use clasp_core::model::{Activation, Preset, VitConfig};
use clasp_core::teacher::clip::Clip;
use clasp_core::teacher::clip_config::ClipConfig;
use common::max_abs_diff;

/// The shipped teacher's config with a vision tower of the nano preset's shape (64 wide, 4
/// layers, 2 heads, MLP 256) at 64×64, written with seeded weights as a CLIP folder.
fn nano_clip_folder(dir: &Path) -> (Clip, PathBuf) {
    let mut config = ClipConfig::read(&shipped_teacher().join("config.json")).unwrap();
    let v = &mut config.vision_config;
    v.hidden_size = 64;
    v.num_hidden_layers = 4;
    v.num_attention_heads = 2;
    v.intermediate_size = 256;
    v.image_size = 64;
    v.patch_size = 16;
    let folder = dir.join("clip-nano");
    std::fs::create_dir_all(&folder).unwrap();
    config.write(&folder.join("config.json"), 0).unwrap();
    let clip = Clip::new(config, &Device::Cpu, 11).unwrap();
    let tensors: std::collections::HashMap<_, _> = clip.store.tensors().into_iter().collect();
    candle_core::safetensors::save(&tensors, folder.join("model.safetensors")).unwrap();
    (clip, folder)
}

fn init(args: &[&str]) -> (bool, String) {
    common::outcome(
        std::process::Command::new(common::plugin_libs::clasp_exe())
            .arg("init")
            .args(args)
            .output()
            .unwrap(),
    )
}

/// The synthetic CLIP teacher shipped in the repository (its tower fits no preset).
fn shipped_teacher() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/assets/synthetic-teacher")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `clasp init --from-clip folder --out out` without prompts and PC-MoE (CLIP's plain ViT), and
/// `sets`; its log.
fn init_plain(folder: &Path, out: &Path, sets: &[&str]) -> String {
    let mut args = vec!["--from-clip", s(folder), "--out", s(out)];
    for set in ["model.prompts.enabled=false", "model.moe.enabled=false"]
        .iter()
        .chain(sets)
    {
        args.extend(["--set", set]);
    }
    let (ok, log) = init(&args);
    assert!(ok, "{log}");
    log
}

#[test]
fn init_from_clip_gives_the_vision_towers_features_at_the_model_size() {
    let tmp = tempfile::tempdir().unwrap();
    let (clip, folder) = nano_clip_folder(tmp.path());
    let out = tmp.path().join("ck");
    let log = init_plain(&folder, &out, &["model.img_size=[128, 64]"]);
    assert!(log.contains("model.preset=\"nano\""), "{log}");
    assert!(
        log.contains("resampled from a (4, 4) grid to (8, 4)"),
        "{log}"
    );
    assert!(log.contains("visual_projection.weight"), "{log}");
    assert!(log.contains("text_model.*"), "{log}");
    assert!(!log.contains("kept fresh"), "{log}");

    let vit = clasp_core::checkpoint::load(&out, &Device::Cpu)
        .unwrap()
        .vit;
    assert!(vit.cfg.pre_norm);
    assert_eq!(vit.cfg.activation, Activation::QuickGelu);
    assert_eq!(vit.cfg.norm_eps, 1e-5);
    let x = common::images(2, 3, 128, 64, candle_core::DType::F32, 5);
    let ours = vit.forward(&x, None).unwrap();
    let tower = &clip.vision;
    let hidden = tower.hidden_states(&x).unwrap();
    let theirs_cls = tower.pooled(&x).unwrap();
    let theirs_patches = tower
        .post_layernorm
        .forward(&hidden.narrow(1, 1, 32).unwrap())
        .unwrap();
    let cls_gap = max_abs_diff(&ours.cls, &theirs_cls);
    let patch_gap = max_abs_diff(&common::patch_tokens(&ours.patches), &theirs_patches);
    println!("CLS gap {cls_gap:.2e}, patch gap {patch_gap:.2e}");
    assert!(cls_gap < 1e-4, "CLS differs from CLIP's by {cls_gap}");
    assert!(
        patch_gap < 1e-4,
        "patches differ from CLIP's by {patch_gap}"
    );
    // The comparison can fail: a plain (no pre-norm, GELU) nano ViT with the same weights
    // computes something else.
    let mut plain_cfg = vit.cfg.clone();
    plain_cfg.pre_norm = false;
    plain_cfg.activation = Activation::Gelu;
    let store = clasp_core::model::ParamStore::new(&Device::Cpu, 0);
    let plain = clasp_core::model::Vit::new(&plain_cfg, &store).unwrap();
    let ck = clasp_core::checkpoint::load(&out, &Device::Cpu).unwrap();
    let weights: std::collections::BTreeMap<String, Tensor> = ck
        .store
        .tensors()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("norm_pre."))
        .collect();
    store.load_strict(&weights).unwrap();
    let other = plain.forward(&x, None).unwrap();
    assert!(max_abs_diff(&other.cls, &theirs_cls) > 1e-2);
}

#[test]
fn a_wrong_folder_and_a_tower_of_no_preset_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-clip");
    let (ok, log) = init(&[
        "--from-clip",
        s(&missing),
        "--out",
        s(&tmp.path().join("a")),
    ]);
    assert!(!ok);
    assert!(log.contains("no-such-clip"), "{log}");
    // The shipped teacher's tower (128 wide, 3 layers) has no preset's shape.
    let (ok, log) = init(&[
        "--from-clip",
        s(&shipped_teacher()),
        "--out",
        s(&tmp.path().join("b")),
    ]);
    assert!(!ok);
    assert!(log.contains("no model preset has that shape"), "{log}");
    assert!(!tmp.path().join("b").exists());
}

#[test]
fn a_model_that_computes_otherwise_is_named_by_key() {
    let clip_like = VitConfig {
        pre_norm: true,
        activation: Activation::QuickGelu,
        norm_eps: 1e-5,
        ..VitConfig::preset(Preset::Nano)
    };
    let plain = VitConfig::preset(Preset::Nano);
    let lines = plain.computation_differences(&clip_like);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("model.pre_norm: false vs true"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("model.activation: gelu vs quick_gelu"),
        "{lines:?}"
    );
    assert!(plain
        .computation_differences(&VitConfig::preset(Preset::Nano))
        .is_empty());
}

/// A backbone from CLIP fixes how the model computes: fine-tuning it with another activation is
/// refused by key (the setting could not take effect), and without one it runs as the checkpoint.
#[test]
fn fine_tuning_a_clip_backbone_refuses_another_activation() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, folder) = nano_clip_folder(tmp.path());
    let out = tmp.path().join("ck");
    let (ok, log) = init(&["--from-clip", s(&folder), "--out", s(&out)]);
    assert!(ok, "{log}");
    let (ok, log) = common::outcome(
        std::process::Command::new(common::plugin_libs::clasp_exe())
            .args(["finetune", "--task", "attribute", "--backbone", s(&out)])
            .args(["--data", s(&tmp.path().join("no-data"))])
            .args(["--set", "model.activation=\"gelu\""])
            .output()
            .unwrap(),
    );
    assert!(!ok);
    assert!(
        log.contains("model.activation") && log.contains("cannot take effect"),
        "{log}"
    );
}

/// `export --to timm` of a pre-norm backbone: timm's pre-norm ViTs have no patch-embedding bias,
/// so ours moves into the grid's position embeddings; importing the export gives the same
/// features (with a bias made non-zero, so the move is tested).
#[test]
fn a_pre_norm_backbone_exports_without_a_patch_bias_and_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, folder) = nano_clip_folder(tmp.path());
    let out = tmp.path().join("ck");
    init_plain(&folder, &out, &[]);
    let ck = clasp_core::checkpoint::load(&out, &Device::Cpu).unwrap();
    let bias = ck.store.get("patch_embed.proj.bias").unwrap();
    bias.set(&Tensor::randn(0f32, 0.5, 64, &Device::Cpu).unwrap())
        .unwrap();
    let (sd, kwargs) = clasp_core::export::timm::to_timm(&ck.vit).unwrap();
    assert!(!sd.contains_key("patch_embed.proj.bias"));
    assert!(sd.contains_key("norm_pre.weight"));
    assert!(kwargs.pre_norm);
    assert_eq!(kwargs.act_layer, "quick_gelu");

    let store = clasp_core::model::ParamStore::new(&Device::Cpu, 9);
    let back = clasp_core::model::Vit::new(&ck.vit.cfg, &store).unwrap();
    let report = clasp_core::import::timm::load_timm(&back, &store, &sd).unwrap();
    assert_eq!(report.fresh, vec!["patch_embed.proj.bias".to_string()]);
    let x = common::images(2, 3, 256, 128, candle_core::DType::F32, 3);
    let (a, b) = (
        ck.vit.forward(&x, None).unwrap(),
        back.forward(&x, None).unwrap(),
    );
    let gap = max_abs_diff(&a.cls, &b.cls);
    assert!(gap < 1e-4, "CLS after the round trip differs by {gap}");
    // Without the move the bias would be lost: the features would differ.
    let plain = clasp_core::model::ParamStore::new(&Device::Cpu, 9);
    let lost = clasp_core::model::Vit::new(&ck.vit.cfg, &plain).unwrap();
    plain.load_strict(&ck.store.tensors()).unwrap();
    plain
        .get("patch_embed.proj.bias")
        .unwrap()
        .set(&Tensor::zeros(64, candle_core::DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    assert!(max_abs_diff(&lost.forward(&x, None).unwrap().cls, &a.cls) > 1e-3);
}
