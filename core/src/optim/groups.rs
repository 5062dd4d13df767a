//! Parameter groups: which variables get weight decay and which LR scale (layer-wise decay).

use candle_core::Var;

/// A set of variables sharing weight-decay and LR multipliers.
#[derive(Clone)]
pub struct ParamGroup {
    pub name: String,
    pub params: Vec<(String, Var)>,
    /// Multiplies the scheduled weight decay (0 for norms, biases, embeddings, prompts).
    pub weight_decay_scale: f64,
    /// Multiplies the scheduled LR (layer-wise LR decay).
    pub lr_scale: f64,
}

/// Parameters that must not be decayed: 1-D tensors (norms, biases, gates' biases), the position
/// embedding, the CLS token and task prompts — as DINO, timm and SOLIDER do.
pub fn is_no_decay(name: &str, rank: usize) -> bool {
    rank <= 1
        || name.ends_with(".bias")
        || name == "pos_embed"
        || name == "cls_token"
        || name.starts_with("prompts.delta.")
        || name.contains("norm")
}

/// Layer id for layer-wise LR decay (BEiT convention): embeddings and prompts are 0, block i is
/// i + 1, everything after the blocks (final norm, heads) is `depth + 1`.
pub fn layer_id(name: &str, depth: usize) -> usize {
    if name.starts_with("cls_token")
        || name.starts_with("pos_embed")
        || name.starts_with("patch_embed")
        || name.starts_with("prompts.")
    {
        0
    } else if let Some(rest) = name.strip_prefix("blocks.") {
        rest.split('.')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .map_or(depth + 1, |i| i + 1)
    } else {
        depth + 1
    }
}

/// The groups of a backbone and its heads: the backbone's by [`build_groups`], the heads' apart,
/// at the last layer's LR times `head_lr_scale`.
pub fn backbone_and_head_groups(
    backbone: &[(String, Var)],
    heads: &[(String, Var)],
    depth: usize,
    layer_decay: f64,
    head_lr_scale: f64,
) -> Vec<ParamGroup> {
    let mut groups = build_groups(backbone, depth, layer_decay);
    groups.extend(build_groups(heads, 0, 1.0).into_iter().map(|mut g| {
        g.name = format!("head_{}", g.name);
        g.lr_scale = head_lr_scale;
        g
    }));
    groups
}

/// Splits named variables into groups by (decay?, layer id). `layer_decay = 1.0` gives two groups.
pub fn build_groups(params: &[(String, Var)], depth: usize, layer_decay: f64) -> Vec<ParamGroup> {
    let mut groups: Vec<ParamGroup> = Vec::new();
    for (name, var) in params {
        let decay = !is_no_decay(name, var.rank());
        // Without layer decay every layer shares one LR: keep two groups, not depth + 2.
        let lid = if layer_decay == 1.0 {
            0
        } else {
            layer_id(name, depth)
        };
        let lr_scale = if layer_decay == 1.0 {
            1.0
        } else {
            layer_decay.powi((depth + 1 - lid) as i32)
        };
        let gname = format!("{}layer{lid}", if decay { "decay_" } else { "no_decay_" });
        match groups.iter_mut().find(|g| g.name == gname) {
            Some(g) => g.params.push((name.clone(), var.clone())),
            None => groups.push(ParamGroup {
                name: gname,
                params: vec![(name.clone(), var.clone())],
                weight_decay_scale: if decay { 1.0 } else { 0.0 },
                lr_scale,
            }),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn var(shape: &[usize]) -> Var {
        Var::zeros(shape, DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn heads_get_their_own_scale_and_the_backbone_keeps_layer_decay() {
        let backbone = vec![
            ("patch_embed.proj.weight".to_string(), var(&[4, 3])),
            ("blocks.1.mlp.fc1.weight".to_string(), var(&[4, 4])),
            ("norm.weight".to_string(), var(&[4])),
        ];
        let heads = vec![
            ("fc.weight".to_string(), var(&[2, 4])),
            ("fc.bias".to_string(), var(&[2])),
        ];
        let groups = backbone_and_head_groups(&backbone, &heads, 2, 0.5, 10.0);
        let scale_of = |name: &str| {
            let g = groups
                .iter()
                .find(|g| g.params.iter().any(|(n, _)| n == name))
                .unwrap();
            (g.lr_scale, g.weight_decay_scale)
        };
        // depth 2: embeddings 0.5³, block 1 (layer 2) 0.5¹, final norm 0.5⁰.
        assert_eq!(scale_of("patch_embed.proj.weight"), (0.125, 1.0));
        assert_eq!(scale_of("blocks.1.mlp.fc1.weight"), (0.5, 1.0));
        assert_eq!(scale_of("norm.weight"), (1.0, 0.0));
        assert_eq!(scale_of("fc.weight"), (10.0, 1.0));
        assert_eq!(scale_of("fc.bias"), (10.0, 0.0));
        // Every variable is in exactly one group.
        let n: usize = groups.iter().map(|g| g.params.len()).sum();
        assert_eq!(n, 5);
    }
}
