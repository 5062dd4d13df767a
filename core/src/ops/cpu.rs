//! What the fused CPU kernels share: borrowing an f32 buffer from a storage, splitting rows over
//! candle's own worker pool (the one its element-wise ops use, so the two never compete for the
//! cores), and column sums (the gradients of broadcast parameters) with per-chunk partial sums.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result};

/// The contiguous f32 data a layout views (callers make inputs contiguous first).
pub fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: only f32 is fused (got {:?})", storage.dtype())
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

/// An output buffer of `n` values the kernel writes in full before anything reads it: not
/// zeroed first (the memset showed in profiles; candle allocates its own outputs this way).
pub fn output_buffer(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: every f32 bit pattern is valid, and callers overwrite each element.
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(n)
    };
    v
}

/// A pointer the pool's workers may share: each writes a disjoint range.
#[derive(Clone, Copy)]
pub struct SharedMut(pub *mut f32);
// SAFETY: the pointer is only dereferenced by kernels whose workers write disjoint ranges of a
// buffer that outlives the pool call (see each use).
unsafe impl Send for SharedMut {}
// SAFETY: as for `Send`: no two workers touch the same element.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// A method (not the field) so closures capture the whole `Sync` wrapper.
    pub fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers pass offsets inside the buffer this pointer starts.
        unsafe { self.0.add(offset) }
    }
}

/// Below this many elements a kernel runs on the calling thread (waking workers costs more).
const PARALLEL_MIN: usize = 1 << 14;

/// `f(row_index, row_out)` for every row of `out` (rows of length `row`), spread over the pool.
pub fn par_rows(out: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let parallel = out.len() >= PARALLEL_MIN;
    for_rows(out, row, parallel, f)
}

fn for_rows(out: &mut [f32], row: usize, parallel: bool, f: impl Fn(usize, &mut [f32]) + Sync) {
    if row == 0 {
        return;
    }
    let rows = out.len() / row;
    if !parallel {
        for (r, chunk) in out.chunks_mut(row).enumerate() {
            f(r, chunk);
        }
        return;
    }
    let ptr = SharedMut(out.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(rows, |range| {
        for r in range {
            // SAFETY: rows are disjoint and `out` outlives the pool call.
            let chunk = unsafe { std::slice::from_raw_parts_mut(ptr.at(r * row), row) };
            f(r, chunk);
        }
    });
}

/// `f(range)` over disjoint ranges covering `0..tasks`, spread over the pool (each task is a
/// whole unit of work, e.g. one image and head of an attention: worth a worker even when there
/// are few); a range's tasks run one after another, so they can share scratch buffers.
pub fn par_task_ranges(tasks: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    if tasks <= 1 || candle_core::utils::get_num_threads() <= 1 {
        f(0..tasks);
        return;
    }
    candle_core::utils::barrier_pool().execute_chunked(tasks, f);
}

/// Σ over rows of `f(row_index, acc)` where each call adds its row's contribution into `acc`
/// (length `width`): each worker sums a block of rows into its own partial, then the partials
/// are added. Deterministic: block boundaries depend only on the sizes.
pub fn column_sums(rows: usize, width: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let blocks = if rows * width < PARALLEL_MIN {
        1
    } else {
        (candle_core::utils::get_num_threads() * 4).clamp(1, rows.max(1))
    };
    let per_block = rows.div_ceil(blocks).max(1);
    let mut partials = vec![0f32; blocks * width];
    for_rows(&mut partials, width, blocks > 1, |b, acc| {
        for r in b * per_block..((b + 1) * per_block).min(rows) {
            f(r, acc);
        }
    });
    let mut total = vec![0f32; width];
    for p in partials.chunks(width) {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_column_sums_cover_every_row_once() {
        for rows in [1usize, 3, 1000, 40_000] {
            let width = 3;
            let mut out = vec![0f32; rows * width];
            par_rows(&mut out, width, |r, o| o.fill(r as f32));
            assert!(out.chunks(width).enumerate().all(|(r, o)| o[0] == r as f32));
            let sums = column_sums(rows, width, |r, acc| {
                acc[0] += 1.0;
                acc[2] += (r % 7) as f32;
            });
            let want: f32 = (0..rows).map(|r| (r % 7) as f32).sum();
            assert_eq!(sums[0], rows as f32);
            assert_eq!(sums[1], 0.0);
            assert_eq!(sums[2], want);
        }
    }
}
