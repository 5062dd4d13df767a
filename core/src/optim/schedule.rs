//! Step-based schedules: linear warm-up followed by a cosine from `base` to `final_value`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CosineSchedule {
    pub base: f64,
    pub final_value: f64,
    pub total_steps: usize,
    pub warmup_steps: usize,
    /// Value at step 0 of the warm-up (DINO warms up from 0).
    pub warmup_start: f64,
}

impl CosineSchedule {
    pub fn constant(value: f64) -> Self {
        Self {
            base: value,
            final_value: value,
            total_steps: 1,
            warmup_steps: 0,
            warmup_start: value,
        }
    }

    /// The value used for optimiser step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            let t = step as f64 / self.warmup_steps as f64;
            return self.warmup_start + (self.base - self.warmup_start) * t;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps);
        if decay_steps == 0 {
            return self.base;
        }
        let t = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        self.final_value
            + 0.5 * (self.base - self.final_value) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_hits_its_ends() {
        let s = CosineSchedule {
            base: 1.0,
            final_value: 0.1,
            total_steps: 110,
            warmup_steps: 10,
            warmup_start: 0.0,
        };
        assert_eq!(s.at(0), 0.0);
        assert!((s.at(5) - 0.5).abs() < 1e-12);
        assert!((s.at(10) - 1.0).abs() < 1e-12);
        assert!((s.at(60) - 0.55).abs() < 1e-12);
        assert!((s.at(110) - 0.1).abs() < 1e-12);
        assert!((s.at(500) - 0.1).abs() < 1e-12);
    }
}
