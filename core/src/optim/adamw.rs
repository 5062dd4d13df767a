//! AdamW with parameter groups, global-norm clipping and a saveable state, matching
//! `torch.optim.AdamW` (decoupled weight decay applied as `p ← p·(1 − lr·wd)` before the Adam step).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::clip::{clip_coefficient, global_grad_norm, scaled};
use super::groups::ParamGroup;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient norm to this value; `None` disables clipping.
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm: None,
        }
    }
}

/// Where gradients come from: candle's `GradStore` (after `backward`), or tensors by parameter
/// name (all-reduced gradients, fixtures).
pub trait GradSource {
    fn grad(&self, name: &str, var: &Var) -> Option<Tensor>;
}

impl GradSource for GradStore {
    fn grad(&self, _name: &str, var: &Var) -> Option<Tensor> {
        self.get(var.as_tensor()).cloned()
    }
}

impl GradSource for BTreeMap<String, Tensor> {
    fn grad(&self, name: &str, _var: &Var) -> Option<Tensor> {
        self.get(name).cloned()
    }
}

/// Moments and step count of one parameter.
struct Moments {
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: u64,
}

pub struct AdamW {
    pub groups: Vec<ParamGroup>,
    pub config: AdamWConfig,
    state: BTreeMap<String, Moments>,
}

/// What one step did, for logging.
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub clip_coef: f64,
}

impl AdamW {
    pub fn new(groups: Vec<ParamGroup>, config: AdamWConfig) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        for g in &groups {
            for (name, _) in &g.params {
                if !seen.insert(name.clone()) {
                    bail!("parameter `{name}` is in more than one optimiser group");
                }
            }
        }
        Ok(Self {
            groups,
            config,
            state: BTreeMap::new(),
        })
    }

    /// Gradients in group order (`None` where a parameter has none).
    fn collect_grads(&self, grads: &impl GradSource) -> Vec<Option<Tensor>> {
        self.groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(n, v)| grads.grad(n, v)))
            .collect()
    }

    /// One update with scheduled `lr` and `weight_decay` (each group scales them). Parameters
    /// without a gradient are left alone, as torch does.
    pub fn step(
        &mut self,
        grads: &impl GradSource,
        lr: f64,
        weight_decay: f64,
    ) -> Result<StepStats> {
        let all_grads = self.collect_grads(grads);
        let grad_norm = global_grad_norm(all_grads.iter().flatten())?;
        if !grad_norm.is_finite() {
            anyhow::bail!(
                "the gradient norm is {grad_norm}: training diverged (the weights are left as they \
                 were at this step; learning rate {lr:.3e})"
            );
        }
        let clip_coef = match self.config.max_grad_norm {
            Some(max) => clip_coefficient(grad_norm, max),
            None => 1.0,
        };
        let (b1, b2, eps) = (self.config.beta1, self.config.beta2, self.config.eps);
        let mut all_grads = all_grads.into_iter();
        for group in &self.groups {
            let lr = lr * group.lr_scale;
            let wd = weight_decay * group.weight_decay_scale;
            for (name, var) in &group.params {
                let Some(grad) = all_grads.next().flatten() else {
                    continue;
                };
                // Detached: a gradient can carry the backward pass's graph (candle tracks ops on
                // the forward's tensors), and the moments must not keep it, nor each other, alive.
                let grad = scaled(&grad.detach(), clip_coef)?;
                let st = match self.state.get_mut(name) {
                    Some(st) => st,
                    None => {
                        let zeros = var.zeros_like()?;
                        self.state.insert(
                            name.clone(),
                            Moments {
                                exp_avg: zeros.clone(),
                                exp_avg_sq: zeros,
                                step: 0,
                            },
                        );
                        self.state.get_mut(name).expect("just inserted")
                    }
                };
                st.step += 1;
                st.exp_avg = ((&st.exp_avg * b1)? + (&grad * (1.0 - b1))?)?;
                st.exp_avg_sq = ((&st.exp_avg_sq * b2)? + (grad.sqr()? * (1.0 - b2))?)?;
                let bc1 = 1.0 - b1.powi(st.step as i32);
                let bc2 = 1.0 - b2.powi(st.step as i32);
                let denom = ((st.exp_avg_sq.sqrt()? / bc2.sqrt())? + eps)?;
                let update = (st.exp_avg.div(&denom)? * (lr / bc1))?;
                let decayed = if wd != 0.0 {
                    (var.as_tensor() * (1.0 - lr * wd))?
                } else {
                    var.as_tensor().clone()
                };
                var.set(&(decayed - update)?.detach())?;
            }
        }
        Ok(StepStats {
            grad_norm,
            clip_coef,
        })
    }

    /// Moments and per-parameter step counts as named tensors (`exp_avg.<p>`, `exp_avg_sq.<p>`,
    /// `step.<p>`), ready for safetensors.
    pub fn state_dict(&self) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for (name, st) in &self.state {
            out.insert(format!("exp_avg.{name}"), st.exp_avg.clone());
            out.insert(format!("exp_avg_sq.{name}"), st.exp_avg_sq.clone());
            out.insert(
                format!("step.{name}"),
                Tensor::new(&[st.step as i64], &Device::Cpu)?,
            );
        }
        Ok(out)
    }

    /// Restores a state saved by [`AdamW::state_dict`]. Every entry must name a parameter of this
    /// optimiser with the same shape.
    pub fn load_state_dict(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()> {
        let vars: BTreeMap<&str, &Var> = self
            .groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(n, v)| (n.as_str(), v)))
            .collect();
        let mut restored = BTreeMap::new();
        for (key, t) in state {
            let Some(name) = key.strip_prefix("step.") else {
                continue;
            };
            let var = vars
                .get(name)
                .with_context(|| format!("optimiser state names unknown parameter `{name}`"))?;
            let get = |kind: &str| -> Result<Tensor> {
                let t = state
                    .get(&format!("{kind}.{name}"))
                    .with_context(|| format!("optimiser state lacks `{kind}.{name}`"))?;
                if t.dims() != var.dims() {
                    bail!(
                        "optimiser state `{kind}.{name}` has shape {:?}, parameter has {:?}",
                        t.dims(),
                        var.dims()
                    );
                }
                Ok(t.to_dtype(var.dtype())?.to_device(var.device())?)
            };
            let step = t.to_dtype(DType::I64)?.flatten_all()?.to_vec1::<i64>()?[0] as u64;
            restored.insert(
                name.to_string(),
                Moments {
                    exp_avg: get("exp_avg")?,
                    exp_avg_sq: get("exp_avg_sq")?,
                    step,
                },
            );
        }
        self.state = restored;
        Ok(())
    }
}
