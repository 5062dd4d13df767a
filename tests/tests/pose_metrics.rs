//! The pose plugin's COCO keypoint AP/AR equal pycocotools' COCOeval (iouType="keypoints") on
//! synthetic people and detections (fixture: `scripts/fixtures/make_coco_keypoints.py`).

use std::path::Path;

use clasp_plugin_pose::coco_eval::{evaluate, Detection, GroundTruth};

#[test]
fn keypoint_ap_ar_match_pycocotools() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let gt: GroundTruth = serde_json::from_str(&read("coco_kp_gt.json")).unwrap();
    let dets: Vec<Detection> = serde_json::from_str(&read("coco_kp_results.json")).unwrap();
    let want: serde_json::Value = serde_json::from_str(&read("coco_kp_stats.json")).unwrap();
    let ours = evaluate(&gt, &dets).unwrap().as_array();
    let names = [
        "AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L",
    ];
    for (name, value) in names.iter().zip(ours) {
        let w = want[name].as_f64().unwrap();
        assert!(
            (value - w).abs() <= 1e-6,
            "{name}: {value} vs pycocotools {w}"
        );
    }
}
