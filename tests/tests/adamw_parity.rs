//! Our AdamW (groups, clipping, LR and WD schedules, layer-wise decay) equals torch.optim.AdamW
//! after 10 steps (fixture from scripts/fixtures/make_adamw.py), also across a state save/restore.

mod common;

use std::collections::BTreeMap;

use candle_core::{Tensor, Var};
use clasp_core::optim::{build_groups, AdamW, AdamWConfig, CosineSchedule};
use common::{fixture, fixture_tensors, max_abs_diff};
use serde_json::Value;

const FIXTURE: &str = "adamw_groups.safetensors";

fn meta() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("adamw_groups.json")).unwrap()).unwrap()
}

fn schedule(v: &Value) -> CosineSchedule {
    CosineSchedule {
        base: v["base"].as_f64().unwrap(),
        final_value: v["final"].as_f64().unwrap(),
        total_steps: v["total"].as_u64().unwrap() as usize,
        warmup_steps: v["warmup"].as_u64().unwrap() as usize,
        warmup_start: v["start"].as_f64().unwrap(),
    }
}

struct Setup {
    params: Vec<(String, Var)>,
    opt: AdamW,
    lr: CosineSchedule,
    wd: CosineSchedule,
}

fn setup(init: &BTreeMap<String, Tensor>) -> Setup {
    let m = meta();
    let params: Vec<(String, Var)> = init
        .iter()
        .map(|(k, v)| (k.clone(), Var::from_tensor(v).unwrap()))
        .collect();
    let groups = build_groups(
        &params,
        m["depth"].as_u64().unwrap() as usize,
        m["layer_decay"].as_f64().unwrap(),
    );
    let opt = AdamW::new(
        groups,
        AdamWConfig {
            max_grad_norm: m["max_grad_norm"].as_f64(),
            ..Default::default()
        },
    )
    .unwrap();
    Setup {
        params,
        opt,
        lr: schedule(&m["lr"]),
        wd: schedule(&m["wd"]),
    }
}

fn run_steps(s: &mut Setup, steps: std::ops::Range<usize>, all: &BTreeMap<String, Tensor>) {
    for step in steps {
        let grads: BTreeMap<String, Tensor> = s
            .params
            .iter()
            .map(|(name, _)| (name.clone(), all[&format!("grad.{step}.{name}")].clone()))
            .collect();
        s.opt.step(&grads, s.lr.at(step), s.wd.at(step)).unwrap();
    }
}

fn all_tensors() -> BTreeMap<String, Tensor> {
    candle_core::safetensors::load(fixture(FIXTURE), &candle_core::Device::Cpu)
        .unwrap()
        .into_iter()
        .collect()
}

fn assert_params_equal(s: &Setup, expected: &BTreeMap<String, Tensor>) {
    for (name, var) in &s.params {
        let diff = max_abs_diff(var.as_tensor(), &expected[name]);
        println!("{name}: max abs diff to torch {diff:.2e}");
        assert!(diff <= 1e-5, "{name}: differs from torch by {diff}");
    }
}

#[test]
fn groups_follow_the_decay_and_layer_rules() {
    let m = meta();
    let s = setup(&fixture_tensors(FIXTURE, "init"));
    for g in &s.opt.groups {
        for (name, _) in &g.params {
            let want = &m["groups"][name];
            assert_eq!(
                g.weight_decay_scale,
                want["wd_scale"].as_f64().unwrap(),
                "{name}"
            );
            let lr = want["lr_scale"].as_f64().unwrap();
            assert!(
                (g.lr_scale - lr).abs() < 1e-12,
                "{name}: {} vs {lr}",
                g.lr_scale
            );
        }
    }
}

#[test]
fn ten_steps_match_torch_adamw() {
    let all = all_tensors();
    let mut s = setup(&fixture_tensors(FIXTURE, "init"));
    run_steps(&mut s, 0..10, &all);
    assert_params_equal(&s, &fixture_tensors(FIXTURE, "final"));
}

#[test]
fn saved_state_resumes_to_the_same_trajectory() {
    let all = all_tensors();
    let mut first = setup(&fixture_tensors(FIXTURE, "init"));
    run_steps(&mut first, 0..5, &all);
    assert_params_equal(&first, &fixture_tensors(FIXTURE, "after5"));
    let state = first.opt.state_dict().unwrap();
    // A fresh optimiser over the step-5 weights, with the saved moments.
    let current: BTreeMap<String, Tensor> = first
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.as_detached_tensor()))
        .collect();
    let mut resumed = setup(&current);
    resumed.opt.load_state_dict(&state).unwrap();
    run_steps(&mut resumed, 5..10, &all);
    assert_params_equal(&resumed, &fixture_tensors(FIXTURE, "final"));
}

#[test]
fn state_for_an_unknown_parameter_is_rejected() {
    let mut s = setup(&fixture_tensors(FIXTURE, "init"));
    let mut state = BTreeMap::new();
    state.insert(
        "step.nope".to_string(),
        Tensor::new(&[1i64], &candle_core::Device::Cpu).unwrap(),
    );
    let err = s.opt.load_state_dict(&state).unwrap_err().to_string();
    assert!(err.contains("`nope`"), "{err}");
}

/// A gradient can carry the backward pass's graph (here: ∂(w ⊙ x)/∂w = x, a variable); the
/// moments must not keep it alive, or every step's graph and every earlier moment stay in memory
/// (it leaked ~5 MB per ViT-nano PC-MoE step before the optimiser detached its gradients).
#[test]
fn moments_hold_no_autograd_graph() {
    let dev = candle_core::Device::Cpu;
    let w = Var::from_tensor(&Tensor::new(&[1f32, -2.0, 3.0], &dev).unwrap()).unwrap();
    let x = Var::from_tensor(&Tensor::new(&[0.5f32, 0.25, -1.0], &dev).unwrap()).unwrap();
    let params = vec![("w".to_string(), w.clone())];
    let mut opt = AdamW::new(build_groups(&params, 1, 1.0), AdamWConfig::default()).unwrap();
    for _ in 0..3 {
        let grads = (w.as_tensor() * x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(
            grads.get(w.as_tensor()).unwrap().track_op(),
            "the test needs a gradient that carries a graph"
        );
        opt.step(&grads, 1e-2, 0.0).unwrap();
    }
    for (name, t) in opt.state_dict().unwrap() {
        assert!(!t.track_op(), "optimiser state `{name}` holds a graph");
    }
}
