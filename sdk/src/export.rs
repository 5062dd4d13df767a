//! Turning a [`Task`] into the exported root module; every call catches panics.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RErr, ROk, ROption, RResult, RSlice, RStr, RString, RVec};

use crate::abi::{
    Features, HostCtx, HostOpsRef, Metric, NamedPath, NamedPredictions, PluginSpec, Record,
    SampleStats, TensorId, INTERFACE_VERSION,
};
use crate::host::Host;
use crate::plugin::{TaskPlugin, TaskPluginRef};
use crate::task::{FeatureMaps, Task, TaskConfig};
use crate::Error;

/// The plugin's one task instance (each plugin library has its own copy of this static).
static INSTANCE: OnceLock<Box<dyn Any + Send + Sync>> = OnceLock::new();

fn task<T: Task>() -> &'static T {
    INSTANCE
        .get_or_init(|| Box::new(T::new()))
        .downcast_ref::<T>()
        .expect("one task type per plugin library")
}

fn guard<R>(f: impl FnOnce() -> Result<R, Error>) -> RResult<R, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(e.0.into()),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            RErr(format!("panicked: {msg}").into())
        }
    }
}

extern "C" fn spec<T: Task>() -> RResult<PluginSpec, RString> {
    guard(|| Ok(task::<T>().spec().into_abi()))
}

extern "C" fn build_head<T: Task>(
    ops: HostOpsRef,
    ctx: HostCtx,
    config: RStr<'_>,
    dim: u64,
) -> RResult<(), RString> {
    guard(|| {
        let host = Host::new(ops, ctx);
        task::<T>().build_head(&host, &TaskConfig::parse(config.as_str())?, dim as usize)
    })
}

extern "C" fn forward<T: Task>(
    ops: HostOpsRef,
    ctx: HostCtx,
    config: RStr<'_>,
    features: Features,
) -> RResult<TensorId, RString> {
    guard(|| {
        let host = Host::new(ops, ctx);
        let f = FeatureMaps::new(&host, features);
        Ok(task::<T>()
            .forward(&host, &TaskConfig::parse(config.as_str())?, &f)?
            .id)
    })
}

extern "C" fn loss<T: Task>(
    ops: HostOpsRef,
    ctx: HostCtx,
    config: RStr<'_>,
    output: TensorId,
    targets: RSlice<'_, Record>,
) -> RResult<TensorId, RString> {
    guard(|| {
        let host = Host::new(ops, ctx);
        let out = host.tensor(output);
        Ok(task::<T>()
            .loss(
                &host,
                &TaskConfig::parse(config.as_str())?,
                out,
                targets.as_slice(),
            )?
            .id)
    })
}

extern "C" fn decode<T: Task>(
    ops: HostOpsRef,
    ctx: HostCtx,
    config: RStr<'_>,
    output: TensorId,
) -> RResult<RVec<Record>, RString> {
    guard(|| {
        let host = Host::new(ops, ctx);
        let out = host.tensor(output);
        Ok(task::<T>()
            .decode(&host, &TaskConfig::parse(config.as_str())?, out)?
            .into())
    })
}

extern "C" fn evaluate<T: Task>(
    config: RStr<'_>,
    predictions: RSlice<'_, Record>,
    targets: RSlice<'_, Record>,
) -> RResult<RVec<Metric>, RString> {
    guard(|| {
        let m = task::<T>().evaluate(
            &TaskConfig::parse(config.as_str())?,
            predictions.as_slice(),
            targets.as_slice(),
        )?;
        Ok(metrics_of(m))
    })
}

extern "C" fn dataset<T: Task>(
    config: RStr<'_>,
    root: RStr<'_>,
    split: RStr<'_>,
) -> RResult<RVec<Record>, RString> {
    guard(|| {
        Ok(task::<T>()
            .dataset(
                &TaskConfig::parse(config.as_str())?,
                Path::new(root.as_str()),
                split.as_str(),
            )?
            .into())
    })
}

extern "C" fn visualize<T: Task>(
    config: RStr<'_>,
    image: RStr<'_>,
    prediction: &Record,
    out: RStr<'_>,
) -> RResult<bool, RString> {
    guard(|| {
        let cfg = TaskConfig::parse(config.as_str())?;
        match task::<T>().visualize(
            &cfg,
            Path::new(image.as_str()),
            prediction,
            Path::new(out.as_str()),
        ) {
            Some(drawn) => drawn.map(|()| true),
            // The task draws nothing: not an error, the host just has no picture.
            None => Ok(false),
        }
    })
}

extern "C" fn describe<T: Task>(
    config: RStr<'_>,
    prediction: &Record,
) -> RResult<RString, RString> {
    guard(|| {
        let cfg = TaskConfig::parse(config.as_str())?;
        Ok(RString::from(task::<T>().describe(&cfg, prediction)?))
    })
}

extern "C" fn prepare<T: Task>(
    ops: HostOpsRef,
    ctx: HostCtx,
    config: RStr<'_>,
    train: RSlice<'_, Record>,
) -> RResult<(), RString> {
    guard(|| {
        let cfg = TaskConfig::parse(config.as_str())?;
        task::<T>().prepare(&Host::new(ops, ctx), &cfg, train.as_slice())
    })
}

fn metrics_of(m: Vec<(String, f64)>) -> RVec<Metric> {
    m.into_iter()
        .map(|(name, value)| Metric {
            name: name.into(),
            value,
        })
        .collect()
}

extern "C" fn evaluate_files<T: Task>(
    config: RStr<'_>,
    inputs: RSlice<'_, NamedPath>,
) -> RResult<RVec<Metric>, RString> {
    guard(|| {
        let cfg = TaskConfig::parse(config.as_str())?;
        let inputs: Vec<(String, PathBuf)> = inputs
            .iter()
            .map(|i| (i.name.to_string(), PathBuf::from(i.path.as_str())))
            .collect();
        task::<T>()
            .evaluate_files(&cfg, &inputs)
            .unwrap_or_else(|| Err(Error("this task evaluates no external result files".into())))
            .map(metrics_of)
    })
}

extern "C" fn flip<T: Task>(
    config: RStr<'_>,
    record: &Record,
    height: u32,
    width: u32,
) -> RResult<ROption<Record>, RString> {
    guard(|| {
        let cfg = TaskConfig::parse(config.as_str())?;
        let size = [height as usize, width as usize];
        match task::<T>().flip(&cfg, record, size) {
            None => Ok(ROption::RNone),
            Some(r) => r.map(ROption::RSome),
        }
    })
}

extern "C" fn merge_flip<T: Task>(
    config: RStr<'_>,
    prediction: &Record,
    mirrored: &Record,
) -> RResult<ROption<Record>, RString> {
    guard(|| {
        let cfg = TaskConfig::parse(config.as_str())?;
        match task::<T>().merge_flip(&cfg, prediction, mirrored) {
            None => Ok(ROption::RNone),
            Some(r) => r.map(ROption::RSome),
        }
    })
}

extern "C" fn visualize_ranking<T: Task>(
    config: RStr<'_>,
    image: RStr<'_>,
    prediction: &Record,
    gallery: RSlice<'_, Record>,
    out: RStr<'_>,
) -> RResult<(), RString> {
    guard(|| {
        let cfg = TaskConfig::parse(config.as_str())?;
        task::<T>()
            .visualize_ranking(
                &cfg,
                Path::new(image.as_str()),
                prediction,
                gallery.as_slice(),
                Path::new(out.as_str()),
            )
            .unwrap_or_else(|| Err(Error("this task draws no rank lists".into())))
    })
}

extern "C" fn sample_statistics<T: Task>(
    config: RStr<'_>,
    predictions: RSlice<'_, Record>,
    targets: RSlice<'_, Record>,
) -> RResult<ROption<RVec<SampleStats>>, RString> {
    guard(|| {
        let cfg = TaskConfig::parse(config.as_str())?;
        match task::<T>().sample_statistics(&cfg, predictions.as_slice(), targets.as_slice()) {
            None => Ok(ROption::RNone),
            Some(rows) => rows.map(|r| ROption::RSome(r.into())),
        }
    })
}

extern "C" fn metrics_of_samples<T: Task>(
    config: RStr<'_>,
    samples: RSlice<'_, SampleStats>,
) -> RResult<ROption<RVec<Metric>>, RString> {
    guard(|| {
        let cfg = TaskConfig::parse(config.as_str())?;
        match task::<T>().metrics_of_samples(&cfg, samples.as_slice()) {
            None => Ok(ROption::RNone),
            Some(m) => m.map(|m| ROption::RSome(metrics_of(m))),
        }
    })
}

extern "C" fn blind_predictions<T: Task>(
    config: RStr<'_>,
    train: RSlice<'_, Record>,
    test: RSlice<'_, Record>,
) -> RResult<ROption<RVec<NamedPredictions>>, RString> {
    guard(|| {
        let cfg = TaskConfig::parse(config.as_str())?;
        match task::<T>().blind_predictions(&cfg, train.as_slice(), test.as_slice()) {
            None => Ok(ROption::RNone),
            Some(named) => named.map(|n| {
                ROption::RSome(
                    n.into_iter()
                        .map(|(name, predictions)| NamedPredictions {
                            name: name.into(),
                            predictions: predictions.into(),
                        })
                        .collect(),
                )
            }),
        }
    })
}

/// The root module for task `T`; used by [`crate::export_task!`].
pub fn root_module<T: Task>() -> TaskPluginRef {
    TaskPlugin {
        interface_version: INTERFACE_VERSION,
        spec: spec::<T>,
        build_head: build_head::<T>,
        forward: forward::<T>,
        loss: loss::<T>,
        decode: decode::<T>,
        evaluate: evaluate::<T>,
        dataset: dataset::<T>,
        visualize: ROption::RSome(visualize::<T>),
        describe: ROption::RSome(describe::<T>),
        prepare: ROption::RSome(prepare::<T>),
        evaluate_files: ROption::RSome(evaluate_files::<T>),
        flip: ROption::RSome(flip::<T>),
        merge_flip: ROption::RSome(merge_flip::<T>),
        visualize_ranking: ROption::RSome(visualize_ranking::<T>),
        sample_statistics: ROption::RSome(sample_statistics::<T>),
        metrics_of_samples: ROption::RSome(metrics_of_samples::<T>),
        blind_predictions: ROption::RSome(blind_predictions::<T>),
    }
    .leak_into_prefix()
}

/// Exports a [`Task`] as this library's plugin: `clasp_sdk::export_task!(MyTask);`
#[macro_export]
macro_rules! export_task {
    ($task:ty) => {
        #[::abi_stable::export_root_module]
        pub fn clasp_task_root_module() -> $crate::plugin::TaskPluginRef {
            $crate::export::root_module::<$task>()
        }
    };
}
