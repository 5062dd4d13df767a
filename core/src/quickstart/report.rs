//! `runs/quickstart/report.md` and `results.png`: for frozen-backbone probes, reid's nearest
//! neighbour on the frozen CLS and fine-tuning, each task's metric for the four variants with
//! 95 % intervals over the test people, beside the image-blind levels, and the paired differences
//! that say what pre-training, the pseudo-labels and PC-MoE add — "ahead" or "behind" only when
//! the interval leaves out 0. Then the pseudo-label quality, the pre-training runs and the
//! gradient-conflict tables.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::budget::Tier;
use super::protocol::Protocol;
use super::results::{PretrainResult, ProbeResult, TaskResult};
use super::stage_pool::Parallelism;
use super::variants::{DIFFERENCES, TASKS, VARIANTS};
use crate::charts::bars::{write_bar_chart, Bar, BarChart, Group, Panel};
use crate::finetune::train::{BLIND_LEVELS_FILE, TEST_SCORES_FILE};
use crate::plugin_host::scoring::Scorer;
use crate::pretrain::grad_conflict::ConflictTable;
use crate::probe::{ProbeOutcome, PROBE_FILE};
use crate::scoring::blind::BlindLevel;
use crate::scoring::{compare, Comparison, Difference, Entry, Interval, Sample, ScoredSplit};
use crate::teacher::quality::QualityReport;

/// One task under one protocol: its metrics compared across the variants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskTable {
    pub protocol: Protocol,
    pub task: String,
    /// The primary metric first.
    pub comparisons: Vec<Comparison>,
    /// Test people the intervals resample; training runs (pre-training seeds) per variant and
    /// heads per run (probe seeds).
    pub people: usize,
    pub runs_per_variant: usize,
    pub heads_per_run: usize,
}

/// Per variant, the test rows of its runs of one task (per training run, per head), and the
/// blind levels of the test split.
struct Rows {
    per_variant: Vec<(String, Vec<Vec<Vec<Sample>>>)>,
    blind: Vec<BlindLevel>,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

fn rows_of(split: &ScoredSplit, what: &str) -> Result<Vec<Sample>> {
    split
        .samples
        .clone()
        .with_context(|| format!("{what}: the plugin kept no per-sample scores"))
}

fn probe_rows(probes: &[ProbeResult], protocol: Protocol, task: &str) -> Result<Rows> {
    let mut per_variant = Vec::new();
    let mut blind = None;
    for v in &VARIANTS {
        let mut runs = Vec::new();
        for p in probes
            .iter()
            .filter(|p| p.protocol == protocol && p.task == task && p.variant == v.key)
        {
            let out: ProbeOutcome = read(&Path::new(&p.run).join(PROBE_FILE))?;
            let heads = out
                .seeds
                .iter()
                .map(|s| rows_of(&s.test, &p.run))
                .collect::<Result<Vec<_>>>()?;
            runs.push(heads);
            blind.get_or_insert(out.blind);
        }
        per_variant.push((v.key.to_string(), runs));
    }
    Ok(Rows {
        per_variant,
        blind: blind.unwrap_or_default(),
    })
}

fn finetune_rows(results: &[TaskResult], task: &str) -> Result<Rows> {
    let mut per_variant = Vec::new();
    let mut blind = None;
    for v in &VARIANTS {
        let mut runs = Vec::new();
        for r in results
            .iter()
            .filter(|r| r.task == task && r.variant == v.key)
        {
            let run = Path::new(&r.run);
            let split = ScoredSplit::read(&run.join(TEST_SCORES_FILE))?;
            runs.push(vec![rows_of(&split, &r.run)?]);
            if blind.is_none() {
                blind = Some(read(&run.join(BLIND_LEVELS_FILE))?);
            }
        }
        per_variant.push((v.key.to_string(), runs));
    }
    Ok(Rows {
        per_variant,
        blind: blind.unwrap_or_default(),
    })
}

/// Every task's comparison under every protocol that reads it, each on `replicates` bootstrap
/// draws. `probes` holds the probe and nearest-neighbour runs (told apart by their protocol).
pub fn comparisons(
    scorers: &[(String, Scorer)],
    probes: &[ProbeResult],
    results: &[TaskResult],
    replicates: usize,
    seed: u64,
) -> Result<Vec<TaskTable>> {
    let mut tables = Vec::new();
    for protocol in Protocol::ALL {
        for t in TASKS.iter().filter(|t| protocol.reads(t)) {
            let scorer = &scorers
                .iter()
                .find(|(name, _)| name == t.name)
                .with_context(|| format!("no plugin for task `{}`", t.name))?
                .1;
            let rows = match protocol {
                Protocol::Probe | Protocol::NearestNeighbour => {
                    probe_rows(probes, protocol, t.name)?
                }
                Protocol::Finetune => finetune_rows(results, t.name)?,
            };
            if rows.per_variant.iter().any(|(_, runs)| runs.is_empty()) {
                continue;
            }
            let entries: Vec<Entry> = rows
                .per_variant
                .iter()
                .map(|(name, runs)| Entry {
                    name,
                    runs: runs
                        .iter()
                        .map(|heads| heads.iter().map(Vec::as_slice).collect())
                        .collect(),
                })
                .collect();
            let primary = scorer.plugin.spec.primary_metric.to_string();
            let metrics: Vec<&str> = std::iter::once(primary.as_str())
                .chain(t.also.iter().copied())
                .collect();
            let comparisons = compare(
                scorer,
                &metrics,
                &entries,
                &rows.blind,
                &DIFFERENCES,
                replicates,
                seed,
            )?;
            let first = &rows.per_variant[0].1;
            let mut people: Vec<u64> = first[0][0].iter().map(|s| s.group).collect();
            people.sort_unstable();
            people.dedup();
            tables.push(TaskTable {
                protocol,
                task: t.name.to_string(),
                comparisons,
                people: people.len(),
                runs_per_variant: first.len(),
                heads_per_run: first[0].len(),
            });
        }
    }
    Ok(tables)
}

pub struct Report<'a> {
    pub tier: Tier,
    pub shipped_teacher: bool,
    pub stage_seconds: &'a [(String, f64)],
    /// This invocation's wall time (stages that run side by side overlap in the table).
    pub wall_seconds: f64,
    /// How the stages after the labels ran when child processes ran any of them.
    pub parallelism: Option<Parallelism>,
    /// The share of the machine's CPU time a hypervisor took during the run (`None` without
    /// `/proc/stat`).
    pub host_steal: Option<f64>,
    pub teacher: &'a QualityReport,
    pub pretraining: &'a [PretrainResult],
    pub tables: &'a [TaskTable],
    pub conflicts: &'a [ConflictTable],
}

fn cell(i: &Interval) -> String {
    format!("{:.4} [{:.4}, {:.4}]", i.value, i.lo, i.hi)
}

fn signed(d: &Difference) -> String {
    let i = &d.interval;
    format!(
        "{:+.4} [{:+.4}, {:+.4}] {}",
        i.value,
        i.lo,
        i.hi,
        d.verdict()
    )
}

fn title_of(key: &str) -> &'static str {
    VARIANTS
        .iter()
        .find(|v| v.key == key)
        .map_or("?", |v| v.title)
}

impl Report<'_> {
    fn protocol_section(&self, protocol: Protocol) -> String {
        let tables: Vec<&TaskTable> = self
            .tables
            .iter()
            .filter(|t| t.protocol == protocol)
            .collect();
        let Some(first) = tables.first() else {
            return String::new();
        };
        let heads: Vec<String> = tables
            .iter()
            .map(|t| format!("{} {}", t.task, t.heads_per_run))
            .collect();
        let runs = match (first.runs_per_variant, protocol) {
            (1, Protocol::Finetune) => "one run per variant: the intervals hold the test \
                                         people's variance, not the training's"
                .to_string(),
            (r, Protocol::NearestNeighbour) => format!(
                "pre-training runs per variant: {r}; each feature channel standardised by the \
                 training split's statistics, cosine distance, nothing trained"
            ),
            (1, Protocol::Probe) => format!(
                "one pre-training run per variant; heads per run: {}: the intervals hold the \
                 test people's and the heads' variance, not pre-training's",
                heads.join(", ")
            ),
            (r, _) => format!(
                "{r} pre-training runs per variant, drawn with the people; heads per run: {}",
                heads.join(", ")
            ),
        };
        let read = match protocol {
            Protocol::NearestNeighbour => "Test split",
            Protocol::Probe | Protocol::Finetune => {
                "Test split, read once per run after the epoch was chosen on validation"
            }
        };
        let mut md = format!(
            "\n## {}\n\n{read}; 95 % intervals from {} bootstrap draws of the test people \
             ({runs}).\n\n",
            protocol.title(),
            first.comparisons[0].replicates,
        );
        md += "| task (metric) | people | image-blind level |";
        for v in VARIANTS {
            md += &format!(" {} |", v.title);
        }
        md += "\n|---|---:|---|";
        md += &"---|".repeat(VARIANTS.len());
        md.push('\n');
        for t in &tables {
            for c in &t.comparisons {
                md += &format!("| {} ({}) | {} |", t.task, c.metric, t.people);
                md += &match c.best_blind() {
                    Some((name, i)) => format!(" {} {name} |", cell(i)),
                    None => " – |".into(),
                };
                for v in VARIANTS {
                    let above = c
                        .over_blind
                        .iter()
                        .find(|d| d.a == v.key)
                        .is_some_and(|d| d.interval.lo > 0.0);
                    md += &match c.result(v.key) {
                        Some(i) => format!(" {}{} |", cell(i), if above { " ↑" } else { "" }),
                        None => " – |".into(),
                    };
                }
                md.push('\n');
            }
        }
        md +=
            "\n↑: above the image-blind level (the paired difference's interval leaves out 0).\n\n";
        md += "| difference |";
        for t in &tables {
            for c in &t.comparisons {
                md += &format!(" {} ({}) |", t.task, c.metric);
            }
        }
        md += "\n|---|";
        for t in &tables {
            md += &"---|".repeat(t.comparisons.len());
        }
        md.push('\n');
        for (a, b) in DIFFERENCES {
            md += &format!("| {} − {} |", title_of(a), title_of(b));
            for t in &tables {
                for c in &t.comparisons {
                    md += &match c.differences.iter().find(|d| d.a == a && d.b == b) {
                        Some(d) => format!(" {} |", signed(d)),
                        None => " – |".into(),
                    };
                }
            }
            md.push('\n');
        }
        let separated: Vec<String> = tables
            .iter()
            .flat_map(|t| {
                let c = &t.comparisons[0];
                c.differences
                    .iter()
                    .filter(|d| d.interval.excludes_zero())
                    .map(move |d| {
                        format!(
                            "{} {} on {} ({})",
                            title_of(&d.a),
                            d.verdict(),
                            title_of(&d.b),
                            t.task
                        )
                    })
            })
            .collect();
        md += &format!(
            "\nSeparated on the primary metrics: {}.\n",
            if separated.is_empty() {
                "none".to_string()
            } else {
                separated.join("; ")
            }
        );
        md
    }

    pub fn markdown(&self) -> String {
        let mut md = String::from("# CLASP quickstart report\n\n");
        md += &format!(
            "Built-in synthetic people, `{:?}` tier; every variant uses the same backbone, data and \
             budgets; teacher: {}. Metrics: each plugin's on its test split (higher is better).\n",
            self.tier,
            if self.shipped_teacher {
                "the shipped synthetic CLIP"
            } else {
                "trained in this run"
            }
        );
        for protocol in Protocol::ALL {
            md += &self.protocol_section(protocol);
        }

        let q = self.teacher;
        md += &format!(
            "\n## Pseudo-labels (the teacher against the synthetic truth)\n\npart mIoU {:.4} \
             (row baseline {:.4}; mean confidence {:.3}); attribute mA {:.4}.\n",
            q.part_miou, q.row_baseline_miou, q.part_confidence, q.attribute_ma
        );

        md += "\n## Pre-training\n\n| variant | seed | steps | DINO loss | part loss | attribute loss | teacher entropy | collapse | seconds |\n|---|---:|---:|---:|---:|---:|---:|---|---:|\n";
        let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.4}"));
        for p in self.pretraining {
            md += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |\n",
                p.variant,
                p.seed_index,
                p.steps,
                f(p.loss_ssl),
                f(p.loss_part),
                f(p.loss_attr),
                f(p.teacher_entropy),
                p.collapse.as_deref().unwrap_or("no"),
                p.seconds
            );
        }

        let with_gates: Vec<&PretrainResult> = self
            .pretraining
            .iter()
            .filter(|p| !p.gate_mi.is_empty())
            .collect();
        if !with_gates.is_empty() {
            md += "\n## PC-MoE gates after pre-training\n\nEntropy of each task's global gate \
                   over ln E per block (1: every expert alike, 0: one expert), and the task–expert \
                   mutual information per block (nats; ln 3 = 1.10 when the three pre-training \
                   tasks use experts of their own).\n\n| run | task | entropy per block | \
                   MI per block |\n|---|---|---|---|\n";
            let list = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            for p in &with_gates {
                for (i, (task, h)) in p.gate_entropy.iter().enumerate() {
                    let mi = if i == 0 {
                        list(&p.gate_mi)
                    } else {
                        String::new()
                    };
                    md += &format!(
                        "| {} seed {} | {task} | {} | {mi} |\n",
                        p.variant,
                        p.seed_index,
                        list(h)
                    );
                }
            }
        }

        if !self.conflicts.is_empty() {
            md += "\n## Gradient conflict (cosine between per-task gradients on shared parameters)\n\n```\n";
            for c in self.conflicts {
                md += &c.render();
                md.push('\n');
            }
            md += "```\n";
        }

        md += "\n## Time per stage\n\n| stage | seconds |\n|---|---:|\n";
        let mut total = 0.0;
        for (stage, s) in self.stage_seconds {
            md += &format!("| {stage} | {s:.0} |\n");
            total += s;
        }
        md += &format!("| total of the stages | {total:.0} |\n");
        md += &format!("\nWall time: {:.0} s", self.wall_seconds);
        md += &match self.parallelism {
            Some(p) => format!(
                "; pre-training, probes and fine-tuning ran {} stages at a time in processes of \
                 their own ({} thread(s) each), so their times overlap.\n",
                p.jobs, p.threads_per_job
            ),
            None => ".\n".to_string(),
        };
        if let Some(steal) = self.host_steal {
            md += &format!(
                "\nThe host took {:.1} % of this machine's CPU time during the run (`steal` in \
                 `/proc/stat`): on a shared virtual machine the times above grow with it, so \
                 compare runs' times only at similar values.\n",
                100.0 * steal
            );
        }
        md += "\nPer run: `probe-<variant>-<task>/probe.json`, `nn-<variant>-reid/probe.json`, \
               `finetune-<variant>-<task>/metrics.jsonl` \
               (validation per epoch) and `test_scores.json`; all intervals: `comparisons.json`; plots: \
               `results.png`, `pretrain-*/curves.png`, `pretrain-*/gates.png`, `grad_conflict.png`.\n";
        md
    }

    /// Per protocol, grouped bars per task (one per variant) with their intervals as whiskers and
    /// the image-blind level as a grey line.
    pub fn write_chart(&self, path: &Path) -> Result<()> {
        let series: Vec<&str> = VARIANTS.iter().map(|v| v.title).collect();
        // Nearest neighbour reads one task: its row in the report is enough.
        let panels = [Protocol::Probe, Protocol::Finetune]
            .iter()
            .map(|protocol| Panel {
                title: format!("{}: primary metric, 95% intervals", protocol.title()),
                groups: TASKS
                    .iter()
                    .filter_map(|t| {
                        let table = self
                            .tables
                            .iter()
                            .find(|x| x.protocol == *protocol && x.task == t.name)?;
                        let c = &table.comparisons[0];
                        let bar = |iv: &Interval| Bar {
                            value: iv.value,
                            lo: iv.lo,
                            hi: iv.hi,
                        };
                        Some(Group {
                            name: format!("{} ({})", t.name, c.metric),
                            bars: VARIANTS.iter().map(|v| c.result(v.key).map(bar)).collect(),
                            reference: c.best_blind().map(|b| b.1.value),
                        })
                    })
                    .collect(),
            })
            .collect();
        let chart = BarChart {
            series: &series,
            reference: "image-blind level",
            panels,
        };
        write_bar_chart(path, &chart)
    }
}
