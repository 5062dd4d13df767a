//! Prompt-Controlled Mixture of Experts (DESIGN §3).
//!
//! With `s_t` the mean of task t's prompt tokens:
//!   g_t     = softmax(W_g s_t / τ)          ∈ R^E   (optionally top-k, renormalised)
//!   c_{t,e} = sigmoid(W_{c,e} s_t)          ∈ R^d
//!   y       = Σ_e g_{t,e} · (c_{t,e} ⊙ f_e(x))
//! The gates depend on the task only, not on the token, so for a fixed task they are constants
//! and fold into the experts' output layers ([`PcMoe::fold`]).

use anyhow::{bail, Result};
use candle_core::{Module, Tensor, D};
use candle_nn::ops::sigmoid;

use super::activation::Activation;
use super::layers::{softmax_last_dim, Linear, LINEAR_STD};
use super::mlp::Mlp;
use super::params::{Init, Scope};

#[derive(Clone, Debug)]
pub struct PcMoe {
    pub experts: Vec<Mlp>,
    /// W_g: `[E, d]`.
    pub gate: Tensor,
    /// W_c stacked over experts: `[E·d, d]`.
    pub channel_gate: Tensor,
    pub temperature: f64,
    pub top_k: Option<usize>,
}

/// The gates of one task: `global` `[E]` and `channel` `[E, d]`.
#[derive(Clone, Debug)]
pub struct MoeGates {
    pub global: Tensor,
    pub channel: Tensor,
}

impl PcMoe {
    pub fn new(
        scope: &Scope,
        dim: usize,
        num_experts: usize,
        expert_hidden: usize,
        temperature: f64,
        top_k: Option<usize>,
        act: Activation,
    ) -> Result<Self> {
        let experts = (0..num_experts)
            .map(|e| Mlp::new(&scope.pp("experts").pp(e), dim, expert_hidden, act))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            experts,
            gate: scope.get(
                "gate.weight",
                &[num_experts, dim],
                Init::TruncNormal(LINEAR_STD),
            )?,
            channel_gate: scope.get(
                "channel_gate.weight",
                &[num_experts * dim, dim],
                Init::TruncNormal(LINEAR_STD),
            )?,
            temperature,
            top_k,
        })
    }

    pub fn detached(&self) -> Self {
        Self {
            experts: self.experts.iter().map(Mlp::detached).collect(),
            gate: self.gate.detach(),
            channel_gate: self.channel_gate.detach(),
            ..self.clone()
        }
    }

    pub fn num_experts(&self) -> usize {
        self.experts.len()
    }

    /// Gates for a task summary `s` of shape `[d]`.
    pub fn gates(&self, s: &Tensor) -> candle_core::Result<MoeGates> {
        let e = self.num_experts();
        let d = s.dim(0)?;
        let s_col = s.unsqueeze(1)?;
        let logits = (self.gate.matmul(&s_col)?.squeeze(1)? / self.temperature)?;
        let mut global = softmax_last_dim(&logits)?;
        if let Some(k) = self.top_k.filter(|k| *k < e) {
            // Selection is not differentiable; the kept values are.
            let values = global.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
            let mut order: Vec<usize> = (0..e).collect();
            order.sort_by(|a, b| values[*b].total_cmp(&values[*a]));
            let mut mask = vec![0f32; e];
            for i in order.into_iter().take(k) {
                mask[i] = 1.0;
            }
            let mask = Tensor::from_vec(mask, e, s.device())?.to_dtype(global.dtype())?;
            let kept = (global * mask)?;
            global = kept.broadcast_div(&kept.sum_keepdim(D::Minus1)?)?;
        }
        let channel = sigmoid(&self.channel_gate.matmul(&s_col)?.squeeze(1)?)?.reshape((e, d))?;
        Ok(MoeGates { global, channel })
    }

    /// Σ_e g_e · (c_e ⊙ f_e(x)), computed as one MLP: the experts' `fc1` stacked along the
    /// hidden axis, and their `fc2` with rows scaled by g_e · c_e placed side by side. The same
    /// sum as running every expert and scaling its output (see [`Self::forward_per_expert`]),
    /// but two large matmuls instead of 2E small ones, and the gates scale `[d, hidden]` weights
    /// instead of `[B, N, d]` activations — gradients reach the gates through the weights.
    pub fn forward(&self, x: &Tensor, s: &Tensor) -> candle_core::Result<Tensor> {
        let gates = self.gates(s)?;
        let scale = gates.channel.broadcast_mul(&gates.global.unsqueeze(1)?)?; // [E, d]
        let all: Vec<usize> = (0..self.experts.len()).collect();
        self.merged(&scale, &all)?.forward(x)
    }

    /// The experts `kept` as one MLP: `fc1`s stacked along the hidden axis, `fc2`s side by side
    /// with expert e's rows scaled by `scale[e]` (`[E, d]`: g_e · c_e), the biases of `fc2`
    /// scaled and summed.
    fn merged(&self, scale: &Tensor, kept: &[usize]) -> candle_core::Result<Mlp> {
        let (mut w1, mut b1, mut w2) = (Vec::new(), Vec::new(), Vec::new());
        let mut b2: Option<Tensor> = None;
        for &e in kept {
            let expert = &self.experts[e];
            let se = scale.get(e)?; // [d]
            w1.push(expert.fc1.weight.clone());
            b1.push(expert.fc1.bias.clone().expect("expert fc1 has a bias"));
            w2.push(expert.fc2.weight.broadcast_mul(&se.unsqueeze(1)?)?);
            let bias = (expert.fc2.bias.as_ref().expect("expert fc2 has a bias") * &se)?;
            b2 = Some(match b2 {
                None => bias,
                Some(acc) => (acc + bias)?,
            });
        }
        Ok(Mlp {
            fc1: Linear::from_tensors(Tensor::cat(&w1, 0)?, Some(Tensor::cat(&b1, 0)?)),
            fc2: Linear::from_tensors(Tensor::cat(&w2, 1)?, b2),
            act: self.experts[0].act,
        })
    }

    /// The literal mixture: every expert runs, and its output is scaled by g_e · c_e (the
    /// reference [`Self::forward`] is tested against).
    pub fn forward_per_expert(&self, x: &Tensor, s: &Tensor) -> candle_core::Result<Tensor> {
        let gates = self.gates(s)?;
        let scale = gates.channel.broadcast_mul(&gates.global.unsqueeze(1)?)?; // [E, d]
        let mut y: Option<Tensor> = None;
        for (e, expert) in self.experts.iter().enumerate() {
            let out = expert.forward(x)?.broadcast_mul(&scale.get(e)?)?;
            y = Some(match y {
                None => out,
                Some(acc) => (acc + out)?,
            });
        }
        Ok(y.expect("at least one expert"))
    }

    /// Multiply-adds per token of the unfolded mixture (all experts run).
    pub fn flops_per_token(&self) -> u64 {
        self.experts.iter().map(Mlp::flops_per_token).sum()
    }

    /// Folds the gates of one task into a single plain MLP: experts whose global gate is at most
    /// `threshold` are dropped, the kept ones are concatenated along the hidden axis, and
    /// g_e · c_e scales the rows of each kept expert's `fc2`.
    pub fn fold(&self, s: &Tensor, threshold: f64) -> Result<Mlp> {
        let gates = self.gates(s)?;
        let g = gates
            .global
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        let kept: Vec<usize> = (0..g.len()).filter(|e| g[*e] as f64 > threshold).collect();
        if kept.is_empty() {
            bail!("gate folding dropped every expert (threshold {threshold}, gates {g:?})");
        }
        let scale = gates.channel.broadcast_mul(&gates.global.unsqueeze(1)?)?;
        Ok(self.merged(&scale, &kept)?.detached())
    }
}
