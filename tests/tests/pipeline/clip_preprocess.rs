//! CLIP's preprocessing equals transformers' `CLIPImageProcessor` on a real photograph
//! (scikit-image's CC0 `chelsea.png`; fixture: `scripts/fixtures/make_clip_preprocess.py`): the
//! 8-bit resize + centre crop bit for bit, the normalised pixels within float rounding.

use candle_core::Device;
use clasp_core::teacher::preprocess::ClipPreprocess;

use crate::common;

#[test]
fn preprocessing_equals_clip_image_processor_on_a_photograph() {
    let want = candle_core::safetensors::load(
        common::fixture("clip_preprocess.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let img = image::open(common::fixture("chelsea.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!((img.width(), img.height()), (451, 300));
    let p = ClipPreprocess::default();
    let ours = p.resize_and_crop(&img);
    let theirs = want["resized"]
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap();
    let differing = ours
        .as_raw()
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} 8-bit values differ",
        theirs.len()
    );
    let px = p.pixels(&img);
    let theirs = want["pixels"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let d = px
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d <= 1e-6, "normalised pixels differ by {d}");
}
