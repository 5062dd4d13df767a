//! What the quickstart compares: the same backbone (nano ViT, task prompts, PC-MoE unless said)
//! fine-tuned on each task (a) from scratch, (b) after DINO-only pre-training, (c) after CLASP
//! pre-training without PC-MoE, (d) after full CLASP pre-training — same data, same budgets.

/// One column of the report.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// Directory-name key: `finetune-<key>-<task>`, `pretrain-<key>`.
    pub key: &'static str,
    pub title: &'static str,
    /// Pre-trained at all; with the CLIP pseudo-labels (part + attribute losses).
    pub pretrained: bool,
    pub pseudo_labels: bool,
    /// Model settings of this variant (its pre-training and its fine-tuning).
    pub model: &'static [&'static str],
}

pub const VARIANTS: [Variant; 4] = [
    Variant {
        key: "scratch",
        title: "(a) from scratch",
        pretrained: false,
        pseudo_labels: false,
        model: &[],
    },
    Variant {
        key: "dino",
        title: "(b) DINO only",
        pretrained: true,
        pseudo_labels: false,
        model: &[],
    },
    Variant {
        key: "clasp-no-moe",
        title: "(c) CLASP, no PC-MoE",
        pretrained: true,
        pseudo_labels: true,
        model: &["model.moe.enabled=false"],
    },
    Variant {
        key: "clasp",
        title: "(d) CLASP",
        pretrained: true,
        pseudo_labels: true,
        model: &[],
    },
];

/// A task plugin and where its data lives in the synthetic set.
#[derive(Debug, Clone, Copy)]
pub struct QuickTask {
    pub name: &'static str,
    pub data_dir: &'static str,
    /// Its recipe (the shipped `configs/finetune/<task>.toml`), budgets applied on top.
    pub recipe: &'static str,
    /// A dense head (parsing, pose): its width comes from the budget.
    pub dense: bool,
}

pub const TASKS: [QuickTask; 4] = [
    QuickTask {
        name: "reid",
        data_dir: "reid",
        recipe: include_str!("../../../configs/finetune/reid.toml"),
        dense: false,
    },
    QuickTask {
        name: "parsing",
        data_dir: "parsing",
        recipe: include_str!("../../../configs/finetune/parsing.toml"),
        dense: true,
    },
    QuickTask {
        name: "pose",
        data_dir: "pose",
        recipe: include_str!("../../../configs/finetune/pose.toml"),
        dense: true,
    },
    QuickTask {
        name: "attribute",
        data_dir: "attributes",
        recipe: include_str!("../../../configs/finetune/attribute.toml"),
        dense: false,
    },
];

/// The teacher's recipe: its words are the synthetic captions' words.
pub const TEACHER_RECIPE: &str = include_str!("../../../configs/teacher/synthetic.toml");
