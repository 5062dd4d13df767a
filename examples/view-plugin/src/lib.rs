//! Viewpoint classification (front / side / back) from PA-100K-style tables, as a CLASP task.

use std::path::Path;

use clasp_sdk::classify::{accuracy, class_targets, decode_classes};
use clasp_sdk::prelude::*;
use clasp_sdk::table::read_split;
use serde::{Deserialize, Serialize};

const VIEWS: [&str; 3] = ["Front", "Side", "Back"];

/// The task's settings, its `[task]` table.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ViewSettings {
    /// Label smoothing of the cross entropy.
    pub smoothing: f64,
}
type Cfg = ViewSettings;
impl Default for ViewSettings {
    fn default() -> Self {
        Self { smoothing: 0.1 }
    }
}
impl Settings for ViewSettings {}

#[derive(Default)]
pub struct ViewTask;

impl Task for ViewTask {
    type Config = ViewSettings;
    fn spec(&self) -> Spec {
        Spec {
            name: "view".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "tell if a person is seen from the front, the side or the back".into(),
            labels: VIEWS.map(String::from).to_vec(),
            input_size: [256, 128],
            metrics: vec!["accuracy".into(), "balanced_accuracy".into()],
            primary_metric: "balanced_accuracy".into(),
            ..Default::default()
        }
    }
    fn forward<'h>(&self, host: &'h Host, _: &Cfg, f: &FeatureMaps<'h>) -> Result<Outputs<'h>> {
        let w = host.param("fc.weight", &[3, f.dim], Init::TruncNormal(0.02))?;
        let b = host.param("fc.bias", &[3], Init::Zeros)?;
        Ok(f.cls.linear(w, Some(b))?.into())
    }
    fn loss<'h>(&self, h: &'h Host, c: &Cfg, o: &Outputs<'h>, t: &[Record]) -> Result<Tensor<'h>> {
        h.cross_entropy(o.single()?, class_targets(h, t)?, c.smoothing, None)
    }
    fn decode(&self, _: &Host, _: &Cfg, outputs: &Outputs<'_>) -> Result<Vec<Record>> {
        decode_classes(outputs.single()?)
    }
    fn evaluate(&self, _: &Cfg, predictions: &[Record], targets: &[Record]) -> Result<Metrics> {
        accuracy(predictions, targets)
    }
    /// `train.csv`, `val.csv` (epochs are chosen on it; optional) and `test.csv` under `root`;
    /// each row's class is its marked view column.
    fn dataset(&self, _: &Cfg, root: &Path, split: Split) -> Result<Vec<Record>> {
        let t = read_split(
            &root.join(format!("{split}.csv")),
            &root.join("images"),
            split,
        )?;
        let classes = t.marked_class(&VIEWS)?;
        let mut rows = t.rows;
        for (r, class) in rows.iter_mut().zip(classes) {
            r.ints = vec![class].into();
        }
        Ok(rows)
    }
    /// A mirrored person faces the same way: train on mirrored images too.
    fn flip(&self, _: &Cfg, record: &Record, _: [usize; 2]) -> Option<Result<Record>> {
        Some(Ok(record.clone()))
    }
}

export_task!(ViewTask);
