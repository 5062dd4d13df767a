//! The safe side of the tensor vtable: a [`Host`] and [`Tensor`] handles with ordinary methods,
//! so a head reads like model code.

use abi_stable::std_types::{RNone, ROption, RResult, RStr};

use crate::abi::{
    BinaryOp, HostArray, HostCtx, HostOpsRef, InitKind, InitSpec, LossKind, LossOptions, Record,
    ReduceOp, TensorId, UnaryOp,
};
use crate::Error;

pub type Result<T> = std::result::Result<T, Error>;

fn ok<T>(r: RResult<T, abi_stable::std_types::RString>) -> Result<T> {
    r.into_result().map_err(Error::host)
}

/// Parameter initialisation.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    Zeros,
    Ones,
    Constant(f64),
    TruncNormal(f64),
    /// torch's default for Linear/Conv weights.
    KaimingUniform,
}

impl Init {
    fn spec(self) -> InitSpec {
        let (kind, value) = match self {
            Init::Zeros => (InitKind::Zeros, 0.0),
            Init::Ones => (InitKind::Ones, 0.0),
            Init::Constant(v) => (InitKind::Constant, v),
            Init::TruncNormal(s) => (InitKind::TruncNormal, s),
            Init::KaimingUniform => (InitKind::KaimingUniform, 0.0),
        };
        InitSpec { kind, value }
    }
}

/// The host, for the duration of one plugin call.
pub struct Host {
    ops: HostOpsRef,
    ctx: HostCtx,
}

fn dims(shape: &[usize]) -> Vec<u64> {
    shape.iter().map(|d| *d as u64).collect()
}

impl Host {
    /// Wraps the vtable the host passed in.
    pub fn new(ops: HostOpsRef, ctx: HostCtx) -> Self {
        Self { ops, ctx }
    }

    fn t(&self, r: RResult<TensorId, abi_stable::std_types::RString>) -> Result<Tensor<'_>> {
        Ok(Tensor {
            id: ok(r)?,
            host: self,
        })
    }

    /// A handle the host gave us (backbone features, a head output).
    pub fn tensor(&self, id: TensorId) -> Tensor<'_> {
        Tensor { id, host: self }
    }

    /// A trainable parameter named `name` within the head.
    pub fn param(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor<'_>> {
        self.t((self.ops.param())(
            self.ctx,
            RStr::from(name),
            dims(shape).as_slice().into(),
            init.spec(),
        ))
    }

    /// A saved, non-trainable buffer (running statistics).
    pub fn buffer(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor<'_>> {
        self.t((self.ops.buffer())(
            self.ctx,
            RStr::from(name),
            dims(shape).as_slice().into(),
            init.spec(),
        ))
    }

    /// Overwrites `buffer` (made by [`Host::buffer`]) with `value` of the same shape.
    pub fn assign(&self, buffer: Tensor<'_>, value: Tensor<'_>) -> Result<()> {
        let Some(assign) = self.ops.assign() else {
            return Err(Error::unsupported(
                "this clasp host cannot assign buffers (it predates `assign`)",
            ));
        };
        ok(assign(self.ctx, buffer.id, value.id))
    }

    /// A constant tensor from CPU values.
    pub fn constant(&self, shape: &[usize], data: &[f32]) -> Result<Tensor<'_>> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::data(format!(
                "constant of shape {shape:?} needs {n} values, got {}",
                data.len()
            )));
        }
        self.t((self.ops.constant())(
            self.ctx,
            dims(shape).as_slice().into(),
            data.into(),
        ))
    }

    pub fn concat<'h>(&'h self, xs: &[Tensor<'h>], dim: usize) -> Result<Tensor<'h>> {
        let ids: Vec<TensorId> = xs.iter().map(|t| t.id).collect();
        self.t((self.ops.concat())(
            self.ctx,
            ids.as_slice().into(),
            dim as u64,
        ))
    }

    /// Cross entropy of `logits` `[N, C]` (or `[N, C, H, W]`) against class ids, with label
    /// smoothing; targets equal to `ignore` do not count.
    pub fn cross_entropy<'h>(
        &'h self,
        logits: Tensor<'h>,
        target: Tensor<'h>,
        smoothing: f64,
        ignore: Option<i64>,
    ) -> Result<Tensor<'h>> {
        let options = LossOptions {
            label_smoothing: smoothing,
            ignore_index: ignore.into(),
        };
        self.t((self.ops.loss())(
            self.ctx,
            LossKind::CrossEntropy,
            logits.id,
            target.id,
            RNone,
            options,
        ))
    }

    /// Mean binary cross entropy with logits, optionally weighted per element.
    pub fn bce_with_logits<'h>(
        &'h self,
        logits: Tensor<'h>,
        target: Tensor<'h>,
        weight: Option<Tensor<'h>>,
    ) -> Result<Tensor<'h>> {
        let w: ROption<TensorId> = weight.map(|w| w.id).into();
        self.t((self.ops.loss())(
            self.ctx,
            LossKind::BinaryCrossEntropyWithLogits,
            logits.id,
            target.id,
            w,
            LossOptions::default(),
        ))
    }

    /// Mean squared error, optionally weighted per element.
    pub fn mse<'h>(
        &'h self,
        input: Tensor<'h>,
        target: Tensor<'h>,
        weight: Option<Tensor<'h>>,
    ) -> Result<Tensor<'h>> {
        let w: ROption<TensorId> = weight.map(|w| w.id).into();
        self.t((self.ops.loss())(
            self.ctx,
            LossKind::MeanSquaredError,
            input.id,
            target.id,
            w,
            LossOptions::default(),
        ))
    }
}

/// A handle to a host tensor, valid during the call that produced it.
#[derive(Clone, Copy)]
pub struct Tensor<'h> {
    pub id: TensorId,
    host: &'h Host,
}

impl<'h> Tensor<'h> {
    fn wrap(&self, r: RResult<TensorId, abi_stable::std_types::RString>) -> Result<Tensor<'h>> {
        self.host.t(r)
    }

    fn ops(&self) -> (HostOpsRef, HostCtx) {
        (self.host.ops, self.host.ctx)
    }

    pub fn shape(&self) -> Result<Vec<usize>> {
        let (ops, ctx) = self.ops();
        Ok(ok((ops.shape())(ctx, self.id))?
            .iter()
            .map(|d| *d as usize)
            .collect())
    }

    /// Copies the values to the CPU (shape, row-major data).
    pub fn to_cpu(&self) -> Result<(Vec<usize>, Vec<f32>)> {
        let (ops, ctx) = self.ops();
        let HostArray { shape, data } = ok((ops.to_cpu())(ctx, self.id))?;
        Ok((shape.iter().map(|d| *d as usize).collect(), data.into_vec()))
    }

    /// One record per row (first dimension) holding that row's values: the whole `decode` of a
    /// head whose output already is the prediction.
    pub fn row_records(&self) -> Result<Vec<Record>> {
        let (shape, data) = self.to_cpu()?;
        let n = shape.first().copied().unwrap_or(0);
        let per = data.len().checked_div(n).unwrap_or(0).max(1);
        Ok(data
            .chunks(per)
            .take(n)
            .map(|v| Record {
                values: v.to_vec().into(),
                ..Default::default()
            })
            .collect())
    }

    /// `x Wᵀ + b` with `w` of shape `[out, in]`.
    pub fn linear(&self, w: Tensor<'h>, b: Option<Tensor<'h>>) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.linear())(ctx, self.id, w.id, b.map(|b| b.id).into()))
    }

    pub fn conv2d(
        &self,
        w: Tensor<'h>,
        b: Option<Tensor<'h>>,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.conv2d())(
            ctx,
            self.id,
            w.id,
            b.map(|b| b.id).into(),
            stride as u32,
            padding as u32,
        ))
    }

    /// Transposed convolution, weight `[in, out, k, k]` as in PyTorch.
    pub fn conv_transpose2d(
        &self,
        w: Tensor<'h>,
        b: Option<Tensor<'h>>,
        stride: usize,
        padding: usize,
        output_padding: usize,
    ) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.conv_transpose2d())(
            ctx,
            self.id,
            w.id,
            b.map(|b| b.id).into(),
            stride as u32,
            padding as u32,
            output_padding as u32,
        ))
    }

    /// Batch norm over dim 1; running statistics are updated when `training`.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm(
        &self,
        weight: Option<Tensor<'h>>,
        bias: Option<Tensor<'h>>,
        running_mean: Tensor<'h>,
        running_var: Tensor<'h>,
        training: bool,
        momentum: f64,
        eps: f64,
    ) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.batch_norm())(
            ctx,
            self.id,
            weight.map(|t| t.id).into(),
            bias.map(|t| t.id).into(),
            running_mean.id,
            running_var.id,
            training,
            momentum,
            eps,
        ))
    }

    pub fn layer_norm(&self, weight: Tensor<'h>, bias: Tensor<'h>, eps: f64) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.layer_norm())(ctx, self.id, weight.id, bias.id, eps))
    }

    fn unary(&self, op: UnaryOp) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.unary())(ctx, op, self.id))
    }

    pub fn relu(&self) -> Result<Tensor<'h>> {
        self.unary(UnaryOp::Relu)
    }
    pub fn gelu(&self) -> Result<Tensor<'h>> {
        self.unary(UnaryOp::Gelu)
    }
    pub fn sigmoid(&self) -> Result<Tensor<'h>> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn tanh(&self) -> Result<Tensor<'h>> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn exp(&self) -> Result<Tensor<'h>> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Tensor<'h>> {
        self.unary(UnaryOp::Log)
    }
    pub fn neg(&self) -> Result<Tensor<'h>> {
        self.unary(UnaryOp::Neg)
    }
    pub fn abs(&self) -> Result<Tensor<'h>> {
        self.unary(UnaryOp::Abs)
    }
    pub fn sqrt(&self) -> Result<Tensor<'h>> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn sqr(&self) -> Result<Tensor<'h>> {
        self.unary(UnaryOp::Sqr)
    }

    fn binary(&self, op: BinaryOp, other: Tensor<'h>) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.binary())(ctx, op, self.id, other.id))
    }

    /// Broadcasting arithmetic.
    pub fn add(&self, o: Tensor<'h>) -> Result<Tensor<'h>> {
        self.binary(BinaryOp::Add, o)
    }
    pub fn sub(&self, o: Tensor<'h>) -> Result<Tensor<'h>> {
        self.binary(BinaryOp::Sub, o)
    }
    pub fn mul(&self, o: Tensor<'h>) -> Result<Tensor<'h>> {
        self.binary(BinaryOp::Mul, o)
    }
    pub fn div(&self, o: Tensor<'h>) -> Result<Tensor<'h>> {
        self.binary(BinaryOp::Div, o)
    }
    pub fn maximum(&self, o: Tensor<'h>) -> Result<Tensor<'h>> {
        self.binary(BinaryOp::Maximum, o)
    }
    pub fn minimum(&self, o: Tensor<'h>) -> Result<Tensor<'h>> {
        self.binary(BinaryOp::Minimum, o)
    }

    /// `self * mul + add`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.affine())(ctx, self.id, mul, add))
    }

    pub fn matmul(&self, o: Tensor<'h>) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.matmul())(ctx, self.id, o.id))
    }

    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.reshape())(ctx, self.id, dims(shape).as_slice().into()))
    }

    pub fn permute(&self, order: &[usize]) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.permute())(ctx, self.id, dims(order).as_slice().into()))
    }

    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.narrow())(
            ctx,
            self.id,
            dim as u64,
            start as u64,
            len as u64,
        ))
    }

    fn reduce(&self, op: ReduceOp, dim: usize, keepdim: bool) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.reduce())(ctx, op, self.id, dim as u64, keepdim))
    }

    pub fn sum(&self, dim: usize, keepdim: bool) -> Result<Tensor<'h>> {
        self.reduce(ReduceOp::Sum, dim, keepdim)
    }
    pub fn mean(&self, dim: usize, keepdim: bool) -> Result<Tensor<'h>> {
        self.reduce(ReduceOp::Mean, dim, keepdim)
    }
    pub fn max(&self, dim: usize, keepdim: bool) -> Result<Tensor<'h>> {
        self.reduce(ReduceOp::Max, dim, keepdim)
    }
    pub fn min(&self, dim: usize, keepdim: bool) -> Result<Tensor<'h>> {
        self.reduce(ReduceOp::Min, dim, keepdim)
    }

    pub fn dropout(&self, p: f64, training: bool) -> Result<Tensor<'h>> {
        let (ops, ctx) = self.ops();
        self.wrap((ops.dropout())(ctx, self.id, p, training))
    }
}
