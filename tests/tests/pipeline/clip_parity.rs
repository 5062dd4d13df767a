//! Our CLIP in Hugging Face layout gives transformers' embeddings on tiny random models
//! (fixture: `scripts/fixtures/make_clip_tiny.py`): quick_gelu with legacy end-of-text pooling,
//! gelu with pooling at `eos_token_id`, square images and a non-square person-shaped input
//! through bicubic position-embedding interpolation.

use candle_core::{DType, Device, Tensor};
use clasp_core::teacher::clip::Clip;

use crate::common;

fn io() -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(common::fixture("clip_tiny_io.safetensors"), &Device::Cpu)
        .unwrap()
}

fn ids(t: &Tensor) -> Vec<Vec<u32>> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec2::<i64>()
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(|v| v as u32).collect())
        .collect()
}

#[test]
fn image_and_text_embeddings_equal_transformers() {
    let io = io();
    for name in ["quick", "gelu"] {
        let clip = Clip::load(&common::fixture(&format!("clip_tiny_{name}")), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        for (input, key) in [("pixels.square", "square"), ("pixels.tall", "tall")] {
            let ours = clip.image_embeds(&io[input]).unwrap();
            let want = &io[&format!("{name}.image_embeds.{key}")];
            let d = common::max_abs_diff(&ours, want);
            assert!(d <= 1e-4, "{name} image embeddings ({key}) differ by {d}");
            // Not vacuous: the embeddings are far from zero and from each other's model.
            let other = if name == "quick" { "gelu" } else { "quick" };
            let far = common::max_abs_diff(&ours, &io[&format!("{other}.image_embeds.{key}")]);
            assert!(far > 0.1, "{name} vs {other}: {far}");
        }
        let ours = clip.text_embeds(&ids(&io["ids"])).unwrap();
        let d = common::max_abs_diff(&ours, &io[&format!("{name}.text_embeds")]);
        assert!(d <= 1e-4, "{name} text embeddings differ by {d}");
    }
}

/// A loaded CLIP is run, not trained: its outputs carry no autograd graph (which would keep
/// every activation of a labelling batch alive), while a fresh one's do.
#[test]
fn a_loaded_clip_records_no_graph() {
    let io = io();
    let loaded = Clip::load(&common::fixture("clip_tiny_quick"), &Device::Cpu).unwrap();
    let fresh = Clip::new(loaded.config.clone(), &Device::Cpu, 0).unwrap();
    let px = &io["pixels.tall"];
    let (dense, pooled) = loaded.dense_and_image_embeds(px).unwrap();
    assert!(!dense.track_op() && !pooled.track_op());
    assert!(!loaded.text_embeds(&ids(&io["ids"])).unwrap().track_op());
    assert!(fresh.image_embeds(px).unwrap().track_op());
}

/// The two pooling rules pick different tokens on the fixture's first row: the test above can
/// only pass for both models if each follows its config.
#[test]
fn text_pooling_follows_the_configured_end_of_text() {
    let ids = ids(&io()["ids"]);
    let legacy = Clip::load(&common::fixture("clip_tiny_quick"), &Device::Cpu).unwrap();
    let eos = Clip::load(&common::fixture("clip_tiny_gelu"), &Device::Cpu).unwrap();
    assert_eq!(legacy.text.pool_positions(&ids).unwrap(), vec![9, 15, 0]);
    assert_eq!(eos.text.pool_positions(&ids).unwrap(), vec![5, 15, 7]);
}

/// Every weight of a fresh CLIP, logit scale included, gets a gradient from a contrastive score,
/// so the same code trains a teacher.
#[test]
fn every_clip_weight_gets_a_gradient() {
    let io = io();
    // quick_gelu's sigmoid and the erf GELU both pass gradients.
    for name in ["quick", "gelu"] {
        let config = clasp_core::teacher::clip_config::ClipConfig::read(
            &common::fixture(&format!("clip_tiny_{name}")).join("config.json"),
        )
        .unwrap();
        every_weight_trains(Clip::new(config, &Device::Cpu, 3).unwrap(), &io, name);
    }
}

fn every_weight_trains(clip: Clip, io: &std::collections::HashMap<String, Tensor>, name: &str) {
    let img = clip.image_embeds(&io["pixels.square"]).unwrap();
    let mut text_ids = ids(&io["ids"]);
    text_ids.truncate(2);
    let txt = clip.text_embeds(&text_ids).unwrap();
    let score = (img.mul(&txt).unwrap().sum_all().unwrap() * clip.logit_scale.exp().unwrap())
        .unwrap()
        .sqr()
        .unwrap();
    let grads = score.backward().unwrap();
    let problems = clip.store.gradient_problems(&grads).unwrap();
    assert!(problems.is_empty(), "{name}: {problems:?}");
}

/// `clasp teacher embed --images` through the folder's own preprocessor_config.json gives
/// transformers' embedding of a photograph; an unreadable file is skipped and counted; text
/// without a tokenizer.json is refused, naming the file.
#[test]
fn clasp_teacher_embed_writes_transformers_image_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy(common::fixture("chelsea.png"), images.join("chelsea.png")).unwrap();
    std::fs::write(images.join("broken.jpg"), b"not a jpeg").unwrap();
    let teacher = common::fixture("clip_tiny_gelu");
    let out = dir.path().join("embeds.safetensors");
    let run = std::process::Command::new(common::plugin_libs::clasp_exe())
        .args(["teacher", "embed", "--teacher"])
        .arg(&teacher)
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("embedded 1 images (1 skipped"), "{stdout}");
    let got = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    let d = common::max_abs_diff(&got["image_embeds"], &io()["gelu.image_embeds.chelsea"]);
    assert!(d <= 1e-4, "image embeddings differ by {d}");

    let run = std::process::Command::new(common::plugin_libs::clasp_exe())
        .args(["teacher", "embed", "--teacher"])
        .arg(&teacher)
        .args(["--text", "a person in a red coat", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("tokenizer.json"), "{stderr}");
}

/// MaskCLIP's dense patch embeddings (the part pseudo-labels' source) equal the same path
/// written with transformers' modules, on a person-shaped input.
#[test]
fn dense_patch_embeddings_follow_the_maskclip_path() {
    let io = io();
    for name in ["quick", "gelu"] {
        let clip =
            Clip::load(&common::fixture(&format!("clip_tiny_{name}")), &Device::Cpu).unwrap();
        let ours = clip.dense_embeds(&io["pixels.tall"]).unwrap();
        assert_eq!(ours.dims(), &[2, 12, 24]);
        let d = common::max_abs_diff(&ours, &io[&format!("{name}.dense_embeds.tall")]);
        assert!(d <= 1e-4, "{name}: dense embeddings differ by {d}");
    }
}

/// The text path end to end: `clasp teacher embed --text` tokenizes with the folder's
/// tokenizer.json and embeds with a model of CLIP's full vocabulary, as transformers does.
#[test]
fn clasp_teacher_embed_writes_transformers_text_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher");
    std::fs::create_dir_all(&teacher).unwrap();
    for (from, name) in [
        ("clip_tiny_vocab", "config.json"),
        ("clip_tiny_vocab", "model.safetensors"),
        ("clip_tokenizer", "tokenizer.json"),
    ] {
        std::fs::copy(common::fixture(from).join(name), teacher.join(name)).unwrap();
    }
    let out = dir.path().join("text.safetensors");
    let run = std::process::Command::new(common::plugin_libs::clasp_exe())
        .args(["teacher", "embed", "--teacher"])
        .arg(&teacher)
        .args([
            "--text",
            "a photo of a woman in a red coat.",
            "--text",
            "A MAN, 40, with a backpack & blue jeans!",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    let d = common::max_abs_diff(&got["text_embeds"], &io()["vocab.text_embeds"]);
    assert!(d <= 1e-4, "text embeddings differ by {d}");
}
