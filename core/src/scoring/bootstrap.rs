//! Confidence intervals by the bootstrap over people: the test split's groups (identities) are
//! drawn with replacement, every result is scored on the same draw, and the 2.5th and 97.5th
//! percentiles of the replicates bound the 95 % interval — of a result, and of the paired
//! difference of two results on the same draws. With several runs per result (pre-training
//! seeds, and heads per run), each replicate also draws the runs and, within them, the heads
//! with replacement (independently per result), so the interval holds their variance as well.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::scored_split::Sample;
use crate::data::synth::rng_for;

/// A value with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// On all samples (the mean over seeds).
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// Whether the interval leaves 0 out: only then does a difference count, whatever its sign.
    pub fn excludes_zero(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

/// The `q`-quantile (0..=1) of `sorted`, linearly interpolated as numpy's default.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + frac * (next - sorted[i])
}

/// The 95 % percentile interval of `replicates` around `value`.
pub fn percentile_interval(value: f64, replicates: &[f64]) -> Interval {
    let mut v: Vec<f64> = replicates
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    v.sort_by(f64::total_cmp);
    Interval {
        value,
        lo: quantile(&v, 0.025),
        hi: quantile(&v, 0.975),
    }
}

/// The draws shared by every result compared on one test split.
pub struct Draws {
    /// Per replicate, the groups drawn (with repeats).
    groups: Vec<Vec<u64>>,
    rng_seed: u64,
}

impl Draws {
    /// `replicates` draws of as many groups as `groups` holds, from seed `rng_seed`.
    pub fn new(groups: &[u64], replicates: usize, rng_seed: u64) -> Self {
        let mut distinct = groups.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let mut rng = rng_for(rng_seed, &[0]);
        let groups = (0..replicates)
            .map(|_| {
                (0..distinct.len())
                    .map(|_| distinct[rng.gen_range(0..distinct.len())])
                    .collect()
            })
            .collect();
        Self { groups, rng_seed }
    }

    pub fn replicates(&self) -> usize {
        self.groups.len()
    }
}

/// A result's value and its value on every replicate.
pub struct Replicated {
    pub value: f64,
    pub replicates: Vec<f64>,
}

impl Replicated {
    pub fn interval(&self) -> Interval {
        percentile_interval(self.value, &self.replicates)
    }

    /// `self − other`, replicate by replicate (both on the same draws).
    pub fn minus(&self, other: &Replicated) -> Interval {
        let diffs: Vec<f64> = self
            .replicates
            .iter()
            .zip(&other.replicates)
            .map(|(a, b)| a - b)
            .collect();
        percentile_interval(self.value - other.value, &diffs)
    }

    /// Replicates on which the metric had no value (a resample without a class it needs).
    pub fn undefined(&self) -> usize {
        self.replicates.iter().filter(|v| !v.is_finite()).count()
    }
}

/// One result's test rows: per independent training run (a pre-training seed), the rows of each
/// head trained on it (probe seeds; one for fine-tuning).
pub type Runs<'a> = [Vec<&'a [Sample]>];

/// The metrics (`metrics` gives several at once for a multiset of rows) of one result on every
/// draw: the value is the mean over runs of the mean over their heads; each replicate draws the
/// people, then the runs with replacement, then within each drawn run its heads with
/// replacement — a two-stage bootstrap, so the heads of one run count as one run's worth of
/// evidence. `stream` keys this result's run and head draws.
pub fn replicate(
    runs: &Runs,
    draws: &Draws,
    stream: u64,
    metrics: &mut dyn FnMut(&[Sample]) -> Result<Vec<f64>>,
) -> Result<Vec<Replicated>> {
    if runs.is_empty() || runs.iter().any(Vec::is_empty) {
        bail!("a result without rows");
    }
    let by_group: Vec<Vec<BTreeMap<u64, Vec<&Sample>>>> = runs
        .iter()
        .map(|heads| {
            heads
                .iter()
                .map(|rows| {
                    let mut m: BTreeMap<u64, Vec<&Sample>> = BTreeMap::new();
                    for r in rows.iter() {
                        m.entry(r.group).or_default().push(r);
                    }
                    m
                })
                .collect()
        })
        .collect();
    let mean_of = |values: &[Vec<f64>]| -> Vec<f64> {
        let n = values.len().max(1) as f64;
        (0..values.first().map_or(0, Vec::len))
            .map(|k| values.iter().map(|v| v[k]).sum::<f64>() / n)
            .collect()
    };
    let mut per_run = Vec::new();
    for heads in runs {
        let mut v = Vec::new();
        for rows in heads {
            v.push(metrics(rows)?);
        }
        per_run.push(mean_of(&v));
    }
    let value = mean_of(&per_run);
    let mut rng = rng_for(draws.rng_seed, &[1, stream]);
    let mut replicates: Vec<Vec<f64>> = vec![Vec::with_capacity(draws.replicates()); value.len()];
    let mut rows: Vec<Sample> = Vec::new();
    for groups in &draws.groups {
        let mut drawn_runs = Vec::with_capacity(runs.len());
        for _ in 0..runs.len() {
            let r = rng.gen_range(0..runs.len());
            let mut heads = Vec::with_capacity(runs[r].len());
            for _ in 0..runs[r].len() {
                let h = rng.gen_range(0..runs[r].len());
                rows.clear();
                for g in groups {
                    if let Some(of_group) = by_group[r][h].get(g) {
                        rows.extend(of_group.iter().map(|s| (*s).clone()));
                    }
                }
                heads.push(metrics(&rows)?);
            }
            drawn_runs.push(mean_of(&heads));
        }
        for (k, v) in mean_of(&drawn_runs).into_iter().enumerate() {
            replicates[k].push(v);
        }
    }
    Ok(value
        .into_iter()
        .zip(replicates)
        .map(|(value, replicates)| Replicated { value, replicates })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                group: i as u64,
                values: vec![*v],
            })
            .collect()
    }

    fn mean(rows: &[Sample]) -> Result<Vec<f64>> {
        Ok(vec![
            rows.iter().map(|r| r.values[0]).sum::<f64>() / rows.len().max(1) as f64,
        ])
    }

    /// One run with one head of `rows`.
    fn one(rows: &[Sample]) -> Vec<Vec<&[Sample]>> {
        vec![vec![rows]]
    }

    #[test]
    fn quantiles_interpolate_as_numpy() {
        // np.quantile([1, 2, 3, 4], [0.025, 0.5, 0.975]) = [1.075, 2.5, 3.925]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((quantile(&v, 0.025) - 1.075).abs() < 1e-12);
        assert!((quantile(&v, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile(&v, 0.975) - 3.925).abs() < 1e-12);
    }

    /// The interval of a mean of n zero/one samples matches the normal approximation
    /// p ± 1.96·sqrt(p(1−p)/n) to within a few thousandths.
    #[test]
    fn interval_of_a_proportion_matches_the_normal_approximation() {
        let n = 400;
        let v: Vec<f64> = (0..n).map(|i| (i % 4 == 0) as u8 as f64).collect();
        let v = rows(&v);
        let groups: Vec<u64> = (0..n as u64).collect();
        let draws = Draws::new(&groups, 2000, 7);
        let r = replicate(&one(&v), &draws, 0, &mut mean).unwrap().remove(0);
        let i = r.interval();
        let half = 1.96 * (0.25f64 * 0.75 / n as f64).sqrt();
        assert!((r.value - 0.25).abs() < 1e-12);
        assert!((i.lo - (0.25 - half)).abs() < 0.006, "{i:?}");
        assert!((i.hi - (0.25 + half)).abs() < 0.006, "{i:?}");
    }

    /// Paired draws: a result that is another plus 0.1 on every sample differs by exactly 0.1
    /// on every replicate, however noisy each is alone; a result compared with itself by 0.
    #[test]
    fn paired_differences_cancel_the_shared_noise() {
        let a: Vec<f64> = (0..50).map(|i| ((i * 37) % 11) as f64 / 10.0).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.1).collect();
        let groups: Vec<u64> = (0..50).collect();
        let draws = Draws::new(&groups, 500, 1);
        let (a, b) = (rows(&a), rows(&b));
        let ra = replicate(&one(&a), &draws, 0, &mut mean).unwrap().remove(0);
        let rb = replicate(&one(&b), &draws, 1, &mut mean).unwrap().remove(0);
        let d = rb.minus(&ra);
        assert!((d.value - 0.1).abs() < 1e-9 && (d.lo - 0.1).abs() < 1e-9);
        assert!((d.hi - 0.1).abs() < 1e-9 && d.excludes_zero());
        assert!(
            ra.interval().hi - ra.interval().lo > 0.1,
            "alone it is noisy"
        );
        let same = ra.minus(&ra);
        assert_eq!((same.lo, same.hi), (0.0, 0.0));
        assert!(!same.excludes_zero());
    }

    /// Rows of one group travel together: two rows per person at opposite values give the same
    /// mean in every replicate, so the interval is a point.
    #[test]
    fn rows_of_a_group_are_drawn_together() {
        let paired: Vec<Sample> = (0..40)
            .map(|i| Sample {
                group: i / 2,
                values: vec![(i % 2) as f64],
            })
            .collect();
        let groups: Vec<u64> = (0..20).collect();
        let draws = Draws::new(&groups, 200, 3);
        let i = replicate(&one(&paired), &draws, 0, &mut mean).unwrap()[0].interval();
        for v in [i.value, i.lo, i.hi] {
            assert!((v - 0.5).abs() < 1e-12, "{i:?}");
        }
    }

    /// Runs add their spread: two runs at 0.2 and 0.4 on identical samples give an interval
    /// spanning both, where one run alone gives a point; heads within a run add theirs too,
    /// but as the heads of one run, not as runs.
    #[test]
    fn run_and_head_variance_widen_the_interval() {
        let (a, b, c) = (rows(&[0.2; 30]), rows(&[0.4; 30]), rows(&[0.3; 30]));
        let groups: Vec<u64> = (0..30).collect();
        let draws = Draws::new(&groups, 400, 5);
        let interval = |runs: Vec<Vec<&[Sample]>>| {
            replicate(&runs, &draws, 0, &mut mean).unwrap()[0].interval()
        };
        let single = interval(one(&a));
        assert!(
            (single.lo - 0.2).abs() < 1e-12 && (single.hi - 0.2).abs() < 1e-12,
            "{single:?}"
        );
        let two_runs = interval(vec![vec![&a[..]], vec![&b[..]]]);
        assert!((two_runs.value - 0.3).abs() < 1e-12);
        assert!(
            (two_runs.lo - 0.2).abs() < 1e-9 && (two_runs.hi - 0.4).abs() < 1e-9,
            "{two_runs:?}"
        );
        // Heads at 0.2 and 0.4 of one run beside a run whose one head scores 0.3: the mean is
        // (0.3 + 0.3) / 2, and the interval is narrower than two runs at 0.2 and 0.4.
        let nested = interval(vec![vec![&a[..], &b[..]], vec![&c[..]]]);
        assert!((nested.value - 0.3).abs() < 1e-12, "{nested:?}");
        assert!(
            nested.lo > 0.2 + 1e-9 && nested.hi < 0.4 - 1e-9,
            "{nested:?}"
        );
    }
}
