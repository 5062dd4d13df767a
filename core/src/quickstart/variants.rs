//! What the quickstart compares: the same backbone (nano ViT, task prompts, PC-MoE unless said)
//! fine-tuned on each task (a) from scratch, (b) after DINO-only pre-training, (c) after CLASP
//! pre-training without PC-MoE, (d) after full CLASP pre-training — same data, same budgets.

use crate::config::overrides::Overrides;

/// One column of the report. Without pre-training, probes read a randomly initialised backbone
/// and fine-tuning starts from one.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// Directory-name key: `finetune-<key>-<task>`, `pretrain-<key>`.
    pub key: &'static str,
    pub title: &'static str,
    /// Pre-trained at all; with the CLIP pseudo-labels (part + attribute losses).
    pub pretrained: bool,
    pub pseudo_labels: bool,
    /// PC-MoE in the backbone (its pre-training and its fine-tuning).
    pub pc_moe: bool,
}

impl Variant {
    /// The model settings of this variant: PC-MoE switched off where the variant has none;
    /// otherwise the recipe's (or the environment's) setting stands.
    pub fn model(&self) -> Overrides {
        match self.pc_moe {
            true => Overrides::new(),
            false => Overrides::new().set("model.moe.enabled", false),
        }
    }
}

pub const VARIANTS: [Variant; 4] = [
    Variant {
        key: "scratch",
        title: "(a) random init",
        pretrained: false,
        pseudo_labels: false,
        pc_moe: true,
    },
    Variant {
        key: "dino",
        title: "(b) DINO only",
        pretrained: true,
        pseudo_labels: false,
        pc_moe: true,
    },
    Variant {
        key: "clasp-no-moe",
        title: "(c) CLASP, no PC-MoE",
        pretrained: true,
        pseudo_labels: true,
        pc_moe: false,
    },
    Variant {
        key: "clasp",
        title: "(d) CLASP",
        pretrained: true,
        pseudo_labels: true,
        pc_moe: true,
    },
];

/// A task plugin and where its data lives in the synthetic set.
#[derive(Debug, Clone, Copy)]
pub struct QuickTask {
    pub name: &'static str,
    pub data_dir: &'static str,
    /// Its recipe (the shipped `configs/finetune/<task>.toml`), budgets applied on top.
    pub recipe: &'static str,
    /// Metrics reported with intervals besides the plugin's primary one.
    pub also: &'static [&'static str],
    /// Also read by nearest neighbour on the frozen CLS (a retrieval task).
    pub nearest_neighbour: bool,
}

pub const TASKS: [QuickTask; 4] = [
    QuickTask {
        name: "reid",
        data_dir: "reid",
        recipe: include_str!("../../../configs/finetune/reid.toml"),
        also: &[],
        nearest_neighbour: true,
    },
    QuickTask {
        name: "parsing",
        data_dir: "parsing",
        recipe: include_str!("../../../configs/finetune/parsing.toml"),
        also: &[],
        nearest_neighbour: false,
    },
    QuickTask {
        name: "pose",
        data_dir: "pose",
        recipe: include_str!("../../../configs/finetune/pose.toml"),
        also: &[],
        nearest_neighbour: false,
    },
    QuickTask {
        name: "attribute",
        data_dir: "attributes",
        recipe: include_str!("../../../configs/finetune/attribute.toml"),
        // mA at a 0.5 threshold hides a weak model's ranking; the AUC reads it.
        also: &["mAUC"],
        nearest_neighbour: false,
    },
];

/// The teacher's recipe: its words are the synthetic captions' words.
pub const TEACHER_RECIPE: &str = include_str!("../../../configs/teacher/synthetic.toml");

/// The paired differences the report reads (variant keys, a − b): what pre-training gives over
/// none, what the pseudo-labels add to DINO, what PC-MoE adds to the pseudo-labels.
pub const DIFFERENCES: [(&str, &str); 4] = [
    ("clasp", "scratch"),
    ("dino", "scratch"),
    ("clasp", "dino"),
    ("clasp", "clasp-no-moe"),
];
