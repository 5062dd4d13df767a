//! Reading back numbers that may be NaN: serde_json writes a NaN as `null`, which does not read
//! back as an `f64`. These read `null` as NaN (for `#[serde(deserialize_with = …)]`).

use serde::{Deserialize, Deserializer};

/// A number, `null` read as NaN.
pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Named numbers (`[["mAP", 0.5], ["rank1", null]]`), `null` read as NaN.
pub fn named<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
    let pairs = Vec::<(String, Option<f64>)>::deserialize(d)?;
    Ok(pairs
        .into_iter()
        .map(|(name, v)| (name, v.unwrap_or(f64::NAN)))
        .collect())
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Row {
        #[serde(deserialize_with = "super::number")]
        loss: f64,
        #[serde(deserialize_with = "super::named")]
        metrics: Vec<(String, f64)>,
    }

    #[test]
    fn nan_written_as_null_reads_back_as_nan() {
        let row = Row {
            loss: f64::NAN,
            metrics: vec![("mAP".into(), 0.5), ("rank1".into(), f64::NAN)],
        };
        let text = serde_json::to_string(&row).unwrap();
        assert_eq!(
            text,
            r#"{"loss":null,"metrics":[["mAP",0.5],["rank1",null]]}"#
        );
        let back: Row = serde_json::from_str(&text).unwrap();
        assert!(back.loss.is_nan() && back.metrics[1].1.is_nan());
        assert_eq!(back.metrics[0], ("mAP".to_string(), 0.5));
    }
}
