//! A plugin whose spec declares zero labels.

use std::path::Path;

use clasp_sdk::{
    export_task, FeatureMaps, Host, Init, Outputs, Record, Result, Spec, Split, Task, Tensor,
};
#[path = "../../faulty/src/settings.rs"]
mod settings;

use settings::{Call, FaultySettings};

#[derive(Default)]
pub struct BadSpec;

impl Task for BadSpec {
    type Config = FaultySettings;

    fn spec(&self) -> Spec {
        Spec {
            name: "bad_spec".into(),
            version: "0.0.1".into(),
            description: "a task that fails on purpose".into(),
            // Zero classes: the host must refuse it.
            labels: vec![],
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

    fn dataset(&self, _cfg: &FaultySettings, _root: &Path, _split: Split) -> Result<Vec<Record>> {
        Ok(vec![])
    }
}

export_task!(BadSpec);
