//! A plugin whose spec declares zero labels.

use std::path::Path;

use clasp_sdk::{
    export_task, FeatureMaps, Host, Init, Record, Result, Spec, Task, TaskConfig, Tensor,
};

pub struct BadSpec;

impl Task for BadSpec {
    fn new() -> Self {
        BadSpec
    }

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
            config: vec![(
                "panic_in".into(),
                "\"nowhere\"".into(),
                "call that panics".into(),
            )],
            head_variants: vec!["linear".into()],
        }
    }

    fn build_head(&self, host: &Host, cfg: &TaskConfig, dim: usize) -> Result<()> {
        if cfg.str("panic_in")? == "build_head" {
            panic!("deliberate panic in build_head");
        }
        host.param("w", &[1, dim], Init::Zeros).map(|_| ())
    }

    fn forward<'h>(
        &self,
        host: &'h Host,
        cfg: &TaskConfig,
        f: &FeatureMaps<'h>,
    ) -> Result<Tensor<'h>> {
        if cfg.str("panic_in")? == "forward" {
            panic!("deliberate panic in forward");
        }
        f.cls
            .linear(host.param("w", &[1, f.dim], Init::Zeros)?, None)
    }

    fn loss<'h>(
        &self,
        _host: &'h Host,
        _cfg: &TaskConfig,
        output: Tensor<'h>,
        _t: &[Record],
    ) -> Result<Tensor<'h>> {
        output.mean(0, false)?.mean(0, false)
    }

    fn decode(&self, _host: &Host, _cfg: &TaskConfig, _output: Tensor<'_>) -> Result<Vec<Record>> {
        Ok(vec![])
    }

    fn evaluate(
        &self,
        _cfg: &TaskConfig,
        _p: &[Record],
        _t: &[Record],
    ) -> Result<Vec<(String, f64)>> {
        Ok(vec![("score".into(), 0.0)])
    }

    fn dataset(&self, _cfg: &TaskConfig, _root: &Path, _split: &str) -> Result<Vec<Record>> {
        Ok(vec![])
    }
}

export_task!(BadSpec);
