//! DINO's projection head: a 3-layer MLP to a bottleneck, L2 normalisation, then a weight-normed
//! linear layer onto K prototypes. Parameter names follow DINO's `DINOHead` (`mlp.0`, `mlp.2`,
//! `mlp.4`, `last_layer.weight_v`, `last_layer.weight_g`).

use anyhow::Result;
use candle_core::{Module, Tensor, D};

use crate::config::pretrain::DinoSettings;
use crate::model::layers::{gelu, Linear};
use crate::model::params::{Init, Scope};
use crate::teacher::pseudo_labels::l2_normalize;

#[derive(Clone, Debug)]
pub struct DinoHead {
    pub layers: [Linear; 3],
    /// Direction of each prototype, `[K, bottleneck]`.
    pub weight_v: Tensor,
    /// Length of each prototype, `[K, 1]`; `None` when fixed at 1 (`norm_last_layer`).
    pub weight_g: Option<Tensor>,
}

impl DinoHead {
    pub fn new(scope: &Scope, in_dim: usize, cfg: &DinoSettings) -> Result<Self> {
        let mlp = scope.pp("mlp");
        let layers = [
            Linear::new(&mlp.pp(0), in_dim, cfg.hidden_dim, true)?,
            Linear::new(&mlp.pp(2), cfg.hidden_dim, cfg.hidden_dim, true)?,
            Linear::new(&mlp.pp(4), cfg.hidden_dim, cfg.bottleneck_dim, true)?,
        ];
        let last = scope.pp("last_layer");
        // PyTorch's default Linear init (kaiming-uniform, a = √5): U(±1/√fan_in).
        let bound = 1.0 / (cfg.bottleneck_dim as f32).sqrt();
        let weight_v = last.get(
            "weight_v",
            &[cfg.out_dim, cfg.bottleneck_dim],
            Init::Uniform(bound),
        )?;
        let weight_g = (!cfg.norm_last_layer)
            .then(|| last.get("weight_g", &[cfg.out_dim, 1], Init::Ones))
            .transpose()?;
        Ok(Self {
            layers,
            weight_v,
            weight_g,
        })
    }

    /// Names (relative to the head's scope) of the last layer's parameters, which DINO keeps
    /// frozen during the first epoch(s).
    pub fn last_layer_names() -> [&'static str; 2] {
        ["last_layer.weight_v", "last_layer.weight_g"]
    }

    /// The weight-normed prototypes `g · v / ‖v‖`, `[K, bottleneck]`.
    fn prototypes(&self) -> candle_core::Result<Tensor> {
        let norm = self
            .weight_v
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        let unit = self.weight_v.broadcast_div(&norm)?;
        match &self.weight_g {
            Some(g) => unit.broadcast_mul(g),
            None => Ok(unit),
        }
    }
}

impl Module for DinoHead {
    /// `[B, in_dim]` → prototype logits `[B, K]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = gelu(&self.layers[0].forward(x)?)?;
        let h = gelu(&self.layers[1].forward(&h)?)?;
        let h = l2_normalize(&self.layers[2].forward(&h)?)?;
        h.matmul(&self.prototypes()?.t()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ParamStore;
    use candle_core::Device;

    #[test]
    fn normed_prototypes_bound_the_logits_by_one() {
        let store = ParamStore::new(&Device::Cpu, 3);
        let cfg = DinoSettings {
            out_dim: 16,
            hidden_dim: 8,
            bottleneck_dim: 4,
            ..Default::default()
        };
        let head = DinoHead::new(&store.root(), 6, &cfg).unwrap();
        assert!(head.weight_g.is_none());
        let x = Tensor::randn(0f32, 3.0, (5, 6), &Device::Cpu).unwrap();
        let y = head.forward(&x).unwrap();
        assert_eq!(y.dims(), &[5, 16]);
        // Unit bottleneck features against unit prototypes: cosines.
        let max = y
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(max <= 1.0 + 1e-5 && max > 0.0, "{max}");
        let names: Vec<String> = store.names();
        assert!(names.contains(&"mlp.4.weight".to_string()));
        assert!(names.contains(&"last_layer.weight_v".to_string()));
    }
}
