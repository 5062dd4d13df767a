//! What pre-training trains: the student backbone with its heads (DINO projection, part
//! classifier on patch tokens, attribute classifier on CLS), and the EMA teacher (backbone +
//! DINO head) that the student distils from.

use anyhow::{bail, Context, Result};
use candle_core::{Module, Tensor};

use super::dino_head::DinoHead;
use crate::backbone::Backbone;
use crate::config::pretrain::DinoSettings;
use crate::model::layers::Linear;
use crate::model::{ParamStore, VitOutput};

/// Scope names inside the heads' store.
pub const DINO_HEAD: &str = "dino_head";
pub const PART_HEAD: &str = "part_head";
pub const ATTR_HEAD: &str = "attr_head";

/// The prompt each loss runs under (DESIGN §5).
pub const SSL_TASK: &str = "ssl";
pub const PART_TASK: &str = "part";
pub const ATTR_TASK: &str = "attr";

pub struct Heads {
    pub store: ParamStore,
    pub dino: DinoHead,
    pub part: Option<Linear>,
    pub attr: Option<Linear>,
}

impl Heads {
    /// `parts`/`attrs`: class counts of the pseudo-labels (`None` without a label cache).
    pub fn new(
        store: ParamStore,
        dim: usize,
        dino: &DinoSettings,
        parts: Option<usize>,
        attrs: Option<usize>,
    ) -> Result<Self> {
        let root = store.root();
        Ok(Self {
            dino: DinoHead::new(&root.pp(DINO_HEAD), dim, dino)?,
            part: parts
                .map(|k| Linear::new(&root.pp(PART_HEAD), dim, k, true))
                .transpose()?,
            attr: attrs
                .map(|a| Linear::new(&root.pp(ATTR_HEAD), dim, a, true))
                .transpose()?,
            store,
        })
    }
}

/// The EMA teacher: a backbone and a DINO head whose values follow the student's.
pub struct EmaTeacher {
    pub backbone: Backbone,
    pub head_store: ParamStore,
    pub head: DinoHead,
}

impl EmaTeacher {
    /// A teacher equal to the student now.
    pub fn copy_of(student: &Backbone, heads: &Heads, dino: &DinoSettings) -> Result<Self> {
        let backbone = student.frozen_copy()?;
        let head_store = ParamStore::frozen(student.store.device());
        let head = DinoHead::new(
            &head_store.root().pp(DINO_HEAD),
            student.vit.cfg.embed_dim,
            dino,
        )?;
        let values = heads
            .store
            .tensors()
            .into_iter()
            .filter(|(k, _)| k.starts_with(DINO_HEAD))
            .collect();
        head_store.load_strict(&values)?;
        Ok(Self {
            backbone,
            head_store,
            head,
        })
    }

    /// θ_t ← m·θ_t + (1 − m)·θ_s for the backbone and the DINO head.
    pub fn update(&self, student: &Backbone, heads: &Heads, momentum: f64) -> Result<()> {
        ema(&self.backbone.store, &student.store, momentum)?;
        ema(&self.head_store, &heads.store, momentum)
    }

    /// Prototype logits of images under the `ssl` prompt, without a graph.
    pub fn logits(&self, images: &Tensor, task: Option<&str>) -> Result<Tensor> {
        let out = self.backbone.vit.forward(images, task)?;
        Ok(self.head.forward(&out.cls)?.detach())
    }
}

/// Moves every variable of `teacher` towards the variable of the same name in `student`.
fn ema(teacher: &ParamStore, student: &ParamStore, momentum: f64) -> Result<()> {
    for (name, var) in teacher.vars() {
        let s = student
            .get(&name)
            .with_context(|| format!("EMA: the student has no `{name}`"))?;
        let next = ((var.as_tensor() * momentum)? + (s.as_tensor() * (1.0 - momentum))?)?;
        var.set(&next.detach())?;
    }
    Ok(())
}

/// Part logits of every patch, `[B · gh · gw, K]` in the row-major order of
/// [`super::data::view_part_labels`].
pub fn patch_logits(out: &VitOutput, head: &Linear) -> Result<Tensor> {
    let (b, d, gh, gw) = out.patches.dims4()?;
    let tokens = out
        .patches
        .flatten_from(2)?
        .transpose(1, 2)?
        .reshape((b * gh * gw, d))?;
    Ok(head.forward(&tokens)?)
}

/// The task a loss runs under: its prompt when the backbone has prompts, else none. A backbone
/// with prompts but without the task is an error that names the config key.
pub fn task_for<'a>(backbone: &Backbone, task: &'a str) -> Result<Option<&'a str>> {
    if backbone.vit.cfg.prompts.is_none() {
        return Ok(None);
    }
    if !backbone.vit.tasks().iter().any(|t| t == task) {
        bail!(
            "the backbone has task prompts but none for `{task}`: add it to `model.prompts.tasks` \
             (has {:?})",
            backbone.vit.tasks()
        );
    }
    Ok(Some(task))
}
