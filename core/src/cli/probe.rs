//! `clasp probe --task NAME [--backbone CKPT] [--data DIR]`: a frozen backbone's features scored
//! through the task plugin's head trained on them alone (settings under `[probe]`).

use anyhow::Result;

use super::finetune::TaskRunArgs;
use super::GlobalArgs;
use crate::device::parse_device;
use crate::plugin_host::loader::find_task;
use crate::probe::probe;
use crate::run_dir::{Existing, RunDir};
use crate::scoring::blind::blind_line;

pub fn run(g: &GlobalArgs, args: TaskRunArgs) -> Result<()> {
    let config = args.load(g, "probe", Vec::new())?;
    let plugin = find_task(&config.plugins, &args.task)?;
    let device = parse_device(&config.run.device)?;
    let run = RunDir::create(&config, Existing::from_flags(false, args.overwrite))?;
    let out = probe(&config, plugin, args.backbone.as_deref(), &run, &device)?;
    let values: Vec<String> = out
        .seeds
        .iter()
        .map(|s| format!("{:.4}", s.test.metric(&out.primary).unwrap_or(f64::NAN)))
        .collect();
    println!(
        "probe `{}`: test {} per seed {} (features {:.0} s, heads {:.0} s)\n{}\n→ {}",
        out.task,
        out.primary,
        values.join(", "),
        out.feature_seconds,
        out.head_seconds,
        blind_line(&out.blind, &out.primary),
        run.path.join(crate::probe::PROBE_FILE).display()
    );
    Ok(())
}
