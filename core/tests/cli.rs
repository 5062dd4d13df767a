//! The `clasp` binary end to end: config errors, init → export → embed and the benchmark (the
//! quickstart's test needs the task plugins: tests/tests/pipeline/quickstart.rs).

use std::path::Path;
use std::process::{Command, Output};

fn clasp(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clasp"))
        .current_dir(cwd)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("clasp runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn config_show_names_an_unknown_key() {
    let tmp = tempfile::tempdir().unwrap();
    let o = clasp(tmp.path(), &["config", "show", "--set", "model.nonsense=1"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("model.nonsense"), "{}", text(&o));
    let o = clasp(
        tmp.path(),
        &["config", "show", "--set", "model.preset=tiny"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("preset = \"tiny\""));
}

#[test]
fn pretrain_without_data_or_with_a_missing_cache_names_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let o = clasp(tmp.path(), &["pretrain"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("pretrain.data"), "{}", text(&o));
    write_images(&tmp.path().join("crops"));
    let o = clasp(
        tmp.path(),
        &["pretrain", "--data", "crops", "--labels", "nowhere"],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("pretrain.labels"), "{}", text(&o));
    let o = clasp(tmp.path(), &["analyze", "grad-conflict"]);
    assert!(!o.status.success(), "--checkpoint is required");
}

fn write_images(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..3u8 {
        let img = image::RgbImage::from_fn(40, 90, |x, y| {
            image::Rgb([(x as u8).wrapping_mul(i + 1), y as u8, 40 * i])
        });
        img.save(dir.join(format!("person_{i}.png"))).unwrap();
    }
    std::fs::write(dir.join("broken.jpg"), b"not a jpeg").unwrap();
    std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();
}

#[test]
fn init_export_and_embed() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let o = clasp(p, &["init", "--preset", "nano", "--out", "ck"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(p.join("ck/manifest.json").exists() && p.join("ck/model.safetensors").exists());

    // A model with prompts exports only when folded for a task.
    let o = clasp(
        p,
        &[
            "export",
            "--checkpoint",
            "ck",
            "--to",
            "timm",
            "--out",
            "vit.safetensors",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("--task"),
        "{}",
        text(&o)
    );
    let o = clasp(
        p,
        &[
            "export",
            "--checkpoint",
            "ck",
            "--out",
            "vit.safetensors",
            "--task",
            "ssl",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let sd = candle_core::safetensors::load(p.join("vit.safetensors"), &candle_core::Device::Cpu)
        .unwrap();
    assert_eq!(sd["reg_token"].dims(), &[1, 4, 64]);
    assert_eq!(sd["pos_embed"].dims(), &[1, 1 + 4 + 16 * 8, 64]);
    assert_eq!(sd["blocks.0.mlp.fc1.weight"].dims(), &[256, 64]);
    let kwargs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("vit.safetensors.json")).unwrap())
            .unwrap();
    assert_eq!(kwargs["reg_tokens"], 4);

    write_images(&p.join("imgs"));
    let o = clasp(
        p,
        &[
            "embed",
            "--checkpoint",
            "ck",
            "--images",
            "imgs",
            "--out",
            "f.safetensors",
            "--task",
            "part",
            "--batch",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 skipped"), "{}", text(&o));
    assert!(
        text(&o).contains("broken.jpg"),
        "the skipped file is named: {}",
        text(&o)
    );
    let f =
        candle_core::safetensors::load(p.join("f.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert_eq!(f["cls"].dims(), &[3, 64]);
    assert_eq!(f["patch_mean"].dims(), &[3, 64]);
    let list = std::fs::read_to_string(p.join("f.safetensors.images.txt")).unwrap();
    assert_eq!(list.lines().count(), 3);
    assert!(list.contains("person_0.png"));
}

#[test]
fn synth_writes_every_format_and_a_preview() {
    let tmp = tempfile::tempdir().unwrap();
    let o = clasp(
        tmp.path(),
        &[
            "synth",
            "--out",
            "data",
            "--identities",
            "4",
            "--images-per-id",
            "3",
            "--seed",
            "1",
            "--preview",
            "grid.png",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let d = tmp.path().join("data");
    for f in [
        "reid/bounding_box_train",
        "reid/query",
        "reid/bounding_box_test",
        "parsing/train_id.txt",
        "parsing/classes.txt",
        "pose/annotations/person_keypoints_val.json",
        "attributes/train.csv",
        "captions.jsonl",
        "synth.json",
    ] {
        assert!(d.join(f).exists(), "{f} missing");
    }
    let grid = image::open(tmp.path().join("grid.png")).unwrap();
    assert!(grid.width() > 500 && grid.height() > 200);
    assert!(
        text(&o).contains("never rendered"),
        "says which classes it cannot render"
    );
    let o = clasp(tmp.path(), &["synth"]);
    assert!(!o.status.success() && text(&o).contains("--out"));
}

#[test]
fn bench_prints_both_variants() {
    let tmp = tempfile::tempdir().unwrap();
    let o = clasp(
        tmp.path(),
        &[
            "bench", "model", "--preset", "nano", "--batch", "2", "--steps", "1", "--warmup", "0",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("plain") && out.contains("pcmoe") && out.contains("img/s"),
        "{out}"
    );
}
