//! Element-wise loops and row reductions written so the compiler vectorises them, each compiled
//! twice: for the baseline x86-64 target and for AVX2 + FMA, picked at run time (the release
//! build targets baseline x86-64, where they would run 4 lanes wide instead of 8).
//! Reductions keep 8 independent partial sums (an in-order f32 sum cannot be vectorised).

const LANES: usize = 8;

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Defines `$name` running `$body` with the arguments, compiled for AVX2 + FMA when available.
macro_rules! multiversion {
    ($(#[$doc:meta])* pub fn $name:ident<$($g:ident: $bound:path),*>($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        $(#[$doc])*
        #[inline]
        pub fn $name<$($g: $bound),*>($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn generic<$($g: $bound),*>($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<$($g: $bound),*>($($arg: $ty),*) -> $ret {
                generic($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                return unsafe { avx2($($arg),*) };
            }
            generic($($arg),*)
        }
    };
}

multiversion! {
    /// `out[i] = f(a[i])`.
    pub fn map1<F: Fn(f32) -> f32>(a: &[f32], out: &mut [f32], f: F) -> () {
        for (o, &x) in out.iter_mut().zip(a) {
            *o = f(x);
        }
    }
}

multiversion! {
    /// `out[i] = f(a[i], b[i])`.
    pub fn map2<F: Fn(f32, f32) -> f32>(a: &[f32], b: &[f32], out: &mut [f32], f: F) -> () {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    }
}

multiversion! {
    /// `out[i] = f(a[i], b[i], c[i])`.
    pub fn map3<F: Fn(f32, f32, f32) -> f32>(a: &[f32], b: &[f32], c: &[f32], out: &mut [f32], f: F) -> () {
        for (((o, &x), &y), &z) in out.iter_mut().zip(a).zip(b).zip(c) {
            *o = f(x, y, z);
        }
    }
}

multiversion! {
    /// `acc[i] = f(acc[i], a[i], b[i])`.
    pub fn update2<F: Fn(f32, f32, f32) -> f32>(acc: &mut [f32], a: &[f32], b: &[f32], f: F) -> () {
        for ((o, &x), &y) in acc.iter_mut().zip(a).zip(b) {
            *o = f(*o, x, y);
        }
    }
}

multiversion! {
    /// Σ f(a[i], b[i]) in 8 interleaved partial sums.
    pub fn sum2<F: Fn(f32, f32) -> f32>(a: &[f32], b: &[f32], f: F) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [0f32; LANES];
        let full = n - n % LANES;
        for (ca, cb) in a[..full].chunks_exact(LANES).zip(b[..full].chunks_exact(LANES)) {
            for l in 0..LANES {
                acc[l] += f(ca[l], cb[l]);
            }
        }
        let mut total: f32 = acc.iter().sum();
        for i in full..n {
            total += f(a[i], b[i]);
        }
        total
    }
}

/// Σ f(a[i]).
#[inline]
pub fn sum1(a: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    sum2(a, a, |x, _| f(x))
}

multiversion! {
    /// max a[i] (−∞ for an empty slice) in 8 interleaved partial maxima.
    pub fn max<>(a: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let full = a.len() - a.len() % LANES;
        for c in a[..full].chunks_exact(LANES) {
            for l in 0..LANES {
                acc[l] = acc[l].max(c[l]);
            }
        }
        let mut m = acc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for &x in &a[full..] {
            m = m.max(x);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_and_reductions_agree_with_plain_iterators() {
        let a: Vec<f32> = (0..37)
            .map(|i| ((i * 7919) % 101) as f32 / 13.0 - 3.0)
            .collect();
        let b: Vec<f32> = (0..37)
            .map(|i| ((i * 104729) % 89) as f32 / 7.0 - 5.0)
            .collect();
        let mut out = vec![0f32; 37];
        map2(&a, &b, &mut out, |x, y| x * y + 1.0);
        assert!(out
            .iter()
            .zip(a.iter().zip(&b))
            .all(|(o, (x, y))| *o == x * y + 1.0));
        map3(&a, &b, &a, &mut out, |x, y, z| x - y * z);
        assert!(out
            .iter()
            .zip(a.iter().zip(&b))
            .all(|(o, (x, y))| *o == x - y * x));
        let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((sum2(&a, &b, |x, y| x * y) - dot).abs() < 1e-4);
        assert!((sum1(&a, |x| x) - a.iter().sum::<f32>()).abs() < 1e-4);
        assert_eq!(max(&a), a.iter().copied().fold(f32::MIN, f32::max));
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        let mut acc = vec![1f32; 37];
        update2(&mut acc, &a, &b, |s, x, y| s + x * y);
        assert!(acc
            .iter()
            .zip(a.iter().zip(&b))
            .all(|(s, (x, y))| *s == 1.0 + x * y));
    }
}
