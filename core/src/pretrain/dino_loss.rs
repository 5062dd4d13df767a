//! DINO's self-distillation loss: the student's softmax on every view against the centred,
//! sharpened teacher softmax on each *other* global view; the centre is an EMA of the teacher's
//! outputs. Also the numbers that reveal collapse (DINO §5.3): the teacher's entropy and the
//! teacher–student KL divergence.

use anyhow::{bail, Result};
use candle_core::{Tensor, D};

use crate::model::layers::{log_softmax_last_dim, softmax_last_dim};

/// The loss value and what the teacher's distribution looked like.
pub struct DinoOutput {
    pub loss: Tensor,
    /// Mean per-sample entropy of the teacher's distribution (nats).
    pub teacher_entropy: f64,
    /// Entropy of the teacher's batch-mean distribution: low when one prototype wins everywhere.
    pub teacher_mean_entropy: f64,
    /// KL(teacher ‖ student) = cross-entropy − teacher entropy; → 0 at collapse.
    pub kl: f64,
    /// The batch's mean teacher output `[1, K]`, which moves the centre (through
    /// [`DinoLoss::update_center`], once per optimiser step, with every batch of the step).
    pub teacher_mean: Tensor,
}

/// The kind of collapse the teacher's distribution shows, if any.
pub fn collapse(
    out_dim: usize,
    teacher_entropy: f64,
    teacher_mean_entropy: f64,
) -> Option<&'static str> {
    let max = (out_dim as f64).ln();
    if !(teacher_entropy.is_finite() && teacher_mean_entropy.is_finite()) {
        Some("diverged: the teacher's entropies are not numbers (NaN or infinite outputs)")
    } else if teacher_entropy >= 0.95 * max {
        Some("uniform: every image gets the same flat distribution (teacher temperature too high, or centering dominates)")
    } else if teacher_mean_entropy <= 0.05 * max {
        Some("one prototype dominates every image (teacher temperature too low, or no centering)")
    } else {
        None
    }
}

pub struct DinoLoss {
    /// EMA of the teacher outputs, `[1, K]`.
    pub center: Tensor,
    pub student_temp: f64,
    pub center_momentum: f64,
}

impl DinoLoss {
    pub fn new(center: Tensor, student_temp: f64, center_momentum: f64) -> Self {
        Self {
            center,
            student_temp,
            center_momentum,
        }
    }

    /// `student`: logits of every view (the global ones first), each `[B, K]`; `teacher`: logits
    /// of the global views, each `[B, K]` (detached here). The centre is left as it is.
    pub fn forward(
        &self,
        student: &[Tensor],
        teacher: &[Tensor],
        teacher_temp: f64,
    ) -> Result<DinoOutput> {
        if teacher.is_empty() || student.len() < 2 {
            bail!("DINO needs teacher outputs and at least two student views");
        }
        let teacher: Vec<Tensor> = teacher.iter().map(Tensor::detach).collect();
        let probs = teacher
            .iter()
            .map(|t| softmax_last_dim(&(t.broadcast_sub(&self.center)? / teacher_temp)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let log_student = student
            .iter()
            .map(|s| log_softmax_last_dim(&(s / self.student_temp)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut total: Option<Tensor> = None;
        let mut terms = 0usize;
        for (iq, q) in probs.iter().enumerate() {
            for (v, logp) in log_student.iter().enumerate() {
                if v == iq {
                    continue; // a view is never its own target
                }
                let ce = (q * logp)?.sum(D::Minus1)?.mean_all()?.neg()?;
                total = Some(match total {
                    None => ce,
                    Some(acc) => (acc + ce)?,
                });
                terms += 1;
            }
        }
        let loss = (total.expect("at least one pair") / terms as f64)?;

        // Collapse statistics of the teacher's distribution.
        let q = Tensor::cat(&probs, 0)?;
        let entropy = |p: &Tensor| -> candle_core::Result<Tensor> {
            (p * p.clamp(1e-12, 1.0)?.log()?)?.sum(D::Minus1)?.neg()
        };
        let teacher_entropy = entropy(&q)?.mean_all()?.to_scalar::<f32>()? as f64;
        let teacher_mean_entropy = entropy(&q.mean(0)?)?.to_scalar::<f32>()? as f64;
        let kl = loss.to_scalar::<f32>()? as f64 - teacher_entropy;

        Ok(DinoOutput {
            loss,
            teacher_entropy,
            teacher_mean_entropy,
            kl,
            teacher_mean: Tensor::cat(&teacher, 0)?.mean_keepdim(0)?,
        })
    }

    /// Moves the centre towards `batch_center`, the mean teacher output over the step's images
    /// (on every process: DINO's `update_center` all-reduces it).
    pub fn update_center(&mut self, batch_center: &Tensor) -> Result<()> {
        self.center = ((&self.center * self.center_momentum)?
            + (batch_center * (1.0 - self.center_momentum))?)?;
        Ok(())
    }
}

/// Teacher temperature at `step`: linear from `warmup` to `final_temp` over `warmup_steps`.
pub fn teacher_temperature(step: usize, warmup: f64, final_temp: f64, warmup_steps: usize) -> f64 {
    if step >= warmup_steps {
        final_temp
    } else {
        warmup + (final_temp - warmup) * step as f64 / warmup_steps as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn the_loss_pairs_each_teacher_view_with_the_other_views_only() {
        // One image, K = 2, two global views and one local view; centre 0; temperatures 1.
        let s = [
            t(&[0.0, 0.0], (1, 2)),
            t(&[1.0, 0.0], (1, 2)),
            t(&[0.0, 2.0], (1, 2)),
        ];
        let te = [t(&[0.0, 0.0], (1, 2)), t(&[3f32.ln(), 0.0], (1, 2))];
        let mut loss = DinoLoss::new(t(&[0.0, 0.0], (1, 2)), 1.0, 0.5);
        let out = loss.forward(&s, &te, 1.0).unwrap();
        loss.update_center(&out.teacher_mean).unwrap();
        let lsm = |a: f64, b: f64| {
            let z = (a.exp() + b.exp()).ln();
            (a - z, b - z)
        };
        let ce = |q: (f64, f64), s: (f64, f64)| {
            let (la, lb) = lsm(s.0, s.1);
            -(q.0 * la + q.1 * lb)
        };
        // Teacher 0 = (½, ½) against student views 1 and 2; teacher 1 = (¾, ¼) against 0 and 2.
        let want = (ce((0.5, 0.5), (1.0, 0.0))
            + ce((0.5, 0.5), (0.0, 2.0))
            + ce((0.75, 0.25), (0.0, 0.0))
            + ce((0.75, 0.25), (0.0, 2.0)))
            / 4.0;
        let got = out.loss.to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // Centre: ½·0 + ½·mean(teacher logits) = ½·(ln3 / 2, 0).
        let c = loss.center.to_vec2::<f32>().unwrap();
        assert!((c[0][0] as f64 - 3f64.ln() / 4.0).abs() < 1e-6 && c[0][1].abs() < 1e-7);
        // Entropies: H(½,½) = ln 2, H(¾,¼); mean distribution (⅝, ⅜).
        let h = |p: f64| -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
        assert!((out.teacher_entropy - (h(0.5) + h(0.75)) / 2.0).abs() < 1e-5);
        assert!((out.teacher_mean_entropy - h(0.625)).abs() < 1e-5);
    }

    #[test]
    fn collapse_is_named_by_its_kind() {
        let k = 100usize;
        let max = (k as f64).ln();
        assert!(collapse(k, max, max).unwrap().starts_with("uniform"));
        assert!(collapse(k, 0.0, 0.01).unwrap().contains("dominates"));
        assert!(collapse(k, 0.3 * max, 0.9 * max).is_none());
        assert!(collapse(k, f64::NAN, 0.9 * max)
            .unwrap()
            .starts_with("diverged"));
        assert_eq!(teacher_temperature(0, 0.04, 0.07, 10), 0.04);
        assert!((teacher_temperature(5, 0.04, 0.07, 10) - 0.055).abs() < 1e-12);
        assert_eq!(teacher_temperature(10, 0.04, 0.07, 10), 0.07);
    }
}
