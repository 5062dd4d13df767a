//! Every fused kernel against its composed reference: values, and gradients through
//! L = Σ out ⊙ r for a random r — on a small shape (serial path), a large one (rows spread over
//! the worker pool) and a transposed (non-contiguous) input; plus finite differences.

use candle_core::{Device, Tensor, Var};

use super::*;

type Op = fn(&[Tensor]) -> Result<Tensor>;

fn fused_ln(a: &[Tensor]) -> Result<Tensor> {
    layer_norm(&a[0], &a[1], &a[2], 1e-6)
}
fn reference_ln(a: &[Tensor]) -> Result<Tensor> {
    reference::layer_norm(&a[0], &a[1], &a[2], 1e-6)
}
fn fused_softmax(a: &[Tensor]) -> Result<Tensor> {
    softmax_last_dim(&a[0])
}
fn reference_softmax(a: &[Tensor]) -> Result<Tensor> {
    reference::softmax_last_dim(&a[0])
}
fn fused_scaled_softmax(a: &[Tensor]) -> Result<Tensor> {
    scaled_softmax_last_dim(&a[0], 0.35)
}
fn reference_scaled_softmax(a: &[Tensor]) -> Result<Tensor> {
    reference::softmax_last_dim(&(&a[0] * 0.35)?)
}
fn fused_log_softmax(a: &[Tensor]) -> Result<Tensor> {
    log_softmax_last_dim(&a[0])
}
fn reference_log_softmax(a: &[Tensor]) -> Result<Tensor> {
    reference::log_softmax_last_dim(&a[0])
}
fn fused_gelu(a: &[Tensor]) -> Result<Tensor> {
    gelu(&a[0])
}
fn reference_gelu(a: &[Tensor]) -> Result<Tensor> {
    a[0].gelu_erf()
}
fn fused_quick_gelu(a: &[Tensor]) -> Result<Tensor> {
    quick_gelu(&a[0])
}
fn reference_quick_gelu(a: &[Tensor]) -> Result<Tensor> {
    reference::quick_gelu(&a[0])
}
fn fused_bias(a: &[Tensor]) -> Result<Tensor> {
    bias_add(&a[0], &a[1])
}
fn reference_bias(a: &[Tensor]) -> Result<Tensor> {
    a[0].broadcast_add(&a[1])
}

/// Inputs: x `[dims]` (times 3, so softmax rows are far from uniform), and for ops with
/// parameters a weight around 1 and a bias, both `[D]`.
fn inputs(dims: &[usize], params: usize) -> Vec<Var> {
    let dev = Device::Cpu;
    let d = *dims.last().unwrap();
    let mut v = vec![Var::from_tensor(&(Tensor::randn(0f32, 3.0, dims, &dev).unwrap())).unwrap()];
    if params >= 1 {
        v.push(Var::from_tensor(&(Tensor::randn(1f32, 0.5, d, &dev).unwrap())).unwrap());
    }
    if params >= 2 {
        v.push(Var::from_tensor(&Tensor::randn(0f32, 0.5, d, &dev).unwrap()).unwrap());
    }
    v
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Values and every input's gradient of `fused` and `reference` agree within `tol`.
fn check(name: &str, fused: Op, reference: Op, dims: &[usize], params: usize, transpose: bool) {
    let vars = inputs(dims, params);
    let mut args: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    if transpose {
        // The same values seen through a transposed view of a transposed copy: non-contiguous.
        let t = args[0].t().unwrap().contiguous().unwrap().t().unwrap();
        assert!(!t.is_contiguous());
        args[0] = t;
    }
    let y_f = fused(&args).unwrap();
    let y_r = reference(&args).unwrap();
    assert_eq!(y_f.dims(), y_r.dims());
    let tol = 2e-5
        * (1.0
            + y_r
                .abs()
                .unwrap()
                .max_keepdim(0)
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap());
    let dv = max_diff(&y_f, &y_r);
    assert!(dv <= tol, "{name} {dims:?}: values differ by {dv}");
    let r = Tensor::randn(0f32, 1.0, y_r.dims(), &Device::Cpu).unwrap();
    let g_f = (y_f * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g_r = (y_r * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (i, v) in vars.iter().enumerate() {
        let a = g_f
            .get(v)
            .unwrap_or_else(|| panic!("{name}: no fused gradient for input {i}"));
        let b = g_r.get(v).unwrap();
        let scale = b
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let d = max_diff(a, b);
        assert!(
            d <= 1e-4 * (1.0 + scale),
            "{name} {dims:?}: gradient {i} differs by {d} (scale {scale})"
        );
    }
}

const OPS: [(&str, Op, Op, usize); 7] = [
    ("layer_norm", fused_ln, reference_ln, 2),
    ("softmax", fused_softmax, reference_softmax, 0),
    (
        "scaled_softmax",
        fused_scaled_softmax,
        reference_scaled_softmax,
        0,
    ),
    ("log_softmax", fused_log_softmax, reference_log_softmax, 0),
    ("gelu", fused_gelu, reference_gelu, 0),
    ("quick_gelu", fused_quick_gelu, reference_quick_gelu, 0),
    ("bias_add", fused_bias, reference_bias, 1),
];

#[test]
fn fused_kernels_match_the_composed_ops_in_values_and_gradients() {
    for (name, fused, reference, params) in OPS {
        check(name, fused, reference, &[3, 5, 7], params, false);
        // 4·70·96 = 26,880 elements: past the serial threshold, rows split over the pool.
        check(name, fused, reference, &[4, 70, 96], params, false);
        check(name, fused, reference, &[6, 9], params, true);
    }
}

#[test]
fn fused_gradients_match_finite_differences() {
    let eps = 1e-2f32;
    for (name, fused, _, params) in OPS {
        let vars = inputs(&[2, 6], params);
        let args: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let r = Tensor::randn(0f32, 1.0, (2, 6), &Device::Cpu).unwrap();
        let loss = |a: &[Tensor]| -> f32 {
            (fused(a).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let grads = (fused(&args).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (i, v) in vars.iter().enumerate() {
            let analytic = grads
                .get(v)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let base = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for k in [0, base.len() / 2, base.len() - 1] {
                let at = |delta: f32| {
                    let mut p = base.clone();
                    p[k] += delta;
                    let mut a = args.clone();
                    a[i] = Tensor::from_vec(p, v.as_tensor().dims(), &Device::Cpu).unwrap();
                    loss(&a)
                };
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
                let err = (numeric - analytic[k]).abs();
                assert!(
                    err <= 2e-2 * (1.0 + numeric.abs()),
                    "{name}: input {i}[{k}] analytic {} numeric {numeric}",
                    analytic[k]
                );
            }
        }
    }
}
