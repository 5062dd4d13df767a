//! Synthetic data and task settings for the plugin tests.

use std::path::{Path, PathBuf};

use clasp_core::data::synth::dataset::{generate, SynthOptions};
use clasp_core::plugin_host::task_config::resolve;
use clasp_core::plugin_host::Plugin;

/// A synthetic dataset in a temporary folder (every format side by side).
pub fn synth(
    identities: u32,
    images_per_id: u32,
    cameras: u32,
    seed: u64,
    size: [usize; 2],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    generate(
        &SynthOptions {
            out: dir.path().to_path_buf(),
            identities,
            images_per_id,
            cameras,
            seed,
            height: size[0],
            width: size[1],
            jpeg_quality: 90,
            threads: 2,
        },
        &|_| {},
    )
    .unwrap();
    dir
}

/// The plugin's task settings with `settings` over its defaults, as the JSON it receives.
pub fn task_config(plugin: &Plugin, settings: &[(&str, toml::Value)]) -> String {
    let mut t = toml::Table::new();
    for (k, v) in settings {
        t.insert(k.to_string(), v.clone());
    }
    resolve(plugin, &t).unwrap()
}

/// The prediction pictures under `dir` (run folders included), not the training curves.
pub fn pictures(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "png") && !p.ends_with("curves.png") {
                out.push(p);
            }
        }
    }
    out
}

/// Runs `clasp predict` with a task checkpoint and `args` (images, options); returns its stdout
/// and the pictures it drew. With `TEST_PICTURES_OUT=DIR` set, the first picture is kept as
/// `DIR/NAME.png` for a person to look at.
pub fn predict_pictures(checkpoint: &Path, args: &[&str], name: &str) -> (String, Vec<PathBuf>) {
    let runs = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(super::plugin_libs::clasp_exe())
        .args(["predict", "--checkpoint"])
        .arg(checkpoint)
        .args(args)
        .args(["--set", &format!("run.dir=\"{}\"", runs.path().display())])
        .env("CLASP_PLUGIN_PATH", super::plugin_libs::plugin_dir())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let drawn = pictures(runs.path());
    if let (Ok(keep), Some(first)) = (std::env::var("TEST_PICTURES_OUT"), drawn.first()) {
        std::fs::copy(first, Path::new(&keep).join(format!("{name}.png"))).unwrap();
    }
    // The pictures live in the temporary run folder: keep their names only.
    let names = drawn
        .iter()
        .map(|p| PathBuf::from(p.file_name().unwrap()))
        .collect();
    (String::from_utf8_lossy(&run.stdout).into_owned(), names)
}

/// A nano backbone fine-tuned from random weights on `root` through the plugin of `task`, at
/// 128×64, evaluated once after `epochs`; `settings` are further `--set` overrides.
pub struct FromScratch {
    pub config: clasp_core::config::Config,
    pub plugins: clasp_core::config::schema::PluginSettings,
    pub outcome: clasp_core::finetune::FinetuneOutcome,
    pub model: clasp_core::finetune::TaskModel,
    pub seconds: f64,
    /// Holds the run folder (checkpoint) alive.
    pub runs: tempfile::TempDir,
}

pub fn finetune_from_scratch(
    task: &str,
    root: &Path,
    epochs: usize,
    settings: &[&str],
) -> FromScratch {
    use clasp_core::config::ConfigSources;
    use clasp_core::finetune::{finetune, TaskModel};
    use clasp_core::run_dir::{Existing, RunDir};

    let plugins = clasp_core::config::schema::PluginSettings {
        dirs: vec![super::plugin_libs::plugin_dir().display().to_string()],
        ..Default::default()
    };
    let runs = tempfile::tempdir().unwrap();
    let mut overrides = vec![
        "model.preset=\"nano\"".to_string(),
        "model.img_size=[128, 64]".into(),
        format!("run.dir=\"{}\"", runs.path().display()),
        format!("run.name=\"{task}\""),
        format!("finetune.data=\"{}\"", root.display()),
        format!("finetune.epochs={epochs}"),
        // Evaluated once, at the end: the budget goes to training.
        format!("finetune.eval_every={epochs}"),
        "optim.weight_decay=0.0".into(),
    ];
    overrides.extend(settings.iter().map(|s| s.to_string()));
    let config = ConfigSources {
        overrides,
        ..Default::default()
    }
    .load()
    .unwrap();
    let run = RunDir::create(&config, Existing::Refuse).unwrap();
    let plugin = clasp_core::plugin_host::loader::find_task(&plugins, task).unwrap();
    let start = std::time::Instant::now();
    let outcome = finetune(&config, plugin, None, &run, &candle_core::Device::Cpu).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let model = TaskModel::load(&outcome.checkpoint, &plugins, &candle_core::Device::Cpu).unwrap();
    FromScratch {
        config,
        plugins,
        outcome,
        model,
        seconds,
        runs,
    }
}

/// A head saved with its buffers and restored gives the same evaluation output; returns it.
pub fn assert_restores(
    th: &clasp_core::plugin_host::task_head::TaskHead,
    cls: &candle_core::Tensor,
    patches: &candle_core::Tensor,
    what: &str,
) -> clasp_core::plugin_host::task_head::HeadOutputs {
    let eval = th.forward(cls, patches, false).unwrap();
    let restored = clasp_core::plugin_host::task_head::TaskHead::restore(
        th.plugin.clone(),
        th.config.clone(),
        th.dim,
        &candle_core::Device::Cpu,
        th.state.tensors(),
    )
    .unwrap();
    let again = restored.forward(cls, patches, false).unwrap();
    let again = again.first().unwrap();
    assert_eq!(
        super::max_abs_diff(eval.first().unwrap(), again),
        0.0,
        "{what}"
    );
    eval
}
