//! The reid plugin's Market-1501 metrics agree with torchreid's `eval_market1501` and fast-reid's
//! mINP on random features (fixture: `scripts/fixtures/make_market_eval.py`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use clasp_plugin_reid::ranking::{evaluate, Distance, Side};

fn fixture() -> (HashMap<String, Tensor>, serde_json::Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let tensors =
        candle_core::safetensors::load(dir.join("market_eval.safetensors"), &Device::Cpu).unwrap();
    let json = std::fs::read_to_string(dir.join("market_eval.json")).unwrap();
    (tensors, serde_json::from_str(&json).unwrap())
}

#[test]
fn market1501_metrics_match_torchreid_and_fastreid() {
    let (t, golden) = fixture();
    let f32s = |k: &str| t[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let i64s = |k: &str| t[k].to_vec1::<i64>().unwrap();
    let dim = t["query.features"].dims()[1];
    let (qf, qp, qc) = (
        f32s("query.features"),
        i64s("query.pids"),
        i64s("query.camids"),
    );
    let (gf, gp, gc) = (
        f32s("gallery.features"),
        i64s("gallery.pids"),
        i64s("gallery.camids"),
    );
    let query = Side {
        features: &qf,
        pids: &qp,
        camids: &qc,
    };
    let gallery = Side {
        features: &gf,
        pids: &gp,
        camids: &gc,
    };
    let max_rank = golden["max_rank"].as_u64().unwrap() as usize;
    for name in ["euclidean", "cosine"] {
        let m = evaluate(
            &query,
            &gallery,
            dim,
            Distance::parse(name).unwrap(),
            max_rank,
        )
        .unwrap();
        let want = &golden["metrics"][name];
        let ours = [
            ("mAP", m.map),
            ("rank1", m.rank(1)),
            ("rank5", m.rank(5)),
            ("rank10", m.rank(10)),
            ("mINP", m.minp),
        ];
        for (key, value) in ours {
            let w = want[key].as_f64().unwrap();
            // torchreid averages the CMC in float32: agreement to 1e-6, not bit for bit.
            assert!((value - w).abs() <= 1e-6, "{name} {key}: {value} vs {w}");
        }
    }
}
