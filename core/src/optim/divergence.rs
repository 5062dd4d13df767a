//! A diverged run stops at once: the first non-finite loss (or gradient norm, which
//! [`super::AdamW::step`] refuses) ends training with an error that says where and why, before
//! anything is saved as final or scored.

use anyhow::{bail, Result};

/// Fails when any loss term is not finite, naming the step, every term and the learning rate.
pub fn ensure_finite_loss(step: usize, lr: f64, terms: &[(&str, f64)]) -> Result<()> {
    if terms.iter().all(|(_, v)| v.is_finite()) {
        return Ok(());
    }
    let listed: Vec<String> = terms.iter().map(|(k, v)| format!("{k} {v}")).collect();
    bail!(
        "training diverged at step {step}: {} (learning rate {lr:.3e}); nothing was saved as \
         final. Lower `optim.lr` or lengthen the warm-up, and rerun with --overwrite",
        listed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_term_names_the_step_every_term_and_the_lr() {
        assert!(ensure_finite_loss(3, 1e-3, &[("loss", 1.5), ("part", 0.2)]).is_ok());
        let msg = ensure_finite_loss(7, 1e30, &[("loss", f64::NAN), ("part", 0.2)])
            .unwrap_err()
            .to_string();
        for part in ["step 7", "loss NaN", "part 0.2", "1.000e30"] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
        assert!(ensure_finite_loss(0, 1e-3, &[("loss", f64::INFINITY)]).is_err());
    }
}
