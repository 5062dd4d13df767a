//! `clasp analyze compare --task T NAME=RUN … [--against NAME]`: results of any probe or
//! fine-tuning runs of one task on one test split, with 95 % bootstrap intervals over the test
//! people, beside the split's image-blind levels, and each result's paired difference with the
//! first (or `--against`) — the quickstart report's reading for runs made by hand (another label
//! source, another lever).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::GlobalArgs;
use crate::finetune::train::{BLIND_LEVELS_FILE, TEST_SCORES_FILE};
use crate::plugin_host::loader::find_task;
use crate::plugin_host::scoring::Scorer;
use crate::plugin_host::task_config::resolve;
use crate::probe::{ProbeOutcome, PROBE_FILE};
use crate::scoring::blind::BlindLevel;
use crate::scoring::{compare, Entry, Sample, ScoredSplit};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Task of the runs (a plugin's spec name).
    #[arg(long)]
    pub task: String,
    /// `NAME=RUN_DIR` of a `clasp probe` or `clasp finetune` run; repeat. Runs compared must
    /// score the same test split.
    #[arg(required = true, num_args = 2..)]
    pub runs: Vec<String>,
    /// The run every other is compared with (default: the first).
    #[arg(long)]
    pub against: Option<String>,
    /// Bootstrap draws.
    #[arg(long, default_value_t = 1000)]
    pub replicates: usize,
}

/// A run's test rows (one per head) and the blind levels of its test split.
fn read_run(dir: &Path) -> Result<(Vec<Vec<Sample>>, Vec<BlindLevel>)> {
    let rows = |s: &ScoredSplit| {
        s.samples
            .clone()
            .with_context(|| format!("{}: the plugin kept no per-sample scores", dir.display()))
    };
    let probe = dir.join(PROBE_FILE);
    if probe.is_file() {
        let text = std::fs::read(&probe).with_context(|| format!("reading {}", probe.display()))?;
        let out: ProbeOutcome = serde_json::from_slice(&text)
            .with_context(|| format!("parsing {}", probe.display()))?;
        let heads = out
            .seeds
            .iter()
            .map(|s| rows(&s.test))
            .collect::<Result<_>>()?;
        return Ok((heads, out.blind));
    }
    let scores = dir.join(TEST_SCORES_FILE);
    if !scores.is_file() {
        bail!(
            "{}: neither a probe run ({PROBE_FILE}) nor a fine-tuning run ({TEST_SCORES_FILE})",
            dir.display()
        );
    }
    let split = ScoredSplit::read(&scores)?;
    let blind_path = dir.join(BLIND_LEVELS_FILE);
    let blind = match std::fs::read(&blind_path) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("parsing {}", blind_path.display()))?,
        Err(_) => Vec::new(),
    };
    Ok((vec![rows(&split)?], blind))
}

pub fn run(g: &GlobalArgs, args: CompareArgs) -> Result<()> {
    let config = g.load()?;
    let plugin = find_task(&config.plugins, &args.task)?;
    let scorer = Scorer {
        config: resolve(&plugin, &config.task)?,
        plugin,
    };
    let mut named = Vec::new();
    for spec in &args.runs {
        let Some((name, dir)) = spec.split_once('=') else {
            bail!("`{spec}`: expected NAME=RUN_DIR");
        };
        named.push((name.to_string(), read_run(&PathBuf::from(dir))?));
    }
    let against = args.against.clone().unwrap_or_else(|| named[0].0.clone());
    if !named.iter().any(|(n, _)| *n == against) {
        bail!("--against {against}: no run of that name");
    }
    let entries: Vec<Entry> = named
        .iter()
        .map(|(name, (heads, _))| Entry {
            name,
            runs: vec![heads.iter().map(Vec::as_slice).collect()],
        })
        .collect();
    let pairs: Vec<(&str, &str)> = named
        .iter()
        .filter(|(n, _)| *n != against)
        .map(|(n, _)| (n.as_str(), against.as_str()))
        .collect();
    let metric = scorer.plugin.spec.primary_metric.to_string();
    let c = compare(
        &scorer,
        &[metric.as_str()],
        &entries,
        &named[0].1 .1,
        &pairs,
        args.replicates,
        config.run.seed,
    )?
    .remove(0);
    println!(
        "{} ({metric}), 95 % intervals over the test people, {} draws:",
        args.task, c.replicates
    );
    for (name, i) in &c.blind {
        println!(
            "  image-blind {name}: {:.4} [{:.4}, {:.4}]",
            i.value, i.lo, i.hi
        );
    }
    for (name, i) in &c.results {
        println!("  {name}: {:.4} [{:.4}, {:.4}]", i.value, i.lo, i.hi);
    }
    for d in &c.differences {
        let i = &d.interval;
        println!(
            "  {} − {}: {:+.4} [{:+.4}, {:+.4}] {}",
            d.a,
            d.b,
            i.value,
            i.lo,
            i.hi,
            d.verdict()
        );
    }
    Ok(())
}
