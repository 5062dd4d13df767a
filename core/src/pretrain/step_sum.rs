//! One pre-training step's sums over its batches (`pretrain.accumulate`) and over the processes
//! of a data-parallel job: the gradients, the logged numbers and DINO's batch centre, each loss
//! of a batch weighted by the batch's share of what that loss averages over in the whole step
//! (images, part-labelled patches, attribute labels), so the step is the one a single batch of
//! all the step's images takes. With one batch on one process every weight is exactly 1, and the
//! step is the plain one to the bit.

use std::collections::BTreeMap;

use anyhow::Result;
use candle_core::Tensor;

use super::train::StepLoss;
use crate::distributed::gradients::sum_gradients;
use crate::distributed::World;
use crate::optim::{add_grads, share, AdamW};

/// What a batch's losses average over: its images (DINO, the gate loss), its part-labelled
/// patches and its attribute labels (the pseudo-label losses, means over the labels the teacher
/// was confident of).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LabelCounts {
    pub images: usize,
    pub part: usize,
    pub attr: usize,
}

impl LabelCounts {
    pub fn sum(counts: impl IntoIterator<Item = LabelCounts>) -> Self {
        counts.into_iter().fold(Self::default(), |a, c| Self {
            images: a.images + c.images,
            part: a.part + c.part,
            attr: a.attr + c.attr,
        })
    }

    /// The sums over every process of `world`.
    pub fn over_world(self, world: &World) -> Result<Self> {
        let mut v = [self.images as f64, self.part as f64, self.attr as f64];
        world.sum_f64(&mut v)?;
        Ok(Self {
            images: v[0].round() as usize,
            part: v[1].round() as usize,
            attr: v[2].round() as usize,
        })
    }

    /// This batch's share of each count of the whole `step`: the weights that make the step's
    /// batches (on every process) sum to the losses of one batch holding them all.
    pub fn shares_of(&self, step: &LabelCounts) -> Shares {
        Shares {
            images: share(self.images, step.images),
            part: share(self.part, step.part),
            attr: share(self.attr, step.attr),
        }
    }
}

/// A batch's weights in its step; all exactly 1 for one batch on one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shares {
    pub images: f64,
    pub part: f64,
    pub attr: f64,
}

/// A loss term some batches have and others not (no usable pseudo-label): its weighted sum and
/// the weight of the batches that have it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Partial {
    sum: f64,
    weight: f64,
}

impl Partial {
    fn add(&mut self, value: Option<f64>, weight: f64) {
        if let Some(v) = value {
            self.sum += v * weight;
            self.weight += weight;
        }
    }

    /// The mean over the batches that have the term; `None` when none has it.
    pub fn mean(&self) -> Option<f64> {
        (self.weight > 0.0).then(|| self.sum / self.weight)
    }
}

/// The step's logged numbers: each batch's weighted by its share of the step's images. The
/// teacher entropies are such averages too (the entropy of the step's mean distribution is not
/// recomputed from the batches').
#[derive(Debug, Clone, Copy, Default)]
pub struct StepValues {
    pub loss: f64,
    pub ssl: f64,
    pub teacher_entropy: f64,
    pub teacher_mean_entropy: f64,
    pub kl: f64,
    pub part: Partial,
    pub attr: Partial,
    pub gate_mi: Partial,
}

impl StepValues {
    const LEN: usize = 11;

    fn to_array(self) -> [f64; Self::LEN] {
        let p = |x: Partial| [x.sum, x.weight];
        let [ps, pw] = p(self.part);
        let [as_, aw] = p(self.attr);
        let [gs, gw] = p(self.gate_mi);
        [
            self.loss,
            self.ssl,
            self.teacher_entropy,
            self.teacher_mean_entropy,
            self.kl,
            ps,
            pw,
            as_,
            aw,
            gs,
            gw,
        ]
    }

    fn from_array(a: [f64; Self::LEN]) -> Self {
        let p = |sum, weight| Partial { sum, weight };
        Self {
            loss: a[0],
            ssl: a[1],
            teacher_entropy: a[2],
            teacher_mean_entropy: a[3],
            kl: a[4],
            part: p(a[5], a[6]),
            attr: p(a[7], a[8]),
            gate_mi: p(a[9], a[10]),
        }
    }
}

/// The step so far.
pub struct StepSum {
    /// Gradients by parameter name.
    pub grads: BTreeMap<String, Tensor>,
    pub values: StepValues,
    /// The weighted sum of the batches' mean teacher outputs, `[1, K]`: the step's mean teacher
    /// output once every batch and process is in.
    pub centre: Tensor,
}

impl StepSum {
    /// An empty step of DINO outputs `[1, K]` shaped like `centre`.
    pub fn new(centre: &Tensor) -> Result<Self> {
        Ok(Self {
            grads: BTreeMap::new(),
            values: StepValues::default(),
            centre: centre.zeros_like()?,
        })
    }

    /// Adds one batch's loss `l` (already weighted by its shares): its gradients (for `opt`'s
    /// parameters), numbers and mean teacher output.
    pub fn add(&mut self, opt: &AdamW, l: StepLoss) -> Result<()> {
        add_grads(&mut self.grads, opt, &l.total.backward()?)?;
        let (v, w) = (&mut self.values, l.shares);
        v.loss += l.value;
        v.ssl += l.dino.loss.to_scalar::<f32>()? as f64 * w.images;
        v.teacher_entropy += l.dino.teacher_entropy * w.images;
        v.teacher_mean_entropy += l.dino.teacher_mean_entropy * w.images;
        v.kl += l.dino.kl * w.images;
        v.part.add(l.part, w.part);
        v.attr.add(l.attr, w.attr);
        v.gate_mi.add(l.gate_mi, w.images);
        self.centre = (&self.centre + (&l.dino.teacher_mean * w.images)?)?;
        Ok(())
    }

    /// The sums over every process of `world` (a process whose batches were all unreadable
    /// adds nothing, but takes part).
    pub fn over_world(mut self, world: &World, opt: &AdamW) -> Result<Self> {
        if world.size == 1 {
            return Ok(self);
        }
        sum_gradients(world, opt, &mut self.grads)?;
        let mut values = self.values.to_array();
        world.sum_f64(&mut values)?;
        self.values = StepValues::from_array(values);
        let mut centre = self.centre.flatten_all()?.to_vec1::<f32>()?;
        world.sum_f32(&mut centre)?;
        self.centre = Tensor::from_vec(centre, self.centre.shape(), self.centre.device())?;
        Ok(self)
    }
}
