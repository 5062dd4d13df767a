//! The three pre-training losses of one batch, each under its own prompt: DINO (student on every
//! view against the EMA teacher on the global views), part cross-entropy on the global views'
//! patches, attribute BCE on their CLS. The caller weights and sums them (training) or
//! differentiates each alone (gradient-conflict analysis).

use anyhow::Result;
use candle_core::{Device, Module, Tensor};

use super::data::{attribute_targets, view_part_labels, view_tensor, PretrainItem};
use super::dino_loss::{DinoLoss, DinoOutput};
use super::model::patch_logits;
use super::pseudo_losses::{attribute_loss, part_loss, IGNORE};
use super::setup::Setup;
use super::step_sum::LabelCounts;
use crate::model::VitOutput;

pub struct TaskLosses {
    pub dino: DinoOutput,
    /// `None` without pseudo-labels, or when every label of the batch was ignored.
    pub part: Option<Tensor>,
    pub attr: Option<Tensor>,
}

/// A batch's labels as its losses read them, derived once per batch: the part labels of both
/// global views' patches (when the run has a part loss) and what each loss averages over.
pub struct BatchLabels {
    pub part: Option<Vec<u8>>,
    pub counts: LabelCounts,
}

/// `items`' [`BatchLabels`]: counts are 0 for a loss the run has not.
pub fn batch_labels(setup: &Setup, items: &[PretrainItem]) -> BatchLabels {
    let (heads, tasks) = (&setup.heads, &setup.tasks);
    let part = match (&heads.part, tasks.part) {
        (Some(_), Some(_)) => {
            let patch = setup.student.vit.cfg.patch_size;
            Some(
                (0..2)
                    .flat_map(|v| view_part_labels(items, v, patch))
                    .collect::<Vec<u8>>(),
            )
        }
        _ => None,
    };
    let mut counts = LabelCounts {
        images: items.len(),
        part: part
            .as_ref()
            .map_or(0, |l| l.iter().filter(|l| **l != IGNORE).count()),
        attr: 0,
    };
    if let (Some(_), Some(_), Some(_)) = (&heads.attr, tasks.attr, &setup.positive_ratio) {
        let labelled = |it: &PretrainItem| {
            it.attributes
                .as_ref()
                .map_or(0, |(_, mask)| mask.iter().filter(|m| **m > 0.0).count())
        };
        counts.attr = 2 * items.iter().map(labelled).sum::<usize>();
    }
    BatchLabels { part, counts }
}

pub fn task_losses(
    setup: &Setup,
    (items, labels): (&[PretrainItem], &BatchLabels),
    dino: &DinoLoss,
    teacher_temp: f64,
    device: &Device,
) -> Result<TaskLosses> {
    let (student, heads, tasks) = (&setup.student, &setup.heads, &setup.tasks);
    let n_views = items[0].views.len();
    let globals = Tensor::cat(
        &[
            view_tensor(items, 0, device)?,
            view_tensor(items, 1, device)?,
        ],
        0,
    )?;
    // One student pass over the global views per distinct prompt (a backbone without prompts
    // needs one pass for all three losses).
    let mut passes: Vec<(Option<&str>, VitOutput)> = Vec::new();
    let mut global_pass = |task: Option<&'static str>| -> Result<VitOutput> {
        if let Some((_, out)) = passes.iter().find(|(t, _)| *t == task) {
            return Ok(out.clone());
        }
        let out = student.vit.forward(&globals, task)?;
        passes.push((task, out.clone()));
        Ok(out)
    };

    // DINO, prompt `ssl`.
    let teacher_out = setup.teacher.logits(&globals, tasks.ssl)?.chunk(2, 0)?;
    let mut student_out = heads
        .dino
        .forward(&global_pass(tasks.ssl)?.cls)?
        .chunk(2, 0)?;
    if n_views > 2 {
        let locals = Tensor::cat(
            &(2..n_views)
                .map(|v| view_tensor(items, v, device))
                .collect::<Result<Vec<_>>>()?,
            0,
        )?;
        let cls = student.vit.forward(&locals, tasks.ssl)?.cls;
        student_out.extend(heads.dino.forward(&cls)?.chunk(n_views - 2, 0)?);
    }
    let dino_out = dino.forward(&student_out, &teacher_out, teacher_temp)?;

    // Part labels on the global views' patches, prompt `part`.
    let mut part = None;
    if let (Some(head), Some(task), Some(labels)) = (&heads.part, tasks.part, &labels.part) {
        let out = global_pass(task)?;
        part = part_loss(&patch_logits(&out, head)?, labels)?;
    }
    // Attributes on the global views' CLS, prompt `attr`.
    let mut attr = None;
    if let (Some(head), Some(task), Some(ratio)) = (&heads.attr, tasks.attr, &setup.positive_ratio)
    {
        let out = global_pass(task)?;
        let (t, m) = attribute_targets(items, head.out_dim(), device)?;
        let (t, m) = (Tensor::cat(&[&t, &t], 0)?, Tensor::cat(&[&m, &m], 0)?);
        attr = attribute_loss(&head.forward(&out.cls)?, &t, &m, ratio)?;
    }
    Ok(TaskLosses {
        dino: dino_out,
        part,
        attr,
    })
}
