//! Each op of this module against its composed reference, as figures: the reference runs on the
//! CPU from seeded inputs, the op under test on any device (the fused kernels on the CPU, candle's
//! composed kernels on CUDA) from copies of the same inputs. The unit tests assert on these
//! figures; `clasp device-check` prints them for a GPU.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::model::params::StandardNormal;

/// An op under test, on its inputs `[x, weight?, bias?]`.
pub type Op = fn(&[Tensor]) -> Result<Tensor>;

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
/// Two heads, as the shapes of the attention case allow (packed widths of 6·Dh).
const ATTENTION_HEADS: usize = 2;
fn fused_attention(a: &[Tensor]) -> Result<Tensor> {
    attention(&a[0], ATTENTION_HEADS, 0.35)
}
fn reference_attention(a: &[Tensor]) -> Result<Tensor> {
    reference::attention(&a[0], ATTENTION_HEADS, 0.35)
}
fn fused_bias(a: &[Tensor]) -> Result<Tensor> {
    bias_add(&a[0], &a[1])
}
fn reference_bias(a: &[Tensor]) -> Result<Tensor> {
    a[0].broadcast_add(&a[1])
}

/// Input shapes an op is checked on, each with whether x is seen through a transposed view.
pub type Shapes = &'static [(&'static [usize], bool)];

/// One op: its name, the op under test, its composed reference, how many `[D]` parameters
/// (weight, bias) follow `x`, and the shapes it needs if not any (the caller's own list).
pub struct OpCase {
    pub name: &'static str,
    pub op: Op,
    pub reference: Op,
    pub params: usize,
    pub shapes: Option<Shapes>,
}

impl OpCase {
    /// This op's own shapes, or `any` for the element-wise and row-wise ops.
    pub fn shapes_or(&self, any: Shapes) -> Shapes {
        self.shapes.unwrap_or(any)
    }
}

pub const OPS: [OpCase; 8] = [
    OpCase {
        name: "layer_norm",
        op: fused_ln,
        reference: reference_ln,
        params: 2,
        shapes: None,
    },
    OpCase {
        name: "softmax",
        op: fused_softmax,
        reference: reference_softmax,
        params: 0,
        shapes: None,
    },
    OpCase {
        name: "scaled_softmax",
        op: fused_scaled_softmax,
        reference: reference_scaled_softmax,
        params: 0,
        shapes: None,
    },
    OpCase {
        name: "log_softmax",
        op: fused_log_softmax,
        reference: reference_log_softmax,
        params: 0,
        shapes: None,
    },
    OpCase {
        name: "gelu",
        op: fused_gelu,
        reference: reference_gelu,
        params: 0,
        shapes: None,
    },
    OpCase {
        name: "quick_gelu",
        op: fused_quick_gelu,
        reference: reference_quick_gelu,
        params: 0,
        shapes: None,
    },
    OpCase {
        name: "bias_add",
        op: fused_bias,
        reference: reference_bias,
        params: 1,
        shapes: None,
    },
    OpCase {
        name: "attention",
        op: fused_attention,
        reference: reference_attention,
        params: 0,
        // [B, N, 3·2·Dh]: tiny; ViT-sized token count (133) and head width (32); and a
        // non-contiguous input.
        shapes: Some(&[
            (&[2, 5, 12], false),
            (&[3, 133, 192], false),
            (&[2, 9, 18], true),
        ]),
    },
];

/// How far the op under test is from the reference: the largest absolute difference of the
/// values and of each input's gradient of L = Σ out ⊙ r (r random), each beside the largest
/// magnitude of the reference it is measured against.
#[derive(Debug, Clone)]
pub struct OpParity {
    pub value_diff: f32,
    pub value_scale: f32,
    /// (difference, reference scale) per input; `None` where the op gave no gradient.
    pub grads: Vec<Option<(f32, f32)>>,
}

impl OpParity {
    /// Values within `value_tol`·(1 + scale), every gradient present and within
    /// `grad_tol`·(1 + scale).
    pub fn within(&self, value_tol: f32, grad_tol: f32) -> bool {
        self.value_diff <= value_tol * (1.0 + self.value_scale)
            && self
                .grads
                .iter()
                .all(|g| g.is_some_and(|(d, s)| d <= grad_tol * (1.0 + s)))
    }

    /// The largest gradient difference relative to its scale (infinite for a missing gradient).
    pub fn worst_grad(&self) -> f32 {
        self.grads
            .iter()
            .map(|g| g.map_or(f32::INFINITY, |(d, s)| d / (1.0 + s)))
            .fold(0.0, f32::max)
    }
}

fn randn(rng: &mut ChaCha8Rng, mean: f32, std: f32, dims: &[usize]) -> Result<Tensor> {
    let n = dims.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| mean + std * rng.sample::<f32, _>(StandardNormal))
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
}

fn max_abs(t: &Tensor) -> Result<f32> {
    t.to_dtype(DType::F32)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()
}

/// Leaves on `device` holding `values`; with `transpose`, x is seen through a transposed view of
/// a transposed copy (the same values, not contiguous).
fn leaves(values: &[Tensor], device: &Device, transpose: bool) -> Result<(Vec<Var>, Vec<Tensor>)> {
    let vars = values
        .iter()
        .map(|v| Var::from_tensor(&v.to_device(device)?))
        .collect::<Result<Vec<_>>>()?;
    let mut args: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    if transpose {
        args[0] = args[0].t()?.contiguous()?.t()?;
    }
    Ok((vars, args))
}

/// Runs `case.reference` on the CPU and `case.op` on `device` from the same seeded inputs:
/// x `[dims]` (std 3, so softmax rows are far from uniform), a weight around 1 and a bias `[D]`.
pub fn compare(
    case: &OpCase,
    dims: &[usize],
    transpose: bool,
    device: &Device,
    seed: u64,
) -> Result<OpParity> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = *dims.last().expect("a shape with at least one dimension");
    let mut values = vec![randn(&mut rng, 0.0, 3.0, dims)?];
    if case.params >= 1 {
        values.push(randn(&mut rng, 1.0, 0.5, &[d])?);
    }
    if case.params >= 2 {
        values.push(randn(&mut rng, 0.0, 0.5, &[d])?);
    }
    let (ref_vars, ref_args) = leaves(&values, &Device::Cpu, transpose)?;
    let (vars, args) = leaves(&values, device, transpose)?;
    let y_ref = (case.reference)(&ref_args)?;
    let y = (case.op)(&args)?;
    if y.dims() != y_ref.dims() {
        candle_core::bail!(
            "{}: shape {:?} vs reference {:?}",
            case.name,
            y.dims(),
            y_ref.dims()
        );
    }
    let y_cpu = y.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let value_diff = max_abs(&(&y_cpu - &y_ref)?)?;
    let value_scale = max_abs(&y_ref)?;
    let r = randn(&mut rng, 0.0, 1.0, y_ref.dims())?;
    let g_ref = (&y_ref * &r)?.sum_all()?.backward()?;
    let g = (&y * &r.to_device(device)?.to_dtype(y.dtype())?)?
        .sum_all()?
        .backward()?;
    let mut grads = Vec::new();
    for (v, v_ref) in vars.iter().zip(&ref_vars) {
        let b = g_ref
            .get(v_ref)
            .expect("the reference differentiates every input");
        grads.push(match g.get(v) {
            Some(a) => Some((
                max_abs(&(&a.to_device(&Device::Cpu)?.to_dtype(DType::F32)? - b)?)?,
                max_abs(b)?,
            )),
            None => None,
        });
    }
    Ok(OpParity {
        value_diff,
        value_scale,
        grads,
    })
}
