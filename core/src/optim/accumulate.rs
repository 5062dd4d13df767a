//! Gradient accumulation: the gradients of several micro-batches summed by parameter before one
//! optimiser step. Each micro-batch's loss is weighted by its share of the step's images, so K
//! micro-batches of B images give the step that one batch of K·B gives when the loss is a mean
//! over images (and a micro-batch shortened by unreadable images weighs what it holds). Where it
//! is not, the step differs as it does across ranks under data parallelism: batch-hard triplet
//! mining and batch norm see one micro-batch at a time (batch norm's running statistics move K
//! times per step), and parsing's cross entropy, a mean over labelled pixels, weighs a
//! micro-batch by its images rather than its pixels. With more than one micro-batch the sum
//! costs one more copy of the gradients.

use std::collections::BTreeMap;

use anyhow::Result;
use candle_core::{backprop::GradStore, Tensor};

use super::adamw::AdamW;

/// Adds to `sum` (gradients by parameter name, which `AdamW::step` reads as a `GradSource`) the
/// gradients `grads` holds for `opt`'s parameters (detached: the sum must not keep a
/// micro-batch's graph alive).
pub fn add_grads(sum: &mut BTreeMap<String, Tensor>, opt: &AdamW, grads: &GradStore) -> Result<()> {
    for (name, var) in opt.groups.iter().flat_map(|g| &g.params) {
        let Some(grad) = grads.get(var.as_tensor()) else {
            continue;
        };
        let grad = grad.detach();
        match sum.get_mut(name) {
            Some(total) => *total = (&*total + grad)?,
            None => {
                sum.insert(name.clone(), grad);
            }
        }
    }
    Ok(())
}

/// The weight of a micro-batch of `len` samples in a step of `total` samples.
pub fn share(len: usize, total: usize) -> f64 {
    len as f64 / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::optim::{AdamWConfig, GradSource, ParamGroup};

    /// Two micro-batches weighted by their shares give the gradient of the whole batch's mean.
    #[test]
    fn micro_batch_gradients_weighted_by_share_sum_to_the_whole_batch_gradient() -> Result<()> {
        let w = Var::from_slice(&[0.5f32, -1.0], 2, &Device::Cpu)?;
        let opt = AdamW::new(
            vec![ParamGroup {
                name: "all".into(),
                params: vec![("w".into(), w.clone())],
                lr_scale: 1.0,
                weight_decay_scale: 1.0,
            }],
            AdamWConfig::default(),
        )?;
        let x = Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6.], (3, 2), &Device::Cpu)?;
        // loss = mean over samples of (x·w)²
        let loss = |x: &Tensor| -> Result<Tensor> {
            Ok(x.matmul(&w.as_tensor().unsqueeze(1)?)?.sqr()?.mean_all()?)
        };
        let whole = loss(&x)?.backward()?;
        let mut sum = BTreeMap::new();
        for (start, len) in [(0, 2), (2, 1)] {
            let part = (loss(&x.narrow(0, start, len)?)? * share(len, 3))?;
            add_grads(&mut sum, &opt, &part.backward()?)?;
        }
        let want = whole.get(w.as_tensor()).unwrap().to_vec1::<f32>()?;
        let got = sum.grad("w", &w).unwrap().to_vec1::<f32>()?;
        for (g, e) in got.iter().zip(&want) {
            assert!(
                (g - e).abs() < 1e-5 * e.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
        // A parameter without a gradient stays absent (AdamW leaves it alone).
        assert!(sum.grad("other", &w).is_none());
        Ok(())
    }
}
