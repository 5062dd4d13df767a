//! The image-blind levels of a task: what predictors that never look at an image score on the
//! same test split (the plugin names and builds them from the training targets). A result is
//! read against the best of them.

use anyhow::Result;
use clasp_sdk::abi::Record;

use super::scored_split::ScoredSplit;
use crate::plugin_host::scoring::Scorer;

/// One image-blind predictor's scores on the test split.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BlindLevel {
    pub name: String,
    pub scores: ScoredSplit,
}

/// Scores every image-blind predictor the plugin names for `test` (targets as loaded for
/// evaluation), built from the `train` targets; empty when the plugin names none.
pub fn blind_levels(scorer: &Scorer, train: &[Record], test: &[Record]) -> Result<Vec<BlindLevel>> {
    let Some(named) = scorer.blind_predictions(train, test)? else {
        return Ok(Vec::new());
    };
    named
        .into_iter()
        .map(|(name, predictions)| {
            let metrics = scorer.evaluate(&predictions, test)?;
            Ok(BlindLevel {
                name,
                scores: ScoredSplit::score(scorer, metrics, &predictions, test)?,
            })
        })
        .collect()
}

/// `image-blind levels (mAP): random ranking 0.0312` — what a result is read beside.
pub fn blind_line(levels: &[BlindLevel], metric: &str) -> String {
    if levels.is_empty() {
        return "image-blind levels: the plugin names none".into();
    }
    let each: Vec<String> = levels
        .iter()
        .map(|l| {
            let v = l.scores.metric(metric).unwrap_or(f64::NAN);
            format!("{} {v:.4}", l.name)
        })
        .collect();
    format!("image-blind levels ({metric}): {}", each.join(", "))
}
