//! The parsing plugin's mIoU and pixel accuracy equal torchmetrics' on random LIP-style label maps
//! accumulated over a set (fixture: `scripts/fixtures/make_parsing_miou.py`).

use std::path::Path;

use candle_core::Device;
use clasp_plugin_parsing::confusion::Confusion;

#[test]
fn miou_and_pixel_accuracy_match_torchmetrics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let maps =
        candle_core::safetensors::load(dir.join("parsing_maps.safetensors"), &Device::Cpu).unwrap();
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("parsing_metrics.json")).unwrap())
            .unwrap();
    let truth = &maps["truth"];
    let pred = &maps["prediction"];
    let classes = golden["classes"].as_u64().unwrap() as usize;
    let mut c = Confusion::new(classes, Some(255));
    // One image at a time, as an evaluation loop adds them.
    for i in 0..truth.dims()[0] {
        let t = truth
            .get(i)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<u8>()
            .unwrap();
        let p = pred
            .get(i)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<u8>()
            .unwrap();
        c.add(&t, &p).unwrap();
    }
    let m = c.metrics();
    let want = |k: &str| golden[k].as_f64().unwrap();
    // torchmetrics computes in float32.
    assert!(
        (m.miou - want("miou")).abs() <= 1e-6,
        "{} vs {}",
        m.miou,
        want("miou")
    );
    assert!(
        (m.pixel_accuracy - want("pixel_accuracy")).abs() <= 1e-6,
        "{} vs {}",
        m.pixel_accuracy,
        want("pixel_accuracy")
    );
    for (k, (ours, theirs)) in m
        .per_class_iou
        .iter()
        .zip(golden["per_class_iou"].as_array().unwrap())
        .enumerate()
    {
        let theirs = theirs.as_f64().unwrap();
        if ours.is_nan() {
            // A class in neither truth nor prediction: torchmetrics reports 0 and leaves it out.
            assert_eq!(theirs, 0.0, "class {k}");
        } else {
            assert!(
                (ours - theirs).abs() <= 1e-6,
                "class {k}: {ours} vs {theirs}"
            );
        }
    }
}
