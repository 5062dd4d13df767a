//! `runs/quickstart/report.md` and `results.png`: each task's primary metric for the four
//! variants, the pseudo-label quality, the pre-training runs and the gradient-conflict tables.

use std::path::Path;

use anyhow::{Context, Result};
use clasp_sdk::draw::{self, image::RgbImage, BLACK, WHITE};
use image::Rgb;
use serde::{Deserialize, Serialize};

use super::variants::{Variant, TASKS, VARIANTS};
use crate::pretrain::grad_conflict::ConflictTable;
use crate::teacher::quality::QualityReport;

/// One fine-tuning run's outcome (`result.json` beside its run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskResult {
    pub variant: String,
    pub task: String,
    pub primary: String,
    pub value: f64,
    pub best_epoch: usize,
    pub metrics: Vec<(String, f64)>,
    pub seconds: f64,
}

/// One pre-training run's outcome (`done.json` beside its run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PretrainResult {
    pub variant: String,
    pub checkpoint: String,
    pub steps: usize,
    pub loss_ssl: Option<f64>,
    pub loss_part: Option<f64>,
    pub loss_attr: Option<f64>,
    pub teacher_entropy: Option<f64>,
    pub collapse: Option<String>,
    pub seconds: f64,
}

pub struct Report<'a> {
    pub fast: bool,
    pub stage_seconds: &'a [(String, f64)],
    pub teacher: &'a QualityReport,
    pub pretraining: &'a [PretrainResult],
    pub results: &'a [TaskResult],
    pub conflicts: &'a [ConflictTable],
}

fn result<'r>(results: &'r [TaskResult], v: &Variant, task: &str) -> Option<&'r TaskResult> {
    results
        .iter()
        .find(|r| r.variant == v.key && r.task == task)
}

impl Report<'_> {
    pub fn markdown(&self) -> String {
        let mut md = String::from("# CLASP quickstart report\n\n");
        md += &format!(
            "Built-in synthetic people, {} budget; every variant uses the same backbone, data and \
             budgets. Metric: each plugin's primary metric on its test split (higher is better).\n\n",
            if self.fast { "`--fast`" } else { "default" }
        );
        md += "| task (metric) |";
        for v in VARIANTS {
            md += &format!(" {} |", v.title);
        }
        md += " (d) − (a) |\n|---|";
        md += &"---:|".repeat(VARIANTS.len() + 1);
        md.push('\n');
        for t in TASKS {
            let metric = VARIANTS
                .iter()
                .find_map(|v| result(self.results, v, t.name))
                .map_or("?".to_string(), |r| r.primary.clone());
            md += &format!("| {} ({metric}) |", t.name);
            for v in VARIANTS {
                md += &match result(self.results, &v, t.name) {
                    Some(r) => format!(" {:.4} |", r.value),
                    None => " – |".into(),
                };
            }
            let gain = result(self.results, &VARIANTS[3], t.name)
                .zip(result(self.results, &VARIANTS[0], t.name))
                .map(|(d, a)| d.value - a.value);
            md += &match gain {
                Some(g) => format!(" {g:+.4} |\n"),
                None => " – |\n".into(),
            };
        }
        let ahead = TASKS
            .iter()
            .filter(|t| {
                result(self.results, &VARIANTS[3], t.name)
                    .zip(result(self.results, &VARIANTS[0], t.name))
                    .is_some_and(|(d, a)| d.value > a.value)
            })
            .count();
        md += &format!(
            "\nFull CLASP is ahead of from-scratch training on {ahead} of {} tasks.\n",
            TASKS.len()
        );

        let q = self.teacher;
        md += &format!(
            "\n## Pseudo-labels (the teacher against the synthetic truth)\n\npart mIoU {:.4} \
             (row baseline {:.4}; mean confidence {:.3}); attribute mA {:.4}.\n",
            q.part_miou, q.row_baseline_miou, q.part_confidence, q.attribute_ma
        );

        md += "\n## Pre-training\n\n| variant | steps | DINO loss | part loss | attribute loss | teacher entropy | collapse | seconds |\n|---|---:|---:|---:|---:|---:|---|---:|\n";
        let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.4}"));
        for p in self.pretraining {
            md += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} |\n",
                p.variant,
                p.steps,
                f(p.loss_ssl),
                f(p.loss_part),
                f(p.loss_attr),
                f(p.teacher_entropy),
                p.collapse.as_deref().unwrap_or("no"),
                p.seconds
            );
        }

        if !self.conflicts.is_empty() {
            md += "\n## Gradient conflict (cosine between per-task gradients on shared parameters)\n\n```\n";
            for c in self.conflicts {
                md += &c.render();
                md.push('\n');
            }
            md += "```\n";
        }

        md += "\n## Time per stage\n\n| stage | seconds |\n|---|---:|\n";
        for (stage, s) in self.stage_seconds {
            md += &format!("| {stage} | {s:.0} |\n");
        }
        md += "\nAll metrics per run: `finetune-<variant>-<task>/metrics.jsonl`; plots: \
               `results.png`, `pretrain-*/curves.png`, `pretrain-*/gates.png`, `grad_conflict.png`.\n";
        md
    }

    /// Grouped bars: one group per task, one bar per variant, each task scaled to its best value.
    pub fn write_chart(&self, path: &Path) -> Result<()> {
        const COLOURS: [Rgb<u8>; 4] = [
            Rgb([150, 150, 150]),
            Rgb([31, 119, 180]),
            Rgb([255, 127, 14]),
            Rgb([44, 160, 44]),
        ];
        let (group_w, bar_w, plot_h, top, left) = (150u32, 28u32, 200u32, 40u32, 20u32);
        let width = left * 2 + group_w * TASKS.len() as u32;
        let height = top + plot_h + 70;
        let mut img = RgbImage::from_pixel(width, height, WHITE);
        draw::text(
            &mut img,
            left as i64,
            8,
            "primary metric per task",
            1,
            BLACK,
        );
        for (i, v) in VARIANTS.iter().enumerate() {
            let x = left as i64 + i as i64 * 150;
            draw::fill_rect(&mut img, x, height as i64 - 24, 10, 10, COLOURS[i]);
            draw::text(&mut img, x + 14, height as i64 - 24, v.title, 1, BLACK);
        }
        for (g, t) in TASKS.iter().enumerate() {
            let values: Vec<Option<f64>> = VARIANTS
                .iter()
                .map(|v| result(self.results, v, t.name).map(|r| r.value))
                .collect();
            let max = values.iter().flatten().copied().fold(1e-9, f64::max);
            let x0 = left + g as u32 * group_w + 10;
            for (i, v) in values.iter().enumerate() {
                let Some(v) = v else { continue };
                let h = ((v / max).clamp(0.0, 1.0) * plot_h as f64).round() as u32;
                let x = (x0 + i as u32 * (bar_w + 2)) as i64;
                draw::fill_rect(&mut img, x, (top + plot_h - h) as i64, bar_w, h, COLOURS[i]);
                draw::text(
                    &mut img,
                    x,
                    (top + plot_h - h) as i64 - 10,
                    &format!("{v:.2}"),
                    1,
                    BLACK,
                );
            }
            draw::text(
                &mut img,
                x0 as i64,
                (top + plot_h + 8) as i64,
                t.name,
                1,
                BLACK,
            );
        }
        img.save(path)
            .with_context(|| format!("writing {}", path.display()))
    }
}
