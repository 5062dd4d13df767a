//! The vendored candle's sum over any set of dims (vendor/candle-core/PATCHES.md, fourth change)
//! equals a plain f64 loop, for every subset of the dims of a 4-d tensor, contiguous or not.

use candle_core::{Device, Tensor};

/// Σ of `x` (dims `[2, 3, 4, 5]`, row-major `data`) over the dims in `mask`, kept as size 1.
fn naive(data: &[f32], dims: [usize; 4], mask: [bool; 4]) -> Vec<f64> {
    let out_dims: Vec<usize> = (0..4).map(|d| if mask[d] { 1 } else { dims[d] }).collect();
    let mut out = vec![0f64; out_dims.iter().product()];
    for (i, v) in data.iter().enumerate() {
        let mut rest = i;
        let mut idx = [0usize; 4];
        for d in (0..4).rev() {
            idx[d] = rest % dims[d];
            rest /= dims[d];
        }
        let mut o = 0;
        for d in 0..4 {
            o = o * out_dims[d] + if mask[d] { 0 } else { idx[d] };
        }
        out[o] += *v as f64;
    }
    out
}

#[test]
fn sums_over_every_set_of_dims_equal_a_plain_loop() {
    let dims = [2usize, 3, 4, 5];
    let n: usize = dims.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
        .collect();
    let x = Tensor::from_vec(data.clone(), dims.to_vec(), &Device::Cpu).unwrap();
    for subset in 1..16u32 {
        let mask = [0, 1, 2, 3].map(|d| subset & (1 << d) != 0);
        let reduce: Vec<usize> = (0..4).filter(|d| mask[*d]).collect();
        let ours: Vec<f32> = x
            .sum_keepdim(reduce.clone())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = naive(&data, dims, mask);
        assert_eq!(ours.len(), want.len(), "dims {reduce:?}");
        for (a, b) in ours.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-3, "dims {reduce:?}: {a} vs {b}");
        }
    }
    // A non-contiguous input (transposed) takes candle's strided path; same sums.
    let t = x.transpose(1, 3).unwrap();
    let ours: Vec<f32> = t
        .sum_keepdim(vec![0, 2])
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let theirs: Vec<f32> = t
        .contiguous()
        .unwrap()
        .sum_keepdim(vec![0, 2])
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    for (a, b) in ours.iter().zip(&theirs) {
        assert!((a - b).abs() < 1e-3);
    }
}
