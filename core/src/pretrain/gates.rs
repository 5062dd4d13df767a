//! What PC-MoE's gates do per task: the global gate g_t of every PC-MoE block for every task, as
//! numbers for `metrics.jsonl` (with each gate's entropy and the task–expert mutual information
//! of each block) and as a heatmap (rows: tasks; columns: blocks × experts); and Mod-Squad's
//! mutual-information loss on those gates, which makes tasks pick experts of their own.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use candle_core::{Tensor, D};

use crate::charts::heatmap::{write_heatmap, Heatmap};
use crate::model::vit::{BlockMlp, Vit};
use crate::optim::GradSource;

/// Per task, per PC-MoE block (in block order), the global gate over the experts.
pub type GateTable = BTreeMap<String, Vec<(usize, Vec<f32>)>>;

/// The global gates of every task of `vit`; empty without PC-MoE blocks or prompts.
pub fn gate_table(vit: &Vit) -> Result<GateTable> {
    let mut out = GateTable::new();
    for task in vit.tasks() {
        let Some(prompt) = vit.prompt_tokens(Some(&task))? else {
            continue;
        };
        let summary = prompt.mean(0)?.detach();
        let mut rows = Vec::new();
        for (i, block) in vit.blocks.iter().enumerate() {
            if let BlockMlp::Moe(moe) = &block.mlp {
                let g = moe.gates(&summary)?.global;
                rows.push((i, g.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?));
            }
        }
        if !rows.is_empty() {
            out.insert(task, rows);
        }
    }
    Ok(out)
}

/// Entropy (nats) of a distribution.
fn entropy(p: &[f32]) -> f64 {
    -p.iter()
        .filter(|v| **v > 0.0)
        .map(|v| *v as f64 * (*v as f64).ln())
        .sum::<f64>()
}

/// Per task, per PC-MoE block: the entropy of g_t over ln E (1 = uniform, 0 = one expert).
pub fn gate_entropy(table: &GateTable) -> BTreeMap<String, Vec<f64>> {
    table
        .iter()
        .map(|(task, rows)| {
            let h = rows
                .iter()
                .map(|(_, g)| entropy(g) / (g.len().max(2) as f64).ln())
                .collect();
            (task.clone(), h)
        })
        .collect()
}

/// Per PC-MoE block, the mutual information (nats) between task and expert with the tasks of
/// `table` equally likely: H(mean_t g_t) − mean_t H(g_t). 0 when every task gates alike.
pub fn task_expert_mi(table: &GateTable) -> Vec<f64> {
    let rows: Vec<&Vec<(usize, Vec<f32>)>> = table.values().collect();
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|b| {
            let gates: Vec<&Vec<f32>> = rows.iter().map(|r| &r[b].1).collect();
            let e = gates[0].len();
            let t = gates.len() as f32;
            let marginal: Vec<f32> = (0..e)
                .map(|k| gates.iter().map(|g| g[k]).sum::<f32>() / t)
                .collect();
            entropy(&marginal) - gates.iter().map(|g| entropy(g)).sum::<f64>() / t as f64
        })
        .collect()
}

/// Mod-Squad's loss on task-level gates: minus the mean over PC-MoE blocks of the task–expert
/// mutual information of the global gates of `tasks` (differentiable in the gate weights and the
/// prompts). `None` without PC-MoE blocks, prompts or two tasks.
pub fn mi_loss(vit: &Vit, tasks: &[&str]) -> Result<Option<Tensor>> {
    if tasks.len() < 2 {
        return Ok(None);
    }
    let mut summaries = Vec::new();
    for t in tasks {
        let Some(prompt) = vit.prompt_tokens(Some(t))? else {
            return Ok(None);
        };
        summaries.push(prompt.mean(0)?);
    }
    let mut per_block = Vec::new();
    for block in &vit.blocks {
        if let BlockMlp::Moe(moe) = &block.mlp {
            let g = summaries
                .iter()
                .map(|s| moe.gates(s).map(|g| g.global))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let g = Tensor::stack(&g, 0)?; // [T, E]
            let h = |p: &Tensor| -> candle_core::Result<Tensor> {
                (p * p.clamp(1e-12, 1.0)?.log()?)?.sum(D::Minus1)?.neg()
            };
            let marginal = g.mean(0)?;
            per_block.push((h(&marginal)? - h(&g)?.mean(0)?)?);
        }
    }
    if per_block.is_empty() {
        return Ok(None);
    }
    Ok(Some(Tensor::stack(&per_block, 0)?.mean(0)?.neg()?))
}

/// Why gates move or not, on a logged step: the size of the task summaries s_t they read and how
/// alike the tasks' are, the spread of the gate logits, and the gradient the gate weights get
/// against their size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GateDiagnostics {
    /// Mean ‖s_t‖ over the tasks.
    pub summary_norm: f64,
    /// Mean cosine between two tasks' summaries.
    pub summary_cosine: f64,
    /// Mean over blocks and tasks of max − min of the global gate's logits W_g s_t / τ.
    pub logit_spread: f64,
    /// ‖∇W‖ / ‖W‖ over the gate weights (W_g and W_c of every PC-MoE block).
    pub relative_grad: f64,
}

/// The [`GateDiagnostics`] of `tasks` on `vit`, with the step's gradients `grads` of the gate
/// weights `gate_vars`; `None` without PC-MoE or prompts.
pub fn gate_diagnostics(
    vit: &Vit,
    tasks: &[&str],
    gate_vars: &[(String, candle_core::Var)],
    grads: &impl GradSource,
) -> Result<Option<GateDiagnostics>> {
    let mut summaries = Vec::new();
    for t in tasks {
        let Some(prompt) = vit.prompt_tokens(Some(t))? else {
            return Ok(None);
        };
        let s = prompt.mean(0)?.detach().to_dtype(candle_core::DType::F32)?;
        summaries.push(s.to_vec1::<f32>()?);
    }
    let moes: Vec<_> = vit
        .blocks
        .iter()
        .filter_map(|b| match &b.mlp {
            BlockMlp::Moe(m) => Some(m),
            _ => None,
        })
        .collect();
    if summaries.is_empty() || moes.is_empty() {
        return Ok(None);
    }
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let summary_norm = summaries.iter().map(|s| norm(s)).sum::<f64>() / summaries.len() as f64;
    let (mut cos, mut pairs) = (0.0, 0usize);
    for i in 0..summaries.len() {
        for j in i + 1..summaries.len() {
            let dot: f64 = summaries[i]
                .iter()
                .zip(&summaries[j])
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum();
            cos += dot / (norm(&summaries[i]) * norm(&summaries[j])).max(1e-12);
            pairs += 1;
        }
    }
    let mut spread = 0.0;
    for moe in &moes {
        let w = moe.gate.detach();
        for s in &summaries {
            let s = Tensor::from_vec(s.clone(), (s.len(), 1), w.device())?.to_dtype(w.dtype())?;
            let logits = (w.matmul(&s)? / moe.temperature)?
                .flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()?;
            let (lo, hi) = logits
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            spread += (hi - lo) as f64;
        }
    }
    let (mut g2, mut w2) = (0.0, 0.0);
    for (name, var) in gate_vars {
        let sq = |t: &Tensor| -> Result<f64> {
            Ok(t.to_dtype(candle_core::DType::F32)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f32>()? as f64)
        };
        w2 += sq(var.as_tensor())?;
        if let Some(g) = grads.grad(name, var) {
            g2 += sq(&g)?;
        }
    }
    Ok(Some(GateDiagnostics {
        summary_norm,
        summary_cosine: if pairs == 0 {
            f64::NAN
        } else {
            cos / pairs as f64
        },
        logit_spread: spread / (moes.len() * summaries.len()) as f64,
        relative_grad: g2.sqrt() / w2.sqrt().max(1e-12),
    }))
}

/// Writes the heatmap: one row per task, one column per (block, expert), blocks labelled `b<i>`.
pub fn write_gate_heatmap(path: &Path, table: &GateTable) -> Result<()> {
    let Some(first) = table.values().next() else {
        return Ok(());
    };
    let map = Heatmap {
        title: "global gate g_t per task x block (experts)",
        groups: first.iter().map(|(block, _)| format!("b{block}")).collect(),
        per_group: first.first().map_or(0, |(_, g)| g.len()),
        rows: table
            .iter()
            .map(|(task, blocks)| {
                let gates = blocks.iter().flat_map(|(_, g)| g.iter().copied());
                (task.clone(), gates.collect())
            })
            .collect(),
    };
    write_heatmap(path, &map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(&str, Vec<f32>)]) -> GateTable {
        rows.iter()
            .map(|(t, g)| (t.to_string(), vec![(0, g.clone())]))
            .collect()
    }

    #[test]
    fn entropy_and_mutual_information_of_hand_made_gates() {
        // Uniform gates: entropy 1 (of ln 4), no information about the task.
        let uniform = table(&[("a", vec![0.25; 4]), ("b", vec![0.25; 4])]);
        assert!((gate_entropy(&uniform)["a"][0] - 1.0).abs() < 1e-6);
        assert!(task_expert_mi(&uniform)[0].abs() < 1e-6);
        // Each task on an expert of its own: entropy 0, MI = ln 2 (two tasks).
        let split = table(&[
            ("a", vec![1.0, 0.0, 0.0, 0.0]),
            ("b", vec![0.0, 1.0, 0.0, 0.0]),
        ]);
        assert!(gate_entropy(&split)["b"][0].abs() < 1e-6);
        assert!((task_expert_mi(&split)[0] - 2f64.ln()).abs() < 1e-6);
        // Both tasks on the same expert: peaked but shared, MI 0.
        let same = table(&[
            ("a", vec![1.0, 0.0, 0.0, 0.0]),
            ("b", vec![1.0, 0.0, 0.0, 0.0]),
        ]);
        assert!(task_expert_mi(&same)[0].abs() < 1e-6);
    }
}
