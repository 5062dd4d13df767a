//! Every fused kernel against its composed reference: values, and gradients through
//! L = Σ out ⊙ r for a random r — on a small shape (serial path), a large one (rows spread over
//! the worker pool) and a transposed (non-contiguous) input; plus finite differences.

use candle_core::{Device, Tensor, Var};

use super::parity::{compare, OPS};

/// Inputs of the finite-difference check: x `[dims]`, and for ops with parameters a weight
/// around 1 and a bias, both `[D]`.
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

#[test]
fn fused_kernels_match_the_composed_ops_in_values_and_gradients() {
    for case in &OPS {
        // 4·70·96 = 26,880 elements: past the serial threshold, rows split over the pool; the
        // transposed input is not contiguous.
        for &(dims, transpose) in
            case.shapes_or(&[(&[3, 5, 7], false), (&[4, 70, 96], false), (&[6, 9], true)])
        {
            let p = compare(case, dims, transpose, &Device::Cpu, 7).unwrap();
            assert!(
                p.within(2e-5, 1e-4),
                "{} {dims:?} (transposed: {transpose}): {p:?}",
                case.name
            );
        }
    }
}

#[test]
fn fused_gradients_match_finite_differences() {
    let eps = 1e-2f32;
    for case in &OPS {
        let (name, fused, params) = (case.name, case.op, case.params);
        let dims = case.shapes_or(&[(&[2, 6], false)])[0].0;
        let vars = inputs(dims, params);
        let args: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out_dims = fused(&args).unwrap().dims().to_vec();
        let r = Tensor::randn(0f32, 1.0, out_dims, &Device::Cpu).unwrap();
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
            let n = base.len();
            for k in [0, n / 3, n / 2, 2 * n / 3, n - 1] {
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
