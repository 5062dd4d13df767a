//! Every trainable variable of the nano CLASP model (prompts + PC-MoE) receives a finite, non-zero
//! gradient, and analytic gradients agree with finite differences.

mod common;

use candle_core::{DType, Tensor};
use clasp_core::model::{Vit, VitConfig};
use common::{images, nano_clasp, nano_clasp_config, TASKS};

/// A loss touching CLS and patch outputs of every task through fixed random weights (a plain sum
/// or mean of squares of a LayerNorm output would be nearly constant and its gradient ~0).
fn multi_task_loss(vit: &Vit, x: &Tensor) -> Tensor {
    let mut total: Option<Tensor> = None;
    for (i, t) in TASKS.iter().enumerate() {
        let out = vit.forward(x, Some(t)).unwrap();
        let (b, d, h, w) = out.patches.dims4().unwrap();
        let dtype = out.cls.dtype();
        let a = images(1, 1, b, d, dtype, 100 + i as u64)
            .reshape((b, d))
            .unwrap();
        let p = images(b, d, h, w, dtype, 200 + i as u64);
        let l = ((out.cls * a).unwrap().sum_all().unwrap()
            + (out.patches * p)
                .unwrap()
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap())
        .unwrap();
        total = Some(match total {
            None => l,
            Some(acc) => (acc + l).unwrap(),
        });
    }
    total.unwrap()
}

#[test]
fn every_trainable_variable_gets_a_gradient() {
    let (vit, store) = nano_clasp(nano_clasp_config(), 1, DType::F32);
    let x = images(2, 3, 256, 128, DType::F32, 7);
    let grads = multi_task_loss(&vit, &x).backward().unwrap();
    let problems = store.gradient_problems(&grads).unwrap();
    assert!(
        problems.is_empty(),
        "variables without a usable gradient: {problems:?}"
    );
    // The coverage is over the whole model: embeddings, blocks, experts, gates, prompts.
    let names = store.names();
    for must in [
        "cls_token",
        "pos_embed",
        "patch_embed.proj.weight",
        "blocks.0.norm1.weight",
        "blocks.3.moe.experts.3.fc2.bias",
        "blocks.2.moe.gate.weight",
        "blocks.1.moe.channel_gate.weight",
        "prompts.proj.weight",
        "prompts.delta.attr",
        "norm.bias",
    ] {
        assert!(names.iter().any(|n| n == must), "model lacks {must}");
    }
}

#[test]
fn gradients_also_flow_at_a_resampled_input_size() {
    // Local crops (128×64) resample the position embedding; its gradient must survive that.
    let (vit, store) = nano_clasp(nano_clasp_config(), 2, DType::F32);
    let x = images(2, 3, 128, 64, DType::F32, 8);
    let grads = multi_task_loss(&vit, &x).backward().unwrap();
    assert!(store.gradient_problems(&grads).unwrap().is_empty());
}

/// Central differences in f64 on a handful of entries spread over the model's kinds of variable.
#[test]
fn gradients_match_finite_differences() {
    let mut cfg: VitConfig = nano_clasp_config();
    cfg.moe.as_mut().unwrap().temperature = 0.5;
    let (vit, store) = nano_clasp(cfg, 3, DType::F64);
    let x = images(1, 3, 64, 32, DType::F64, 9); // resampled grid: exercises interpolation too
    let grads = multi_task_loss(&vit, &x).backward().unwrap();
    let probes = [
        ("pos_embed", 37),
        ("cls_token", 5),
        ("patch_embed.proj.weight", 1000),
        ("blocks.0.norm1.weight", 3),
        ("blocks.1.attn.qkv.weight", 4100),
        ("blocks.2.moe.gate.weight", 70),
        ("blocks.2.moe.channel_gate.weight", 9000),
        ("blocks.3.moe.experts.1.fc1.weight", 123),
        ("prompts.proj.weight", 777),
        ("prompts.delta.part", 11),
        ("norm.weight", 9),
    ];
    let eps = 1e-6;
    for (name, idx) in probes {
        let var = store.get(name).unwrap();
        let shape = var.shape().clone();
        let flat = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let analytic = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[idx];
        let eval = |delta: f64| {
            let mut v = flat.clone();
            v[idx] += delta;
            var.set(&Tensor::from_vec(v, shape.clone(), var.device()).unwrap())
                .unwrap();
            multi_task_loss(&vit, &x).to_scalar::<f64>().unwrap()
        };
        let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
        var.set(&Tensor::from_vec(flat.clone(), shape.clone(), var.device()).unwrap())
            .unwrap();
        // As torch.autograd.gradcheck: |a − n| ≤ atol + rtol·|n|.
        let err = (analytic - numeric).abs();
        println!("{name}[{idx}]: analytic {analytic:.6e} numeric {numeric:.6e} abs err {err:.1e}");
        assert!(
            err <= 1e-7 + 1e-4 * numeric.abs(),
            "{name}[{idx}]: analytic {analytic} vs numeric {numeric}"
        );
    }
}
