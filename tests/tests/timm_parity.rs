//! Our ViT equals timm's VisionTransformer (fixture from scripts/fixtures/make_timm_vit.py) at the
//! native 256×128 input and at sizes that resample the position embedding; `clasp init
//! --from-timm` starts a backbone at another input size from timm's weights with the features
//! timm gives at that size, and `export --to timm` then `init --from-timm` gives the features back.

mod common;

use candle_core::Device;
use clasp_core::export::timm::to_timm;
use clasp_core::model::{ParamStore, Vit, VitConfig};
use common::{fixture_tensors, max_abs_diff};

const FIXTURE: &str = "timm_vit_nano.safetensors";

fn timm_model() -> Vit {
    let store = ParamStore::new(&Device::Cpu, 0);
    let vit = Vit::new(&VitConfig::preset(clasp_core::model::Preset::Nano), &store).unwrap();
    store
        .load_strict(&fixture_tensors(FIXTURE, "weights"))
        .expect("timm's state dict has exactly our names and shapes");
    vit
}

fn check(tag: &str) {
    let vit = timm_model();
    let t = fixture_tensors(FIXTURE, tag);
    let out = vit.forward(&t["input"], None).unwrap();
    let cls_diff = max_abs_diff(&out.cls, &t["cls"]);
    let patch_diff = max_abs_diff(&common::patch_tokens(&out.patches), &t["patches"]);
    println!("{tag}: cls {cls_diff:.2e}, patches {patch_diff:.2e}");
    assert!(
        cls_diff < 1e-4,
        "{tag}: CLS differs from timm by {cls_diff}"
    );
    assert!(
        patch_diff < 1e-4,
        "{tag}: patches differ from timm by {patch_diff}"
    );
}

#[test]
fn native_256x128_matches_timm() {
    check("native");
}

#[test]
fn downsampled_position_embedding_matches_timm() {
    check("down");
}

#[test]
fn upsampled_position_embedding_matches_timm() {
    check("up");
}

#[test]
fn export_gives_back_timms_state_dict() {
    let vit = timm_model();
    let (sd, kwargs) = to_timm(&vit).unwrap();
    let reference = fixture_tensors(FIXTURE, "weights");
    assert_eq!(
        sd.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>()
    );
    for (k, v) in &reference {
        assert_eq!(max_abs_diff(&sd[k], v), 0.0, "{k}");
    }
    assert_eq!(kwargs.reg_tokens, 0);
    assert_eq!(kwargs.mlp_ratio, 4.0);
}

/// timm's state dict alone (the fixture's `weights.*`), as a user's timm checkpoint.
fn timm_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("vit_nano_timm.safetensors");
    let weights: std::collections::HashMap<_, _> =
        fixture_tensors(FIXTURE, "weights").into_iter().collect();
    candle_core::safetensors::save(&weights, &path).unwrap();
    path
}

/// `clasp init` with `args`, nano preset, no prompts or PC-MoE (timm's plain ViT); its stdout.
fn init(args: &[&str], sets: &[String]) -> String {
    let mut cmd = std::process::Command::new(common::plugin_libs::clasp_exe());
    cmd.arg("init").args(args).args([
        "--preset",
        "nano",
        "--set",
        "model.prompts.enabled=false",
        "--set",
        "model.moe.enabled=false",
    ]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let o = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The backbone checkpoint at `dir`.
fn checkpoint_vit(dir: &std::path::Path) -> Vit {
    clasp_core::checkpoint::load(dir, &Device::Cpu).unwrap().vit
}

#[test]
fn init_from_timm_at_another_input_size_gives_timms_features_there() {
    let tmp = tempfile::tempdir().unwrap();
    let file = timm_file(tmp.path());
    for (tag, size) in [("down", "[128, 64]"), ("up", "[320, 160]")] {
        let out = tmp.path().join(tag);
        let log = init(
            &[
                "--from-timm",
                file.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[format!("model.img_size={size}")],
        );
        assert!(log.contains("resampled from a (16, 8) grid"), "{log}");
        let vit = checkpoint_vit(&out);
        let t = fixture_tensors(FIXTURE, tag);
        let got = vit.forward(&t["input"], None).unwrap();
        let diff = max_abs_diff(&got.cls, &t["cls"]);
        assert!(diff < 1e-4, "{tag}: CLS differs from timm's by {diff}");
    }
}

#[test]
fn export_to_timm_then_init_from_timm_gives_the_same_features() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    init(&["--out", first.to_str().unwrap()], &[]);
    let exported = tmp.path().join("exported.safetensors");
    let o = std::process::Command::new(common::plugin_libs::clasp_exe())
        .args([
            "export",
            "--to",
            "timm",
            "--checkpoint",
            first.to_str().unwrap(),
        ])
        .args(["--out", exported.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let back = tmp.path().join("back");
    let log = init(
        &[
            "--from-timm",
            exported.to_str().unwrap(),
            "--out",
            back.to_str().unwrap(),
        ],
        &["run.seed=99".into()],
    );
    assert!(!log.contains("kept fresh"), "{log}");
    let x = common::images(2, 3, 256, 128, candle_core::DType::F32, 5);
    let (a, b) = (checkpoint_vit(&first), checkpoint_vit(&back));
    let (fa, fb) = (a.forward(&x, None).unwrap(), b.forward(&x, None).unwrap());
    assert_eq!(max_abs_diff(&fa.cls, &fb.cls), 0.0);
    assert_eq!(max_abs_diff(&fa.patches, &fb.patches), 0.0);
}

#[test]
fn init_from_a_file_that_is_not_a_timm_vit_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not_a_vit.safetensors");
    let t = candle_core::Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
    let tensors = std::collections::HashMap::from([("head.weight".to_string(), t)]);
    candle_core::safetensors::save(&tensors, &file).unwrap();
    let o = std::process::Command::new(common::plugin_libs::clasp_exe())
        .args([
            "init",
            "--preset",
            "nano",
            "--from-timm",
            file.to_str().unwrap(),
        ])
        .args(["--out", tmp.path().join("c").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("not_a_vit.safetensors") && err.contains("no `pos_embed`"),
        "{err}"
    );
    assert!(!tmp.path().join("c").exists(), "nothing written");
}
