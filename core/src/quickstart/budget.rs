//! How much work each quickstart stage does, per tier: `quick` (the default, ≤ 15 minutes on 2
//! cores), `standard` (≤ 90 minutes: a larger pool, longer pre-training, several seeds) and
//! `fast` (the end-to-end test's). Every stage of one variant gets the same budget as the same
//! stage of the others, so the report compares pre-training methods, not budgets.

use clap::ValueEnum;

use crate::config::overrides::{pair, Overrides};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tier {
    /// Seconds: the end-to-end test's run.
    Fast,
    /// The default: ≤ 15 minutes on 2 cores.
    Quick,
    /// ≤ 90 minutes on 2 cores: several pre-training seeds, more steps.
    Standard,
}

/// A synthetic set: identities × images per identity, rendered at [H, W].
#[derive(Debug, Clone, Copy)]
pub struct SetSize {
    pub identities: u32,
    pub images_per_id: u32,
}

/// Stage settings as config overrides (dotted keys, TOML values), applied over each stage's
/// recipe and under the user's `--set`.
#[derive(Debug, Clone)]
pub struct Budget {
    pub tier: Tier,
    /// The downstream set of reid, parsing and pose (split by identity: half train, a fifth of
    /// the rest validation, the rest test).
    pub downstream: SetSize,
    /// The attribute set: many people, few images each (as PA-100K).
    pub attributes: SetSize,
    /// The unlabeled pool that is labelled and pre-trained on (other people), like LUPerson
    /// beside Market-1501: the largest set.
    pub pool: SetSize,
    /// The teacher's own captioned people, rendered at the teacher's input size (only with
    /// `--train-teacher`; the shipped teacher was trained on the README's larger pool).
    pub teacher_pool: SetSize,
    pub teacher_pool_size: [usize; 2],
    /// Rendered image size [H, W].
    pub image_size: [usize; 2],
    /// Every stage: the backbone and its input.
    pub model: Overrides,
    pub teacher: Overrides,
    pub pretrain: Overrides,
    /// Pre-training runs per variant (seeds `run.seed`, `+1`, …); probes run on each, fine-tuning
    /// on the first.
    pub pretrain_seeds: usize,
    pub probe: Overrides,
    /// Per task, further probe settings: the dense heads' transposed convolutions are what
    /// probes spend their time on (~1.4 s an epoch for pose's), so parsing and pose run one
    /// seed each (the spread between probe seeds is a few thousandths; that between
    /// pre-training seeds is what counts).
    pub probe_task: Vec<(&'static str, Overrides)>,
    pub finetune: Overrides,
    /// Fine-tuning epochs per task (the same for every variant).
    pub epochs: Vec<(&'static str, usize)>,
    /// Per task, further fine-tuning settings: short-run recipes (chosen on validation).
    pub finetune_task: Vec<(&'static str, Overrides)>,
    /// Bootstrap draws of the test people behind every interval.
    pub replicates: usize,
    /// Batches the gradient-conflict analysis averages over.
    pub conflict_batches: usize,
}

/// Pre-training settings of a nano ViT at 128×64, for `steps`-scale runs.
fn nano_pretrain(epochs: i64, momentum: f64) -> Overrides {
    Overrides::new()
        .set("pretrain.batch_size", 32)
        .set("pretrain.crops.global_size", pair(128, 64))
        .set("pretrain.crops.local_size", pair(64, 32))
        .set("pretrain.crops.n_local", 2)
        // Few prototypes: a few hundred steps cannot spread over thousands.
        .set("pretrain.dino.out_dim", 256)
        .set("pretrain.dino.hidden_dim", 256)
        .set("pretrain.dino.bottleneck_dim", 64)
        .set("pretrain.log_every", 10)
        // DINO freezes the prototypes for its first epoch; a short run cannot spare it.
        .set("pretrain.dino.freeze_last_layer_epochs", 0)
        .set("optim.warmup_steps", 40)
        // DINO scales its LR with the batch (5e-4 per 256 images): at 5e-4 and batch 32 the
        // teacher's entropy swung and ended uniform (collapse) in all variants.
        .set("optim.lr", 1e-4)
        .set("checkpoint.every", 100)
        // PC-MoE's gates read a task summary ~0.2 in norm: at the backbone's LR their logits
        // move by ~0.01 in 500 steps and every gate stays at 1/E. At 100× (and with Mod-Squad's
        // task–expert MI loss) each pre-training task takes experts of its own.
        .set("optim.gate_lr_scale", 100)
        .set("pretrain.gate_mi_weight", 0.1)
        .set("pretrain.epochs", epochs)
        // DINO's 0.996 suits long runs: over a few hundred steps the EMA teacher (the exported
        // backbone) would stay near its initialisation.
        .set("pretrain.dino.momentum", momentum)
}

/// The backbone of every stage: a nano ViT at `size`, prompts seeded in the teacher's
/// projection width.
fn nano_model(size: toml::Value) -> Overrides {
    Overrides::new()
        .set("model.preset", "nano")
        .set("model.img_size", size)
        // The teacher's projection width: its text embeddings seed the task prompts.
        .set("model.prompts.text_dim", 96)
}

impl Budget {
    pub fn for_tier(tier: Tier) -> Self {
        match tier {
            Tier::Fast => Self::fast(),
            Tier::Quick => Self::quick(),
            Tier::Standard => Self::standard(),
        }
    }

    pub fn quick() -> Self {
        Self {
            tier: Tier::Quick,
            downstream: SetSize {
                identities: 300,
                images_per_id: 4,
            },
            attributes: SetSize {
                identities: 1500,
                images_per_id: 1,
            },
            pool: SetSize {
                identities: 1200,
                images_per_id: 4,
            },
            teacher_pool: SetSize {
                identities: 6000,
                images_per_id: 3,
            },
            teacher_pool_size: [128, 64],
            image_size: [256, 128],
            model: nano_model(pair(128, 64)),
            // ~1,100 steps (about 3 minutes here) on the teacher's 9,000 training people.
            teacher: Overrides::new().set("teacher.epochs", 4),
            pretrain: nano_pretrain(3, 0.99),
            pretrain_seeds: 1,
            probe: Overrides::new().set("probe.seeds", 3),
            probe_task: vec![
                ("reid", reid_probe()),
                ("attribute", attribute_probe()),
                // A nano ViT at 128×64 has an 8×4 patch grid: a linear probe there scored
                // below the per-pixel prior on validation (mIoU 0.077, CLASP backbone, standard
                // tier) and the two-step deconvolution head 0.195 (random backbone 0.168). Here
                // its validation mIoU rises with epochs (CLASP backbone: 0.091 / 0.139 / 0.155
                // after 10 / 20 / 30), 1.4 s each: 24 is what the 15 minutes leave room for.
                ("parsing", probe_epochs(24)),
                // Heatmap heads learn slowly from frozen features: val AP 0.000 / 0.003 / 0.014
                // after 10 epochs at LR 1e-3 / 3e-3, 30 epochs at 3e-3 (DINO backbone); 16
                // epochs leave parsing its 24 within the 15 minutes.
                ("pose", probe_epochs(16).set("probe.lr", 3e-3)),
            ],
            finetune: Overrides::new()
                .set("finetune.batch_size", 32)
                .set("finetune.eval_every", 2),
            epochs: vec![
                ("reid", 10),
                ("parsing", 6),
                // 600 training crops are 19 steps an epoch: after 10 epochs validation AP is
                // 0.08 (scratch) and still rising; in a 60-epoch run it peaks at 0.57 / 0.57 / 0.55
                // (epoch 50 / 55 / 45; scratch / DINO / CLASP backbones, LR 3e-3).
                ("pose", 60),
                ("attribute", 12),
            ],
            finetune_task: vec![
                ("parsing", dense_task(32)),
                ("pose", dense_task(32)),
                // The shipped recipe (LR 1e-4, 30+ epochs) leaves the loss flat in 12 epochs;
                // on validation LR 5e-4 with the head at 10× was the one that moved (mA 0.509
                // against 0.500–0.504 for LR 1e-4 or 2e-3, DINO backbone).
                (
                    "attribute",
                    Overrides::new()
                        .set("optim.lr", 5e-4)
                        .set("optim.head_lr_scale", 10)
                        .set("finetune.warmup_epochs", 1),
                ),
            ],
            replicates: 1000,
            conflict_batches: 4,
        }
    }

    pub fn standard() -> Self {
        Self {
            tier: Tier::Standard,
            downstream: SetSize {
                identities: 600,
                images_per_id: 4,
            },
            attributes: SetSize {
                identities: 3000,
                images_per_id: 1,
            },
            pool: SetSize {
                identities: 3000,
                images_per_id: 4,
            },
            pretrain: nano_pretrain(3, 0.996),
            pretrain_seeds: 2,
            probe: Overrides::new().set("probe.seeds", 3),
            probe_task: vec![
                ("reid", reid_probe()),
                ("attribute", attribute_probe()),
                // Validation mIoU still rose at 24 epochs (0.195, CLASP backbone).
                ("parsing", probe_epochs(30)),
                ("pose", probe_epochs(40).set("probe.lr", 3e-3)),
            ],
            epochs: vec![
                ("reid", 20),
                ("parsing", 12),
                // 1,200 training crops are 38 steps an epoch: 20 epochs were 760 steps, fewer
                // than the quick tier's 1,140, whose validation AP peaked after 850–1,050. 40
                // epochs (1,520 steps) give validation room to pick the epoch.
                ("pose", 40),
                ("attribute", 24),
            ],
            replicates: 2000,
            ..Self::quick()
        }
    }

    pub fn fast() -> Self {
        Self {
            tier: Tier::Fast,
            downstream: SetSize {
                identities: 20,
                images_per_id: 4,
            },
            attributes: SetSize {
                identities: 40,
                images_per_id: 1,
            },
            pool: SetSize {
                identities: 16,
                images_per_id: 3,
            },
            teacher_pool: SetSize {
                identities: 16,
                images_per_id: 3,
            },
            teacher_pool_size: [64, 32],
            image_size: [128, 64],
            model: nano_model(pair(64, 32)),
            teacher: Overrides::new()
                .set("teacher.img_size", pair(64, 32))
                .set("teacher.width", 32)
                .set("teacher.layers", 2)
                .set("teacher.heads", 2)
                .set("teacher.text_width", 32)
                .set("teacher.text_layers", 1)
                .set("teacher.text_heads", 2)
                .set("teacher.epochs", 1)
                .set("teacher.batch_size", 8)
                .set("teacher.warmup_steps", 2),
            pretrain: Overrides::new()
                .set("pretrain.epochs", 1)
                .set("pretrain.batch_size", 8)
                .set("pretrain.crops.global_size", pair(64, 32))
                .set("pretrain.crops.local_size", pair(32, 16))
                .set("pretrain.crops.n_local", 1)
                .set("pretrain.dino.out_dim", 64)
                .set("pretrain.dino.hidden_dim", 32)
                .set("pretrain.dino.bottleneck_dim", 16)
                .set("pretrain.log_every", 1)
                .set("optim.warmup_steps", 2)
                .set("checkpoint.every", 100),
            pretrain_seeds: 1,
            probe: Overrides::new()
                .set("probe.seeds", 2)
                .set("probe.epochs", 2)
                .set("probe.batch_size", 16),
            probe_task: vec![("parsing", Overrides::new().set("task.upsample_steps", 0))],
            finetune: Overrides::new()
                .set("finetune.batch_size", 8)
                .set("finetune.eval_every", 1),
            epochs: vec![("reid", 1), ("parsing", 1), ("pose", 1), ("attribute", 1)],
            finetune_task: vec![
                ("parsing", Overrides::new().set("task.channels", 8)),
                ("pose", Overrides::new().set("task.channels", 8)),
            ],
            replicates: 50,
            conflict_batches: 1,
        }
    }
}

/// The dense tasks' short-run recipe with heads of `channels` channels. Their shipped recipes
/// (LR 2e-4 / 5e-4, warm-up 2 / 5 epochs) are for 50–210 epochs; in 6–10 their fresh heads
/// barely move. MMSeg's head lr_mult 10 and a higher LR train them; the LR was chosen on
/// validation (DINO backbone, quick tier): parsing mIoU 0.068 / 0.121 / 0.133 / 0.098 and pose AP
/// 0.021 / 0.065 / 0.074 / 0.000 at LR 3e-4 / 1e-3 / 3e-3 / 1e-2.
/// Reid read through a linear projection of the CLS and the mean patch token, then the BN neck:
/// a BN neck alone only rescales the frozen feature. Validation mAP, standard tier (random /
/// DINO / CLASP backbone): BN neck on the CLS 0.041 / 0.041 / 0.043, this 0.084 / 0.134 / 0.170.
fn reid_probe() -> Overrides {
    Overrides::new()
        .set("task.head", "reduction")
        .set("task.reduction_dim", 128)
        .set("task.pool", "cls+mean")
}

/// Reid by nearest neighbour on the frozen CLS: the retrieval feature is the one before the BN
/// neck, which without a reduction layer is the standardised CLS itself, ranked by cosine
/// distance without re-ranking (what the report says of this section). One epoch of one head
/// is run only because a probe trains something; retrieval reads none of it.
pub fn nearest_neighbour_probe() -> Overrides {
    Overrides::new()
        .set("task.head", "bnneck")
        .set("task.pool", "cls")
        .set("task.neck_feat", "before")
        .set("task.distance", "cosine")
        .set("task.rerank", false)
        .set("probe.standardize", true)
        .set("probe.epochs", 1)
        .set("probe.seeds", 1)
        .set("probe.flip", false)
}

/// Attributes from the CLS and the mean patch token: validation mA, standard tier (random / DINO
/// / CLASP backbone), CLS alone 0.534 / 0.534 / 0.545, both 0.537 / 0.548 / 0.561.
fn attribute_probe() -> Overrides {
    Overrides::new().set("task.pool", "cls+mean")
}

/// A dense task's probe: `epochs` epochs, one seed.
fn probe_epochs(epochs: i64) -> Overrides {
    Overrides::new()
        .set("probe.epochs", epochs)
        .set("probe.seeds", 1)
}

fn dense_task(channels: i64) -> Overrides {
    Overrides::new()
        .set("optim.lr", 3e-3)
        .set("optim.head_lr_scale", 10)
        .set("finetune.warmup_epochs", 1)
        .set("task.channels", channels)
}
