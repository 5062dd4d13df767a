//! Fused multi-head self-attention on timm's packed projection: softmax(scale·q·kᵀ)·v for each
//! image and head, read straight from the `[B, N, 3·H·Dh]` output of `attn.qkv` and written
//! straight into `[B, N, H·Dh]` — no q/k/v copies, no transposes, and the N×N score block of a
//! head stays in cache between its two products.
//!
//! Backward keeps nothing but the op's input and output (memory-saving, as flash attention): it
//! recomputes a head's probabilities P from q and k, then
//! dV = Pᵀ·dO, dP = dO·Vᵀ, dS = scale·P⊙(dP − rowsum(dO⊙O)), dQ = dS·K, dK = dSᵀ·Q,
//! all written into one packed `[B, N, 3·H·Dh]` gradient. (rowsum(dP⊙P) = rowsum(dO⊙O), the
//! cheaper of the two.) Heads run in parallel on the pool, each product single-threaded.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::{gemm, Parallelism};

use super::cpu::{f32_slice, output_buffer, par_task_ranges, SharedMut};
use super::fast_math::exp;
use super::simd::{self, map1, map2};

/// Sizes of a packed projection `[B, N, 3·H·Dh]` and where each head's rows start.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    b: usize,
    n: usize,
    heads: usize,
    dh: usize,
}

impl Geometry {
    fn of(layout: &Layout, heads: usize, op: &str) -> Result<Self> {
        let (b, n, w) = layout.shape().dims3()?;
        if heads == 0 || w % (3 * heads) != 0 {
            bail!("{op}: a packed width of {w} is not 3 × {heads} heads × a head width")
        }
        Ok(Self {
            b,
            n,
            heads,
            dh: w / (3 * heads),
        })
    }

    /// Row length of the output (all heads side by side).
    fn width(&self) -> usize {
        self.heads * self.dh
    }

    /// Row length of the packed input (q, k, v of all heads).
    fn packed(&self) -> usize {
        3 * self.width()
    }

    /// Where q (`part` 0), k (1) or v (2) of head `h` of image `b` starts in the packed input.
    fn qkv_at(&self, b: usize, part: usize, h: usize) -> usize {
        b * self.n * self.packed() + part * self.width() + h * self.dh
    }

    /// Where head `h` of image `b` starts in the output.
    fn out_at(&self, b: usize, h: usize) -> usize {
        b * self.n * self.width() + h * self.dh
    }
}

/// A strided matrix: element (i, j) at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    rs: usize,
    cs: usize,
}

impl View {
    /// Rows `rs` apart, each contiguous.
    fn rows(ptr: *const f32, rs: usize) -> Self {
        Self { ptr, rs, cs: 1 }
    }

    fn t(self) -> Self {
        Self {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// dst (m×n, contiguous rows `dst_rs` apart) = a (m×k) · b (k×n), on the calling thread.
///
/// # Safety
/// The views and `dst` must cover m×k, k×n and m×n valid elements, and `dst` must overlap
/// neither input.
unsafe fn product(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, a: View, b: View) {
    gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        a.ptr,
        a.cs as isize,
        a.rs as isize,
        b.ptr,
        b.cs as isize,
        b.rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        Parallelism::None,
    )
}

/// p = softmax(scale · s) row by row, for an n×n block (scale > 0: max(scale·s) = scale·max s).
fn softmax_rows(s: &[f32], p: &mut [f32], n: usize, scale: f32) {
    for (row, out) in s.chunks_exact(n).zip(p.chunks_exact_mut(n)) {
        let max = scale * simd::max(row);
        map1(row, out, |v| exp(v * scale - max));
        let inv = 1.0 / simd::sum1(out, |y| y);
        out.iter_mut().for_each(|o| *o *= inv);
    }
}

/// The q, k and v of head `h` of image `b` in the packed input `x`.
fn head_views(x: &[f32], g: &Geometry, b: usize, h: usize) -> [View; 3] {
    // SAFETY (of the pointer offsets): each start lies inside `x`, whose length the caller
    // checked against the geometry.
    [0, 1, 2].map(|part| View::rows(unsafe { x.as_ptr().add(g.qkv_at(b, part, h)) }, g.packed()))
}

/// softmax(scale·q·kᵀ)·v per image and head of a contiguous f32 `[B, N, 3·H·Dh]`; the caller
/// checks that the scale is positive.
pub struct AttentionOp {
    pub heads: usize,
    pub scale: f32,
}

impl CustomOp1 for AttentionOp {
    fn name(&self) -> &'static str {
        "clasp-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let g = Geometry::of(layout, self.heads, self.name())?;
        let (n, dh, scale) = (g.n, g.dh, self.scale);
        let mut y = output_buffer(g.b * n * g.width());
        let out = SharedMut(y.as_mut_ptr());
        if !y.is_empty() {
            par_task_ranges(g.b * g.heads, |tasks| {
                let mut s = output_buffer(n * n);
                let mut p = output_buffer(n * n);
                for t in tasks {
                    let (b, h) = (t / g.heads, t % g.heads);
                    let [q, k, v] = head_views(x, &g, b, h);
                    // SAFETY: every view lies inside `x`, the n×n blocks are this worker's own,
                    // and each task writes its own head's columns of `y`.
                    unsafe { product(n, n, dh, s.as_mut_ptr(), n, q, k.t()) };
                    softmax_rows(&s, &mut p, n, scale);
                    let o = out.at(g.out_at(b, h));
                    // SAFETY: as above; `o` is this head's block of `y`.
                    unsafe { product(n, dh, n, o, g.width(), View::rows(p.as_ptr(), n), v) };
                }
            });
        }
        Ok((CpuStorage::F32(y), Shape::from((g.b, n, g.width()))))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = AttentionGrad {
            heads: self.heads,
            scale: self.scale,
        };
        Ok(Some(x.apply_op3_no_bwd(y, &grad.contiguous()?, &op)?))
    }
}

/// The packed input's gradient from (input, output, output gradient).
struct AttentionGrad {
    heads: usize,
    scale: f32,
}

impl CustomOp3 for AttentionGrad {
    fn name(&self) -> &'static str {
        "clasp-attention-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let o = f32_slice(s2, l2, self.name())?;
        let go = f32_slice(s3, l3, self.name())?;
        let g = Geometry::of(l1, self.heads, self.name())?;
        if o.len() != g.b * g.n * g.width() || go.len() != o.len() {
            bail!(
                "{}: output {:?} and its gradient {:?} do not match the input {:?}",
                self.name(),
                l2.dims(),
                l3.dims(),
                l1.dims()
            )
        }
        let (n, dh, scale, width) = (g.n, g.dh, self.scale, g.width());
        let mut dx = output_buffer(x.len());
        let dst = SharedMut(dx.as_mut_ptr());
        if !dx.is_empty() {
            par_task_ranges(g.b * g.heads, |tasks| {
                let mut s = output_buffer(n * n);
                let mut p = output_buffer(n * n);
                let mut dp = output_buffer(n * n);
                for t in tasks {
                    let (b, h) = (t / g.heads, t % g.heads);
                    let [q, k, v] = head_views(x, &g, b, h);
                    let at = g.out_at(b, h);
                    let d_out = View::rows(go[at..].as_ptr(), width);
                    // SAFETY (all products): views inside `x` and `go`, the n×n blocks are this
                    // worker's own, and each task writes only its own head's q, k and v columns.
                    unsafe { product(n, n, dh, s.as_mut_ptr(), n, q, k.t()) };
                    softmax_rows(&s, &mut p, n, scale);
                    let p_view = View::rows(p.as_ptr(), n);
                    let dv = dst.at(g.qkv_at(b, 2, h));
                    unsafe { product(n, dh, n, dv, g.packed(), p_view.t(), d_out) };
                    unsafe { product(n, n, dh, dp.as_mut_ptr(), n, d_out, v.t()) };
                    // dS into `s`, which is free now.
                    for i in 0..n {
                        let row = at + i * width;
                        let (o_row, g_row) = (&o[row..row + dh], &go[row..row + dh]);
                        let d = simd::sum2(o_row, g_row, |a, b| a * b);
                        let r = i * n..(i + 1) * n;
                        map2(&p[r.clone()], &dp[r.clone()], &mut s[r], |p, g| {
                            scale * p * (g - d)
                        });
                    }
                    let ds = View::rows(s.as_ptr(), n);
                    let (dq, dk) = (dst.at(g.qkv_at(b, 0, h)), dst.at(g.qkv_at(b, 1, h)));
                    unsafe { product(n, dh, n, dq, g.packed(), ds, k) };
                    unsafe { product(n, dh, n, dk, g.packed(), ds.t(), q) };
                }
            });
        }
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
