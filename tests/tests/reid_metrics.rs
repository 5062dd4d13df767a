//! The reid plugin's Market-1501 metrics agree with torchreid's `eval_market1501` and fast-reid's
//! mINP on random features (fixture: `scripts/fixtures/make_market_eval.py`), and its k-reciprocal
//! re-ranking with torchreid's `re_ranking` (`scripts/fixtures/make_market_rerank.py`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use clasp_plugin_reid::ranking::{evaluate, evaluate_distances, Distance, Side};
use clasp_plugin_reid::rerank::{re_rank, Rerank};

fn fixture_named(name: &str) -> (HashMap<String, Tensor>, serde_json::Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let tensors =
        candle_core::safetensors::load(dir.join(format!("{name}.safetensors")), &Device::Cpu)
            .unwrap();
    let json = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
    (tensors, serde_json::from_str(&json).unwrap())
}

fn fixture() -> (HashMap<String, Tensor>, serde_json::Value) {
    fixture_named("market_eval")
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
            serde_json::from_value::<Distance>(name.into()).unwrap(),
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

#[test]
fn k_reciprocal_reranking_matches_torchreid() {
    let (t, golden) = fixture_named("market_rerank");
    let f32s = |k: &str| t[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let i64s = |k: &str| t[k].to_vec1::<i64>().unwrap();
    let (qp, qc, gp, gc) = (
        i64s("query.pids"),
        i64s("query.camids"),
        i64s("gallery.pids"),
        i64s("gallery.camids"),
    );
    let (nq, ng) = (qp.len(), gp.len());
    let p = Rerank {
        k1: golden["k1"].as_u64().unwrap() as usize,
        k2: golden["k2"].as_u64().unwrap() as usize,
        lambda: golden["lambda"].as_f64().unwrap() as f32,
    };
    let got = re_rank(
        &f32s("dist.q_g"),
        &f32s("dist.q_q"),
        &f32s("dist.g_g"),
        nq,
        ng,
        p,
    );
    let want = f32s("reranked");
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "re-ranked distances differ by up to {worst}");
    let (qf, gf) = (f32s("query.features"), f32s("gallery.features"));
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
    let m = evaluate_distances(&got, &query, &gallery, max_rank).unwrap();
    let plain = evaluate_distances(&f32s("dist.q_g"), &query, &gallery, max_rank).unwrap();
    for (key, value) in [
        ("mAP", m.map),
        ("rank1", m.rank(1)),
        ("rank5", m.rank(5)),
        ("rank10", m.rank(10)),
        ("mINP", m.minp),
    ] {
        let w = golden["metrics"][key].as_f64().unwrap();
        assert!((value - w).abs() <= 1e-6, "re-ranked {key}: {value} vs {w}");
    }
    // Re-ranking changes the ranking here (otherwise the check above would prove little).
    assert!(
        (plain.map - m.map).abs() > 1e-3,
        "{} vs {}",
        plain.map,
        m.map
    );
}
