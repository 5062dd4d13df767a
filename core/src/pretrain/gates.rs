//! What PC-MoE's gates do per task: the global gate g_t of every PC-MoE block for every task, as
//! numbers for `metrics.jsonl` and as a heatmap (rows: tasks; columns: blocks × experts).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use clasp_sdk::draw::{self, image::RgbImage, BLACK, WHITE};
use image::Rgb;

use crate::model::vit::{BlockMlp, Vit};

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

const CELL: u32 = 22;
const LEFT: u32 = 60;
const TOP: u32 = 34;

/// White (0) to dark blue (1).
fn colour(v: f32) -> Rgb<u8> {
    let v = v.clamp(0.0, 1.0);
    let mix = |a: f32, b: f32| (a + (b - a) * v).round() as u8;
    Rgb([mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0)])
}

/// Writes the heatmap: one row per task, one column per (block, expert), blocks separated by a
/// gap and labelled `b<i>`.
pub fn write_gate_heatmap(path: &Path, table: &GateTable) -> Result<()> {
    let Some(first) = table.values().next() else {
        return Ok(());
    };
    let experts: usize = first.first().map_or(0, |(_, g)| g.len());
    let blocks = first.len();
    let width = LEFT + (blocks as u32) * (experts as u32 * CELL + 6) + 10;
    let height = TOP + table.len() as u32 * CELL + 10;
    let mut img = RgbImage::from_pixel(width, height, WHITE);
    draw::text(
        &mut img,
        4,
        4,
        "global gate g_t per task x block (experts)",
        1,
        BLACK,
    );
    for (r, (task, rows)) in table.iter().enumerate() {
        let y = TOP + r as u32 * CELL;
        draw::text(&mut img, 4, y as i64 + 6, task, 1, BLACK);
        for (b, (block, gates)) in rows.iter().enumerate() {
            let x0 = LEFT + b as u32 * (experts as u32 * CELL + 6);
            if r == 0 {
                draw::text(
                    &mut img,
                    x0 as i64,
                    TOP as i64 - 12,
                    &format!("b{block}"),
                    1,
                    BLACK,
                );
            }
            for (e, g) in gates.iter().enumerate() {
                let x = x0 + e as u32 * CELL;
                for dy in 1..CELL - 1 {
                    for dx in 1..CELL - 1 {
                        img.put_pixel(x + dx, y + dy, colour(*g));
                    }
                }
            }
        }
    }
    img.save(path)
        .with_context(|| format!("writing {}", path.display()))
}
