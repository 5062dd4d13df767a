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

/// `t`'s sums over `dims`, flattened.
fn sums(t: &Tensor, dims: &[usize]) -> Vec<f32> {
    t.sum_keepdim(dims.to_vec())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn assert_close(ours: &[f32], want: &[f64], what: &str) {
    assert_eq!(ours.len(), want.len(), "{what}");
    for (a, b) in ours.iter().zip(want) {
        assert!((*a as f64 - b).abs() < 1e-3, "{what}: {a} vs {b}");
    }
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
        let want = naive(&data, dims, mask);
        assert_close(&sums(&x, &reduce), &want, &format!("dims {reduce:?}"));
    }
    // A non-contiguous input (transposed) takes candle's strided path; same sums.
    let t = x.transpose(1, 3).unwrap();
    let theirs: Vec<f64> = sums(&t.contiguous().unwrap(), &[0, 2])
        .into_iter()
        .map(f64::from)
        .collect();
    assert_close(&sums(&t, &[0, 2]), &theirs, "transposed");
    // Size-1 dims, an offset (narrowed) view, rank 1 and rank 5.
    let y = Tensor::from_vec(data.clone(), (2, 1, 3, 4, 5), &Device::Cpu).unwrap();
    // Its size-1 dim 1 is summed or not at no cost: each case is a 4-d case of the loop.
    for (reduce, mask) in [
        (vec![1usize], [false; 4]),
        (vec![0, 1, 3], [true, false, true, false]),
        (vec![1, 2, 4], [false, true, false, true]),
        (vec![0, 1, 2, 3, 4], [true; 4]),
    ] {
        let want = naive(&data, dims, mask);
        assert_close(
            &sums(&y, &reduce),
            &want,
            &format!("rank 5, dims {reduce:?}"),
        );
    }
    let narrowed = x.narrow(0, 1, 1).unwrap();
    let want = naive(&data[60..], [1, 3, 4, 5], [true, false, true, false]);
    assert_close(&sums(&narrowed, &[0, 2]), &want, "narrowed");
    let v = Tensor::new(&[1f32, 2.0, 3.5], &Device::Cpu).unwrap();
    assert_eq!(v.sum_keepdim(0).unwrap().to_vec1::<f32>().unwrap(), [6.5]);
}
