//! Viewpoint classification (front / side / back) as a CLASP task plugin.

use std::path::Path;

use clasp_sdk::{
    export_task, fail, FeatureMaps, Host, Init, Record, Result, Spec, Task, TaskConfig, Tensor,
};

const VIEWS: [&str; 3] = ["front", "side", "back"];

pub struct ViewTask;

impl ViewTask {
    /// The head: one linear layer on the CLS feature.
    fn logits<'h>(&self, host: &'h Host, x: Tensor<'h>, dim: usize) -> Result<Tensor<'h>> {
        let w = host.param("fc.weight", &[VIEWS.len(), dim], Init::TruncNormal(0.02))?;
        let b = host.param("fc.bias", &[VIEWS.len()], Init::Zeros)?;
        x.linear(w, Some(b))
    }
}

impl Task for ViewTask {
    fn new() -> Self {
        ViewTask
    }

    fn spec(&self) -> Spec {
        Spec {
            name: "view".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "tell whether a person is seen from the front, the side or the back"
                .into(),
            labels: VIEWS.iter().map(|s| s.to_string()).collect(),
            input_size: [256, 128],
            metrics: vec!["accuracy".into(), "balanced_accuracy".into()],
            primary_metric: "balanced_accuracy".into(),
            config: vec![
                (
                    "smoothing".into(),
                    "0.1".into(),
                    "label smoothing of the cross entropy".into(),
                ),
                (
                    "table".into(),
                    "\"train.csv\"".into(),
                    "training table (PA-100K-style)".into(),
                ),
                (
                    "val_table".into(),
                    "\"val.csv\"".into(),
                    "validation table: epochs are chosen on it (a missing file: none)".into(),
                ),
                (
                    "test_table".into(),
                    "\"test.csv\"".into(),
                    "test table, scored once after selection".into(),
                ),
            ],
            head_variants: vec!["linear".into()],
        }
    }

    fn build_head(&self, host: &Host, _cfg: &TaskConfig, dim: usize) -> Result<()> {
        let x = host.constant(&[1, dim], &vec![0.0; dim])?;
        self.logits(host, x, dim).map(|_| ())
    }

    fn forward<'h>(
        &self,
        host: &'h Host,
        _cfg: &TaskConfig,
        f: &FeatureMaps<'h>,
    ) -> Result<Tensor<'h>> {
        self.logits(host, f.cls, f.dim)
    }

    fn loss<'h>(
        &self,
        host: &'h Host,
        cfg: &TaskConfig,
        output: Tensor<'h>,
        targets: &[Record],
    ) -> Result<Tensor<'h>> {
        let ids: Vec<f32> = targets.iter().map(|t| t.ints[0] as f32).collect();
        let target = host.constant(&[ids.len()], &ids)?;
        host.cross_entropy(output, target, cfg.f64("smoothing")?, None)
    }

    fn decode(&self, _host: &Host, _cfg: &TaskConfig, output: Tensor<'_>) -> Result<Vec<Record>> {
        let (shape, logits) = output.to_cpu()?;
        Ok(logits
            .chunks(shape[1])
            .map(|l| {
                // Softmax on the CPU: decoded predictions are plain values.
                let m = l.iter().cloned().fold(f32::MIN, f32::max);
                let e: Vec<f32> = l.iter().map(|v| (v - m).exp()).collect();
                let z: f32 = e.iter().sum();
                let best = (0..l.len())
                    .max_by(|a, b| l[*a].total_cmp(&l[*b]))
                    .unwrap_or(0);
                Record {
                    values: e.iter().map(|v| v / z).collect::<Vec<_>>().into(),
                    ints: vec![best as i64].into(),
                    ..Default::default()
                }
            })
            .collect())
    }

    fn evaluate(
        &self,
        _cfg: &TaskConfig,
        predictions: &[Record],
        targets: &[Record],
    ) -> Result<Vec<(String, f64)>> {
        let mut hits = [0usize; 3];
        let mut counts = [0usize; 3];
        for (p, t) in predictions.iter().zip(targets) {
            let c = t.ints[0] as usize;
            counts[c] += 1;
            hits[c] += (p.ints[0] as usize == c) as usize;
        }
        let n: usize = counts.iter().sum();
        let present: Vec<usize> = (0..3).filter(|c| counts[*c] > 0).collect();
        let balanced = present
            .iter()
            .map(|c| hits[*c] as f64 / counts[*c] as f64)
            .sum::<f64>()
            / present.len().max(1) as f64;
        Ok(vec![
            (
                "accuracy".into(),
                hits.iter().sum::<usize>() as f64 / n.max(1) as f64,
            ),
            ("balanced_accuracy".into(), balanced),
        ])
    }

    fn dataset(&self, cfg: &TaskConfig, root: &Path, split: &str) -> Result<Vec<Record>> {
        // The validation split must hold other people than the test split (or be empty):
        // the host chooses epochs on it.
        let table = root.join(match split {
            "train" => cfg.str("table")?,
            "val" => cfg.str("val_table")?,
            _ => cfg.str("test_table")?,
        });
        if split == "val" && !table.exists() {
            return Ok(Vec::new());
        }
        let text = match std::fs::read_to_string(&table) {
            Ok(t) => t,
            Err(e) => fail!("reading {}: {e}", table.display()),
        };
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(f), Some(s), Some(b)) = (col("Front"), col("Side"), col("Back")) else {
            fail!("{}: needs Front, Side and Back columns", table.display());
        };
        let mut out = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Vec<&str> = line.split(',').collect();
            let class = match (v.get(f), v.get(s), v.get(b)) {
                (Some(&"1"), _, _) => 0,
                (_, Some(&"1"), _) => 1,
                (_, _, Some(&"1")) => 2,
                _ => fail!("{}:{}: no view marked", table.display(), i + 2),
            };
            out.push(Record {
                image: root.join("images").join(v[0]).display().to_string().into(),
                ints: vec![class].into(),
                ..Default::default()
            });
        }
        Ok(out)
    }

    /// A mirrored person faces the same way (front stays front): train on mirrored images too.
    fn flip(
        &self,
        _cfg: &TaskConfig,
        record: &Record,
        _size: [usize; 2],
    ) -> Option<Result<Record>> {
        Some(Ok(record.clone()))
    }
}

export_task!(ViewTask);
