//! Pedestrian attributes with attribute-specific attention pooling: each attribute learns where
//! to look among the patch tokens (a query per attribute, softmax over the tokens), then scores
//! what it pooled there. Everything else — the PA-100K tables, the positive-ratio loss weights,
//! mA / mAUC with their intervals, the image-blind level, other systems' result tables — is the
//! reference attribute task's, called, not copied.

use std::path::{Path, PathBuf};

use clasp_plugin_attribute::settings::AttributeSettings;
use clasp_plugin_attribute::{pos_ratio_buffer, AttributeTask, PA100K};
use clasp_sdk::prelude::*;
use clasp_sdk::{Error, NamedPredictionSets, SampleStats};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AttentionSettings {
    /// Temperature of the attention over patch tokens (lower: sharper).
    pub temperature: f64,
    /// The attribute task's own settings (tables, loss weighting), as its plugin reads them.
    pub attribute: AttributeSettings,
}

impl Default for AttentionSettings {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            attribute: AttributeSettings::default(),
        }
    }
}

impl Settings for AttentionSettings {
    fn validate(&self) -> Result<()> {
        clasp_sdk::ensure_in("temperature", self.temperature, 1e-3, 1e3)?;
        // The attribute task's checks name its keys as `task.…`; here they sit under
        // `task.attribute.…`.
        self.attribute.validate().map_err(|e| Error {
            message: e.message.replacen("task.", "task.attribute.", 1),
            ..e
        })
    }
}

type Cfg = AttentionSettings;

#[derive(Default)]
pub struct AttentionAttributes(AttributeTask);

impl Task for AttentionAttributes {
    type Config = AttentionSettings;

    fn spec(&self) -> Spec {
        Spec {
            name: "attribute-attention".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            head_variants: vec!["attention".into()],
            ..self.0.spec()
        }
    }

    fn build_head(&self, host: &Host, cfg: &Cfg, dim: usize) -> Result<()> {
        pos_ratio_buffer(host)?;
        self.forward(host, cfg, &FeatureMaps::zeros(host, dim)?)
            .map(|_| ())
    }

    /// `[B, A]` logits: per attribute a, softmax_n(q_a · x_n / (τ√d)) pools the tokens x_n, and
    /// w_a · pooled + b_a scores it.
    fn forward<'h>(&self, host: &'h Host, cfg: &Cfg, f: &FeatureMaps<'h>) -> Result<Outputs<'h>> {
        let (a, d) = (PA100K.len(), f.dim);
        let shape = f.patches.shape()?;
        let (b, n) = (shape[0], shape[2] * shape[3]);
        let tokens = f.patches.reshape(&[b, d, n])?.permute(&[0, 2, 1])?; // [B, N, d]
        let queries = host.param("attention.query", &[a, d], Init::TruncNormal(0.02))?;
        let scores = tokens
            .matmul(queries.permute(&[1, 0])?)? // [B, N, A]
            .affine(1.0 / (cfg.temperature * (d as f64).sqrt()), 0.0)?;
        let shifted = scores.sub(scores.max(1, true)?)?.exp()?;
        let weights = shifted.div(shifted.sum(1, true)?)?; // softmax over the tokens
        let pooled = weights.permute(&[0, 2, 1])?.matmul(tokens)?; // [B, A, d]
        let w = host.param("classifier.weight", &[1, a, d], Init::TruncNormal(0.02))?;
        let bias = host.param("classifier.bias", &[1, a], Init::Zeros)?;
        Ok(pooled.mul(w)?.sum(2, false)?.add(bias)?.into())
    }

    fn prepare(&self, host: &Host, cfg: &Cfg, train: &[Record]) -> Result<()> {
        self.0.prepare(host, &cfg.attribute, train)
    }
    fn loss<'h>(&self, h: &'h Host, c: &Cfg, o: &Outputs<'h>, t: &[Record]) -> Result<Tensor<'h>> {
        self.0.loss(h, &c.attribute, o, t)
    }
    fn decode(&self, host: &Host, cfg: &Cfg, outputs: &Outputs<'_>) -> Result<Vec<Record>> {
        self.0.decode(host, &cfg.attribute, outputs)
    }
    fn evaluate(&self, cfg: &Cfg, predictions: &[Record], targets: &[Record]) -> Result<Metrics> {
        self.0.evaluate(&cfg.attribute, predictions, targets)
    }
    fn dataset(&self, cfg: &Cfg, root: &Path, split: Split) -> Result<Vec<Record>> {
        self.0.dataset(&cfg.attribute, root, split)
    }
    fn flip(&self, cfg: &Cfg, record: &Record, size: [usize; 2]) -> Option<Result<Record>> {
        self.0.flip(&cfg.attribute, record, size)
    }
    fn sample_statistics(
        &self,
        cfg: &Cfg,
        predictions: &[Record],
        targets: &[Record],
    ) -> Option<Result<Vec<SampleStats>>> {
        self.0
            .sample_statistics(&cfg.attribute, predictions, targets)
    }
    fn metrics_of_samples(&self, cfg: &Cfg, samples: &[SampleStats]) -> Option<Result<Metrics>> {
        self.0.metrics_of_samples(&cfg.attribute, samples)
    }
    fn blind_predictions(
        &self,
        cfg: &Cfg,
        train: &[Record],
        test: &[Record],
    ) -> Option<Result<NamedPredictionSets>> {
        self.0.blind_predictions(&cfg.attribute, train, test)
    }
    fn evaluate_files(&self, cfg: &Cfg, files: &[(String, PathBuf)]) -> Option<Result<Metrics>> {
        self.0.evaluate_files(&cfg.attribute, files)
    }
    fn visualize(&self, cfg: &Cfg, image: &Path, p: &Record, out: &Path) -> Option<Result<()>> {
        self.0.visualize(&cfg.attribute, image, p, out)
    }
    fn describe(&self, cfg: &Cfg, prediction: &Record) -> Result<String> {
        self.0.describe(&cfg.attribute, prediction)
    }
}

export_task!(AttentionAttributes);
