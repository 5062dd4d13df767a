//! The host side of the plugin vtable: each `extern "C"` op resolves tensor handles in the call's
//! arena, computes with candle (autograd included) and returns a new handle. Panics and errors
//! become error values; nothing unwinds into plugin code.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor};
use clasp_sdk::abi::{
    BinaryOp, HostArray, HostCtx, HostOps, HostOpsRef, InitKind, InitSpec, LossKind, LossOptions,
    ReduceOp, TensorId, UnaryOp,
};

use super::head::{HeadState, HEAD_PREFIX};
use crate::model::layers::LayerNorm;
use crate::model::Init;

/// Everything one plugin call may touch: the arena of tensors it sees and the head's state.
pub struct CallCtx<'a> {
    pub arena: RefCell<Vec<Tensor>>,
    pub head: &'a HeadState,
    pub device: Device,
}

impl<'a> CallCtx<'a> {
    pub fn new(head: &'a HeadState, device: &Device) -> Self {
        Self {
            arena: RefCell::new(Vec::new()),
            head,
            device: device.clone(),
        }
    }

    /// Puts a tensor in the arena.
    pub fn insert(&self, t: Tensor) -> TensorId {
        let mut a = self.arena.borrow_mut();
        a.push(t);
        TensorId(a.len() as u64 - 1)
    }

    pub fn get(&self, id: TensorId) -> Result<Tensor> {
        self.arena
            .borrow()
            .get(id.0 as usize)
            .cloned()
            .ok_or_else(|| anyhow!("tensor handle {} does not exist in this call", id.0))
    }

    pub fn handle(&self) -> HostCtx {
        HostCtx(self as *const Self as *const core::ffi::c_void)
    }
}

fn run<R>(ctx: HostCtx, f: impl FnOnce(&CallCtx) -> Result<R>) -> RResult<R, RString> {
    // SAFETY: the host creates `ctx` from a live `CallCtx` for exactly the duration of the plugin
    // call that receives it; plugins only pass it back.
    let call = unsafe { &*(ctx.0 as *const CallCtx) };
    match catch_unwind(AssertUnwindSafe(|| f(call))) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(format!("{e:#}").into()),
        Err(_) => RResult::RErr("the host panicked inside a tensor op".into()),
    }
}

fn new_tensor(
    ctx: HostCtx,
    f: impl FnOnce(&CallCtx) -> Result<Tensor>,
) -> RResult<TensorId, RString> {
    run(ctx, |c| {
        let t = f(c)?;
        Ok(c.insert(t))
    })
}

fn shape_of(s: RSlice<'_, u64>) -> Vec<usize> {
    s.iter().map(|d| *d as usize).collect()
}

fn init_of(spec: InitSpec, shape: &[usize]) -> Init {
    match spec.kind {
        InitKind::Zeros => Init::Zeros,
        InitKind::Ones => Init::Ones,
        InitKind::Constant => Init::Const(spec.value as f32),
        InitKind::TruncNormal => Init::TruncNormal(spec.value as f32),
        // torch's default for Linear/Conv: kaiming_uniform(a=√5) = U(±1/√fan_in).
        InitKind::KaimingUniform => {
            let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
            Init::Uniform(1.0 / (fan_in as f32).sqrt())
        }
    }
}

extern "C" fn param(
    ctx: HostCtx,
    name: RStr<'_>,
    shape: RSlice<'_, u64>,
    init: InitSpec,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let shape = shape_of(shape);
        let full = format!("{HEAD_PREFIX}{}", name.as_str());
        c.head
            .params
            .get_or_init(&full, &shape, init_of(init, &shape))
    })
}

extern "C" fn buffer(
    ctx: HostCtx,
    name: RStr<'_>,
    shape: RSlice<'_, u64>,
    init: InitSpec,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let shape = shape_of(shape);
        let full = format!("{HEAD_PREFIX}{}", name.as_str());
        // The variable's own tensor (same id), so batch_norm can find it to update it.
        c.head
            .buffers
            .get_or_init(&full, &shape, init_of(init, &shape))
    })
}

extern "C" fn constant(
    ctx: HostCtx,
    shape: RSlice<'_, u64>,
    data: RSlice<'_, f32>,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        Ok(Tensor::from_slice(
            data.as_slice(),
            shape_of(shape),
            &c.device,
        )?)
    })
}

fn opt(c: &CallCtx, b: ROption<TensorId>) -> Result<Option<Tensor>> {
    match b {
        ROption::RSome(id) => Ok(Some(c.get(id)?)),
        ROption::RNone => Ok(None),
    }
}

extern "C" fn linear(
    ctx: HostCtx,
    x: TensorId,
    w: TensorId,
    b: ROption<TensorId>,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let lin = crate::model::layers::Linear::from_tensors(c.get(w)?, opt(c, b)?);
        Ok(lin.forward(&c.get(x)?)?)
    })
}

fn add_channel_bias(y: Tensor, b: Option<Tensor>) -> Result<Tensor> {
    Ok(match b {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?)?,
        None => y,
    })
}

extern "C" fn conv2d(
    ctx: HostCtx,
    x: TensorId,
    w: TensorId,
    b: ROption<TensorId>,
    stride: u32,
    padding: u32,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let y =
            crate::model::conv::conv2d(&c.get(x)?, &c.get(w)?, padding as usize, stride as usize)?;
        add_channel_bias(y, opt(c, b)?)
    })
}

extern "C" fn conv_transpose2d(
    ctx: HostCtx,
    x: TensorId,
    w: TensorId,
    b: ROption<TensorId>,
    stride: u32,
    padding: u32,
    output_padding: u32,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let y = crate::model::conv::conv_transpose2d(
            &c.get(x)?,
            &c.get(w)?,
            padding as usize,
            output_padding as usize,
            stride as usize,
        )?;
        add_channel_bias(y, opt(c, b)?)
    })
}

#[allow(clippy::too_many_arguments)]
extern "C" fn batch_norm(
    ctx: HostCtx,
    x: TensorId,
    weight: ROption<TensorId>,
    bias: ROption<TensorId>,
    running_mean: TensorId,
    running_var: TensorId,
    training: bool,
    momentum: f64,
    eps: f64,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let x = c.get(x)?;
        let rank = x.rank();
        if rank < 2 {
            bail!("batch_norm needs [N, C, …], got {:?}", x.dims());
        }
        let ch = x.dim(1)?;
        // Statistics over every dim but 1: move channels last and flatten.
        let mut order: Vec<usize> = (0..rank).filter(|d| *d != 1).collect();
        order.push(1);
        let flat = x.permute(order)?.reshape(((), ch))?;
        let view = |t: &Tensor| -> Result<Tensor> {
            let mut shape = vec![1usize; rank];
            shape[1] = ch;
            Ok(t.reshape(shape)?)
        };
        let (mean, var) = if training {
            let mean = flat.mean(0)?;
            let var = flat.broadcast_sub(&mean)?.sqr()?.mean(0)?;
            // Running statistics (unbiased variance, as torch) are updated outside autograd.
            let n = flat.dim(0)? as f64;
            let unbiased = (var.detach() * (n / (n - 1.0).max(1.0)))?;
            let rm = c.get(running_mean)?;
            let rv = c.get(running_var)?;
            let new_rm = ((rm.detach() * (1.0 - momentum))? + (mean.detach() * momentum)?)?;
            let new_rv = ((rv.detach() * (1.0 - momentum))? + (unbiased * momentum)?)?;
            update_buffer(c, &rm, &new_rm)?;
            update_buffer(c, &rv, &new_rv)?;
            (mean, var)
        } else {
            (c.get(running_mean)?.detach(), c.get(running_var)?.detach())
        };
        let mut y = x
            .broadcast_sub(&view(&mean)?)?
            .broadcast_div(&view(&(var + eps)?.sqrt()?)?)?;
        if let Some(w) = opt(c, weight)? {
            y = y.broadcast_mul(&view(&w)?)?;
        }
        if let Some(b) = opt(c, bias)? {
            y = y.broadcast_add(&view(&b)?)?;
        }
        Ok(y)
    })
}

/// Writes `value` into the buffer variable whose storage `t` shares.
fn update_buffer(c: &CallCtx, t: &Tensor, value: &Tensor) -> Result<()> {
    for (_, var) in c.head.buffers.vars() {
        if var.as_tensor().id() == t.id() {
            if var.dims() != value.dims() {
                bail!(
                    "buffer of shape {:?} cannot take a value of shape {:?}",
                    var.dims(),
                    value.dims()
                );
            }
            var.set(&value.detach().to_dtype(var.dtype())?)?;
            return Ok(());
        }
    }
    bail!("the tensor written to is not a buffer (create it with `buffer`)")
}

extern "C" fn assign(ctx: HostCtx, buffer: TensorId, value: TensorId) -> RResult<(), RString> {
    run(ctx, |c| {
        let (t, v) = (c.get(buffer)?, c.get(value)?);
        update_buffer(c, &t, &v)
    })
}

extern "C" fn layer_norm(
    ctx: HostCtx,
    x: TensorId,
    weight: TensorId,
    bias: TensorId,
    eps: f64,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let ln = LayerNorm {
            weight: c.get(weight)?,
            bias: c.get(bias)?,
            eps,
        };
        Ok(ln.forward(&c.get(x)?)?)
    })
}

extern "C" fn unary(ctx: HostCtx, op: UnaryOp, x: TensorId) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let x = c.get(x)?;
        Ok(match op {
            UnaryOp::Relu => x.relu()?,
            UnaryOp::Gelu => x.gelu_erf()?,
            UnaryOp::Sigmoid => candle_nn::ops::sigmoid(&x)?,
            UnaryOp::Tanh => x.tanh()?,
            UnaryOp::Exp => x.exp()?,
            UnaryOp::Log => x.log()?,
            UnaryOp::Neg => x.neg()?,
            UnaryOp::Abs => x.abs()?,
            UnaryOp::Sqrt => x.sqrt()?,
            UnaryOp::Sqr => x.sqr()?,
        })
    })
}

extern "C" fn binary(
    ctx: HostCtx,
    op: BinaryOp,
    a: TensorId,
    b: TensorId,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let (a, b) = (c.get(a)?, c.get(b)?);
        Ok(match op {
            BinaryOp::Add => a.broadcast_add(&b)?,
            BinaryOp::Sub => a.broadcast_sub(&b)?,
            BinaryOp::Mul => a.broadcast_mul(&b)?,
            BinaryOp::Div => a.broadcast_div(&b)?,
            BinaryOp::Maximum => a.broadcast_maximum(&b)?,
            BinaryOp::Minimum => a.broadcast_minimum(&b)?,
        })
    })
}

extern "C" fn affine(ctx: HostCtx, x: TensorId, mul: f64, add: f64) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| Ok(c.get(x)?.affine(mul, add)?))
}

extern "C" fn matmul(ctx: HostCtx, a: TensorId, b: TensorId) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| Ok(c.get(a)?.broadcast_matmul(&c.get(b)?)?))
}

extern "C" fn reshape(
    ctx: HostCtx,
    x: TensorId,
    shape: RSlice<'_, u64>,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| Ok(c.get(x)?.reshape(shape_of(shape))?))
}

extern "C" fn permute(
    ctx: HostCtx,
    x: TensorId,
    dims: RSlice<'_, u64>,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        Ok(c.get(x)?.permute(shape_of(dims))?.contiguous()?)
    })
}

extern "C" fn concat(
    ctx: HostCtx,
    xs: RSlice<'_, TensorId>,
    dim: u64,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let ts = xs.iter().map(|id| c.get(*id)).collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&ts, dim as usize)?)
    })
}

extern "C" fn narrow(
    ctx: HostCtx,
    x: TensorId,
    dim: u64,
    start: u64,
    len: u64,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        Ok(c.get(x)?
            .narrow(dim as usize, start as usize, len as usize)?)
    })
}

extern "C" fn reduce(
    ctx: HostCtx,
    op: ReduceOp,
    x: TensorId,
    dim: u64,
    keepdim: bool,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let (x, d) = (c.get(x)?, dim as usize);
        let y = match op {
            ReduceOp::Sum => x.sum_keepdim(d)?,
            ReduceOp::Mean => x.mean_keepdim(d)?,
            ReduceOp::Max => x.max_keepdim(d)?,
            ReduceOp::Min => x.min_keepdim(d)?,
        };
        Ok(if keepdim { y } else { y.squeeze(d)? })
    })
}

extern "C" fn dropout(
    ctx: HostCtx,
    x: TensorId,
    p: f64,
    training: bool,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let x = c.get(x)?;
        Ok(if training && p > 0.0 {
            if p >= 1.0 {
                bail!("dropout probability {p} must be below 1");
            }
            let mask = c.head.dropout_mask(x.dims(), p, &c.device)?;
            x.mul(&mask.to_dtype(x.dtype())?)?
        } else {
            x
        })
    })
}

fn log_softmax(x: &Tensor) -> Result<Tensor> {
    Ok(crate::model::layers::log_softmax_last_dim(x)?)
}

fn weighted_mean(per_elem: Tensor, weight: Option<Tensor>) -> Result<Tensor> {
    Ok(match weight {
        Some(w) => per_elem.broadcast_mul(&w)?.mean_all()?,
        None => per_elem.mean_all()?,
    })
}

extern "C" fn loss(
    ctx: HostCtx,
    kind: LossKind,
    input: TensorId,
    target: TensorId,
    weight: ROption<TensorId>,
    options: LossOptions,
) -> RResult<TensorId, RString> {
    new_tensor(ctx, |c| {
        let (x, y, w) = (c.get(input)?, c.get(target)?, opt(c, weight)?);
        match kind {
            LossKind::CrossEntropy => {
                let smoothing = options.label_smoothing;
                let ignored = |i: f32| options.ignore_index.into_option() == Some(i as i64);
                // [N, C, …] → [M, C] with classes last.
                let classes = x.dim(1)?;
                let logits = if x.rank() > 2 {
                    let mut order: Vec<usize> = (0..x.rank()).filter(|d| *d != 1).collect();
                    order.push(1);
                    x.permute(order)?.reshape(((), classes))?
                } else {
                    x
                };
                let ids = y.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                if ids.len() != logits.dim(0)? {
                    bail!(
                        "cross entropy: {} targets for {} predictions",
                        ids.len(),
                        logits.dim(0)?
                    );
                }
                if let Some(bad) = ids
                    .iter()
                    .find(|i| !ignored(**i) && (**i < 0.0 || i.fract() != 0.0))
                {
                    bail!("cross entropy: target {bad} is not a class id");
                }
                let keep: Vec<f32> = ids.iter().map(|i| !ignored(*i) as u8 as f32).collect();
                let idx: Vec<u32> = ids
                    .iter()
                    .map(|i| if ignored(*i) { 0 } else { *i as u32 })
                    .collect();
                if let Some(bad) = idx.iter().find(|i| **i as usize >= classes) {
                    bail!("cross entropy: class {bad} out of range for {classes} classes");
                }
                let logp = log_softmax(&logits)?;
                let idx = Tensor::from_vec(idx, (ids.len(), 1), &c.device)?;
                let nll = logp.gather(&idx, 1)?.squeeze(1)?.neg()?;
                let smooth = logp.mean(1)?.neg()?;
                let per = ((nll * (1.0 - smoothing))? + (smooth * smoothing)?)?;
                let n_keep = keep.iter().sum::<f32>().max(1.0) as f64;
                let mask = Tensor::from_vec(keep, ids.len(), &c.device)?;
                Ok((per.mul(&mask)?.sum_all()? / n_keep)?)
            }
            LossKind::BinaryCrossEntropyWithLogits => {
                // max(x, 0) − x·y + log(1 + e^−|x|), stable for large |x|.
                let per = ((x.relu()? - x.mul(&y)?)? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                weighted_mean(per, w)
            }
            LossKind::MeanSquaredError => weighted_mean(x.sub(&y)?.sqr()?, w),
        }
    })
}

extern "C" fn shape(ctx: HostCtx, x: TensorId) -> RResult<RVec<u64>, RString> {
    run(ctx, |c| {
        Ok(c.get(x)?.dims().iter().map(|d| *d as u64).collect())
    })
}

extern "C" fn to_cpu(ctx: HostCtx, x: TensorId) -> RResult<HostArray, RString> {
    run(ctx, |c| {
        let t = c.get(x)?;
        Ok(HostArray {
            shape: t.dims().iter().map(|d| *d as u64).collect(),
            data: t
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()
                .context("copying to the CPU")?
                .into(),
        })
    })
}

/// The vtable handed to plugins.
pub fn host_ops() -> HostOpsRef {
    HostOps {
        param,
        buffer,
        constant,
        linear,
        conv2d,
        conv_transpose2d,
        batch_norm,
        layer_norm,
        unary,
        binary,
        affine,
        matmul,
        reshape,
        permute,
        concat,
        narrow,
        reduce,
        dropout,
        loss,
        shape,
        to_cpu,
        assign,
    }
    .leak_into_prefix()
}
