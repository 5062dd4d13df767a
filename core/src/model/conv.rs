//! Convolutions for heads as im2col + one matmul, with their own unfold/fold kernels (CPU,
//! f32, in [`crate::ops::im2col`]) so the backward pass also runs on the BLAS path. candle's CPU `conv_transpose2d` is a
//! direct loop and `conv2d`'s backward calls it for the input gradient: measured here on a
//! two-step upsampling head (192 → 64 channels, 8×4 → 32×16, batch 32) that was 0.7 s (deconv)
//! and 1.2 s (nearest + 3×3 conv) per step. Other devices and dtypes use candle's ops.
//!
//! `conv2d(x, w) = unfold(x) · W`, `conv_transpose2d(x, w) = fold(x · W)`; unfold and fold are
//! each other's gradient.

use candle_core::{DType, Result, Tensor};

use crate::ops::im2col::{fold, unfold, Window};

fn fast_path(x: &Tensor, w: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32
}

/// `conv2d` (weight `[out, in, k, k]`, no dilation, one group).
pub fn conv2d(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    let (b, c_in, h, wd) = x.dims4()?;
    let (c_out, wc_in, kh, kw) = w.dims4()?;
    if !fast_path(x, w) || kh != kw || wc_in != c_in || stride == 0 {
        return x.conv2d(w, padding, stride, 1, 1);
    }
    let k = kh;
    if h + 2 * padding < k || wd + 2 * padding < k {
        candle_core::bail!(
            "conv2d: a {k}×{k} kernel does not fit a {h}×{wd} input padded by {padding}"
        );
    }
    let (gh, gw) = (
        (h + 2 * padding - k) / stride + 1,
        (wd + 2 * padding - k) / stride + 1,
    );
    let window = Window {
        channels: c_in,
        k,
        stride,
        padding,
        h,
        w: wd,
        gh,
        gw,
    };
    let cols = unfold(&x.contiguous()?, window)?;
    let wm = w.reshape((c_out, c_in * k * k))?.t()?;
    cols.matmul(&wm)?
        .reshape((b, gh, gw, c_out))?
        .permute((0, 3, 1, 2))?
        .contiguous()
}

/// `conv_transpose2d` (weight `[in, out, k, k]`, as PyTorch; no dilation, one group).
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    output_padding: usize,
    stride: usize,
) -> Result<Tensor> {
    let (b, c_in, h, wd) = x.dims4()?;
    let (wc_in, c_out, kh, kw) = w.dims4()?;
    if !fast_path(x, w) || kh != kw || wc_in != c_in || stride == 0 {
        return x.conv_transpose2d(w, padding, output_padding, stride, 1);
    }
    let k = kh;
    let size = |n: usize| ((n - 1) * stride + k + output_padding).checked_sub(2 * padding);
    let (Some(oh), Some(ow)) = (size(h), size(wd)) else {
        candle_core::bail!(
            "conv_transpose2d: padding {padding} leaves no output for a {h}×{wd} input"
        );
    };
    let window = Window {
        channels: c_out,
        k,
        stride,
        padding,
        h: oh,
        w: ow,
        gh: h,
        gw: wd,
    };
    // Each input position spreads x·W over its k×k window of the output.
    let rows = x.permute((0, 2, 3, 1))?.reshape((b * h * wd, c_in))?;
    let cols = rows.matmul(&w.reshape((c_in, c_out * k * k))?)?;
    fold(&cols, window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn close(a: &Tensor, b: &Tensor) -> f32 {
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

    /// Values and the gradients of input and weight against candle's own op.
    fn check(
        ours: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
        theirs: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
        x_shape: (usize, usize, usize, usize),
        w_shape: (usize, usize, usize, usize),
    ) {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, x_shape, &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, w_shape, &dev).unwrap()).unwrap();
        let a = ours(x.as_tensor(), w.as_tensor()).unwrap();
        let b = theirs(x.as_tensor(), w.as_tensor()).unwrap();
        assert_eq!(a.dims(), b.dims());
        assert!(close(&a, &b) < 1e-4, "values differ by {}", close(&a, &b));
        // A loss that weighs every output differently.
        let r = Tensor::randn(0f32, 1.0, a.dims(), &dev).unwrap();
        let ga = (a * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (b * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w] {
            let (p, q) = (ga.get(v).unwrap(), gb.get(v).unwrap());
            assert!(close(p, q) < 1e-3, "gradients differ by {}", close(p, q));
        }
    }

    #[test]
    fn convolutions_equal_candles_in_value_and_gradient() {
        for (k, p, s) in [
            (3, 1, 1),
            (1, 0, 1),
            (3, 0, 1),
            (5, 2, 1),
            (3, 1, 2),
            (2, 0, 2),
        ] {
            check(
                |x, w| conv2d(x, w, p, s),
                |x, w| x.conv2d(w, p, s, 1, 1),
                (2, 3, 7, 5),
                (4, 3, k, k),
            );
        }
    }

    #[test]
    fn transposed_convolutions_equal_candles_in_value_and_gradient() {
        // (k, stride, padding, output_padding): the upsampling heads' 4/2/1, and others whose
        // output is stride × the input.
        for (k, s, p, op) in [
            (4, 2, 1, 0),
            (2, 2, 0, 0),
            (3, 2, 1, 1),
            (6, 3, 2, 1),
            (3, 1, 1, 0),
            (3, 2, 0, 0),
        ] {
            check(
                |x, w| conv_transpose2d(x, w, p, op, s),
                |x, w| x.conv_transpose2d(w, p, op, s, 1),
                (2, 3, 4, 5),
                (3, 4, k, k),
            );
        }
    }
}
