//! The quickstart's stages after the labels: one pre-training run per variant and seed, then
//! each backbone read on each task (probes, nearest neighbour, fine-tuning). Each has a name (its
//! run folder, and its key for `clasp quickstart --stage NAME`) and at most one stage it needs.

use super::protocol::Protocol;
use super::variants::{QuickTask, Variant, TASKS, VARIANTS};

#[derive(Debug, Clone, Copy)]
pub enum Stage {
    Pretrain {
        variant: &'static Variant,
        seed_index: usize,
    },
    /// Backbone `variant` (its pre-training seed `seed_index`, or a random one) read on `task`.
    Read {
        protocol: Protocol,
        variant: &'static Variant,
        task: &'static QuickTask,
        seed_index: usize,
    },
}

impl Stage {
    /// Every stage of a run with `pretrain_seeds` pre-training seeds, in the order the report
    /// lists them: pre-training, probes (and nearest neighbour), fine-tuning (first seed only).
    pub fn all(pretrain_seeds: usize) -> Vec<Stage> {
        let seeds = 0..pretrain_seeds.max(1);
        let mut stages = Vec::new();
        for seed_index in seeds.clone() {
            for variant in VARIANTS.iter().filter(|v| v.pretrained) {
                stages.push(Stage::Pretrain {
                    variant,
                    seed_index,
                });
            }
        }
        for seed_index in seeds {
            for variant in &VARIANTS {
                for protocol in [Protocol::Probe, Protocol::NearestNeighbour] {
                    for task in TASKS.iter().filter(|t| protocol.reads(t)) {
                        stages.push(Stage::Read {
                            protocol,
                            variant,
                            task,
                            seed_index,
                        });
                    }
                }
            }
        }
        for variant in &VARIANTS {
            for task in &TASKS {
                stages.push(Stage::Read {
                    protocol: Protocol::Finetune,
                    variant,
                    task,
                    seed_index: 0,
                });
            }
        }
        stages
    }

    /// `stages` in the order a pool starts them as they become ready: the pre-trainings first,
    /// the first seed's first (every fine-tuning reads it), within a seed the costliest first
    /// (full CLASP runs PC-MoE and the two pseudo-label losses, DINO only neither), so that the
    /// reads waiting on them are not left for the end; then the reads in the report's order.
    pub fn in_pool_order(stages: &[Stage]) -> Vec<Stage> {
        let (mut pretraining, reads): (Vec<Stage>, Vec<Stage>) = stages
            .iter()
            .partition(|s| matches!(s, Stage::Pretrain { .. }));
        pretraining.sort_by_key(|s| match s {
            Stage::Pretrain {
                variant,
                seed_index,
            } => (*seed_index, !variant.pseudo_labels, !variant.pc_moe),
            Stage::Read { .. } => unreachable!("partitioned"),
        });
        pretraining.into_iter().chain(reads).collect()
    }

    /// Its run folder under the quickstart's: `pretrain-<variant>[-seed<k>]`,
    /// `<protocol>-<variant>[-seed<k>]-<task>`.
    pub fn name(&self) -> String {
        match *self {
            Stage::Pretrain {
                variant,
                seed_index: 0,
            } => format!("pretrain-{}", variant.key),
            Stage::Pretrain {
                variant,
                seed_index,
            } => format!("pretrain-{}-seed{seed_index}", variant.key),
            Stage::Read {
                protocol,
                variant,
                task,
                seed_index: 0,
            } => format!("{}-{}-{}", protocol.key(), variant.key, task.name),
            Stage::Read {
                protocol,
                variant,
                task,
                seed_index,
            } => format!(
                "{}-{}-seed{seed_index}-{}",
                protocol.key(),
                variant.key,
                task.name
            ),
        }
    }

    /// Its row in the report's time table.
    pub fn label(&self) -> String {
        match *self {
            Stage::Pretrain {
                variant,
                seed_index,
            } => format!("pretrain {} seed {seed_index}", variant.key),
            Stage::Read {
                protocol: Protocol::Finetune,
                variant,
                task,
                ..
            } => format!("finetune {} {}", variant.key, task.name),
            Stage::Read {
                protocol,
                variant,
                task,
                seed_index,
            } => format!(
                "{} {} {} seed {seed_index}",
                protocol.key(),
                variant.key,
                task.name
            ),
        }
    }

    /// The pre-training whose checkpoint this stage reads (none for a pre-training, nor for a
    /// random backbone).
    pub fn needs(&self) -> Option<Stage> {
        match *self {
            Stage::Read {
                variant,
                seed_index,
                ..
            } if variant.pretrained => Some(Stage::Pretrain {
                variant,
                seed_index,
            }),
            _ => None,
        }
    }

    /// The file a finished stage leaves in its run folder.
    pub fn result_file(&self) -> &'static str {
        match self {
            Stage::Pretrain { .. } => "done.json",
            Stage::Read { .. } => "result.json",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are unique (they are run folders and `--stage` keys), and every stage that reads a
    /// pre-trained backbone comes after the pre-training it needs.
    #[test]
    fn names_are_unique_and_needs_come_first() {
        for seeds in [1, 2] {
            let stages = Stage::all(seeds);
            let names: Vec<String> = stages.iter().map(Stage::name).collect();
            let unique: std::collections::HashSet<&String> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "{names:?}");
            for (i, s) in stages.iter().enumerate() {
                if let Some(n) = s.needs() {
                    let at = names.iter().position(|x| *x == n.name()).unwrap();
                    assert!(at < i, "{} before {}", n.name(), s.name());
                }
            }
        }
        let s = Stage::all(2);
        assert_eq!(s.len(), 2 * 3 + 2 * (4 * 5) + 4 * 4);
        let first: Vec<String> = Stage::in_pool_order(&s)[..7]
            .iter()
            .map(Stage::name)
            .collect();
        assert_eq!(
            first,
            [
                "pretrain-clasp",
                "pretrain-clasp-no-moe",
                "pretrain-dino",
                "pretrain-clasp-seed1",
                "pretrain-clasp-no-moe-seed1",
                "pretrain-dino-seed1",
                "probe-scratch-reid",
            ]
        );
        assert!(s.iter().any(|s| s.name() == "probe-clasp-seed1-reid"));
        assert!(s.iter().any(|s| s.name() == "pretrain-dino-seed1"));
    }
}
