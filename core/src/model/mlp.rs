//! The transformer MLP (`fc1` → activation → `fc2`), also the shape of one PC-MoE expert.

use anyhow::Result;
use candle_core::{Module, Tensor};

use super::activation::Activation;
use super::layers::Linear;
use super::params::Scope;

#[derive(Clone, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub act: Activation,
}

impl Mlp {
    pub fn new(scope: &Scope, dim: usize, hidden: usize, act: Activation) -> Result<Self> {
        Ok(Self {
            fc1: Linear::new(&scope.pp("fc1"), dim, hidden, true)?,
            fc2: Linear::new(&scope.pp("fc2"), hidden, dim, true)?,
            act,
        })
    }

    pub fn detached(&self) -> Self {
        Self {
            fc1: self.fc1.detached(),
            fc2: self.fc2.detached(),
            act: self.act,
        }
    }

    pub fn hidden(&self) -> usize {
        self.fc1.out_dim()
    }

    /// Multiply-adds per token.
    pub fn flops_per_token(&self) -> u64 {
        2 * (self.fc1.in_dim() * self.fc1.out_dim()) as u64
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.fc2.forward(&self.act.apply(&self.fc1.forward(x)?)?)
    }
}
