//! A plugin that panics where its config says (`panic_in = "forward"`), to test containment.

use std::path::Path;

use clasp_sdk::{
    export_task, FeatureMaps, Host, Init, Outputs, Record, Result, Spec, Split, Task, Tensor,
};
mod settings;

use settings::{Call, FaultySettings};

#[derive(Default)]
pub struct Faulty;

impl Task for Faulty {
    type Config = FaultySettings;

    fn spec(&self) -> Spec {
        Spec {
            name: "faulty".into(),
            version: "0.0.1".into(),
            description: "a task that fails on purpose".into(),
            labels: vec!["x".into()],
            input_size: [256, 128],
            metrics: vec!["score".into()],
            primary_metric: "score".into(),
            head_variants: vec!["linear".into()],
            ..Default::default()
        }
    }

    fn build_head(&self, host: &Host, cfg: &FaultySettings, dim: usize) -> Result<()> {
        if cfg.panic_in == Call::BuildHead {
            panic!("deliberate panic in build_head");
        }
        host.param("w", &[1, dim], Init::Zeros).map(|_| ())
    }

    fn forward<'h>(
        &self,
        host: &'h Host,
        cfg: &FaultySettings,
        f: &FeatureMaps<'h>,
    ) -> Result<Outputs<'h>> {
        if cfg.panic_in == Call::Forward {
            panic!("deliberate panic in forward");
        }
        Ok(f.cls
            .linear(host.param("w", &[1, f.dim], Init::Zeros)?, None)?
            .into())
    }

    fn loss<'h>(
        &self,
        _host: &'h Host,
        _cfg: &FaultySettings,
        outputs: &Outputs<'h>,
        _t: &[Record],
    ) -> Result<Tensor<'h>> {
        outputs.single()?.mean(0, false)?.mean(0, false)
    }

    fn decode(
        &self,
        _host: &Host,
        _cfg: &FaultySettings,
        _outputs: &Outputs<'_>,
    ) -> Result<Vec<Record>> {
        Ok(vec![])
    }

    fn evaluate(
        &self,
        _cfg: &FaultySettings,
        _p: &[Record],
        _t: &[Record],
    ) -> Result<Vec<(String, f64)>> {
        Ok(vec![("score".into(), 0.0)])
    }

    /// Every `.png` directly under `root`, in name order, for either split.
    fn dataset(&self, _cfg: &FaultySettings, root: &Path, split: Split) -> Result<Vec<Record>> {
        // Every image is in train and test; none validates (the host then keeps the last epoch).
        if split == Split::Val {
            return Ok(Vec::new());
        }
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) => clasp_sdk::fail!("listing {}: {e}", root.display()),
        };
        let mut images: Vec<String> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "png"))
            .map(|p| p.display().to_string())
            .collect();
        images.sort();
        Ok(images
            .into_iter()
            .map(|image| Record {
                image: image.into(),
                ..Default::default()
            })
            .collect())
    }
}

export_task!(Faulty);
