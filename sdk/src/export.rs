//! Turning a [`Task`] into the exported root module: settings parsed once, every call guarded
//! (errors keep their kind, panics become `Panic` errors).

use std::any::Any;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RErr, ROk, ROption, RResult, RSlice, RStr, RString, RVec};

use crate::abi::{
    ErrorKind, Features, HostCtx, HostOpsRef, Metric, NamedPath, NamedPredictions, NamedTensor,
    PluginError, PluginSpec, Record, SampleStats, Split, TensorId, INTERFACE_VERSION,
};
use crate::host::Host;
use crate::outputs::Outputs;
use crate::plugin::{TaskPlugin, TaskPluginRef};
use crate::task::{FeatureMaps, Task};
use crate::Error;

/// The plugin's one task instance (each plugin library has its own copy of this static).
static INSTANCE: OnceLock<Box<dyn Any + Send + Sync>> = OnceLock::new();

fn task<T: Task>() -> &'static T {
    INSTANCE
        .get_or_init(|| Box::<T>::default())
        .downcast_ref::<T>()
        .expect("one task type per plugin library")
}

/// Parsed settings by their JSON text: a run resolves one `[task]` table and every call of the
/// run passes it again, so each distinct table is parsed and checked once.
static SETTINGS: OnceLock<Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>> = OnceLock::new();

fn settings<T: Task>(json: RStr<'_>) -> Result<Arc<T::Config>, Error> {
    let cache = SETTINGS.get_or_init(Default::default);
    let known = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(json.as_str())
        .cloned();
    let parsed = match known {
        Some(p) => p,
        None => {
            let p: Arc<dyn Any + Send + Sync> =
                Arc::new(crate::settings::parse::<T::Config>(json.as_str())?);
            cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(json.to_string(), p.clone());
            p
        }
    };
    parsed
        .downcast::<T::Config>()
        .map_err(|_| Error::config("settings of another type cached (one task per plugin library)"))
}

fn guard<R>(f: impl FnOnce() -> Result<R, Error>) -> RResult<R, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(e.into_abi()),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            RErr(Error::new(ErrorKind::Panic, msg).into_abi())
        }
    }
}

/// [`guard`] for a call that reads the settings.
fn with_settings<T: Task, R>(
    config: RStr<'_>,
    f: impl FnOnce(&T, &T::Config) -> Result<R, Error>,
) -> RResult<R, PluginError> {
    guard(|| f(task::<T>(), &*settings::<T>(config)?))
}

/// An optional method's answer across the boundary: `RNone` when the task does not offer it.
fn optional<R, A>(
    answer: Option<Result<R, Error>>,
    to_abi: impl FnOnce(R) -> A,
) -> Result<ROption<A>, Error> {
    match answer {
        None => Ok(ROption::RNone),
        Some(r) => r.map(|v| ROption::RSome(to_abi(v))),
    }
}

extern "C" fn spec<T: Task>() -> RResult<PluginSpec, PluginError> {
    guard(|| Ok(task::<T>().spec().into_abi::<T::Config>()))
}

extern "C" fn check_config<T: Task>(config: RStr<'_>) -> RResult<(), PluginError> {
    with_settings::<T, _>(config, |_, _| Ok(()))
}

extern "C" fn build_head<T: Task>(
    ops: HostOpsRef,
    ctx: HostCtx,
    config: RStr<'_>,
    dim: u64,
) -> RResult<(), PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        t.build_head(&Host::new(ops, ctx), cfg, dim as usize)
    })
}

extern "C" fn forward<T: Task>(
    ops: HostOpsRef,
    ctx: HostCtx,
    config: RStr<'_>,
    features: Features,
) -> RResult<RVec<NamedTensor>, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        let host = Host::new(ops, ctx);
        let f = FeatureMaps::new(&host, features);
        Ok(t.forward(&host, cfg, &f)?.into_abi().into())
    })
}

extern "C" fn loss<T: Task>(
    ops: HostOpsRef,
    ctx: HostCtx,
    config: RStr<'_>,
    outputs: RSlice<'_, NamedTensor>,
    targets: RSlice<'_, Record>,
) -> RResult<TensorId, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        let host = Host::new(ops, ctx);
        let outputs = Outputs::from_abi(&host, outputs.as_slice());
        Ok(t.loss(&host, cfg, &outputs, targets.as_slice())?.id)
    })
}

extern "C" fn decode<T: Task>(
    ops: HostOpsRef,
    ctx: HostCtx,
    config: RStr<'_>,
    outputs: RSlice<'_, NamedTensor>,
) -> RResult<RVec<Record>, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        let host = Host::new(ops, ctx);
        let outputs = Outputs::from_abi(&host, outputs.as_slice());
        Ok(t.decode(&host, cfg, &outputs)?.into())
    })
}

extern "C" fn evaluate<T: Task>(
    config: RStr<'_>,
    predictions: RSlice<'_, Record>,
    targets: RSlice<'_, Record>,
) -> RResult<RVec<Metric>, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        Ok(metrics_of(t.evaluate(
            cfg,
            predictions.as_slice(),
            targets.as_slice(),
        )?))
    })
}

extern "C" fn dataset<T: Task>(
    config: RStr<'_>,
    root: RStr<'_>,
    split: Split,
) -> RResult<RVec<Record>, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        Ok(t.dataset(cfg, Path::new(root.as_str()), split)?.into())
    })
}

extern "C" fn visualize<T: Task>(
    config: RStr<'_>,
    image: RStr<'_>,
    prediction: &Record,
    out: RStr<'_>,
) -> RResult<bool, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        let drawn = t.visualize(
            cfg,
            Path::new(image.as_str()),
            prediction,
            Path::new(out.as_str()),
        );
        // The task draws nothing: not an error, the host just has no picture.
        Ok(optional(drawn, |()| ())?.is_some())
    })
}

extern "C" fn describe<T: Task>(
    config: RStr<'_>,
    prediction: &Record,
) -> RResult<RString, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        Ok(RString::from(t.describe(cfg, prediction)?))
    })
}

extern "C" fn prepare<T: Task>(
    ops: HostOpsRef,
    ctx: HostCtx,
    config: RStr<'_>,
    train: RSlice<'_, Record>,
) -> RResult<(), PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        t.prepare(&Host::new(ops, ctx), cfg, train.as_slice())
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
) -> RResult<ROption<RVec<Metric>>, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        let inputs: Vec<(String, PathBuf)> = inputs
            .iter()
            .map(|i| (i.name.to_string(), PathBuf::from(i.path.as_str())))
            .collect();
        optional(t.evaluate_files(cfg, &inputs), metrics_of)
    })
}

extern "C" fn flip<T: Task>(
    config: RStr<'_>,
    record: &Record,
    height: u32,
    width: u32,
) -> RResult<ROption<Record>, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        let size = [height as usize, width as usize];
        optional(t.flip(cfg, record, size), |r| r)
    })
}

extern "C" fn merge_flip<T: Task>(
    config: RStr<'_>,
    prediction: &Record,
    mirrored: &Record,
) -> RResult<ROption<Record>, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        optional(t.merge_flip(cfg, prediction, mirrored), |r| r)
    })
}

extern "C" fn visualize_ranking<T: Task>(
    config: RStr<'_>,
    image: RStr<'_>,
    prediction: &Record,
    gallery: RSlice<'_, Record>,
    out: RStr<'_>,
) -> RResult<bool, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        let drawn = t.visualize_ranking(
            cfg,
            Path::new(image.as_str()),
            prediction,
            gallery.as_slice(),
            Path::new(out.as_str()),
        );
        Ok(optional(drawn, |()| ())?.is_some())
    })
}

extern "C" fn sample_statistics<T: Task>(
    config: RStr<'_>,
    predictions: RSlice<'_, Record>,
    targets: RSlice<'_, Record>,
) -> RResult<ROption<RVec<SampleStats>>, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        let rows = t.sample_statistics(cfg, predictions.as_slice(), targets.as_slice());
        optional(rows, RVec::from)
    })
}

extern "C" fn metrics_of_samples<T: Task>(
    config: RStr<'_>,
    samples: RSlice<'_, SampleStats>,
) -> RResult<ROption<RVec<Metric>>, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        optional(t.metrics_of_samples(cfg, samples.as_slice()), metrics_of)
    })
}

extern "C" fn blind_predictions<T: Task>(
    config: RStr<'_>,
    train: RSlice<'_, Record>,
    test: RSlice<'_, Record>,
) -> RResult<ROption<RVec<NamedPredictions>>, PluginError> {
    with_settings::<T, _>(config, |t, cfg| {
        let named = t.blind_predictions(cfg, train.as_slice(), test.as_slice());
        optional(named, |n| {
            n.into_iter()
                .map(|(name, predictions)| NamedPredictions {
                    name: name.into(),
                    predictions: predictions.into(),
                })
                .collect()
        })
    })
}

/// The root module for task `T`; used by [`crate::export_task!`].
pub fn root_module<T: Task>() -> TaskPluginRef {
    TaskPlugin {
        interface_version: INTERFACE_VERSION,
        spec: spec::<T>,
        check_config: check_config::<T>,
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
