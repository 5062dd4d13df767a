//! How much work each quickstart stage does: the default budget (≤ 15 minutes on 2 cores) and
//! `--fast` (the end-to-end test's). Every stage of one variant gets the same budget as the
//! same stage of the others, so the report compares pre-training methods, not budgets.

/// Stage settings as config overrides (`key=value`, TOML values), applied over each stage's
/// recipe and under the user's `--set`.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Downstream data: identities × images per identity (Market-style split in half).
    pub identities: u32,
    pub images_per_id: u32,
    /// The unlabeled pool that is labelled and pre-trained on (another seed: other people),
    /// like LUPerson beside Market-1501.
    pub pool_identities: u32,
    pub pool_images_per_id: u32,
    /// The teacher's own pool: many people, few images each, rendered at the teacher's input
    /// size — attributes are learnt from the variety of people, not from more views of few.
    pub teacher_pool_identities: u32,
    pub teacher_pool_images_per_id: u32,
    pub teacher_pool_size: [usize; 2],
    /// Rendered image size [H, W].
    pub image_size: [usize; 2],
    /// Every stage: the backbone and its input.
    pub model: Vec<String>,
    pub teacher: Vec<String>,
    pub pretrain: Vec<String>,
    pub finetune: Vec<String>,
    /// Fine-tuning epochs per task (the same for every variant).
    pub epochs: Vec<(&'static str, usize)>,
    /// Extra settings of the dense tasks (parsing, pose): head width, and a short-run LR.
    pub dense_task: Vec<String>,
    /// Batches the gradient-conflict analysis averages over.
    pub conflict_batches: usize,
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Budget {
    pub fn default_run() -> Self {
        Self {
            identities: 100,
            images_per_id: 8,
            pool_identities: 400,
            pool_images_per_id: 4,
            teacher_pool_identities: 6000,
            teacher_pool_images_per_id: 3,
            teacher_pool_size: [128, 64],
            image_size: [256, 128],
            model: owned(&[
                "model.preset=\"nano\"",
                "model.img_size=[128, 64]",
                // The teacher's projection width: its text embeddings seed the task prompts.
                "model.prompts.text_dim=96",
            ]),
            // ~1,100 steps (about 3 minutes here) on the teacher's 9,000 training people.
            teacher: owned(&["teacher.epochs=4"]),
            pretrain: owned(&[
                "pretrain.epochs=3",
                "pretrain.batch_size=32",
                "pretrain.crops.global_size=[128, 64]",
                "pretrain.crops.local_size=[64, 32]",
                "pretrain.crops.n_local=2",
                // Few prototypes: 156 steps cannot spread over thousands.
                "pretrain.dino.out_dim=256",
                "pretrain.dino.hidden_dim=256",
                "pretrain.dino.bottleneck_dim=64",
                "pretrain.log_every=5",
                // DINO's 0.996 suits long runs: over 156 steps the EMA teacher (the exported
                // backbone) would stay 73 % at its initialisation.
                "pretrain.dino.momentum=0.9",
                // DINO freezes the prototypes for its first epoch; here that is a third of the run.
                "pretrain.dino.freeze_last_layer_epochs=0",
                "optim.warmup_steps=20",
                // DINO scales its LR with the batch (5e-4 per 256 images): at 5e-4 and batch
                // 32 the teacher's entropy swung and ended uniform (collapse) in all variants.
                "optim.lr=1e-4",
                "checkpoint.every=50",
            ]),
            finetune: owned(&["finetune.batch_size=32", "finetune.eval_every=100"]),
            // 5–25 s per task on 2 cores.
            epochs: vec![("reid", 10), ("parsing", 6), ("pose", 14), ("attribute", 8)],
            // The dense recipes' LR (2e-4 / 5e-4, warm-up 2 / 5 epochs) is for 50–210 epochs;
            // in 6–14 their fresh heads barely move (parsing loss stays at ln 20, pose AP at
            // 0.001). MMSeg's head lr_mult 10 and a higher LR train them: parsing mIoU 0.05 →
            // 0.08, pose AP 0.001 → 0.06 from scratch.
            dense_task: owned(&[
                "task.channels=32",
                "optim.lr=1e-3",
                "optim.head_lr_scale=10",
                "finetune.warmup_epochs=1",
            ]),
            conflict_batches: 4,
        }
    }

    pub fn fast() -> Self {
        Self {
            identities: 10,
            images_per_id: 4,
            pool_identities: 16,
            pool_images_per_id: 3,
            teacher_pool_identities: 16,
            teacher_pool_images_per_id: 3,
            teacher_pool_size: [64, 32],
            image_size: [128, 64],
            model: owned(&[
                "model.preset=\"nano\"",
                "model.img_size=[64, 32]",
                "model.prompts.text_dim=16",
            ]),
            teacher: owned(&[
                "teacher.img_size=[64, 32]",
                "teacher.width=32",
                "teacher.layers=2",
                "teacher.heads=2",
                "teacher.text_width=32",
                "teacher.text_layers=1",
                "teacher.text_heads=2",
                "teacher.projection_dim=16",
                "teacher.epochs=1",
                "teacher.batch_size=8",
                "teacher.warmup_steps=2",
            ]),
            pretrain: owned(&[
                "pretrain.epochs=1",
                "pretrain.batch_size=8",
                "pretrain.crops.global_size=[64, 32]",
                "pretrain.crops.local_size=[32, 16]",
                "pretrain.crops.n_local=1",
                "pretrain.dino.out_dim=64",
                "pretrain.dino.hidden_dim=32",
                "pretrain.dino.bottleneck_dim=16",
                "pretrain.log_every=1",
                "optim.warmup_steps=2",
                "checkpoint.every=100",
            ]),
            finetune: owned(&["finetune.batch_size=8", "finetune.eval_every=100"]),
            epochs: vec![("reid", 1), ("parsing", 1), ("pose", 1), ("attribute", 1)],
            dense_task: owned(&["task.channels=8"]),
            conflict_batches: 1,
        }
    }
}
