//! Our ViT equals timm's VisionTransformer (fixture from scripts/fixtures/make_timm_vit.py) at the
//! native 256×128 input and at sizes that resample the position embedding.

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
    // Our map is [B, d, h, w]; timm's tokens are [B, h·w, d] in row-major patch order.
    let (b, d, h, w) = out.patches.dims4().unwrap();
    let ours = out
        .patches
        .reshape((b, d, h * w))
        .unwrap()
        .transpose(1, 2)
        .unwrap();
    let patch_diff = max_abs_diff(&ours, &t["patches"]);
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
